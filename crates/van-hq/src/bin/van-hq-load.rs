//! `van-hq-load`: a fleet of simulated vans uploading at once to `van-hq serve` instances on one
//! database, over loopback only, bounded in count and time.
//!
//! Each van gets a fresh key and is enrolled in the database; its journal is built as a real
//! signed chain (mtu-journal) and cut into protocol v1 batches (mtu-sync) before the clock starts.
//! Then every van uploads its batches at once, each request signed per the protocol, alternating
//! between the instances; an upload counts when HQ's signed acknowledgement verifies and names
//! the batch's last record. Prints records/s and the acknowledgement time (p50, p99, max), then
//! checks in the database that every record of every van is stored exactly once, in order, that
//! each van's head matches and that no alarm was raised. Exits non-zero if any check fails.
//!
//! ```text
//! van-hq-load --database postgres://postgres@127.0.0.1:5432/hq --key hq.key   # spawns 2 instances
//! van-hq-load --database … --key hq.key --server 127.0.0.1:8443 --server 127.0.0.1:8444
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};
use mtu_journal::{Draft, Record, kinds};
use van_hq::database::Database;
use van_hq::store::Store;

/// Most vans and records per van accepted (the run stays bounded).
const MAX_VANS: usize = 5_000;
const MAX_RECORDS: usize = 100_000;

#[derive(Parser)]
#[command(name = "van-hq-load", about = "Simulated fleet uploading to van-hq instances (loopback only)")]
struct Args {
    /// The database the instances share (postgres://… or a SQLite path); vans are enrolled and
    /// records counted there.
    #[arg(long)]
    database: String,
    /// HQ's key file (the instances sign with it; acknowledgements are verified with its public key).
    #[arg(long)]
    key: PathBuf,
    /// A running instance to upload to (loopback address; repeat for several). None: spawn `--spawn`
    /// instances of the `van-hq` binary next to this one.
    #[arg(long)]
    server: Vec<SocketAddr>,
    /// Instances to spawn when no `--server` is given.
    #[arg(long, default_value_t = 2)]
    spawn: usize,
    /// Path of the `van-hq` binary to spawn (default: next to this binary).
    #[arg(long)]
    van_hq: Option<PathBuf>,
    /// Simulated vans.
    #[arg(long, default_value_t = 200)]
    vans: usize,
    /// Records per van (its genesis record included).
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Records per upload (at most 1000, the protocol's bound).
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Prefix of the van ids (a run's vans must not be enrolled yet; default: LOAD<pid>).
    #[arg(long)]
    prefix: Option<String>,
    /// Gives up after this many seconds of uploading.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// One simulated van: its id, key and journal cut into batches.
struct SimVan {
    id: String,
    key: SigningKey,
    last_hash: [u8; 32],
    batches: Vec<mtu_sync::Batch>,
}

fn build_van(id: String, records: usize, batch: usize) -> anyhow::Result<SimVan> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let mut journal: Vec<Record> = Vec::with_capacity(records);
    let boot_id: [u8; 16] = rand_boot_id();
    let t0 = van_hq::ingest::now_us() - records as i64 * 1_000_000;
    for seq in 1..=records as u64 {
        let (kind, payload) = if seq == 1 {
            let p = serde_json::json!({"format": 1, "public_key": hex::encode(key.verifying_key().as_bytes()),
                "van_id": id});
            (kinds::GENESIS, p.to_string())
        } else {
            let p = serde_json::json!({"service": "driving_licence", "step": "paid",
                "amount_piastres": 12_550 + seq, "national_id": "29001011234567"});
            ("test.event", p.to_string())
        };
        let prev_hash = journal.last().map(|r| r.hash).unwrap_or([0; 32]);
        let rec = Draft {
            seq,
            van_id: &id,
            time_us: t0 + seq as i64 * 1_000_000,
            boot_id,
            boot_us: seq * 1_000,
            kind,
            payload: payload.as_bytes(),
            prev_hash,
        }
        .seal(&key)
        .map_err(|e| anyhow::anyhow!("sealing record {seq} of {id}: {e}"))?;
        journal.push(rec);
    }
    let mut batches = Vec::new();
    let mut at = 0;
    while at < journal.len() {
        let b = mtu_sync::encode_batch(&journal[at..], batch, mtu_sync::MAX_BATCH_BYTES)?;
        at += b.len() as usize;
        batches.push(b);
    }
    let last_hash = journal.last().map(|r| r.hash).unwrap_or([0; 32]);
    Ok(SimVan { id, key, last_hash, batches })
}

fn rand_boot_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the answer read to the end.
fn http_post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> anyhow::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("answer without a header block")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).context("no status")?.parse()?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(Answer { status, body })
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = s.windows(2).position(|w| w == b"\r\n") {
        let n = std::str::from_utf8(&s[..i]).ok().and_then(|t| usize::from_str_radix(t.trim(), 16).ok());
        let Some(n) = n.filter(|n| *n > 0 && s.len() >= i + 2 + n) else { break };
        out.extend_from_slice(&s[i + 2..i + 2 + n]);
        s = &s[(i + 4 + n).min(s.len())..];
    }
    out
}

/// Uploads one batch (signed request), retrying a refused or failed attempt a few times; the
/// acknowledgement must verify with HQ's key and name the batch's last record.
fn upload(
    van: &SimVan,
    batch: &mtu_sync::Batch,
    addr: SocketAddr,
    hq_pub: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Duration> {
    let mut last_err = None;
    for attempt in 0..5u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(50 << attempt));
        }
        let started = Instant::now();
        let time = mtu_sync::request_time_text(van_hq::ingest::now_us());
        let nonce = rand_boot_id();
        let msg =
            mtu_sync::request_message(&van.id, "POST", mtu_sync::PATH_RECORDS, &time, &nonce, &batch.body)?;
        let sig = van.key.sign(&[mtu_sync::REQUEST_DOMAIN, &msg].concat()).to_bytes();
        let auth = mtu_sync::auth_headers(&van.id, time, &nonce, &sig);
        let mut headers: Vec<(&str, &str)> = auth.pairs().to_vec();
        headers.push(("Content-Encoding", "zstd"));
        let answer = match http_post(addr, mtu_sync::PATH_RECORDS, &headers, &batch.body) {
            Ok(a) => a,
            Err(e) => {
                last_err = Some(format!("{addr}: {e}"));
                continue;
            }
        };
        if answer.status != 200 {
            last_err = Some(format!("{addr}: {} {}", answer.status, String::from_utf8_lossy(&answer.body)));
            if answer.status >= 500 {
                continue;
            }
            break;
        }
        let ack = mtu_sync::verify_ack(&answer.body, hq_pub)
            .map_err(|e| anyhow::anyhow!("{}: acknowledgement does not verify: {e}", van.id))?;
        let took = started.elapsed();
        if ack.van != van.id || ack.seq != batch.last_seq || ack.head_hash != batch.last_hash {
            bail!(
                "{}: acknowledgement names seq {} hash {}, the batch ends at {} hash {}",
                van.id,
                ack.seq,
                hex::encode(ack.head_hash),
                batch.last_seq,
                hex::encode(batch.last_hash)
            );
        }
        return Ok(took);
    }
    bail!("{}: records {}–{}: {}", van.id, batch.first_seq, batch.last_seq, last_err.unwrap_or_default())
}

/// Spawns `van-hq serve` on 127.0.0.1:0; returns the child and the address it printed.
fn spawn_instance(bin: &PathBuf, database: &str, key: &PathBuf) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(bin)
        .args(["serve", "--database", database, "--key"])
        .arg(key)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    let mut err = BufReader::new(child.stderr.take().context("no stderr")?);
    err.read_line(&mut line)?;
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("van-hq serve said {line:?}"))?;
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Ok((child, addr))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.vans == 0 || args.vans > MAX_VANS {
        bail!("--vans must be 1–{MAX_VANS}");
    }
    if args.records == 0 || args.records > MAX_RECORDS {
        bail!("--records must be 1–{MAX_RECORDS}");
    }
    if args.batch == 0 || args.batch > mtu_sync::MAX_BATCH_RECORDS {
        bail!("--batch must be 1–{}", mtu_sync::MAX_BATCH_RECORDS);
    }
    if let Some(a) = args.server.iter().find(|a| !a.ip().is_loopback()) {
        bail!("--server {a}: only loopback addresses are load-tested");
    }
    let hq_key = van_hq::hq_key::load(&args.key)?;
    let hq_pub = hq_key.verifying_key();
    let store = Database::open(&args.database)?;
    let prefix = args.prefix.clone().unwrap_or_else(|| format!("LOAD{}", std::process::id()));

    // 1. Vans: keys, journals and batches (before the clock starts), then enrolment.
    let t = Instant::now();
    let ids: Vec<String> = (0..args.vans).map(|i| format!("{prefix}-{i:05}")).collect();
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let chunks: Vec<Vec<String>> = ids.chunks(args.vans.div_ceil(workers)).map(|c| c.to_vec()).collect();
    let (records, batch) = (args.records, args.batch);
    let mut vans: Vec<SimVan> = Vec::with_capacity(args.vans);
    for h in chunks
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                c.into_iter().map(|id| build_van(id, records, batch)).collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
    {
        for v in h.join().map_err(|_| anyhow::anyhow!("a journal builder panicked"))? {
            vans.push(v?);
        }
    }
    for v in &vans {
        van_hq::ingest::enroll(
            &store,
            &v.id,
            &hex::encode(v.key.verifying_key().as_bytes()),
            van_hq::ingest::now_us(),
        )?;
    }
    eprintln!(
        "van-hq-load: {} vans × {} records built, signed and enrolled in {:.1} s",
        args.vans,
        args.records,
        t.elapsed().as_secs_f64()
    );

    // 2. Instances.
    let mut children = Vec::new();
    let mut servers = args.server.clone();
    if servers.is_empty() {
        let bin = match &args.van_hq {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("van-hq"),
        };
        for _ in 0..args.spawn.max(1) {
            let (child, addr) = spawn_instance(&bin, &args.database, &args.key)?;
            children.push(child);
            servers.push(addr);
        }
    }
    let result = run(&args, &vans, &servers, &hq_pub, &store);
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

fn run(
    args: &Args,
    vans: &[SimVan],
    servers: &[SocketAddr],
    hq_pub: &ed25519_dalek::VerifyingKey,
    store: &Database,
) -> anyhow::Result<()> {
    // 3. Every van at once; each alternates between the instances batch by batch.
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let barrier = Arc::new(Barrier::new(vans.len() + 1));
    let (start, outcomes): (Instant, Vec<anyhow::Result<Vec<Duration>>>) = std::thread::scope(|scope| {
        let handles: Vec<_> = vans
            .iter()
            .enumerate()
            .map(|(i, van)| {
                let barrier = barrier.clone();
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        let mut times = Vec::with_capacity(van.batches.len());
                        for (j, b) in van.batches.iter().enumerate() {
                            if Instant::now() > deadline {
                                bail!("{}: timed out after {} s", van.id, args.timeout);
                            }
                            times.push(upload(van, b, servers[(i + j) % servers.len()], hq_pub)?);
                        }
                        Ok(times)
                    })
                    .expect("spawning a van thread")
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let outcomes = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("van thread panicked"))))
            .collect();
        (start, outcomes)
    });
    let wall = start.elapsed();
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for o in outcomes {
        match o {
            Ok(t) => times.extend(t),
            Err(e) => failures.push(e.to_string()),
        }
    }
    times.sort();
    let total = (vans.len() * args.records) as f64;
    println!(
        "{} vans × {} records ({} uploads of ≤ {} records) to {} instance(s): {:.2} s, {:.0} records/s",
        vans.len(),
        args.records,
        times.len(),
        args.batch,
        servers.len(),
        wall.as_secs_f64(),
        total / wall.as_secs_f64()
    );
    println!(
        "acknowledgement time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3
    );
    for f in failures.iter().take(10) {
        eprintln!("van-hq-load: upload failed: {f}");
    }

    // 4. The database holds every record exactly once, in order, heads match, no alarm.
    let mut bad = Vec::new();
    for van in vans {
        let rows = store.records(&van.id, 1, args.records + 1)?;
        let in_order = rows.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1);
        if rows.len() != args.records || !in_order {
            bad.push(format!(
                "{}: {} records stored (expected {}), in order: {in_order}",
                van.id,
                rows.len(),
                args.records
            ));
        } else if rows.last().map(|r| r.1) != Some(van.last_hash) {
            bad.push(format!("{}: the last stored record is not the van's", van.id));
        }
        let alarms = store.alarms(&van.id)?;
        if !alarms.is_empty() {
            bad.push(format!("{}: {} alarm(s), first {}", van.id, alarms.len(), alarms[0].kind));
        }
    }
    for b in bad.iter().take(10) {
        eprintln!("van-hq-load: check failed: {b}");
    }
    println!(
        "check: {} of {} vans hold every record exactly once, in order, head matching, no alarm",
        vans.len() - bad.len(),
        vans.len()
    );
    if !failures.is_empty() || !bad.is_empty() {
        bail!("{} upload(s) failed, {} van(s) wrong in the database", failures.len(), bad.len());
    }
    Ok(())
}
