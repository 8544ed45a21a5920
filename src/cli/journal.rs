//! `vanctl keygen`, `vanctl pubkey`, `vanctl key rotate` and `vanctl journal …`.

use std::io::{BufWriter, Write};

use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;

use crate::clock;
use crate::config::Config;
use crate::journal::{FirstStart, Journal, JournalError, JournalReader, VanFacts, export, kinds};
use crate::keys::{KeyError, VanKey, key_id_of, staged_key_path};

/// `vanctl journal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JournalCmd {
    /// Checks every signature, chain link and the gapless sequence in one snapshot, and that the
    /// journal matches the van: its id, its key file and its checkpoint. Names the first bad record.
    Verify {
        /// The genesis key HQ enrolled (64 hex digits, `vanctl pubkey`): record 1 must carry it.
        /// With it, a copy can be verified without the van's key file.
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Streams records as JSON Lines (docs/journal-format.md) with constant memory.
    Export {
        /// Only records after this sequence number (HQ's last acknowledged one).
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Stop after this sequence number.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Prints one record readably.
    Show {
        /// Sequence number.
        seq: u64,
    },
    /// Test tool: appends `test.append` records in a loop, printing `acked <seq> <n>` after each
    /// durable commit (used by the crash-safety test). Refuses production configurations.
    #[command(hide = true)]
    AppendLoop {
        /// Number of records (0 = until killed).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

/// `vanctl key` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCmd {
    /// Replaces the van's signing key: a `key.rotate` record signed by the old key hands over to a
    /// new one (stop vand first). HQ keeps the genesis key it enrolled and follows the record.
    Rotate,
}

/// `vanctl keygen`: the van's first start: creates the key file (mode 0600) and the journal with
/// its genesis record, together; refuses when either exists.
pub fn keygen(config: &Config) -> anyhow::Result<()> {
    let key_path = config.paths.key_path();
    let journal_path = config.paths.journal_path();
    if key_path.exists() {
        return Err(KeyError::Exists { path: key_path }.into());
    }
    let opts = crate::daemon::journal_options(config);
    let (journal, _) = Journal::open_van(&journal_path, &key_path, &opts, FirstStart::Create)?;
    journal.close();
    let key = VanKey::load(&key_path)?;
    println!("created {} (mode 0600) and the journal {}", key_path.display(), journal_path.display());
    println!(
        "public key: {}  (the genesis key: enroll it at HQ)",
        hex::encode(key.verifying_key().as_bytes())
    );
    println!("key id:     {}", hex::encode(key.key_id()));
    Ok(())
}

/// The genesis key and the current key id, read from the journal (record 1 and the tail).
fn journal_keys(config: &Config) -> anyhow::Result<(VerifyingKey, [u8; 8])> {
    let reader = JournalReader::open(&config.paths.journal_path())?;
    let genesis = reader.get(1)?;
    let public = genesis
        .payload_json()
        .get("public_key")
        .and_then(|v| v.as_str())
        .map(parse_pubkey)
        .transpose()?
        .context("record 1 has no public key: run `vanctl journal verify`")?;
    if key_id_of(&public) != genesis.key_id {
        bail!("record 1 is not signed by the key it names: run `vanctl journal verify`");
    }
    let tail = reader.tail()?.context("empty journal")?;
    let current = if tail.kind == kinds::KEY_ROTATE {
        let id = tail.payload_json().get("new_key_id").and_then(|v| v.as_str()).map(hex::decode);
        match id {
            Some(Ok(b)) if b.len() == 8 => b.try_into().unwrap_or(tail.key_id),
            _ => tail.key_id,
        }
    } else {
        tail.key_id
    };
    Ok((public, current))
}

/// `vanctl pubkey`: prints what HQ enrolls, the van's genesis key (record 1 of its journal):
/// `<van id> <key id> <public key hex>`. HQ follows `key.rotate` records from there, so this never
/// changes when the key is rotated. `--json` adds the id of the key signing now.
pub fn pubkey(config: &Config, json: bool) -> anyhow::Result<()> {
    let (genesis, current) = journal_keys(config)?;
    let public = hex::encode(genesis.as_bytes());
    let id = hex::encode(key_id_of(&genesis));
    if json {
        println!(
            "{}",
            serde_json::json!({"van_id": config.van.id, "key_id": id, "public_key": public, "algorithm": "ed25519",
                "enrol": "genesis key; follow key.rotate records", "current_key_id": hex::encode(current)})
        );
    } else {
        println!("{} {} {}", config.van.id, id, public);
    }
    Ok(())
}

/// `vanctl key rotate`.
pub fn key(cmd: &KeyCmd, config: &Config) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Rotate => {
            let current = config.paths.key_path();
            let staged = staged_key_path(&current);
            // Opening finishes an interrupted handover and removes a key left over from a rotation
            // that never committed, so neither blocks this one.
            let (journal, _) = crate::daemon::open_journal(config)?;
            let new_key = VanKey::generate();
            // Stage the new key durably before the record that hands over to it.
            new_key.save_new(&staged)?;
            let id = hex::encode(new_key.key_id());
            let appended = journal.rotate_key(new_key).with_context(|| {
                format!(
                    "no rotation: the staged key {} was not adopted (it signed nothing; it is removed at \
                     the next open and is safe to delete)",
                    staged.display()
                )
            })?;
            journal.close();
            std::fs::rename(&staged, &current).with_context(|| {
                format!("renaming {} (vand finishes this handover at its next start)", staged.display())
            })?;
            if let Some(dir) = current.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all())?;
            }
            let (genesis, _) = journal_keys(config)?;
            println!("rotated at record {}; the van now signs with key id {id}", appended.seq);
            println!(
                "HQ keeps the genesis key it enrolled ({}, `vanctl pubkey`) and follows the key.rotate \
                 record: nothing to re-enrol",
                hex::encode(key_id_of(&genesis))
            );
            Ok(())
        }
    }
}

fn parse_pubkey(text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--pubkey must be 64 hex digits (32 bytes)")?;
    mtu_journal::keys::strict_public_key(&bytes).map_err(|e| anyhow::anyhow!("--pubkey refused: {e}"))
}

/// Runs `vanctl journal …`. Returns the process exit code (1 when verification fails).
pub fn run(cmd: &JournalCmd, config: &Config) -> anyhow::Result<u8> {
    let path = config.paths.journal_path();
    match cmd {
        JournalCmd::Verify { pubkey } => {
            let trusted = match pubkey {
                Some(p) => Some(parse_pubkey(p)?),
                None => None,
            };
            let reader = JournalReader::open(&path)?;
            let key_path = config.paths.key_path();
            let mut notes = Vec::new();
            let key_file = match VanKey::load(&key_path) {
                Ok(k) => Some(k.verifying_key()),
                Err(e) if trusted.is_some() => {
                    notes.push(format!("key file not compared ({e})"));
                    None
                }
                Err(e) => bail!(
                    "cannot compare the journal with the van's key: {e}\n\
                     (to verify a copy without the van's key, pass --pubkey <the genesis key HQ enrolled>)"
                ),
            };
            let facts = VanFacts {
                van_id: Some(config.van.id.clone()),
                genesis_key: trusted,
                key_file,
                staged_key: VanKey::load(&staged_key_path(&key_path)).ok().map(|k| k.verifying_key()),
            };
            if reader.is_immutable() {
                notes.push("read-only copy opened as immutable".into());
            }
            let started = std::time::Instant::now();
            match reader.verify_van(&facts) {
                Ok(v) => {
                    if v.handover_pending {
                        notes.push("the journal signs with the staged key (vand finishes the handover at its next start)".into());
                    }
                    println!(
                        "OK: {} records verified in {:.2} s; last hash {}",
                        v.records,
                        started.elapsed().as_secs_f64(),
                        hex::encode(v.last_hash)
                    );
                    let id =
                        |k: Option<VerifyingKey>| k.map(|k| hex::encode(key_id_of(&k))).unwrap_or_default();
                    println!(
                        "van {}; genesis key id {}; current key id {} ({} rotations); checkpoint at record {}",
                        config.van.id,
                        id(v.genesis_key),
                        id(v.current_key),
                        v.rotations.len(),
                        v.checkpoint
                    );
                    for n in notes {
                        println!("note: {n}");
                    }
                    Ok(0)
                }
                Err(JournalError::Integrity { error, .. }) => {
                    println!("FAILED at record {}: {error}", error.seq());
                    Ok(1)
                }
                Err(e) if e.is_verification_failure() => {
                    println!("FAILED: {e}");
                    Ok(1)
                }
                Err(e) => Err(e.into()),
            }
        }
        JournalCmd::Export { since, to } => {
            if let Some(to) = to
                && to < since
            {
                bail!(
                    "--to {to} is before --since {since}: nothing could be exported (records after {since} up to {to})"
                );
            }
            let reader = JournalReader::open(&path)?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let mut io_error = None;
            reader.for_each(since.saturating_add(1), to.unwrap_or(u64::MAX), |rec| {
                if let Err(e) = export::write_line(&mut out, &rec) {
                    io_error = Some(e);
                    return Ok(false);
                }
                Ok(true)
            })?;
            if let Some(e) = io_error {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(0);
                }
                return Err(e.into());
            }
            out.flush()?;
            Ok(0)
        }
        JournalCmd::Show { seq } => {
            let reader = JournalReader::open(&path)?;
            let r = reader.get(*seq)?;
            println!("record     {}", r.seq);
            println!("van        {}", r.van_id);
            println!("kind       {}", r.kind);
            println!(
                "time       {}  ({})",
                clock::format_utc_us(r.time_us),
                clock::format_cairo_us(r.time_us)
            );
            println!("boot       {} +{:.3} s", hex::encode(r.boot_id), r.boot_us as f64 / 1e6);
            println!("key id     {}", hex::encode(r.key_id));
            let pretty = serde_json::from_slice::<serde_json::Value>(&r.payload)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&r.payload).into_owned());
            println!("payload    {}", pretty.replace('\n', "\n           "));
            println!("prev hash  {}", hex::encode(r.prev_hash));
            println!("hash       {}", hex::encode(r.hash));
            println!("signature  {}", hex::encode(r.sig));
            Ok(0)
        }
        JournalCmd::AppendLoop { count } => {
            if config.mode != crate::config::Mode::Simulation {
                bail!("append-loop writes test records: only allowed with a simulation configuration");
            }
            let (journal, _) = crate::daemon::open_journal(config)?;
            let stdout = std::io::stdout();
            let mut n = 0u64;
            while *count == 0 || n < *count {
                n += 1;
                let a = journal.append("test.append", &serde_json::json!({ "n": n }))?;
                let mut out = stdout.lock();
                writeln!(out, "acked {} {}", a.seq, n)?;
                out.flush()?;
            }
            journal.close();
            Ok(0)
        }
    }
}
