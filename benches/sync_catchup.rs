//! Sync catch-up benchmark: a van back after 30 days offline (10,000 records) uploads over
//! loopback HTTPS (rustls, the throwaway CA pinned) to an in-process HQ (`van-hq`'s router and
//! SQLite store). Printed against baselines measured in the same run:
//!
//! 1. catch-up wall time (from the uplink's start to HQ's signed acknowledgement of the head) vs
//!    HQ ingesting the same batches directly (no HTTP, no TLS, no van): the network's and the
//!    shell's overhead (target: < 10 s for 10,000 records);
//! 2. the van's peak memory growth (VmHWM minus VmRSS before the uplink starts, measured in a
//!    child process that runs only the van) at 1,000 and at 10,000 records: constant memory means
//!    the two are about equal (batches are bounded, nothing grows with the backlog);
//! 3. bytes on the wire per record (every byte the van sends over TCP: TLS, HTTP headers,
//!    signatures, zstd bodies, counted by a proxy) vs the raw signed record (signed bytes plus
//!    its 64-byte signature) (target ≤ 0.7).
//!
//! Run: `cargo bench --bench sync_catchup` (`BENCH_RECORDS=10000` by default; the journal and
//! HQ's database go to `BENCH_DIR`, default /dev/shm when present, so disk speed does not
//! dominate). No figure is asserted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use mtu::journal::{Journal, JournalOptions, JournalReader};
use mtu::keys::VanKey;
use mtu::sync::http::{Endpoint, HqClient};
use mtu::sync::machine::{JournalView, UplinkConfig};
use mtu::sync::shell::{ShellConfig, UplinkTask};
use mtu::sync::wire;
use tokio::net::{TcpListener, TcpStream};
use van_hq::sqlite::SqliteStore;

const VAN: &str = "MTU-BENCH-SYNC";

fn van_key() -> VanKey {
    VanKey::from_seed(&[31u8; 32])
}

fn hq_key() -> SigningKey {
    SigningKey::from_bytes(&[32u8; 32])
}

/// A realistic record payload: a service step with citizen data (about 300 bytes of JSON).
fn payload(i: u64) -> serde_json::Value {
    const STEPS: [&str; 8] = [
        "opened",
        "quoted",
        "paid",
        "card.intent",
        "card.result",
        "sticker.intent",
        "sticker.result",
        "closed",
    ];
    let step = STEPS[(i % 8) as usize];
    serde_json::json!({"txn": format!("T-20261101-{:05}", i / 8), "service": "driving_licence_renewal",
        "step": step,
        "amount_piastres": 12_550 + (i % 17) * 100, "citizen": "محمد أحمد علي حسن", "national_id": format!("2900101{:07}", i * 7919 % 10_000_000),
        "officer": "1001", "device": {"job": format!("job-{i}"), "ms": 1200 + i % 700}})
}

fn rss_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// The child: runs only the van's uplink until HQ acknowledges the head; prints its figures.
fn child(journal: &Path, url: &str, ca: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let before = rss_kb("VmRSS:");
        let endpoint = Endpoint::with_ca_file(url, ca, Duration::from_secs(60)).unwrap();
        let client = HqClient::new(&endpoint, "bench CA", VAN, Arc::new(van_key())).unwrap();
        let reader = JournalReader::open(journal).unwrap();
        let head = reader.head().unwrap().0;
        let cfg = ShellConfig { uplink: UplinkConfig::default(), poll_interval: Duration::from_millis(20) };
        let (task, handle) = UplinkTask::new(cfg, VAN, hq_key().verifying_key(), client, reader, None);
        let (cancel, rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let run = tokio::spawn(task.run(rx));
        loop {
            let st = handle.status().await;
            if st["acked_seq"].as_u64() == Some(head) {
                break;
            }
            assert!(st["last_error"].is_null(), "uplink failed: {st}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let _ = cancel.send(true);
        let _ = run.await;
        println!("{{\"secs\":{secs},\"rss_before_kb\":{before},\"hwm_kb\":{}}}", rss_kb("VmHWM:"));
    });
}

/// Counts the bytes the van sends through it.
async fn counting_proxy(upstream: SocketAddr, sent: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let sent = sent.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                if let Ok((up, _down)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    sent.fetch_add(up, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

struct Run {
    records: u64,
    raw_bytes: u64,
    body_bytes: u64,
    wire_bytes: u64,
    secs: f64,
    direct_secs: f64,
    growth_kb: u64,
}

fn one(base: &Path, n: u64) -> Run {
    let dir = base.join(format!("n{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let jpath = dir.join("journal.db");
    let opts = JournalOptions { van_id: VAN.into(), checkpoint_every: 1000, max_pages: None };
    let (j, _) = Journal::open(&jpath, van_key(), &opts).unwrap();
    for i in 1..n {
        j.append("test.append", &payload(i)).unwrap();
    }
    j.close();
    let reader = JournalReader::open(&jpath).unwrap();
    let records = reader.read(1, n as usize + 10).unwrap();
    let raw_bytes: u64 = records.iter().map(|r| r.signed_bytes().len() as u64 + 64).sum();

    // Baseline: HQ ingesting the same batches directly.
    let store = SqliteStore::open(&dir.join("direct.db")).unwrap();
    let enroll = hex::encode(van_key().verifying_key().as_bytes());
    van_hq::ingest::enroll(&store, VAN, &enroll, 0).unwrap();
    let mut body_bytes = 0u64;
    let t = Instant::now();
    let mut from = 0;
    while from < records.len() {
        let batch =
            wire::encode_batch(&records[from..], wire::MAX_BATCH_RECORDS, wire::MAX_BATCH_BYTES).unwrap();
        body_bytes += batch.body.len() as u64;
        let text = van_hq::ingest::decompress(&batch.body).unwrap();
        van_hq::ingest::ingest(&store, &hq_key(), VAN, &text, van_hq::ingest::now_us()).unwrap();
        from += batch.len() as usize;
    }
    let direct_secs = t.elapsed().as_secs_f64();

    // HQ over TLS behind a byte-counting proxy; the van in a child process.
    let tls = van_hq::tls::init(&dir.join("tls"), &["127.0.0.1".into()]).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let (url, stop) = rt.block_on(async {
        let store = SqliteStore::open(&dir.join("hq.db")).unwrap();
        van_hq::ingest::enroll(&store, VAN, &enroll, 0).unwrap();
        let hq = Arc::new(van_hq::server::Hq { store, key: hq_key() });
        let config = van_hq::tls::server_config(&tls.server_cert, &tls.server_key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(van_hq::tls::serve_tls(listener, config, hq, async move {
            let _ = stopped.await;
        }));
        let proxy = counting_proxy(addr, sent.clone()).await;
        (format!("https://{proxy}"), stop)
    });
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SYNC_BENCH_CHILD", "1")
        .args([jpath.to_str().unwrap(), &url, tls.ca_cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "van child failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = stop.send(());
    // Let the proxy's connections close and count.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    drop(rt);
    Run {
        records: records.len() as u64,
        raw_bytes,
        body_bytes,
        wire_bytes: sent.load(Ordering::Relaxed),
        secs: v["secs"].as_f64().unwrap(),
        direct_secs,
        growth_kb: v["hwm_kb"].as_u64().unwrap().saturating_sub(v["rss_before_kb"].as_u64().unwrap()),
    }
}

fn main() {
    if std::env::var_os("SYNC_BENCH_CHILD").is_some() {
        let a: Vec<String> = std::env::args().collect();
        let n = a.len();
        child(Path::new(&a[n - 3]), &a[n - 2], Path::new(&a[n - 1]));
        return;
    }
    let n: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let base: PathBuf = std::env::var_os("BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| {
        if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() }
    });
    let tmp = tempfile::tempdir_in(&base).unwrap();
    println!("sync catch-up over loopback HTTPS to an in-process HQ (journal and HQ in {})", base.display());
    let small = one(tmp.path(), (n / 10).max(100));
    let large = one(tmp.path(), n);
    for r in [&small, &large] {
        println!(
            "{:>6} records: catch-up {:.2} s ({:.0} records/s) vs HQ ingesting directly {:.2} s: ratio {:.2}",
            r.records,
            r.secs,
            r.records as f64 / r.secs,
            r.direct_secs,
            r.secs / r.direct_secs
        );
        println!(
            "{:>6} records: wire {:.1} B/record (bodies {:.1}) vs raw signed record {:.1} B: ratio {:.3} (target <= 0.7)",
            r.records,
            r.wire_bytes as f64 / r.records as f64,
            r.body_bytes as f64 / r.records as f64,
            r.raw_bytes as f64 / r.records as f64,
            r.wire_bytes as f64 / r.raw_bytes as f64
        );
    }
    println!(
        "van peak memory growth: {} KiB at {} records, {} KiB at {} records: ratio {:.2} (constant memory: about 1)",
        small.growth_kb,
        small.records,
        large.growth_kb,
        large.records,
        large.growth_kb as f64 / small.growth_kb.max(1) as f64
    );
}
