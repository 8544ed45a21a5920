//! Journal benchmarks. Each figure is printed against a baseline measured in the same run:
//!
//! 1. durable appends per second (seal + insert, `synchronous=FULL`) vs plain SQLite inserts of
//!    the same payload with the same pragmas, interleaved in rounds so both meet the same disk
//!    (target ≥ 0.9), with p50/p99 append latency (target p99 < 1 ms) and where the time goes:
//!    thread handoff (none: the appender commits itself), JSON, sealing (hash + signature),
//!    triggers, durable commit. On a tmpfs (`BENCH_DIR=/dev/shm`) fsync costs nothing and the
//!    ratio shows the CPU cost alone; the target is about a real disk;
//! 2. start-to-ready (open + tail verification + start record) with `BENCH_RECORDS` records
//!    (default 1,000,000; target < 0.3 s);
//! 3. `journal verify` throughput vs raw `verify_strict` over the same records (target ≥ 0.7).
//!
//! Run: `cargo bench --bench journal` (set `BENCH_RECORDS=100000` for a quicker run).

use std::time::{Duration, Instant};

use mtu::journal::record::{Draft, check_payload};
use mtu::journal::store::txn_of;
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

/// Mean time per call of `f` over `n` calls.
fn per_call(n: u64, mut f: impl FnMut(u64)) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed() / n as u32
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The journal's table and triggers, without the rest of the schema, for the trigger cost.
const RECORDS_DDL: &str =
    "CREATE TABLE records (seq INTEGER PRIMARY KEY CHECK (seq >= 1), van_id TEXT NOT NULL,
    key_id BLOB NOT NULL, time_us INTEGER NOT NULL, boot_id BLOB NOT NULL, boot_us INTEGER NOT NULL,
    kind TEXT NOT NULL, payload BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL,
    sig BLOB NOT NULL) STRICT;";
const TRIGGERS_DDL: &str = "CREATE TRIGGER records_gapless BEFORE INSERT ON records
    WHEN NEW.seq <> COALESCE((SELECT MAX(seq) FROM records), 0) + 1
    BEGIN SELECT RAISE(ABORT, 'gap'); END;
    CREATE TRIGGER records_chained BEFORE INSERT ON records
    WHEN (NEW.seq = 1 AND NEW.prev_hash <> zeroblob(32))
      OR (NEW.seq > 1 AND NEW.prev_hash IS NOT (SELECT hash FROM records WHERE seq = NEW.seq - 1))
    BEGIN SELECT RAISE(ABORT, 'chain'); END;";

/// CPU cost per row of inserting sealed records (no fsync: `synchronous=OFF`), with or without the
/// journal's triggers.
fn insert_cost(dir: &std::path::Path, key: &VanKey, triggers: bool, n: u64) -> Duration {
    let path = dir.join(if triggers { "trig.db" } else { "notrig.db" });
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    conn.execute_batch(RECORDS_DDL).unwrap();
    if triggers {
        conn.execute_batch(TRIGGERS_DDL).unwrap();
    }
    let mut prev = [0u8; 32];
    let recs: Vec<_> = (1..=n)
        .map(|seq| {
            // Record 1 must be the genesis record (format rules).
            let (kind, body) = if seq == 1 {
                let genesis = serde_json::json!({"format": 1, "public_key": hex::encode(key.verifying_key().as_bytes()),
                    "van_id": "MTU-BENCH-1"});
                (kinds::GENESIS, genesis.to_string())
            } else {
                ("service.step", payload(seq).to_string())
            };
            let r = Draft {
                seq,
                van_id: "MTU-BENCH-1",
                time_us: 0,
                boot_id: [0; 16],
                boot_us: 0,
                kind,
                payload: body.as_bytes(),
                prev_hash: prev,
            }
            .seal(key)
            .unwrap();
            prev = r.hash;
            r
        })
        .collect();
    let mut it = recs.iter();
    per_call(n, |_| {
        let r = it.next().unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        tx.prepare_cached("INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
            .unwrap()
            .execute(rusqlite::params![
                r.seq as i64,
                r.van_id,
                &r.key_id[..],
                r.time_us,
                &r.boot_id[..],
                r.boot_us as i64,
                r.kind,
                r.payload,
                &r.prev_hash[..],
                &r.hash[..],
                &r.sig[..]
            ])
            .unwrap();
        tx.commit().unwrap();
    })
}

fn durable_appends(dir: &std::path::Path, n: u64) {
    // Baseline: the same payload bytes, one row per transaction, same pragmas, no signing.
    let plain = dir.join("plain.db");
    let conn = Connection::open(&plain).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)").unwrap();
    let (j, _) = Journal::open(&dir.join("durable.db"), VanKey::generate(), &opts()).unwrap();

    // Interleaved in rounds, so both see the same disk (other processes' I/O comes and goes).
    let round = 25;
    let (mut plain_time, mut journal_time) = (Duration::ZERO, Duration::ZERO);
    let mut lat = Vec::with_capacity(n as usize);
    let mut plain_lat = Vec::with_capacity(n as usize);
    let mut i = 0u64;
    while i < n {
        for k in i..(i + round).min(n) {
            let t = Instant::now();
            let tx = conn.unchecked_transaction().unwrap();
            tx.prepare_cached("INSERT INTO t (seq, payload) VALUES (?1, ?2)")
                .unwrap()
                .execute(rusqlite::params![k as i64, payload(k).to_string()])
                .unwrap();
            tx.commit().unwrap();
            plain_lat.push(t.elapsed());
            plain_time += t.elapsed();
        }
        for k in i..(i + round).min(n) {
            let t = Instant::now();
            j.append("service.step", &payload(k)).unwrap();
            lat.push(t.elapsed());
            journal_time += t.elapsed();
        }
        i += round;
    }
    j.close();
    let rate = n as f64 / journal_time.as_secs_f64();
    let plain_rate = n as f64 / plain_time.as_secs_f64();
    lat.sort_unstable();
    plain_lat.sort_unstable();
    println!(
        "durable appends: {rate:.0}/s vs plain SQLite {plain_rate:.0}/s (interleaved): ratio {:.2} (target ≥ 0.90)",
        rate / plain_rate
    );
    println!(
        "median: journal {:.3} ms vs plain {:.3} ms: ratio {:.2} (the mean above includes the disk's stalls)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&plain_lat, 0.5).as_secs_f64() * 1e3,
        percentile(&plain_lat, 0.5).as_secs_f64() / percentile(&lat, 0.5).as_secs_f64()
    );
    println!(
        "append latency: p50 {:.3} ms, p99 {:.3} ms (target p99 < 1 ms); plain insert p50 {:.3} ms, p99 {:.3} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&plain_lat, 0.5).as_secs_f64() * 1e3,
        percentile(&plain_lat, 0.99).as_secs_f64() * 1e3
    );

    // Where an append's time goes beyond the plain insert, each part measured alone.
    let m = 2_000u64;
    let key = VanKey::from_seed(&SEED);
    let handoff = {
        let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<u64>>();
        let worker = std::thread::spawn(move || {
            while let Ok(reply) = rx.recv() {
                let _ = reply.send(1);
            }
        });
        let d = per_call(m, |_| {
            let (reply, back) = tokio::sync::oneshot::channel();
            tx.send(reply).unwrap();
            back.blocking_recv().unwrap();
        });
        drop(tx);
        worker.join().unwrap();
        d
    };
    let json = per_call(m, |i| {
        let bytes = payload(i).to_string().into_bytes();
        check_payload(&bytes).unwrap();
        txn_of(&bytes).unwrap();
    });
    let body = payload(1).to_string();
    let draft = Draft {
        seq: 2,
        van_id: "MTU-BENCH-1",
        time_us: 0,
        boot_id: [0; 16],
        boot_us: 0,
        kind: "service.step",
        payload: body.as_bytes(),
        prev_hash: [1; 32],
    };
    let seal = per_call(m, |_| {
        draft.seal(&key).unwrap();
    });
    let with = insert_cost(dir, &key, true, m);
    let without = insert_cost(dir, &key, false, m);
    let commit = plain_time / n as u32;
    println!(
        "per append: thread handoff none (the appender commits itself; a round trip to a writer \
         thread would add {:.1} µs), JSON (serialise + check + txn) {:.1} µs, seal (hash + sign) {:.1} µs, \
         triggers {:.1} µs (insert {:.1} µs with, {:.1} µs without), durable commit (plain insert) {:.1} µs; \
         journal append {:.1} µs",
        us(handoff),
        us(json),
        us(seal),
        us(with.saturating_sub(without)),
        us(with),
        us(without),
        us(commit),
        us(journal_time / n as u32)
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
    j.append(
        kinds::DAEMON_STOP,
        &serde_json::json!({"reason": "SIGTERM", "interrupted_jobs": 0, "stop_ms": 1}),
    )
    .unwrap();
    j.close();
}

/// A `daemon.start` payload as the catalogue types it.
fn start_payload(previous: &str) -> serde_json::Value {
    serde_json::json!({"config": "bench", "mode": "simulation", "open_ms": 0, "previous_stop": previous,
        "records_verified_at_open": 0, "version": "bench"})
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
    let appends: u64 = std::env::var("BENCH_APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    durable_appends(dir.path(), appends);
    if records == 0 {
        return;
    }

    let key = VanKey::from_seed(&SEED);
    let path = dir.path().join("big.db");
    let t = Instant::now();
    big_journal(&path, &key, records);
    println!("built a journal of {records} records in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let (j, report) = Journal::open(&path, VanKey::from_seed(&SEED), &opts()).unwrap();
    j.append(kinds::DAEMON_START, &start_payload("clean")).unwrap();
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
    j.append(kinds::DAEMON_START, &start_payload("unclean")).unwrap();
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
