//! Protocol v1 over real HTTP on 127.0.0.1:0: request authentication, uploads, acknowledgements;
//! each test on SQLite and on a real PostgreSQL.

mod common;

use common::{Backend, Van, auth, batch, hq_on, http, nonce, now_text, on_both_stores, serve};
use van_hq::ingest::enroll;
use van_hq::protocol::{SignedAck, verify_ack};

fn upload(addr: std::net::SocketAddr, van: &Van, body: &[u8]) -> common::Answer {
    let mut h = auth(van, "POST", "/v1/records", &now_text(), nonce(), body);
    h.push(("Content-Encoding", "zstd".into()));
    http(addr, "POST", "/v1/records", &h, body)
}

fn setup(b: Backend, van: &Van) -> (std::net::SocketAddr, ed25519_dalek::VerifyingKey, tempfile::TempDir) {
    setup_with_spec(b, van).0
}

/// [`setup`], also giving the database spec.
fn setup_with_spec(
    b: Backend,
    van: &Van,
) -> ((std::net::SocketAddr, ed25519_dalek::VerifyingKey, tempfile::TempDir), String) {
    let hq = hq_on(b);
    enroll(&hq.store, &van.id, &van.public_hex(), common::NOW).unwrap();
    let spec = hq.spec.clone();
    (serve(hq), spec)
}

fn upload_is_acknowledged_and_the_ack_verifies_with_hqs_public_key(b: Backend) {
    let mut van = Van::new("MTU-CAI-0001", 1);
    van.append_n(20);
    let (addr, hq_pub, _dir) = setup(b, &van);
    let a = upload(addr, &van, &batch(&van.records));
    assert_eq!(a.status, 200, "{}", a.body);
    let ack = verify_ack(a.body.to_string().as_bytes(), &hq_pub).unwrap();
    let (seq, head) = (ack.seq, ack.head_hash);
    assert_eq!((seq, head), (21, van.records[20].hash));
    assert_eq!(ack.van, van.id);
    // An acknowledgement forged with another key does not verify.
    let forged = SignedAck::sign(&van.key, &van.id, 21, &head, 0);
    assert!(forged.verify(&hq_pub).is_err());
    // GET /v1/ack: where to resume.
    let h = auth(&van, "GET", "/v1/ack", &now_text(), nonce(), b"");
    let a = http(addr, "GET", "/v1/ack", &h, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["ack"]["seq"], 21);
    // Checkpoint.
    let cp =
        serde_json::json!({"van": van.id, "seq": 21, "head_hash": hex::encode(head), "time": now_text()})
            .to_string();
    let h = auth(&van, "POST", "/v1/checkpoint", &now_text(), nonce(), cp.as_bytes());
    let a = http(addr, "POST", "/v1/checkpoint", &h, cp.as_bytes());
    assert_eq!((a.status, &a.body["ack"]["seq"]), (200, &serde_json::json!(21)), "{}", a.body);
}

fn gap_and_bad_record_answers_carry_their_details(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(5);
    let (addr, _, _dir) = setup(b, &van);
    let a = upload(addr, &van, &batch(&van.records[2..]));
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("sync.gap")), "{}", a.body);
    assert_eq!(a.body["error"]["details"]["expected_seq"], 1);
    let mut recs = van.records.clone();
    recs[4].sig[0] ^= 0x80;
    let a = upload(addr, &van, &batch(&recs));
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (422, Some("sync.bad_record")), "{}", a.body);
    assert_eq!(a.body["error"]["details"]["seq"], 5);
    // Not compressed.
    let plain = common::lines(&van.records);
    let a = http(
        addr,
        "POST",
        "/v1/records",
        &auth(&van, "POST", "/v1/records", &now_text(), nonce(), &plain),
        &plain,
    );
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (415, Some("sync.bad_batch")), "{}", a.body);
}

fn bad_signature_is_refused(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(2);
    let (addr, _, _dir) = setup(b, &van);
    let body = batch(&van.records);
    // Signed by another key.
    let impostor =
        Van { id: van.id.clone(), key: ed25519_dalek::SigningKey::from_bytes(&[5; 32]), records: vec![] };
    let mut h = auth(&impostor, "POST", "/v1/records", &now_text(), nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("sync.bad_request_signature")),
        "{}",
        a.body
    );
    // Signed over another body.
    let mut h = auth(&van, "POST", "/v1/records", &now_text(), nonce(), b"other");
    h.push(("Content-Encoding", "zstd".into()));
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some("sync.bad_request_signature")));
    // Signed for another path.
    let mut h = auth(&van, "POST", "/v1/checkpoint", &now_text(), nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!(a.status, 401);
    // A header missing.
    let h: Vec<_> =
        auth(&van, "POST", "/v1/records", &now_text(), nonce(), &body).into_iter().skip(1).collect();
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!(a.status, 401);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("X-MTU-Van"), "{}", a.body);
    // Unknown van.
    let stranger = Van::new("V9", 9);
    let a = upload(addr, &stranger, &batch(&stranger.records));
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some("sync.unknown_van")));
    // Nothing of these was stored: the genuine upload starts at record 1.
    let a = upload(addr, &van, &body);
    assert_eq!((a.status, &a.body["ack"]["seq"]), (200, &serde_json::json!(3)), "{}", a.body);
}

fn stale_request_is_refused(b: Backend) {
    let van = Van::new("V1", 1);
    let (addr, _, _dir) = setup(b, &van);
    let body = batch(&van.records);
    for offset_s in [-301i64, 301] {
        let t = van_hq::protocol::format_time_us(van_hq::ingest::now_us() + offset_s * 1_000_000);
        let mut h = auth(&van, "POST", "/v1/records", &t, nonce(), &body);
        h.push(("Content-Encoding", "zstd".into()));
        let a = http(addr, "POST", "/v1/records", &h, &body);
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (401, Some("sync.stale_request")),
            "{}",
            a.body
        );
    }
    let t = van_hq::protocol::format_time_us(van_hq::ingest::now_us() - 290 * 1_000_000);
    let mut h = auth(&van, "POST", "/v1/records", &t, nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    assert_eq!(http(addr, "POST", "/v1/records", &h, &body).status, 200);
}

fn replayed_nonce_is_refused(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(1);
    let (addr, _, _dir) = setup(b, &van);
    let body = batch(&van.records);
    let mut h = auth(&van, "POST", "/v1/records", &now_text(), nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    assert_eq!(http(addr, "POST", "/v1/records", &h, &body).status, 200);
    // The very same request again (a replay on the wire).
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("sync.replayed_request")),
        "{}",
        a.body
    );
    // A fresh nonce for the same batch is an honest retry: the same acknowledgement.
    let a = upload(addr, &van, &body);
    assert_eq!((a.status, &a.body["ack"]["seq"]), (200, &serde_json::json!(2)));
}

/// Eight uploaders of one van at once, with overlapping batches and retries from the expected
/// seq: every record is stored exactly once, in order, and HQ's head verifies.
fn concurrent_overlapping_uploads_store_each_record_once(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(199);
    let ((addr, hq_pub, _dir), spec) = setup_with_spec(b, &van);
    let van = std::sync::Arc::new(van);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let van = van.clone();
            std::thread::spawn(move || {
                let mut from = (t * 7) % 20;
                loop {
                    let to = (from + 25 + t).min(van.records.len());
                    let a = upload(addr, &van, &batch(&van.records[from..to]));
                    match a.status {
                        200 => {
                            let seq =
                                verify_ack(a.body.to_string().as_bytes(), &hq_pub).unwrap().seq as usize;
                            if seq == van.records.len() {
                                return;
                            }
                            from = seq;
                        }
                        409 if a.body["error"]["code"] == "sync.gap" => {
                            from = a.body["error"]["details"]["expected_seq"].as_u64().unwrap() as usize - 1;
                        }
                        other => panic!("unexpected answer {other}: {}", a.body),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = van_hq::database::Database::open(&spec).unwrap();
    let seqs: Vec<u64> =
        van_hq::store::Store::records(&store, "V1", 1, 1000).unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert_eq!(van_hq::audit::verify_van(&store, "V1", 64).unwrap(), 200);
    assert!(van_hq::store::Store::alarms(&store, "V1").unwrap().is_empty());
}

/// After a key rotation the van signs with its new key: HQ accepts that signature for the upload
/// that carries the rotation (and only once its chain verifies), then holds the new key. A
/// rotation forged by someone else, signed with their own key, stores nothing.
fn an_upload_carrying_the_key_rotation_may_be_signed_with_the_new_key(b: Backend) {
    let mut van = Van::new("MTU-CAI-0003", 3);
    van.append_n(3);
    let (addr, _hq_pub, _dir) = setup(b, &van);
    assert_eq!(upload(addr, &van, &batch(&van.records)).status, 200);
    let stored = van.records.len();
    // A forger's rotation: signed by the forger's key (not the van's), request signed by the forger.
    let mut forger = Van {
        id: van.id.clone(),
        key: ed25519_dalek::SigningKey::from_bytes(&[66; 32]),
        records: van.records.clone(),
    };
    forger.rotate(ed25519_dalek::SigningKey::from_bytes(&[67; 32]));
    let a = upload(addr, &forger, &batch(&forger.records[stored..]));
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (422, Some("sync.bad_record")), "{}", a.body);
    // The van's real rotation, the request signed with its new key.
    van.rotate(ed25519_dalek::SigningKey::from_bytes(&[33; 32]));
    van.append_n(2);
    let a = upload(addr, &van, &batch(&van.records[stored..]));
    assert_eq!(a.status, 200, "{}", a.body);
    // From now on the new key authenticates every request; a request signed with the new key
    // but carrying no rotation was refused before it (checked above by the forger's case) and is
    // accepted now.
    let h = auth(&van, "GET", "/v1/ack", &now_text(), nonce(), b"");
    assert_eq!(http(addr, "GET", "/v1/ack", &h, b"").status, 200);
}

on_both_stores!(
    upload_is_acknowledged_and_the_ack_verifies_with_hqs_public_key,
    gap_and_bad_record_answers_carry_their_details,
    bad_signature_is_refused,
    stale_request_is_refused,
    replayed_nonce_is_refused,
    concurrent_overlapping_uploads_store_each_record_once,
    an_upload_carrying_the_key_rotation_may_be_signed_with_the_new_key,
);
