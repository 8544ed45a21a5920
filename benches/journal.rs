//! Journal benchmarks. Each figure is printed against a baseline measured in the same run:
//!
//! 1. durable appends per second (seal + insert, `synchronous=FULL`) vs plain SQLite inserts of
//!    the same payload with the same pragmas (target ≥ 0.8), with p50/p99 append latency;
//! 2. start-to-ready (open + tail verification + start record) with `BENCH_RECORDS` records
//!    (default 1,000,000; target < 0.3 s);
//! 3. `journal verify` throughput vs raw `verify_strict` over the same records (target ≥ 0.7).
//!
//! Run: `cargo bench --bench journal` (set `BENCH_RECORDS=100000` for a quicker run).

use std::time::{Duration, Instant};

use mtu::journal::{Journal, JournalOptions, JournalReader, kinds};
use mtu::keys::VanKey;
use rusqlite::Connection;

fn opts() -> JournalOptions {
    JournalOptions { van_id: "MTU-BENCH-1".into(), checkpoint_every: 1000, max_pages: None }
}

fn payload(i: u64) -> serde_json::Value {
    serde_json::json!({"service": "driving_licence", "step": "paid", "amount_piastres": 12_550, "i": i,
        "citizen": "محمد أحمد علي", "national_id": "29001011234567"})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn durable_appends(dir: &std::path::Path, n: u64) {
    // Baseline: the same payload bytes, one row per transaction, same pragmas, no signing.
    let plain = dir.join("plain.db");
    let conn = Connection::open(&plain).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)").unwrap();
    let started = Instant::now();
    for i in 0..n {
        let tx = conn.unchecked_transaction().unwrap();
        tx.execute(
            "INSERT INTO t (seq, payload) VALUES (?1, ?2)",
            rusqlite::params![i as i64, payload(i).to_string()],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let plain_rate = n as f64 / started.elapsed().as_secs_f64();

    let (j, _) = Journal::open(&dir.join("durable.db"), VanKey::generate(), &opts()).unwrap();
    let mut lat = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        j.append("service.step", &payload(i)).unwrap();
        lat.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    j.close();
    lat.sort_unstable();
    println!(
        "durable appends: {rate:.0}/s vs plain SQLite {plain_rate:.0}/s: ratio {:.2} (target ≥ 0.80)",
        rate / plain_rate
    );
    println!(
        "append latency: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
}

fn big_journal(path: &std::path::Path, key: &VanKey, records: u64) {
    let (j, _) = Journal::open(path, VanKey::from_seed(&key_seed(key)), &opts()).unwrap();
    let threads = 4u64;
    let per = records / threads;
    std::thread::scope(|s| {
        for t in 0..threads {
            let j = (*j).clone();
            s.spawn(move || {
                for i in 0..per {
                    j.append("service.step", &payload(t * per + i)).unwrap();
                }
            });
        }
    });
    j.append(kinds::DAEMON_STOP, &serde_json::json!({"reason": "SIGTERM"})).unwrap();
    j.close();
}

// The bench keeps one seed so the big journal can be reopened with the same key.
const SEED: [u8; 32] = [0x5a; 32];
fn key_seed(_: &VanKey) -> [u8; 32] {
    SEED
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes harness=false benches with --list.
    }
    let records: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .unwrap();
    durable_appends(dir.path(), 2_000);

    let key = VanKey::from_seed(&SEED);
    let path = dir.path().join("big.db");
    let t = Instant::now();
    big_journal(&path, &key, records);
    println!("built a journal of {records} records in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let (j, report) = Journal::open(&path, VanKey::from_seed(&SEED), &opts()).unwrap();
    j.append(kinds::DAEMON_START, &serde_json::json!({"previous_stop": "clean"})).unwrap();
    let ready = t.elapsed();
    j.close();
    println!(
        "start to ready with {} records: {:.3} s (verified {} since checkpoint; target < 0.300 s)",
        report.records,
        ready.as_secs_f64(),
        report.verified
    );

    // Worst case: a crash just before the next checkpoint leaves checkpoint_every - 1 records to
    // verify at start. Move the checkpoint back that far (it is mutable metadata) and open again.
    {
        let conn = Connection::open(&path).unwrap();
        let back = report.records + 1 - (opts().checkpoint_every - 1);
        conn.execute(
            "UPDATE checkpoint SET seq = ?1, hash = (SELECT hash FROM records WHERE seq = ?1)",
            [back as i64],
        )
        .unwrap();
    }
    let t = Instant::now();
    let (j, report) = Journal::open(&path, VanKey::from_seed(&SEED), &opts()).unwrap();
    j.append(kinds::DAEMON_START, &serde_json::json!({"previous_stop": "unclean"})).unwrap();
    let ready = t.elapsed();
    j.close();
    println!(
        "start to ready, worst case ({} records to verify since the checkpoint): {:.3} s (target < 0.300 s)",
        report.verified,
        ready.as_secs_f64()
    );

    // Verify throughput on (up to) the first 200k records, against raw verify_strict on the same.
    let sample = records.min(200_000);
    let reader = JournalReader::open(&path).unwrap();
    let mut recs = Vec::with_capacity(sample as usize);
    reader
        .for_each(1, sample, |r| {
            recs.push((r.signed_bytes(), r.signature()));
            Ok(true)
        })
        .unwrap();
    let public = key.verifying_key();
    let t = Instant::now();
    for (body, sig) in &recs {
        public.verify_strict(body, sig).unwrap();
    }
    let raw_rate = recs.len() as f64 / t.elapsed().as_secs_f64();
    drop(recs);
    let all = reader.tail().unwrap().unwrap().seq;
    let t = Instant::now();
    let n = reader.verify_all(Some(public)).unwrap();
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "journal verify: {rate:.0} records/s ({all} records) vs raw verify_strict {raw_rate:.0}/s: ratio {:.2} (target ≥ 0.70)",
        rate / raw_rate
    );
}
