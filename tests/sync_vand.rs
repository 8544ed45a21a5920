//! Through the real binaries: the training van (`vand` with config/sim.toml's `[sync]`) runs its
//! local HQ in-process over TLS; a citizen is served; `vanctl sync now` brings HQ level with the
//! journal; `vanctl sync status` shows nothing pending; HQ's database (read as `van-hq` reads it)
//! holds the transaction's records with the journal's hashes; a bundle HQ publishes comes down.

mod common;

use std::process::Command;

use common::rig::Rig;
use mtu::journal::JournalReader;
use mtu::sync::machine::JournalView;
use serde_json::Value;
use van_hq::store::Store;

#[test]
fn a_served_citizens_records_arrive_at_the_training_hq() {
    let mut rig = Rig::new();
    rig.start(None);
    let t = rig.login("1001", "1234");
    rig.ensure_shift(&t);
    let txn = rig.try_open_booking(&t, 1).expect("vand alive");
    let done = rig.finish(&t, &txn);
    assert_eq!(done["state"], "completed", "{done}");

    let vanctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .args(["--config", rig.config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = vanctl(&["sync", "now", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let now: Value = serde_json::from_str(&out).unwrap();
    assert!(now["last_error"].is_null(), "{now}");
    assert_eq!(now["pending"], 0, "{now}");
    let (code, out, err) = vanctl(&["sync", "status"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("HQ:            https://127.0.0.1:"), "{out}");
    assert!(out.contains("pending:       0 "), "{out}");
    let acked = now["acked_seq"].as_u64().unwrap();
    assert!(acked >= 8, "{now}");

    // HQ's own records, as `van-hq vans`/`verify` read them, match the journal up to HQ's head.
    let store = van_hq::sqlite::SqliteStore::open(&rig.var().join("hq/hq.db")).unwrap();
    let stored = store.records("MTU-SIM-0001", 1, 1_000_000).unwrap();
    assert!(stored.len() as u64 >= acked, "HQ holds {} records, the van counts {acked}", stored.len());
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    let ours = reader.read(1, stored.len()).unwrap();
    assert_eq!(ours.len(), stored.len());
    for ((seq, hash, _), r) in stored.iter().zip(&ours) {
        assert_eq!((*seq, *hash), (r.seq, r.hash));
    }
    let lines: Vec<&str> = stored.iter().map(|(_, _, l)| l.as_str()).collect();
    assert!(lines.iter().any(|l| l.contains(&txn)), "the transaction's records are at HQ");
    assert_eq!(van_hq::audit::verify_van(&store, "MTU-SIM-0001", 500).unwrap(), stored.len() as u64);
    // `van-hq vans` needs no option beyond the database the README names.
    let vans = van_hq::audit::vans(&store, van_hq::ingest::now_us()).unwrap();
    assert_eq!(vans.len(), 1);
    assert_eq!(vans[0].alarms, 0);

    // Down-sync rides on the same link: a block list HQ publishes for every van is applied at the
    // next session and journaled with its HQ id.
    let blocklist = br#"{"bundle":"blocklist","version":900001,"van_id":"*","issued_at":"2026-12-01T08:00:00Z","blocklist":{"version":900001,"vehicles":[{"vin":"WVWZZZ1JZXW000001","reason":"stolen"}],"licences":[]}}"#;
    let outcome = van_hq::downsync::publish(&store, blocklist, None, van_hq::ingest::now_us()).unwrap();
    let hq_id = match outcome {
        van_hq::store::PublishOutcome::Stored(id) => id,
        other => panic!("{other:?}"),
    };
    let (code, out, err) = vanctl(&["sync", "now", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let applied = (0..100).find_map(|_| {
        let tail = reader.read(1, 1_000_000).unwrap();
        let hit = tail.into_iter().find(|r| {
            r.kind == "refdata.applied" && {
                let p: Value = serde_json::from_slice(&r.payload).unwrap();
                p["source"] == "hq" && p["hq_id"] == hq_id && p["bundle"] == "blocklist"
            }
        });
        if hit.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        hit
    });
    assert!(applied.is_some(), "the block list HQ published was not applied within 10 s");
    rig.stop();
}
