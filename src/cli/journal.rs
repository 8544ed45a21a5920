//! `vanctl keygen`, `vanctl pubkey`, `vanctl key rotate` and `vanctl journal …`.

use std::io::{BufWriter, Write};

use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;

use crate::clock;
use crate::config::Config;
use crate::journal::{JournalError, JournalReader, export};
use crate::keys::VanKey;

/// `vanctl journal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JournalCmd {
    /// Checks every signature, chain link and the gapless sequence; names the first bad record.
    Verify {
        /// Public key HQ enrolled (64 hex digits): record 1 must carry it. Default: the key file's.
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
    /// new one (stop vand first). Enroll the new public key at HQ afterwards.
    Rotate,
}

/// `vanctl keygen`: creates the key file (mode 0600); refuses to overwrite one.
pub fn keygen(config: &Config) -> anyhow::Result<()> {
    let path = config.paths.key_path();
    let key = VanKey::generate();
    key.save_new(&path)?;
    println!("created {} (mode 0600)", path.display());
    println!("public key: {}", hex::encode(key.verifying_key().as_bytes()));
    println!("key id:     {}", hex::encode(key.key_id()));
    Ok(())
}

/// `vanctl pubkey`: prints what HQ enrolls: `<van id> <key id> <public key hex>`.
pub fn pubkey(config: &Config, json: bool) -> anyhow::Result<()> {
    let key = VanKey::load(&config.paths.key_path())?;
    let public = hex::encode(key.verifying_key().as_bytes());
    let id = hex::encode(key.key_id());
    if json {
        println!(
            "{}",
            serde_json::json!({"van_id": config.van.id, "key_id": id, "public_key": public, "algorithm": "ed25519"})
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
            let (current, staged) = crate::daemon::key_rotation_paths(&config.paths.key_path());
            let (journal, _) = crate::daemon::open_journal(config)?;
            let new_key = VanKey::generate();
            // Stage the new key durably before the record that hands over to it.
            new_key.save_new(&staged)?;
            let public = hex::encode(new_key.verifying_key().as_bytes());
            let id = hex::encode(new_key.key_id());
            let appended = journal.rotate_key(new_key)?;
            journal.close();
            std::fs::rename(&staged, &current).with_context(|| format!("renaming {}", staged.display()))?;
            if let Some(dir) = current.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all())?;
            }
            println!("rotated at record {}; new key id {id}", appended.seq);
            println!("public key: {public}  (enroll it at HQ)");
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
            let started = std::time::Instant::now();
            match reader.verify_all(trusted) {
                Ok(n) => {
                    let tail = reader.tail()?.map(|r| hex::encode(r.hash)).unwrap_or_default();
                    println!(
                        "OK: {n} records verified in {:.2} s; last hash {tail}",
                        started.elapsed().as_secs_f64()
                    );
                    Ok(0)
                }
                Err(JournalError::Integrity { error, .. }) => {
                    println!("FAILED at record {}: {error}", error.seq());
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
