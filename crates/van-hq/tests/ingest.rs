//! The ingest logic over each store (SQLite and a real PostgreSQL), without HTTP: every acceptance
//! and refusal of docs/sync.md's `POST /v1/records` and `POST /v1/checkpoint`.

mod common;

use common::{Backend, NOW, Van, hq_on, lines, on_both_stores, reseal};
use ed25519_dalek::SigningKey;
use van_hq::audit;
use van_hq::ingest::{self, checkpoint, current_ack, enroll, ingest};
use van_hq::store::Store;

fn enrolled(b: Backend, van: &Van) -> common::Hq {
    let hq = hq_on(b);
    enroll(&hq.store, &van.id, &van.public_hex(), NOW).unwrap();
    hq
}

fn stored(hq: &common::Hq, van: &str) -> Vec<u64> {
    hq.store.records(van, 1, 10_000).unwrap().into_iter().map(|r| r.0).collect()
}

fn batch_is_stored_and_acknowledged_with_hqs_signature(b: Backend) {
    let mut van = Van::new("MTU-CAI-0001", 1);
    van.append_n(9);
    let hq = enrolled(b, &van);
    let ack = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    assert_eq!(ack.ack.seq, 10);
    assert_eq!(ack.ack.head_hash, van.records[9].hash);
    let v = ack.verify(&hq.key.verifying_key()).unwrap();
    assert_eq!((v.seq, v.head_hash, v.time_us), (10, van.records[9].hash, NOW));
    assert_eq!(stored(&hq, &van.id), (1..=10).collect::<Vec<_>>());
    // The stored line is the export line as received.
    let row = &hq.store.records(&van.id, 3, 1).unwrap()[0];
    assert_eq!(format!("{}\n", row.2).as_bytes(), lines(&van.records[2..3]).as_slice());
    assert_eq!(audit::verify_van(&hq.store, &van.id, 3).unwrap(), 10);
}

fn duplicate_batch_gets_the_same_ack_and_stores_nothing_twice(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(4);
    let hq = enrolled(b, &van);
    let first = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    let again = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    assert_eq!(first, again);
    // A batch overlapping the head: old part skipped, new part stored.
    van.append_n(3);
    let ack = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[3..]), NOW).unwrap();
    assert_eq!(ack.ack.seq, 8);
    assert_eq!(stored(&hq, &van.id), (1..=8).collect::<Vec<_>>());
}

fn gap_is_refused_with_the_expected_seq(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(6);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[..3]), NOW).unwrap();
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[4..]), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (409, "sync.gap"));
    assert_eq!(err.details.unwrap()["expected_seq"], 4);
    assert_eq!(stored(&hq, &van.id), vec![1, 2, 3]);
}

fn changed_record_at_a_stored_seq_is_a_fork_alarm_and_nothing_is_stored(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(4);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[..3]), NOW).unwrap();
    // The van's journal was rewritten from record 3 on (validly signed, different content).
    let mut forked = van.records[..2].to_vec();
    let mut other = Van { id: van.id.clone(), key: van.key.clone(), records: forked.clone() };
    other.append("test.event", "{\"rewritten\":true}");
    other.append("test.event", "{\"n\":4}");
    forked = other.records.clone();
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&forked[2..]), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (409, "sync.fork"));
    let d = err.details.unwrap();
    assert_eq!(d["seq"], 3);
    assert_eq!(d["stored_hash"], hex::encode(van.records[2].hash));
    assert_eq!(d["received_hash"], hex::encode(forked[2].hash));
    assert_eq!(stored(&hq, &van.id), vec![1, 2, 3], "record 4 of the forked batch must not be stored");
    let alarms = hq.store.alarms(&van.id).unwrap();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].kind, "fork");
    assert_eq!(alarms[0].details["seq"], 3);
    assert_eq!(audit::vans(&hq.store, NOW).unwrap()[0].last_alarm.as_deref(), Some("fork"));
}

fn altered_payload_under_an_unchanged_hash_field_is_a_fork_not_a_duplicate(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(2);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    let mut altered = van.records.clone();
    altered[1].payload = b"{\"n\":99}".to_vec();
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&altered), NOW).unwrap_err();
    assert_eq!((err.code, err.details.unwrap()["seq"].as_u64()), ("sync.fork", Some(2)));
}

fn forged_signature_is_refused_naming_the_seq_and_nothing_is_stored(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(5);
    let hq = enrolled(b, &van);
    let mut recs = van.records.clone();
    recs[3].sig[10] ^= 1;
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&recs), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"));
    let d = err.details.unwrap();
    assert_eq!(d["seq"], 4);
    assert!(d["why"].as_str().unwrap().contains("signature"), "{d}");
    assert!(stored(&hq, &van.id).is_empty(), "records 1–3 of a refused batch must not be stored");
}

fn record_resigned_with_another_vans_key_is_refused(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(3);
    let other = Van::new("V2", 2);
    let hq = enrolled(b, &van);
    enroll(&hq.store, &other.id, &other.public_hex(), NOW).unwrap();
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[..2]), NOW).unwrap();
    let resigned = reseal(&van.records[2], &other.key);
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&[resigned]), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"));
    assert_eq!(err.details.as_ref().unwrap()["seq"], 3);
    assert!(err.message.contains("key"), "{}", err.message);
    // A genesis record naming another key than the enrolled one is refused too.
    let impostor = Van::new("V1", 9);
    let hq2 = enrolled(b, &van);
    let err = ingest(&hq2.store, &hq2.key, &van.id, &lines(&impostor.records), NOW).unwrap_err();
    assert_eq!((err.code, err.details.unwrap()["seq"].as_u64()), ("sync.bad_record", Some(1)));
    assert_eq!(stored(&hq, &van.id), vec![1, 2]);
}

fn reordered_records_are_refused_naming_the_seq(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(4);
    let hq = enrolled(b, &van);
    let mut recs = van.records.clone();
    recs.swap(2, 3);
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&recs), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"));
    assert_eq!(err.details.unwrap()["seq"], 4);
    assert!(stored(&hq, &van.id).is_empty());
}

fn records_of_another_van_in_the_batch_are_refused(b: Backend) {
    let van = Van::new("V1", 1);
    let other = Van::new("V2", 2);
    let hq = enrolled(b, &van);
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&other.records), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"));
}

fn uploads_after_a_key_rotation_verify_from_the_stored_state(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(3);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    van.rotate(SigningKey::from_bytes(&[77; 32]));
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[4..]), NOW).unwrap();
    van.append_n(3);
    let ack = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[5..]), NOW).unwrap();
    assert_eq!(ack.ack.seq, 8);
    // HQ now authenticates the van with its new key.
    assert_eq!(hq.store.current_key(&van.id).unwrap(), Some(van.key.verifying_key()));
    assert_eq!(audit::verify_van(&hq.store, &van.id, 2).unwrap(), 8);
}

fn malformed_and_oversized_batches_are_refused(b: Backend) {
    let mut van = Van::new("V1", 1);
    let hq = enrolled(b, &van);
    let err = ingest(&hq.store, &hq.key, &van.id, b"{not json}\n", NOW).unwrap_err();
    assert_eq!((err.status, err.code), (400, "sync.bad_batch"));
    assert!(err.message.contains("line 1"), "{}", err.message);
    let err = ingest(&hq.store, &hq.key, &van.id, b"", NOW).unwrap_err();
    assert_eq!(err.code, "sync.bad_batch");
    van.append_n(1000);
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (413, "sync.batch_too_large"));
    let big = zstd::encode_all(vec![b'\n'; van_hq::protocol::MAX_BATCH_BYTES + 1].as_slice(), 3).unwrap();
    assert_eq!(ingest::decompress(&big).unwrap_err().code, "sync.batch_too_large");
    assert_eq!(ingest::decompress(b"not zstd").unwrap_err().code, "sync.bad_batch");
    assert!(stored(&hq, &van.id).is_empty());
}

fn checkpoints_note_staleness_and_raise_rollback_alarms(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(4);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    let cp = |seq: u64, hash: [u8; 32]| {
        serde_json::json!({"van": "V1", "seq": seq, "head_hash": hex::encode(hash), "time": "2026-11-18T08:35:00Z"})
            .to_string()
    };
    // Ahead of HQ (records not uploaded yet): no alarm.
    let ack = checkpoint(&hq.store, &hq.key, &van.id, cp(9, [1; 32]).as_bytes(), NOW).unwrap();
    assert_eq!(ack.ack.seq, 5);
    // At HQ's head with the same hash: no alarm.
    checkpoint(&hq.store, &hq.key, &van.id, cp(5, van.records[4].hash).as_bytes(), NOW).unwrap();
    assert!(hq.store.alarms(&van.id).unwrap().is_empty());
    // Back to an earlier record HQ holds: rollback.
    checkpoint(&hq.store, &hq.key, &van.id, cp(3, van.records[2].hash).as_bytes(), NOW + 1).unwrap();
    // A stored seq with another hash: rollback or fork.
    checkpoint(&hq.store, &hq.key, &van.id, cp(5, [9; 32]).as_bytes(), NOW + 2).unwrap();
    let kinds: Vec<String> = hq.store.alarms(&van.id).unwrap().into_iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["rollback", "rollback_or_fork"]);
    let report = &audit::vans(&hq.store, NOW + 62_000_000).unwrap()[0];
    assert_eq!(report.staleness_s, Some(61));
    assert_eq!(report.last_checkpoint_seq, Some(5));
    assert_eq!(report.alarms, 2);
    let err = checkpoint(&hq.store, &hq.key, &van.id, cp(5, [9; 32]).replace("V1", "V2").as_bytes(), NOW)
        .unwrap_err();
    assert_eq!((err.status, err.code), (400, "sync.bad_checkpoint"));
    assert_eq!(current_ack(&hq.store, &hq.key, &van.id, NOW).unwrap().ack.seq, 5);
}

fn verify_finds_a_record_altered_in_hqs_database(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(5);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records), NOW).unwrap();
    common::execute_sql(
        &hq.spec,
        "UPDATE records SET line = replace(line, '{\\\"n\\\":4}', '{\\\"n\\\":5}') WHERE seq = 4",
    );
    let err = audit::verify_van(&hq.store, &van.id, 100).unwrap_err();
    assert!(matches!(err, audit::AuditError::Bad { seq: 4, .. }), "{err}");
}

fn enrolment_checks_the_van_id_and_key(b: Backend) {
    let hq = hq_on(b);
    let van = Van::new("V1", 1);
    assert!(enroll(&hq.store, "bad id", &van.public_hex(), NOW).is_err());
    assert!(enroll(&hq.store, "V1", "00", NOW).is_err());
    // A small-order point is refused (any signature would verify under it).
    assert!(enroll(&hq.store, "V1", &format!("01{}", "0".repeat(62)), NOW).is_err());
    enroll(&hq.store, "V1", &van.public_hex(), NOW).unwrap();
    assert!(enroll(&hq.store, "V1", &van.public_hex(), NOW).is_err());
}

fn record_zero_is_a_bad_record_not_a_storage_fault(b: Backend) {
    let van = Van::new("V1", 1);
    let hq = enrolled(b, &van);
    let mut rec = van.records[0].clone();
    rec.seq = 0;
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&[rec]), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"), "{err}");
    assert_eq!(err.details.unwrap()["seq"], 0);
}

/// A large batch is verified and stored chunk by chunk at once; a bad record in a later chunk,
/// after earlier chunks went to the store, still leaves nothing of the batch stored and the head
/// where it was.
fn bad_record_after_stored_chunks_rolls_the_whole_batch_back(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(359);
    let hq = enrolled(b, &van);
    ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[..10]), NOW).unwrap();
    let mut recs = van.records[10..].to_vec();
    recs[290].sig[5] ^= 4; // seq 301
    let err = ingest(&hq.store, &hq.key, &van.id, &lines(&recs), NOW).unwrap_err();
    assert_eq!((err.status, err.code), (422, "sync.bad_record"), "{err}");
    assert_eq!(err.details.unwrap()["seq"], 301);
    assert_eq!(stored(&hq, &van.id), (1..=10).collect::<Vec<_>>());
    assert_eq!(hq.store.vans().unwrap()[0].chain.seq, 10);
    assert!(hq.store.alarms(&van.id).unwrap().is_empty());
    // The honest batch then goes in whole.
    let ack = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[10..]), NOW).unwrap();
    assert_eq!(ack.ack.seq, 360);
    assert_eq!(stored(&hq, &van.id), (1..=360).collect::<Vec<_>>());
    assert_eq!(audit::verify_van(&hq.store, &van.id, 1000).unwrap(), 360);
    // A bad record in the very last chunk, and in the first.
    van.append_n(300);
    for bad in [299usize, 0] {
        let mut recs = van.records[360..].to_vec();
        recs[bad].payload = b"{\"n\":-1}".to_vec();
        let err = ingest(&hq.store, &hq.key, &van.id, &lines(&recs), NOW).unwrap_err();
        assert_eq!(
            (err.code, err.details.unwrap()["seq"].as_u64()),
            ("sync.bad_record", Some(361 + bad as u64))
        );
        assert_eq!(stored(&hq, &van.id).len(), 360);
    }
}

on_both_stores!(
    bad_record_after_stored_chunks_rolls_the_whole_batch_back,
    batch_is_stored_and_acknowledged_with_hqs_signature,
    duplicate_batch_gets_the_same_ack_and_stores_nothing_twice,
    gap_is_refused_with_the_expected_seq,
    changed_record_at_a_stored_seq_is_a_fork_alarm_and_nothing_is_stored,
    altered_payload_under_an_unchanged_hash_field_is_a_fork_not_a_duplicate,
    forged_signature_is_refused_naming_the_seq_and_nothing_is_stored,
    record_resigned_with_another_vans_key_is_refused,
    reordered_records_are_refused_naming_the_seq,
    records_of_another_van_in_the_batch_are_refused,
    uploads_after_a_key_rotation_verify_from_the_stored_state,
    malformed_and_oversized_batches_are_refused,
    checkpoints_note_staleness_and_raise_rollback_alarms,
    verify_finds_a_record_altered_in_hqs_database,
    enrolment_checks_the_van_id_and_key,
    record_zero_is_a_bad_record_not_a_storage_fault,
);
