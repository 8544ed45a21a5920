//! Down-sync at HQ (docs/sync.md, "Down-sync"): publishing rules, per-van and fleet bundles,
//! signed answers over real HTTP, authentication, dossier lookups.

mod common;

use common::{NOW, Van, auth, hq, http, nonce, now_text, serve};
use mtu_sync::bundle::{DossierQuery, verify_bundles, verify_dossier};
use van_hq::downsync::{self, PublishError};
use van_hq::ingest::enroll;
use van_hq::store::{PublishOutcome, Store, StoreError};

fn roster(van: &str, version: u64) -> Vec<u8> {
    format!(
        r#"{{"bundle":"roster","version":{version},"van_id":"{van}","issued_at":"2026-12-01T08:00:00Z","officers":[]}}"#
    )
    .into_bytes()
}

#[test]
fn publishing_checks_shape_and_is_idempotent_on_target_kind_version() {
    let hq = hq();
    let b = roster("MTU-1", 3);
    assert_eq!(downsync::publish(&hq.store, &b, Some("MTU-1"), NOW).unwrap(), PublishOutcome::Stored(1));
    // The same bytes again: nothing new.
    assert_eq!(
        downsync::publish(&hq.store, &b, Some("MTU-1"), NOW).unwrap(),
        PublishOutcome::AlreadyStored(1)
    );
    // Other bytes under the same (target, kind, version): refused.
    let other = String::from_utf8(b.clone()).unwrap().replace("08:00", "09:00");
    assert!(matches!(
        downsync::publish(&hq.store, other.as_bytes(), Some("MTU-1"), NOW),
        Err(PublishError::Store(StoreError::Conflict(_)))
    ));
    // The same version for every van is another key.
    assert_eq!(downsync::publish(&hq.store, &roster("*", 3), None, NOW).unwrap(), PublishOutcome::Stored(2));
    // Settings (the van checks the values; HQ the shape).
    let settings = br#"{"bundle":"settings","version":1,"van_id":"*","issued_at":"2026-12-01T08:00:00Z","settings":{"card_colour":false}}"#;
    assert!(matches!(downsync::publish(&hq.store, settings, None, NOW).unwrap(), PublishOutcome::Stored(3)));
    for (bad, why) in [
        (&b"not json"[..], "not JSON"),
        (br#"{"bundle":"fees","version":1,"van_id":"MTU-1","issued_at":"2026-12-01T08:00:00Z"}"#, "unknown bundle"),
        (br#"{"bundle":"roster","version":0,"van_id":"MTU-1","issued_at":"2026-12-01T08:00:00Z","officers":[]}"#, "version"),
        (br#"{"bundle":"roster","version":1,"van_id":"MTU-1","issued_at":"yesterday","officers":[]}"#, "issued_at"),
        (br#"{"bundle":"schedule","version":1,"van_id":"MTU-1","issued_at":"2026-12-01T08:00:00Z","schedule":[]}"#, "an object"),
        (br#"{"bundle":"roster","version":1,"van_id":"MTU-2","issued_at":"2026-12-01T08:00:00Z","officers":[]}"#, "MTU-2"),
        (br#"{"bundle":"settings","version":1,"van_id":"MTU-1","issued_at":"2026-12-01T08:00:00Z","settings":[]}"#, "an object"),
    ] {
        let e = downsync::publish(&hq.store, bad, Some("MTU-1"), NOW).unwrap_err();
        assert!(e.to_string().contains(why), "{e} lacks {why:?}");
    }
}

#[test]
fn a_van_gets_its_own_and_fleet_bundles_in_order_with_its_van_id() {
    let hq = hq();
    downsync::publish(&hq.store, &roster("MTU-1", 1), Some("MTU-1"), NOW).unwrap();
    downsync::publish(&hq.store, &roster("MTU-2", 1), Some("MTU-2"), NOW).unwrap();
    downsync::publish(&hq.store, &roster("*", 2), None, NOW).unwrap();
    let ids =
        |van: &str| hq.store.bundles_after(van, 0, 10).unwrap().into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(ids("MTU-1"), [1, 3]);
    assert_eq!(ids("MTU-2"), [2, 3]);
    let body = downsync::bundles(&hq.store, &hq.key, "MTU-2", Some("after=2")).unwrap();
    let page = verify_bundles(&body, &hq.key.verifying_key(), "MTU-2", 2).unwrap();
    assert_eq!(page.bundles.len(), 1);
    let served: serde_json::Value = serde_json::from_slice(&page.bundles[0].bytes).unwrap();
    assert_eq!((served["van_id"].as_str(), served["version"].as_u64()), (Some("MTU-2"), Some(2)));
    // Signed for MTU-2: MTU-1 cannot use it.
    assert!(verify_bundles(&body, &hq.key.verifying_key(), "MTU-1", 2).is_err());
    // Pages of 50 with `more`.
    for v in 3..=60 {
        downsync::publish(&hq.store, &roster("MTU-1", v), Some("MTU-1"), NOW).unwrap();
    }
    let page = verify_bundles(
        &downsync::bundles(&hq.store, &hq.key, "MTU-1", Some("after=0")).unwrap(),
        &hq.key.verifying_key(),
        "MTU-1",
        0,
    )
    .unwrap();
    assert_eq!((page.bundles.len(), page.more), (50, true));
    let last = page.bundles.last().unwrap().id;
    let body = downsync::bundles(&hq.store, &hq.key, "MTU-1", Some(&format!("after={last}"))).unwrap();
    let page = verify_bundles(&body, &hq.key.verifying_key(), "MTU-1", last).unwrap();
    assert_eq!((page.bundles.len(), page.more), (10, false));
    for q in [None, Some("after=x"), Some("after=1&after=2"), Some("from=1")] {
        assert_eq!(
            downsync::bundles(&hq.store, &hq.key, "MTU-1", q).unwrap_err().code,
            "sync.bad_query",
            "{q:?}"
        );
    }
}

#[test]
fn endpoints_need_an_authenticated_van_and_answer_signed() {
    let van = Van::new("MTU-CAI-0001", 1);
    let hq = hq();
    enroll(&hq.store, &van.id, &van.public_hex(), NOW).unwrap();
    downsync::publish(&hq.store, &roster(&van.id, 4), Some(&van.id), NOW).unwrap();
    let dossiers = "{\"national_id\":\"29001011234567\",\"dossier\":{\"citizen\":{\"name\":\"x\"}}}\n";
    assert_eq!(downsync::import_dossiers(&hq.store, dossiers.as_bytes(), NOW).unwrap(), 1);
    assert!(
        downsync::import_dossiers(&hq.store, &b"{\"national_id\":\"1\",\"dossier\":{}}"[..], NOW).is_err()
    );
    let (addr, hq_pub, _dir) = serve(hq);
    // Without authentication, or signed by another key: refused.
    let a = http(addr, "GET", "/v1/bundles?after=0", &[], b"");
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (401, Some("sync.bad_request_signature")),
        "{}",
        a.body
    );
    let impostor = Van::new("MTU-CAI-0001", 9);
    let h = auth(&impostor, "GET", "/v1/bundles", &now_text(), nonce(), b"");
    assert_eq!(http(addr, "GET", "/v1/bundles?after=0", &h, b"").status, 401);
    // The van: its bundle, signed.
    let h = auth(&van, "GET", "/v1/bundles", &now_text(), nonce(), b"");
    let a = http(addr, "GET", "/v1/bundles?after=0", &h, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    let page = verify_bundles(a.body.to_string().as_bytes(), &hq_pub, &van.id, 0).unwrap();
    assert_eq!(page.bundles[0].bytes, roster(&van.id, 4));
    // The dossier lookup: signed over the query as sent; 404 for a citizen HQ does not know.
    let q = DossierQuery { national_id: "29001011234567".into(), plate: Some(("أ ب".into(), "12".into())) }
        .to_query();
    let h = auth(&van, "GET", "/v1/dossier", &now_text(), nonce(), b"");
    let a = http(addr, "GET", &format!("/v1/dossier?{q}"), &h, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    let d = verify_dossier(a.body.to_string().as_bytes(), &hq_pub, &van.id, &q, van_hq::ingest::now_us())
        .unwrap();
    assert_eq!(d, br#"{"citizen":{"name":"x"}}"#);
    let h = auth(&van, "GET", "/v1/dossier", &now_text(), nonce(), b"");
    let a = http(addr, "GET", "/v1/dossier?national_id=29001011234568", &h, b"");
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("sync.no_dossier")), "{}", a.body);
    let h = auth(&van, "GET", "/v1/dossier", &now_text(), nonce(), b"");
    let a = http(addr, "GET", "/v1/dossier?national_id=123", &h, b"");
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("sync.bad_query")), "{}", a.body);
}

/// A roster bundle of a little over `size` bytes (a long note in an officer-free roster).
fn big_roster(van: &str, version: u64, size: usize) -> Vec<u8> {
    let pad = "x".repeat(size);
    format!(
        r#"{{"bundle":"roster","version":{version},"van_id":"{van}","issued_at":"2026-12-01T08:00:00Z","officers":[],"note":"{pad}"}}"#
    )
    .into_bytes()
}

#[test]
fn answers_are_bounded_by_bytes_and_bundles_by_size() {
    use mtu_sync::bundle::{MAX_ANSWER_BUNDLE_BYTES, MAX_BUNDLE_BYTES};
    let hq = hq();
    // Too large to publish: refused with the limit named.
    let huge = big_roster("MTU-1", 1, MAX_BUNDLE_BYTES + 10);
    let e = downsync::publish(&hq.store, &huge, Some("MTU-1"), NOW).unwrap_err();
    assert!(e.to_string().contains(&MAX_BUNDLE_BYTES.to_string()), "{e}");
    // Five bundles of 1.5 MiB: an answer carries at most what fits 4 MiB, and says more follow.
    let size = 3 * 1024 * 1024 / 2;
    for v in 1..=5 {
        downsync::publish(&hq.store, &big_roster("MTU-1", v, size), Some("MTU-1"), NOW).unwrap();
    }
    let mut after = 0;
    let mut pages = 0;
    loop {
        let body = downsync::bundles(&hq.store, &hq.key, "MTU-1", Some(&format!("after={after}"))).unwrap();
        let page = verify_bundles(&body, &hq.key.verifying_key(), "MTU-1", after).unwrap();
        let bytes: usize = page.bundles.iter().map(|b| b.bytes.len()).sum();
        assert!(!page.bundles.is_empty());
        assert!(page.bundles.len() == 1 || bytes <= MAX_ANSWER_BUNDLE_BYTES, "{bytes} bytes in one answer");
        pages += 1;
        after = page.bundles.last().unwrap().id;
        if !page.more {
            break;
        }
    }
    assert_eq!(after, 5);
    assert_eq!(pages, 3, "1.5 MiB bundles go two to an answer");
}
