//! The van's uplink (`mtu::sync`) against a fake HQ written from docs/sync.md's rules (strict
//! request signatures, idempotent storage on (van, seq), fork and gap answers, signed
//! acknowledgements) over a real journal, under faults: HQ down, 500, timeouts, answers lost after
//! HQ stored, truncated and garbled answers, forged and duplicate acknowledgements, restarts
//! mid-batch, HQ losing records. Every record must reach HQ exactly once and nothing may count as
//! synced that HQ does not hold. No network: the shell's role is played in this file.
//!
//! One test checks the signed bytes against Python's `cryptography` (an independent Ed25519) and
//! a layout built in Python from the protocol text.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use mtu::journal::{ChainState, ChainVerifier, Journal, JournalOptions, JournalReader, Record};
use mtu::keys::VanKey;
use mtu::sync::machine::{
    Event, JournalView, Request, RequestKind, Response, Uplink, UplinkConfig, UplinkError,
};
use mtu::sync::wire::{self, Ack, AuthHeaders, HqErrorCode};

const VAN: &str = "MTU-S-1";

static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn van_key() -> VanKey {
    VanKey::from_seed(&[42u8; 32])
}

fn hq_key() -> SigningKey {
    SigningKey::from_bytes(&[77u8; 32])
}

/// A journal of genesis plus `n` records; its reader.
fn journal(dir: &Path, n: u64) -> JournalReader {
    let path = dir.join("j.db");
    let opts = JournalOptions { van_id: VAN.into(), checkpoint_every: 50, max_pages: None };
    let (j, _) = Journal::open(&path, van_key(), &opts).unwrap();
    for i in 0..n {
        j.append("test.append", &serde_json::json!({"i": i, "name": "محمد"})).unwrap();
    }
    j.close();
    JournalReader::open(&path).unwrap()
}

/// HQ as docs/sync.md describes it, in memory.
struct FakeHq {
    key: SigningKey,
    van_key: VerifyingKey,
    stored: Vec<Record>,
    state: ChainState,
    /// How many times each seq was written (exactly-once check).
    writes: HashMap<u64, u32>,
    clock_us: i64,
    nonces: Vec<String>,
    alarms: Vec<String>,
}

fn error(status: u16, code: &str, details: serde_json::Value) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": code, "details": details}});
    Response { status, body: body.to_string().into_bytes() }
}

impl FakeHq {
    fn new() -> Self {
        FakeHq {
            key: hq_key(),
            van_key: van_key().verifying_key(),
            stored: Vec::new(),
            state: ChainState::empty(),
            writes: HashMap::new(),
            clock_us: 1_764_588_000_000_000,
            nonces: Vec::new(),
            alarms: Vec::new(),
        }
    }

    fn ack(&mut self) -> Response {
        self.clock_us += 1_000;
        let (seq, head_hash) = self.stored.last().map_or((0, [0; 32]), |r| (r.seq, r.hash));
        let body = wire::sign_ack(&self.key, &Ack { van: VAN, seq, head_hash, time_us: self.clock_us });
        Response { status: 200, body: body.into_bytes() }
    }

    /// Forgets every record after `seq` (a restore from an old backup).
    fn lose_after(&mut self, seq: u64) {
        self.stored.truncate(seq as usize);
        let last = self.stored.last().unwrap();
        self.state =
            ChainState { van_id: VAN.into(), seq: last.seq, hash: last.hash, key: Some(self.van_key) };
    }

    /// The key in force after the new records of a batch that verifies, if any.
    fn key_after(&self, body: &[u8]) -> Option<VerifyingKey> {
        let last = self.stored.len() as u64;
        let mut verifier = if last == 0 {
            ChainVerifier::from_genesis(Some(self.van_key))
        } else {
            ChainVerifier::resume(self.state.clone())
        };
        for r in wire::decode_batch(body, wire::MAX_BATCH_BYTES).ok()?.iter().filter(|r| r.seq > last) {
            verifier.check(r).ok()?;
        }
        verifier.state().key
    }

    fn handle(&mut self, req: &Request, auth: &AuthHeaders) -> Response {
        if auth.van != VAN {
            return error(401, "sync.unknown_van", serde_json::Value::Null);
        }
        // An upload may carry a key rotation: its signature is checked with the key in force after
        // the batch (docs/sync.md); every other request with the key HQ holds.
        let key = match (req.method, req.path) {
            ("POST", wire::PATH_RECORDS) => self.key_after(&req.body).unwrap_or(self.van_key),
            _ => self.van_key,
        };
        if !wire::verify_request(&key, req.method, req.path, auth, &req.body) {
            return error(401, "sync.bad_request_signature", serde_json::Value::Null);
        }
        if self.nonces.contains(&auth.nonce) {
            return error(401, "sync.replayed_request", serde_json::Value::Null);
        }
        self.nonces.push(auth.nonce.clone());
        match (req.method, req.path) {
            ("GET", wire::PATH_ACK) => self.ack(),
            ("POST", wire::PATH_CHECKPOINT) => {
                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let seq = v["seq"].as_u64().unwrap();
                if seq < self.stored.len() as u64 {
                    self.alarms.push(format!("rollback to {seq}"));
                }
                self.ack()
            }
            ("POST", wire::PATH_RECORDS) => {
                assert_eq!(req.content_encoding, Some("zstd"));
                let records = match wire::decode_batch(&req.body, wire::MAX_BATCH_BYTES) {
                    Ok(r) => r,
                    Err(e) => return error(400, "sync.bad_batch", serde_json::json!({"why": e.to_string()})),
                };
                let last = self.stored.len() as u64;
                let mut new = Vec::new();
                for r in records {
                    if r.seq >= 1 && r.seq <= last {
                        let have = &self.stored[r.seq as usize - 1];
                        if have.hash != r.hash {
                            self.alarms.push(format!("fork at {}", r.seq));
                            return error(
                                409,
                                "sync.fork",
                                serde_json::json!({"seq": r.seq, "stored_hash": hex::encode(have.hash),
                                    "received_hash": hex::encode(r.hash)}),
                            );
                        }
                    } else {
                        new.push(r);
                    }
                }
                if let Some(first) = new.first() {
                    if first.seq > last + 1 {
                        return error(409, "sync.gap", serde_json::json!({"expected_seq": last + 1}));
                    }
                }
                let mut verifier = if last == 0 {
                    ChainVerifier::from_genesis(Some(self.van_key))
                } else {
                    ChainVerifier::resume(self.state.clone())
                };
                for r in &new {
                    if let Err(e) = verifier.check(r) {
                        return error(
                            422,
                            "sync.bad_record",
                            serde_json::json!({"seq": e.seq(), "why": e.to_string()}),
                        );
                    }
                }
                self.state = verifier.state().clone();
                self.van_key = self.state.key.unwrap();
                for r in new {
                    *self.writes.entry(r.seq).or_default() += 1;
                    self.stored.push(r);
                }
                self.ack()
            }
            _ => error(404, "sync.not_found", serde_json::Value::Null),
        }
    }
}

/// What goes wrong with one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Connection refused: HQ never sees the request.
    Down,
    /// HQ (or a proxy in front of it) answers 500 with an HTML page.
    Status500,
    /// HQ handles the request, the answer never comes (the van times out).
    AnswerLost,
    /// HQ handles the request, the connection resets while the answer is read.
    ResetAfterStore,
    /// HQ's answer is cut short.
    Truncated,
    /// A byte of HQ's answer is changed.
    Garbled,
    /// Someone else answers with an acknowledgement for everything, signed with their key.
    Forged,
    /// The same answer arrives twice.
    Duplicate,
}

/// The shell: a clock, the van's key, the uplink, and counters.
struct Van {
    up: Uplink,
    key: VanKey,
    now: Instant,
    utc_us: i64,
    nonce: u64,
    synced: Vec<u64>,
    failures: Vec<UplinkError>,
    regressed: Vec<(u64, u64)>,
}

fn cfg() -> UplinkConfig {
    UplinkConfig { max_records: 40, ..UplinkConfig::default() }
}

impl Van {
    fn new(resume: Option<wire::VerifiedAck>, cfg: UplinkConfig) -> Self {
        let now = Instant::now();
        Van {
            up: Uplink::new(cfg, VAN, hq_key().verifying_key(), resume, now, 1234),
            key: van_key(),
            now,
            utc_us: 1_764_588_000_000_000,
            // Distinct per van session, as the shell's random nonces are.
            nonce: SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32,
            synced: Vec::new(),
            failures: Vec::new(),
            regressed: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.up.poll_event() {
            match e {
                Event::Synced(a) => self.synced.push(a.seq),
                Event::HqRegressed { acked_before, now } => self.regressed.push((acked_before, now.seq)),
                Event::Failed { error, .. } => self.failures.push(error),
            }
        }
    }

    fn acked(&self) -> u64 {
        self.up.status().acked.map_or(0, |a| a.seq)
    }

    /// One exchange (waiting out any backoff first). Returns what was sent, `None` when idle.
    fn step(&mut self, hq: &mut FakeHq, j: &JournalReader, fault: Fault) -> Option<RequestKind> {
        let mut req = self.up.poll_request(self.now, self.utc_us, j);
        if req.is_none() {
            self.drain();
            let wake = self.up.poll_timeout()?;
            let head = j.head().unwrap().0;
            if wake > self.now + Duration::from_secs(3600) || (self.acked() == head && wake > self.now) {
                return None;
            }
            self.now = self.now.max(wake);
            self.up.handle_timeout(self.now);
            req = self.up.poll_request(self.now, self.utc_us, j);
        }
        let req = req?;
        self.nonce += 1;
        let mut nonce = [0u8; 16];
        nonce[8..].copy_from_slice(&self.nonce.to_be_bytes());
        let auth =
            wire::sign_request(&self.key, VAN, req.method, req.path, self.utc_us, &nonce, &req.body).unwrap();
        self.now += Duration::from_millis(50);
        self.utc_us += 50_000;
        match fault {
            Fault::Down => self.up.handle_transport_error(self.now, req.id, "connection refused"),
            Fault::Status500 => self.up.handle_response(
                self.now,
                req.id,
                &Response { status: 500, body: b"<html>Internal Server Error</html>".to_vec() },
                j,
            ),
            Fault::AnswerLost => {
                hq.handle(&req, &auth);
                self.now += cfg().request_timeout;
                self.up.handle_timeout(self.now);
            }
            Fault::ResetAfterStore => {
                hq.handle(&req, &auth);
                self.up.handle_transport_error(self.now, req.id, "connection reset by peer");
            }
            Fault::Truncated => {
                let mut r = hq.handle(&req, &auth);
                r.body.truncate(r.body.len() / 2);
                self.up.handle_response(self.now, req.id, &r, j);
            }
            Fault::Garbled => {
                let mut r = hq.handle(&req, &auth);
                let i = r.body.len() - 40;
                r.body[i] = if r.body[i] == b'0' { b'1' } else { b'0' };
                self.up.handle_response(self.now, req.id, &r, j);
            }
            Fault::Forged => {
                let (seq, hash) = j.head().unwrap();
                let forger = SigningKey::from_bytes(&[78u8; 32]);
                let body =
                    wire::sign_ack(&forger, &Ack { van: VAN, seq, head_hash: hash, time_us: hq.clock_us });
                self.up.handle_response(
                    self.now,
                    req.id,
                    &Response { status: 200, body: body.into_bytes() },
                    j,
                );
            }
            Fault::Duplicate => {
                let r = hq.handle(&req, &auth);
                self.up.handle_response(self.now, req.id, &r, j);
                self.up.handle_response(self.now, req.id, &r, j);
            }
            Fault::None => {
                let r = hq.handle(&req, &auth);
                self.up.handle_response(self.now, req.id, &r, j);
            }
        }
        self.drain();
        Some(req.kind)
    }

    /// Steps until idle, with `fault(step)` for each exchange; returns the number of exchanges.
    fn run(&mut self, hq: &mut FakeHq, j: &JournalReader, mut fault: impl FnMut(usize) -> Fault) -> usize {
        for i in 0..10_000 {
            if self.step(hq, j, fault(i)).is_none() {
                return i;
            }
        }
        panic!("the uplink never went idle");
    }
}

/// Every record stored once, in order, equal to the van's; the van's mark never above HQ's.
fn assert_exactly_once(hq: &FakeHq, j: &JournalReader, van: &Van) {
    let (head, _) = j.head().unwrap();
    assert_eq!(hq.stored.len() as u64, head, "HQ holds every record");
    let mine = j.read(1, head as usize).unwrap();
    assert_eq!(hq.stored, mine);
    for seq in 1..=head {
        assert_eq!(hq.writes.get(&seq), Some(&1), "record {seq} written {:?} times", hq.writes.get(&seq));
    }
    assert_eq!(van.acked(), head);
    if van.regressed.is_empty() {
        assert!(van.synced.windows(2).all(|w| w[0] < w[1]), "{:?}", van.synced);
    }
    assert!(hq.alarms.is_empty(), "{:?}", hq.alarms);
}

#[test]
fn uploads_everything_in_bounded_batches_after_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 99);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Checkpoint { seq: 100 }));
    assert_eq!(van.acked(), 0);
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Upload { first_seq: 1, last_seq: 40 }));
    assert_eq!(van.acked(), 40);
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
    assert_eq!(van.synced, [0, 40, 80, 100]);
    assert!(van.failures.is_empty(), "{:?}", van.failures);
    assert_eq!(van.up.pending(100), 0);
}

#[test]
fn hq_down_then_500_back_off_exponentially_with_jitter_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 9);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    let mut delays = Vec::new();
    for i in 0..8 {
        let before = van.now;
        van.step(&mut hq, &j, if i % 2 == 0 { Fault::Down } else { Fault::Status500 });
        let retry = van.up.status().retry_at.unwrap();
        delays.push(retry - van.now);
        assert!(van.now >= before);
    }
    assert_eq!(van.failures.len(), 8);
    assert!(matches!(van.failures[0], UplinkError::Transport(_)));
    assert!(matches!(van.failures[1], UplinkError::HqStatus { status: 500, .. }));
    // Equal jitter: try n waits between half and all of 2 s × 2^(n−1), capped at 600 s.
    for (n, d) in delays.iter().enumerate() {
        let full = Duration::from_secs(2 * (1 << n)).min(Duration::from_secs(600));
        assert!(*d >= full / 2 && *d <= full, "try {}: {d:?} vs {full:?}", n + 1);
    }
    assert!(delays.windows(2).any(|w| w[1] != w[0] * 2), "jitter varies the delays: {delays:?}");
    assert_eq!(van.acked(), 0);
    assert!(hq.stored.is_empty());
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
    assert_eq!(van.up.status().failures, 0);
    assert_eq!(van.up.status().last_error, None);
}

#[test]
fn lost_answers_timeouts_and_resets_never_duplicate_or_skip() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 149);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    let faults = [Fault::None, Fault::AnswerLost, Fault::ResetAfterStore, Fault::None, Fault::AnswerLost];
    van.run(&mut hq, &j, |i| faults.get(i).copied().unwrap_or(Fault::None));
    assert!(van.failures.iter().any(|e| matches!(e, UplinkError::Timeout(_))));
    assert!(van.failures.iter().any(|e| matches!(e, UplinkError::Transport(_))));
    assert_exactly_once(&hq, &j, &van);
}

#[test]
fn truncated_garbled_and_forged_answers_are_never_progress() {
    for fault in [Fault::Truncated, Fault::Garbled, Fault::Forged] {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(dir.path(), 59);
        let mut hq = FakeHq::new();
        let mut van = Van::new(None, cfg());
        van.step(&mut hq, &j, Fault::None);
        assert_eq!(van.acked(), 0);
        // HQ stores the batch, but its answer is damaged (or not HQ's): no progress.
        van.step(&mut hq, &j, fault);
        assert_eq!(van.acked(), 0, "{fault:?}");
        assert_eq!(van.up.pending(60), 60, "{fault:?}");
        match (fault, van.failures.last().unwrap()) {
            (Fault::Forged, UplinkError::Ack(wire::AckError::BadSignature)) => {}
            (Fault::Truncated, UplinkError::Ack(wire::AckError::Json(_))) => {}
            (Fault::Garbled, UplinkError::Ack(_)) => {}
            (f, e) => panic!("{f:?}: {e:?}"),
        }
        van.run(&mut hq, &j, |_| Fault::None);
        assert_exactly_once(&hq, &j, &van);
    }
}

#[test]
fn duplicate_and_replayed_acknowledgements_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 79);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    van.step(&mut hq, &j, Fault::None);
    let old_ack = hq.ack();
    van.step(&mut hq, &j, Fault::Duplicate);
    assert_eq!(van.acked(), 40);
    assert_eq!(van.synced, [0, 40], "the second copy is ignored");
    // Someone replays HQ's earlier (genuine) acknowledgement of seq 0 to the next upload.
    let req = van.up.poll_request(van.now, van.utc_us, &j).unwrap();
    assert_eq!(req.kind, RequestKind::Upload { first_seq: 41, last_seq: 80 });
    van.up.handle_response(van.now, req.id, &old_ack, &j);
    van.drain();
    assert_eq!(van.acked(), 40);
    assert_eq!(van.failures.last(), Some(&UplinkError::StaleAck { seq: 0, acked: 40 }));
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
}

#[test]
fn acknowledgements_that_contradict_the_journal_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 9);
    let mut van = Van::new(None, cfg());
    let hq = hq_key();
    let h5 = j.hash_at(5).unwrap().unwrap();
    let cases = [
        (Ack { van: VAN, seq: 5, head_hash: [9; 32], time_us: 1 }, UplinkError::AckHashMismatch { seq: 5 }),
        (
            Ack { van: VAN, seq: 11, head_hash: h5, time_us: 1 },
            UplinkError::AckBeyondHead { seq: 11, head: 10 },
        ),
        (
            Ack { van: "MTU-S-2", seq: 5, head_hash: h5, time_us: 1 },
            UplinkError::AckForeignVan { found: "MTU-S-2".into() },
        ),
    ];
    for (ack, want) in cases {
        let req = loop {
            if let Some(r) = van.up.poll_request(van.now, van.utc_us, &j) {
                break r;
            }
            van.now = van.up.poll_timeout().unwrap();
        };
        let body = wire::sign_ack(&hq, &ack).into_bytes();
        van.up.handle_response(van.now, req.id, &Response { status: 200, body }, &j);
        van.drain();
        assert_eq!(van.failures.last(), Some(&want));
        assert!(want.is_persistent());
        assert_eq!(van.acked(), 0);
        // A contradiction waits the longest backoff (half of it at least).
        assert!(van.up.status().retry_at.unwrap() >= van.now + Duration::from_secs(300));
    }
}

#[test]
fn restart_mid_batch_resumes_from_the_verified_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 119);
    let mut hq = FakeHq::new();
    let mut first = Van::new(None, cfg());
    first.step(&mut hq, &j, Fault::None);
    first.step(&mut hq, &j, Fault::None);
    assert_eq!(first.acked(), 40);
    let resume = first.up.status().acked;
    // The next batch reaches HQ, then the van loses power before the answer.
    let req = first.up.poll_request(first.now, first.utc_us, &j).unwrap();
    let auth =
        wire::sign_request(&first.key, VAN, req.method, req.path, first.utc_us, &[0xee; 16], &req.body)
            .unwrap();
    assert_eq!(hq.handle(&req, &auth).status, 200);
    drop(first);
    let mut second = Van::new(resume, cfg());
    assert_eq!(second.acked(), 40);
    assert_eq!(second.step(&mut hq, &j, Fault::None), Some(RequestKind::Checkpoint { seq: 120 }));
    assert_eq!(second.acked(), 80, "HQ's signed word, not the van's memory");
    assert_eq!(
        second.step(&mut hq, &j, Fault::None),
        Some(RequestKind::Upload { first_seq: 81, last_seq: 120 })
    );
    second.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &second);
}

#[test]
fn hq_that_lost_records_gets_them_again_after_its_signed_word() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 99);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    for _ in 0..3 {
        van.step(&mut hq, &j, Fault::None);
    }
    assert_eq!(van.acked(), 80);
    hq.lose_after(30);
    for seq in 31..=80 {
        hq.writes.remove(&seq);
    }
    // 81.. → 409 gap (unsigned: nothing moves) → GET /v1/ack (signed, later: HQ holds 30).
    assert_eq!(
        van.step(&mut hq, &j, Fault::None),
        Some(RequestKind::Upload { first_seq: 81, last_seq: 100 })
    );
    assert!(matches!(
        van.failures.last(),
        Some(UplinkError::Hq { status: 409, code: HqErrorCode::Gap { expected_seq: 31 }, .. })
    ));
    assert_eq!(van.acked(), 80);
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::FetchAck));
    assert_eq!(van.regressed, [(80, 30)]);
    assert_eq!(van.acked(), 30);
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
}

#[test]
fn a_fork_at_hq_is_refused_and_waits_the_longest_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 59);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    van.step(&mut hq, &j, Fault::None);
    van.step(&mut hq, &j, Fault::None);
    // HQ's copy of record 40 differs, and HQ (wrongly) still acknowledges up to 39 only.
    hq.stored[39].payload = b"{\"changed\":true}".to_vec();
    hq.stored[39].hash = [0xaa; 32];
    hq.lose_after(40);
    // The ack at 40 (HQ's changed hash) contradicts the journal at the start checkpoint of a new session.
    let mut again = Van::new(van.up.status().acked, cfg());
    again.step(&mut hq, &j, Fault::None);
    assert_eq!(again.failures.last(), Some(&UplinkError::AckHashMismatch { seq: 40 }));
    assert!(again.up.status().retry_at.unwrap() >= again.now + Duration::from_secs(300));
    // An upload overlapping the changed record is refused by HQ as a fork.
    let mut third = Van::new(None, cfg());
    let req = third.up.poll_request(third.now, third.utc_us, &j).unwrap();
    assert_eq!(req.kind, RequestKind::Checkpoint { seq: 60 });
    // Skip the checkpoint's answer: pretend HQ acknowledged 20 long ago.
    let h20 = j.hash_at(20).unwrap().unwrap();
    let ack20 = wire::sign_ack(&hq_key(), &Ack { van: VAN, seq: 20, head_hash: h20, time_us: 5 });
    third.up.handle_response(third.now, req.id, &Response { status: 200, body: ack20.into_bytes() }, &j);
    assert_eq!(
        third.step(&mut hq, &j, Fault::None),
        Some(RequestKind::Upload { first_seq: 21, last_seq: 60 })
    );
    assert!(matches!(
        third.failures.last(),
        Some(UplinkError::Hq { status: 409, code: HqErrorCode::Fork { seq: 40, .. }, .. })
    ));
    assert_eq!(third.acked(), 20);
    assert!(third.up.status().retry_at.unwrap() >= third.now + Duration::from_secs(300));
    assert_eq!(hq.alarms, ["fork at 40"]);
}

#[test]
fn checkpoints_repeat_and_a_too_large_batch_is_halved() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 59);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    van.step(&mut hq, &j, Fault::None);
    let req = van.up.poll_request(van.now, van.utc_us, &j).unwrap();
    assert_eq!(req.kind, RequestKind::Upload { first_seq: 1, last_seq: 40 });
    let too_large = error(413, "sync.batch_too_large", serde_json::Value::Null);
    van.up.handle_response(van.now, req.id, &too_large, &j);
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Upload { first_seq: 1, last_seq: 20 }));
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
    // Idle until the next checkpoint is due (15 minutes).
    let wake = van.up.poll_timeout().unwrap();
    assert!(van.up.poll_request(van.now, van.utc_us, &j).is_none());
    assert!(wake > van.now + Duration::from_secs(14 * 60));
    van.now = wake;
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Checkpoint { seq: 60 }));
}

/// The request signature and the acknowledgement, checked with Python's `cryptography` from a
/// layout built in Python from the protocol text (not from our encoder).
#[test]
fn independent_python_agrees_on_request_and_ack_signatures() {
    let python = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import `cryptography`: run tools/test, which installs \
         tools/test-requirements.txt into target/test-venv and sets MTU_TEST_PYTHON"
    );
    let key = VanKey::from_seed(&[42u8; 32]);
    let body = b"\x28\xb5\x2f\xfd batch bytes";
    let auth = wire::sign_request(&key, VAN, "POST", "/v1/records", 1_764_588_180_000_000, &[0x5a; 16], body)
        .unwrap();
    let ack = Ack { van: VAN, seq: 1234, head_hash: [0xc3; 32], time_us: 1_764_588_180_123_456 };
    let ack_json = wire::sign_ack(&hq_key(), &ack);
    let script = r#"
import hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from datetime import datetime, timezone
van_seed, hq_seed, sig_hex, time_text, ack_json = sys.argv[1:6]
van = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(van_seed))
def l8(b): return bytes([len(b)]) + b
body = b"\x28\xb5\x2f\xfd batch bytes"
msg = (b"mtu.sync.request.v1\x00" + l8(b"MTU-S-1") + l8(b"POST") + len(b"/v1/records").to_bytes(2, "big")
       + b"/v1/records" + l8(time_text.encode()) + bytes([0x5a]) * 16 + hashlib.sha256(body).digest())
assert van.sign(msg).hex() == sig_hex, "request signature differs"
hq = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(hq_seed))
a = json.loads(ack_json)
t = datetime.strptime(a["ack"]["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
us = (int(t.timestamp()) * 1000000) + t.microsecond
amsg = (b"mtu.sync.ack.v1\x00" + l8(a["ack"]["van"].encode()) + a["ack"]["seq"].to_bytes(8, "big")
        + bytes.fromhex(a["ack"]["head_hash"]) + us.to_bytes(8, "big", signed=True))
hq.public_key().verify(bytes.fromhex(a["sig"]), amsg)
assert hq.sign(amsg).hex() == a["sig"], "ack signature differs"
print("OK", us)
"#;
    let out = Command::new(&python)
        .args([
            "-c",
            script,
            &hex::encode([42u8; 32]),
            &hex::encode([77u8; 32]),
            &auth.signature,
            &auth.time,
            &ack_json,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK 1764588180123456");
}

#[test]
fn after_a_key_rotation_the_upload_carrying_it_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), 19);
    let mut hq = FakeHq::new();
    let mut van = Van::new(None, cfg());
    van.run(&mut hq, &j, |_| Fault::None);
    assert_exactly_once(&hq, &j, &van);
    drop(j);
    // The van rotates its key and writes on; HQ still holds the old key.
    let opts = JournalOptions { van_id: VAN.into(), checkpoint_every: 50, max_pages: None };
    let (journal_w, _) = Journal::open(&dir.path().join("j.db"), van_key(), &opts).unwrap();
    journal_w.rotate_key(VanKey::from_seed(&[43u8; 32])).unwrap();
    for i in 0..5 {
        journal_w.append("test.append", &serde_json::json!({"after": i})).unwrap();
    }
    journal_w.close();
    let j = JournalReader::open(&dir.path().join("j.db")).unwrap();
    let head = j.head().unwrap().0;
    let mut van = Van::new(van.up.status().acked, cfg());
    van.key = VanKey::from_seed(&[43u8; 32]);
    // The start checkpoint, signed with the new key, is refused; the upload carrying the rotation
    // is accepted, then the checkpoint.
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Checkpoint { seq: head }));
    assert!(matches!(
        van.failures.last(),
        Some(UplinkError::Hq { status: 401, code: HqErrorCode::BadRequestSignature, .. })
    ));
    assert_eq!(
        van.step(&mut hq, &j, Fault::None),
        Some(RequestKind::Upload { first_seq: 21, last_seq: head })
    );
    assert_eq!(van.acked(), head);
    assert_eq!(van.step(&mut hq, &j, Fault::None), Some(RequestKind::Checkpoint { seq: head }));
    assert_eq!(van.failures.len(), 1);
    assert_exactly_once(&hq, &j, &van);
}

/// One journal for the property test (opened read-only per case).
fn shared_journal() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        drop(journal(dir.path(), 129));
        dir
    });
    dir.path()
}

const FAULTS: [Fault; 9] = [
    Fault::None,
    Fault::Down,
    Fault::Status500,
    Fault::AnswerLost,
    Fault::ResetAfterStore,
    Fault::Truncated,
    Fault::Garbled,
    Fault::Forged,
    Fault::Duplicate,
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Any sequence of faults: the van never counts a record HQ does not hold, and once the link
    /// heals every record is at HQ exactly once.
    #[test]
    fn any_fault_sequence_ends_exactly_once(
        faults in proptest::collection::vec(0..FAULTS.len(), 0..30),
        restart_at in proptest::option::of(0usize..30),
    ) {
        let j = JournalReader::open(&shared_journal().join("j.db")).unwrap();
        let mut hq = FakeHq::new();
        let mut van = Van::new(None, cfg());
        for (i, f) in faults.iter().enumerate() {
            if restart_at == Some(i) {
                van = Van::new(van.up.status().acked, cfg());
            }
            van.step(&mut hq, &j, FAULTS[*f]);
            proptest::prop_assert!(van.acked() <= hq.stored.len() as u64, "step {i}: {:?}", FAULTS[*f]);
        }
        van.run(&mut hq, &j, |_| Fault::None);
        assert_exactly_once(&hq, &j, &van);
    }
}
