//! The store itself, on SQLite and on a real PostgreSQL: down-sync bundles and dossiers, the
//! schema, and what only a shared database can show (several stores — as several `van-hq`
//! instances hold — ingesting the same van at once).

mod common;

use common::{Backend, NOW, Van, hq_on, lines, on_both_stores};
use van_hq::database::Database;
use van_hq::ingest::{enroll, ingest};
use van_hq::store::{PublishOutcome, Store, StoreError};

fn bundles_are_published_once_and_listed_per_van_after_a_cursor(b: Backend) {
    let hq = hq_on(b);
    let s = &hq.store;
    let roster = br#"{"kind":"roster","version":3}"#;
    let first = s.publish_bundle("*", "roster", 3, roster, NOW).unwrap();
    let PublishOutcome::Stored(id1) = first else { panic!("{first:?}") };
    // The same bytes again: a no-op naming the stored id.
    assert_eq!(
        s.publish_bundle("*", "roster", 3, roster, NOW + 1).unwrap(),
        PublishOutcome::AlreadyStored(id1)
    );
    // Different bytes under the same key: a conflict, nothing stored.
    let err = s.publish_bundle("*", "roster", 3, b"{}", NOW).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // The same kind and version for one van is another key.
    let PublishOutcome::Stored(id2) = s.publish_bundle("V1", "roster", 3, b"{\"v1\":1}", NOW).unwrap() else {
        panic!()
    };
    let PublishOutcome::Stored(id3) = s.publish_bundle("V2", "bookings", 1, b"{\"v2\":1}", NOW).unwrap()
    else {
        panic!()
    };
    let PublishOutcome::Stored(id4) = s.publish_bundle("*", "blocklist", 9, b"[]", NOW + 5).unwrap() else {
        panic!()
    };
    assert!(id1 < id2 && id2 < id3 && id3 < id4, "{id1} {id2} {id3} {id4}");
    let ids = |van: &str, after: u64, limit: usize| -> Vec<u64> {
        s.bundles_after(van, after, limit).unwrap().into_iter().map(|b| b.id).collect()
    };
    assert_eq!(ids("V1", 0, 50), vec![id1, id2, id4]);
    assert_eq!(ids("V2", 0, 50), vec![id1, id3, id4]);
    assert_eq!(ids("V3", 0, 50), vec![id1, id4]);
    assert_eq!(ids("V1", id1, 1), vec![id2]);
    assert_eq!(ids("V1", id4, 50), Vec::<u64>::new());
    let got = &s.bundles_after("V2", id1, 1).unwrap()[0];
    assert_eq!(
        (got.target.as_str(), got.kind.as_str(), got.version, got.body.as_slice(), got.published_at),
        ("V2", "bookings", 1, b"{\"v2\":1}".as_slice(), NOW)
    );
    // Bytes survive exactly (not text).
    let raw = [0u8, 0xff, 0x80, b'\n'];
    let PublishOutcome::Stored(id5) = s.publish_bundle("V9", "settings", 1, &raw, NOW).unwrap() else {
        panic!()
    };
    assert_eq!(s.bundles_after("V9", id4, 5).unwrap()[0].body, raw);
    assert_eq!(s.bundles_after("V9", id4, 5).unwrap()[0].id, id5);
}

fn dossiers_are_replaced_and_looked_up(b: Backend) {
    let hq = hq_on(b);
    let s = &hq.store;
    assert_eq!(s.dossier("29001011234567").unwrap(), None);
    s.put_dossier("29001011234567", r#"{"name":"محمد"}"#, NOW).unwrap();
    s.put_dossier("29001011234567", r#"{"name":"محمد أحمد"}"#, NOW + 1).unwrap();
    assert_eq!(s.dossier("29001011234567").unwrap().as_deref(), Some(r#"{"name":"محمد أحمد"}"#));
    assert_eq!(s.dossier("29001011234568").unwrap(), None);
}

/// Two stores on one database (what two `van-hq` instances hold), reopening it: the schema is
/// created once and records and vans are shared.
fn a_second_store_on_the_same_database_sees_the_first_ones_data(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(9);
    let hq = hq_on(b);
    enroll(&hq.store, &van.id, &van.public_hex(), NOW).unwrap();
    let other = Database::open(&hq.spec).unwrap();
    ingest(&other, &hq.key, &van.id, &lines(&van.records[..5]), NOW).unwrap();
    let ack = ingest(&hq.store, &hq.key, &van.id, &lines(&van.records[3..]), NOW).unwrap();
    assert_eq!(ack.ack.seq, 10);
    assert_eq!(other.records("V1", 1, 100).unwrap().len(), 10);
    assert!(matches!(other.enroll("V1", &van.key.verifying_key(), NOW), Err(StoreError::AlreadyEnrolled(_))));
}

/// Several stores on one database, each with several threads, upload the same van's journal in
/// overlapping batches at once: the database's row lock orders them, so every record is stored
/// exactly once, the head verifies and no fork alarm comes from the race.
fn racing_stores_on_one_database_store_each_record_once(b: Backend) {
    let mut van = Van::new("V1", 1);
    van.append_n(299);
    let mut other = Van::new("V2", 2);
    other.append_n(299);
    let hq = hq_on(b);
    enroll(&hq.store, &van.id, &van.public_hex(), NOW).unwrap();
    enroll(&hq.store, &other.id, &other.public_hex(), NOW).unwrap();
    let stores: Vec<std::sync::Arc<Database>> =
        (0..3).map(|_| std::sync::Arc::new(Database::open(&hq.spec).unwrap())).collect();
    let vans = std::sync::Arc::new([van, other]);
    let key = hq.key.clone();
    let threads: Vec<_> = (0..12usize)
        .map(|t| {
            let (store, vans, key) = (stores[t % 3].clone(), vans.clone(), key.clone());
            std::thread::spawn(move || {
                let van = &vans[t % 2];
                let mut from = (t * 5) % 30;
                let mut acks = Vec::new();
                loop {
                    let to = (from + 20 + t).min(van.records.len());
                    match ingest(&*store, &key, &van.id, &lines(&van.records[from..to]), NOW) {
                        Ok(ack) => {
                            let seq = ack.ack.seq as usize;
                            acks.push((seq, ack.ack.head_hash));
                            if seq == van.records.len() {
                                return acks;
                            }
                            from = seq;
                        }
                        Err(e) if e.code == "sync.gap" => {
                            from = e.details.unwrap()["expected_seq"].as_u64().unwrap() as usize - 1;
                        }
                        Err(e) => panic!("thread {t}: {e}"),
                    }
                }
            })
        })
        .collect();
    for (t, th) in threads.into_iter().enumerate() {
        let van = &vans[t % 2];
        // Every acknowledgement names a record the van really has at that seq.
        for (seq, head) in th.join().unwrap() {
            assert_eq!(head, van.records[seq - 1].hash, "thread {t} ack {seq}");
        }
    }
    for van in vans.iter() {
        let seqs: Vec<u64> = hq.store.records(&van.id, 1, 1000).unwrap().into_iter().map(|r| r.0).collect();
        assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
        assert_eq!(van_hq::audit::verify_van(&hq.store, &van.id, 100).unwrap(), 300);
        assert!(hq.store.alarms(&van.id).unwrap().is_empty(), "{:?}", hq.store.alarms(&van.id));
    }
}

/// A nonce is refused while remembered; one older than the window is forgotten (and may be used
/// again); each van has its own nonces.
fn nonces_are_remembered_within_the_window_only(b: Backend) {
    let hq = hq_on(b);
    let (v1, v2) = (Van::new("V1", 1), Van::new("V2", 2));
    enroll(&hq.store, &v1.id, &v1.public_hex(), NOW).unwrap();
    enroll(&hq.store, &v2.id, &v2.public_hex(), NOW).unwrap();
    let s = &hq.store;
    let (n, m) = ([1u8; 16], [2u8; 16]);
    assert!(s.remember_nonce("V1", &n, 1_000, 0).unwrap());
    assert!(!s.remember_nonce("V1", &n, 1_100, 0).unwrap(), "a replay within the window");
    assert!(s.remember_nonce("V2", &n, 1_100, 0).unwrap(), "another van's nonce is its own");
    assert!(s.remember_nonce("V1", &m, 1_200, 0).unwrap());
    // The window moves past 1,000: the first nonce is forgotten, the second still remembered.
    assert!(s.remember_nonce("V1", &n, 2_000, 1_150).unwrap());
    assert!(!s.remember_nonce("V1", &m, 2_000, 1_150).unwrap());
    // And the renewed one is remembered again from its new time.
    assert!(!s.remember_nonce("V1", &n, 2_100, 1_500).unwrap());
}

on_both_stores!(
    nonces_are_remembered_within_the_window_only,
    bundles_are_published_once_and_listed_per_van_after_a_cursor,
    dossiers_are_replaced_and_looked_up,
    a_second_store_on_the_same_database_sees_the_first_ones_data,
    racing_stores_on_one_database_store_each_record_once,
);

/// PostgreSQL's schema is versioned: created on first open, left alone on the next, and a database
/// newer than this van-hq is refused rather than misread.
#[test]
fn postgres_schema_is_versioned_and_migrated_once() {
    let url = common::pg::fresh_database();
    // Instances starting together: the advisory lock lets one migrate, the others wait.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                van_hq::postgres::PgStore::open(&url).map(|s| s.schema_version().unwrap())
            })
        })
        .collect();
    for o in opens {
        assert_eq!(o.join().unwrap().unwrap(), 2);
    }
    common::pg::execute(&url, "UPDATE schema_version SET version = 99");
    let err = van_hq::postgres::PgStore::open(&url).err().expect("a newer schema must be refused");
    assert!(err.to_string().contains("version 99"), "{err}");
}
