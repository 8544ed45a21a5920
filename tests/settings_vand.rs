//! Through the real binaries: a settings bundle imported with `vanctl settings import` is
//! journaled and kept in office.db but not in effect until vand starts again (`vanctl settings
//! show` says it is pending); at the next start vand takes it over the configuration and journals
//! `settings.effective` right after `daemon.start`.

mod common;

use std::process::Command;

use common::rig::Rig;
use mtu::journal::JournalReader;
use serde_json::Value;

fn vanctl(rig: &Rig, args: &[&str]) -> (Option<i32>, String, String) {
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
}

fn show(rig: &Rig) -> Value {
    let (code, out, err) = vanctl(rig, &["settings", "show", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

/// (kind, payload) of every journal record.
fn records(rig: &Rig) -> Vec<(String, Value)> {
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    let mut out = Vec::new();
    reader
        .for_each(1, u64::MAX, |r| {
            out.push((r.kind.to_string(), serde_json::from_slice(&r.payload).unwrap_or(Value::Null)));
            Ok(true)
        })
        .unwrap();
    out
}

#[test]
fn imported_settings_wait_for_the_next_start_and_are_journaled_when_taken() {
    let mut rig = Rig::new();
    rig.start(None);
    let s = show(&rig);
    assert_eq!(
        (&s["applied"], &s["in_effect"], &s["pending"]),
        (&Value::Null, &Value::Null, &Value::Bool(false))
    );

    let file = rig.dir.path().join("settings.json");
    std::fs::write(
        &file,
        r#"{"bundle":"settings","version":3,"van_id":"MTU-SIM-0001","issued_at":"2026-12-01T05:00:00Z",
            "settings":{"user_words":16,"card_colour":false}}"#,
    )
    .unwrap();
    let (code, out, err) = vanctl(&rig, &["settings", "import", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("imported settings bundle version 3"), "{out}");
    let s = show(&rig);
    assert_eq!(
        (&s["applied"]["version"], &s["in_effect"], &s["pending"]),
        (&3.into(), &Value::Null, &Value::Bool(true))
    );
    let (_, text, _) = vanctl(&rig, &["settings", "show"]);
    assert!(text.contains("take effect at the next start of vand"), "{text}");
    assert!(records(&rig).iter().any(|(k, p)| k == "refdata.applied" && p["bundle"] == "settings"));
    assert!(!records(&rig).iter().any(|(k, _)| k == "settings.effective"));

    rig.stop();
    rig.start(None);
    let s = show(&rig);
    assert_eq!((&s["in_effect"]["version"], &s["pending"]), (&3.into(), &Value::Bool(false)), "{s}");
    let (_, text, _) = vanctl(&rig, &["settings", "show"]);
    assert!(text.contains("devices.rfid.options.user_words = 16 (configuration: default)"), "{text}");
    assert!(text.contains("card_colour = false"), "{text}");
    // Journaled right after the second start.
    let all = records(&rig);
    let starts: Vec<usize> =
        all.iter().enumerate().filter(|(_, (k, _))| k == "daemon.start").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 2);
    let (kind, payload) = &all[starts[1] + 1];
    assert_eq!(kind, "settings.effective");
    assert_eq!(payload["version"], 3);
    assert_eq!(payload["sha256"], s["applied"]["sha256"]);
    rig.stop();
}
