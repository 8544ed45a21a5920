//! What only a shared PostgreSQL can show: two real `van-hq serve` processes on one database,
//! receiving interleaved and concurrent uploads of the same van and of different vans; and the
//! fleet load tool, run small so it cannot rot.

mod common;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{Van, auth, batch, http, nonce, now_text};
use van_hq::database::Database;
use van_hq::store::Store;

/// A `van-hq serve` process, killed when dropped.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn van_hq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_van-hq")).args(args).output().unwrap()
}

fn serve(url: &str, key: &str) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_van-hq"))
        .args(["serve", "--database", url, "--key", key, "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"));
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Instance { child, addr }
}

fn upload(addr: SocketAddr, van: &Van, body: &[u8]) -> common::Answer {
    let mut h = auth(van, "POST", "/v1/records", &now_text(), nonce(), body);
    h.push(("Content-Encoding", "zstd".into()));
    http(addr, "POST", "/v1/records", &h, body)
}

/// Keygen, enrolment through the binary, two instances on one fresh database.
fn fleet(vans: &[&Van]) -> (tempfile::TempDir, String, ed25519_dalek::VerifyingKey, [Instance; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hq.key");
    let k = key.to_str().unwrap();
    let url = common::pg::fresh_database();
    let out = van_hq(&["keygen", "--key", k]);
    assert!(out.status.success());
    let hq_pub = van_hq::store::public_key_from_hex(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    for v in vans {
        let out = van_hq(&["enroll", "--database", &url, "--van", &v.id, "--public-key", &v.public_hex()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let instances = [serve(&url, k), serve(&url, k)];
    (dir, url, hq_pub, instances)
}

/// Threads upload one van's journal in overlapping batches, each request to the other instance
/// than the last, while other threads upload other vans the same way. Every acknowledgement
/// verifies and names a record the van holds; every record is stored exactly once; no fork alarm
/// comes from the race; both instances then give the same acknowledgement.
#[test]
fn two_instances_on_one_postgres_store_interleaved_uploads_exactly_once() {
    let mut shared = Van::new("MTU-CAI-0001", 1);
    shared.append_n(399);
    let others: Vec<Van> = (2..5u8)
        .map(|i| {
            let mut v = Van::new(&format!("MTU-CAI-000{i}"), i);
            v.append_n(149);
            v
        })
        .collect();
    let mut all: Vec<&Van> = vec![&shared];
    all.extend(others.iter());
    let (_dir, url, hq_pub, instances) = fleet(&all);
    let addrs = [instances[0].addr, instances[1].addr];
    let run = |van: &Van, t: usize| {
        let mut from = (t * 11) % 40;
        let mut acks = Vec::new();
        let mut turn = t;
        loop {
            let to = (from + 30 + 3 * t).min(van.records.len());
            let addr = addrs[turn % 2];
            turn += 1;
            let a = upload(addr, van, &batch(&van.records[from..to]));
            match a.status {
                200 => {
                    let ack = van_hq::protocol::verify_ack(a.body.to_string().as_bytes(), &hq_pub)
                        .expect("the acknowledgement verifies");
                    let (seq, head) = (ack.seq, ack.head_hash);
                    assert_eq!(head, van.records[seq as usize - 1].hash, "{}: ack {seq}", van.id);
                    assert!(seq as usize >= to, "{}: ack {seq} below the batch's end {to}", van.id);
                    acks.push(seq);
                    if seq as usize == van.records.len() {
                        return acks;
                    }
                    from = seq as usize;
                }
                409 if a.body["error"]["code"] == "sync.gap" => {
                    from = a.body["error"]["details"]["expected_seq"].as_u64().unwrap() as usize - 1;
                }
                other => panic!("{}: unexpected answer {other}: {}", van.id, a.body),
            }
        }
    };
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for t in 0..6 {
            let shared = &shared;
            hs.push(s.spawn(move || run(shared, t)));
        }
        for (i, v) in others.iter().enumerate() {
            hs.push(s.spawn(move || run(v, i + 1)));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let store = Database::open(&url).unwrap();
    for v in &all {
        let seqs: Vec<u64> = store.records(&v.id, 1, 1000).unwrap().into_iter().map(|r| r.0).collect();
        assert_eq!(seqs, (1..=v.records.len() as u64).collect::<Vec<_>>(), "{}", v.id);
        assert!(store.alarms(&v.id).unwrap().is_empty(), "{}: {:?}", v.id, store.alarms(&v.id).unwrap());
        assert_eq!(van_hq::audit::verify_van(&store, &v.id, 128).unwrap(), v.records.len() as u64);
    }
    // Both instances answer GET /v1/ack with the same head.
    for addr in addrs {
        let h = auth(&shared, "GET", "/v1/ack", &now_text(), nonce(), b"");
        let a = http(addr, "GET", "/v1/ack", &h, b"");
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["ack"]["seq"], 400);
        assert_eq!(a.body["ack"]["head_hash"], hex::encode(shared.records[399].hash));
    }
    // A replay to the other instance is refused: nonces are shared through the database.
    let body = batch(&shared.records[..5]);
    let mut h = auth(&shared, "POST", "/v1/records", &now_text(), nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    assert_eq!(http(addrs[0], "POST", "/v1/records", &h, &body).status, 200);
    let a = http(addrs[1], "POST", "/v1/records", &h, &body);
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("sync.replayed_request")),
        "{}",
        a.body
    );
    // A changed record sent to either instance is a fork, recorded once in the shared database.
    let mut forked = shared.records[9].clone();
    forked.payload = b"{\"n\":0}".to_vec();
    let a = upload(addrs[1], &shared, &batch(&[forked]));
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("sync.fork")), "{}", a.body);
    let alarms = store.alarms(&shared.id).unwrap();
    assert_eq!(alarms.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["fork"]);
}

/// The fleet load tool, small: 10 vans × 50 records at once to two instances it spawns; it checks
/// the database itself and exits non-zero if any record is missing or doubled.
#[test]
fn fleet_load_tool_runs_small_and_checks_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hq.key");
    let k = key.to_str().unwrap();
    assert!(van_hq(&["keygen", "--key", k]).status.success());
    let url = common::pg::fresh_database();
    let out = Command::new(env!("CARGO_BIN_EXE_van-hq-load"))
        .args(["--database", &url, "--key", k, "--vans", "10", "--records", "50", "--batch", "20"])
        .args(["--van-hq", env!("CARGO_BIN_EXE_van-hq"), "--timeout", "120"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("10 vans × 50 records (30 uploads of ≤ 20 records) to 2 instance(s)"), "{text}");
    assert!(text.contains("records/s") && text.contains("p99"), "{text}");
    assert!(text.contains("check: 10 of 10 vans hold every record exactly once"), "{text}");
    // The database agrees: 500 records, 10 vans.
    let store = Database::open(&url).unwrap();
    let vans = store.vans().unwrap();
    assert_eq!(vans.len(), 10);
    assert!(
        vans.iter().all(|v| v.chain.seq == 50),
        "{:?}",
        vans.iter().map(|v| v.chain.seq).collect::<Vec<_>>()
    );
    // Only loopback targets.
    let out = Command::new(env!("CARGO_BIN_EXE_van-hq-load"))
        .args(["--database", &url, "--key", k, "--server", "192.0.2.1:8443"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only loopback"));
}
