//! Power failure and tamper against the real `vand`, with the simulated GPIO (the state file
//! `van-sim gpio …` writes): draining and 503 `power.failing`, a clean stop within the UPS's
//! hold-up time, a glitch ridden through, and the latched tamper alarm blocking supervisor
//! functions until a supervisor clears it.

mod common;

use std::time::{Duration, Instant};

use common::rig::Rig;
use mtu::devices::gpio::{Input, write_sim_state};
use mtu::journal::JournalReader;
use serde_json::{Value, json};

const OFFICER: (&str, &str) = ("1001", "1234");
const SUPERVISOR: (&str, &str) = ("9001", "9999");

/// A rig whose `[power]` section is `hold_up_s` / `ride_through_s`.
fn rig(scale: &str, hold_up_s: u64, ride_through_s: u64) -> Rig {
    let rig = Rig::with_timing_scale(scale);
    let text = std::fs::read_to_string(&rig.config).unwrap();
    assert!(
        text.contains("hold_up_s = 60") && text.contains("ride_through_s = 10"),
        "config/sim.toml has [power]"
    );
    let text = text
        .replace("hold_up_s = 60", &format!("hold_up_s = {hold_up_s}"))
        .replace("ride_through_s = 10", &format!("ride_through_s = {ride_through_s}"));
    std::fs::write(&rig.config, text).unwrap();
    rig
}

fn gpio(rig: &Rig, line: Input, active: bool) {
    write_sim_state(&rig.var().join("gpio-sim.json"), line, active).unwrap();
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record as (seq, kind, payload).
fn records(rig: &Rig) -> Vec<(u64, String, Value)> {
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    let mut out = Vec::new();
    reader
        .for_each(1, u64::MAX, |r| {
            out.push((r.seq, r.kind.clone(), serde_json::from_slice(&r.payload).unwrap_or(Value::Null)));
            Ok(true)
        })
        .unwrap();
    out
}

fn vanctl_verify(rig: &Rig) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vanctl"))
        .arg("--config")
        .arg(&rig.config)
        .args(["journal", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vanctl journal verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open_request(rig: &Rig, t: &str, nn: u32) -> Value {
    let (_, list) = rig.call("GET", "/bookings", t, None);
    let b = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["booking"]["id"].as_str().unwrap().ends_with(&format!("-{nn:02}")))
        .unwrap()
        .clone();
    let bk = &b["booking"];
    let mut req = json!({"service": bk["service"], "booking_id": bk["id"], "citizen": bk["citizen"]});
    if !bk["dossier"]["vehicle"].is_null() {
        req["vehicle"] = bk["dossier"]["vehicle"].clone();
    }
    req
}

#[test]
fn power_failure_drains_refuses_new_services_and_stops_cleanly_within_the_hold_up_time() {
    // Realistic device timing (×0.3) so the payment is still running when mains goes.
    let mut rig = rig("0.3", 12, 2);
    rig.start(None);
    let t = rig.login(OFFICER.0, OFFICER.1);
    rig.ensure_shift(&t);
    let txn = rig.try_open_booking(&t, 1).unwrap();
    let (code, v) = rig.call("POST", &format!("/services/{txn}/proceed"), &t, None);
    assert_eq!(code, 202, "{v}");
    std::thread::sleep(Duration::from_millis(300));
    let failed_at = Instant::now();
    gpio(&rig, Input::PowerFail, true);
    wait_for("power_failing", Duration::from_secs(2), || {
        rig.call("GET", "/alarms", &t, None).1["power_failing"] == true
    });
    // A new service is refused while the UPS holds.
    let req = open_request(&rig, &t, 2);
    let (code, v) = rig.call("POST", "/services", &t, Some(&req));
    assert_eq!((code, v["error"]["code"].as_str()), (503, Some("power.failing")), "{v}");
    let status = rig.wait_exit(Duration::from_secs(12)).expect("vand stopped within the hold-up time");
    assert!(status.success(), "vand exited with {status}");
    let took = failed_at.elapsed();
    assert!(took >= Duration::from_secs(2), "vand did not ride through the first {took:?}");

    let recs = records(&rig);
    let (_, kind, stop) = recs.last().unwrap();
    assert_eq!(kind, "daemon.stop", "the last record is the stop");
    assert_eq!(stop["reason"], "power-fail", "{stop}");
    let fail =
        recs.iter().position(|(_, k, p)| k == "power.fail" && p["active"] == true).expect("power.fail");
    assert!(!recs[fail..].iter().any(|(_, k, _)| k == "service.open"), "no service opened after the failure");
    // The payment under way when mains went reached its result: no intent is left without one.
    let of_txn: Vec<&str> =
        recs.iter().filter(|(_, _, p)| p["txn"] == txn.as_str()).map(|(_, k, _)| k.as_str()).collect();
    let intents = of_txn.iter().filter(|k| **k == "payment.intent").count();
    let results = of_txn.iter().filter(|k| **k == "payment.result").count();
    assert!(intents >= 1, "the payment had started: {of_txn:?}");
    assert_eq!(intents, results, "a payment intent without its result: {of_txn:?}");
    // …and it was in flight: its intent before the failure, its result after.
    let seq_of = |kind: &str| recs.iter().find(|(_, k, p)| k == kind && p["txn"] == txn.as_str()).unwrap().0;
    let fail_seq = recs[fail].0;
    assert!(
        seq_of("payment.intent") < fail_seq && fail_seq < seq_of("payment.result"),
        "the payment was not in flight when mains went: {of_txn:?}"
    );
    vanctl_verify(&rig);
    // No WAL left behind for the next boot to replay.
    for db in ["journal.db-wal", "office.db-wal"] {
        let len = std::fs::metadata(rig.var().join(db)).map(|m| m.len()).unwrap_or(0);
        assert_eq!(len, 0, "{db} was not checkpointed");
    }

    // On the next start, with mains back, the transaction goes on where it stopped.
    gpio(&rig, Input::PowerFail, false);
    rig.start(None);
    let t = rig.login(OFFICER.0, OFFICER.1);
    let end = rig.finish(&t, &txn);
    assert_eq!(end["state"], "completed", "{end}");
    rig.stop();
    common::rig::check_against_ledger(&rig);
}

#[test]
fn a_mains_glitch_shorter_than_the_ride_through_is_journaled_and_does_not_stop_the_van() {
    let mut rig = rig("0", 20, 4);
    rig.start(None);
    let t = rig.login(OFFICER.0, OFFICER.1);
    rig.ensure_shift(&t);
    gpio(&rig, Input::PowerFail, true);
    wait_for("power_failing", Duration::from_secs(2), || {
        rig.call("GET", "/alarms", &t, None).1["power_failing"] == true
    });
    let (_, van) = rig.http("GET", "/van", None, None).unwrap();
    assert_eq!(van["power_failing"], true, "{van}");
    let req = open_request(&rig, &t, 1);
    let (code, v) = rig.call("POST", "/services", &t, Some(&req));
    assert_eq!((code, v["error"]["code"].as_str()), (503, Some("power.failing")), "{v}");
    std::thread::sleep(Duration::from_secs(1));
    gpio(&rig, Input::PowerFail, false);
    wait_for("mains back", Duration::from_secs(2), || {
        rig.call("GET", "/alarms", &t, None).1["power_failing"] == false
    });
    // Past the ride-through time: still running, and serving again.
    std::thread::sleep(Duration::from_secs(4));
    let txn = rig.try_open_booking(&t, 1).expect("a service opens once mains is back");
    assert_eq!(rig.finish(&t, &txn)["state"], "completed");
    rig.stop();
    let recs = records(&rig);
    let kinds: Vec<&str> = recs.iter().map(|(_, k, _)| k.as_str()).collect();
    let fail = kinds.iter().position(|k| *k == "power.fail").unwrap();
    let restored = recs.iter().find(|(_, k, _)| k == "power.restored").expect("power.restored journaled");
    assert!(restored.0 > recs[fail].0);
    let away = restored.2["away_ms"].as_u64().unwrap();
    assert!((900..4000).contains(&away), "away_ms {away}");
    assert_eq!(recs.last().unwrap().2["reason"], "SIGTERM");
    vanctl_verify(&rig);
}

/// The GPIO lines as the control socket's self-test reports them (`fault_led: on`, …).
fn gpio_lines(rig: &Rig) -> Vec<String> {
    let sock = mtu::control::socket_path(&rig.var());
    let v = mtu::control::request(&sock, &json!({"cmd": "self_test"})).unwrap();
    v["self_test"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["device"] == "gpio")
        .map(|r| r["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn import_empty(rig: &Rig, t: &str) -> (u16, Value) {
    rig.call("POST", "/import", t, Some(&json!({})))
}

#[test]
fn an_opened_box_latches_an_alarm_that_only_a_supervisor_clears_once_it_is_closed() {
    let mut rig = rig("0", 60, 10);
    rig.start(None);
    let sup = rig.login(SUPERVISOR.0, SUPERVISOR.1);
    let off = rig.login(OFFICER.0, OFFICER.1);
    let (code, before) = import_empty(&rig, &sup);
    assert_ne!(code, 409, "{before}");

    gpio(&rig, Input::Tamper, true);
    wait_for("tamper latched", Duration::from_secs(3), || {
        rig.call("GET", "/alarms", &off, None).1["tamper"]["latched"] == true
    });
    let lines = gpio_lines(&rig);
    for line in ["tamper: ACTIVE", "fault_led: on", "buzzer: on"] {
        assert!(lines.iter().any(|l| l == line), "{line} not in {lines:?}");
    }
    let (code, v) = import_empty(&rig, &sup);
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tamper.latched")), "{v}");
    let clear = json!({"reason": "seal checked"});
    let (code, v) = rig.call("POST", "/tamper/clear", &sup, Some(&clear));
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tamper.switch_open")), "{v}");

    // The latch survives a restart (the box is closed meanwhile: still latched).
    gpio(&rig, Input::Tamper, false);
    rig.stop();
    rig.start(None);
    let sup = rig.login(SUPERVISOR.0, SUPERVISOR.1);
    let off = rig.login(OFFICER.0, OFFICER.1);
    let (_, a) = rig.call("GET", "/alarms", &off, None);
    assert_eq!(a["tamper"]["latched"], true, "{a}");
    assert_eq!(a["tamper"]["switch_open"], false, "{a}");
    let (code, v) = import_empty(&rig, &sup);
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tamper.latched")), "{v}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vanctl"))
        .arg("--config")
        .arg(&rig.config)
        .args(["alarms", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, a, "vanctl alarms shows what GET /alarms does");
    wait_for("alarm outputs on after the restart", Duration::from_secs(3), || {
        let lines = gpio_lines(&rig);
        lines.iter().any(|l| l == "buzzer: on") && lines.iter().any(|l| l == "fault_led: on")
    });

    // An officer cannot clear it; a supervisor can, with a reason.
    let (code, v) = rig.call("POST", "/tamper/clear", &off, Some(&clear));
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("auth.role")), "{v}");
    let (code, v) = rig.call("POST", "/tamper/clear", &sup, Some(&json!({"reason": " "})));
    assert_eq!(code, 422, "{v}");
    let (code, v) = rig.call("POST", "/tamper/clear", &sup, Some(&clear));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["tamper"]["latched"], false, "{v}");
    let lines = gpio_lines(&rig);
    assert!(lines.iter().any(|l| l == "buzzer: off"), "{lines:?}");
    let (code, v) = import_empty(&rig, &sup);
    assert_ne!(code, 409, "supervisor functions work again: {v}");
    let (code, v) = rig.call("POST", "/tamper/clear", &sup, Some(&clear));
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tamper.not_latched")), "{v}");
    rig.stop();

    let recs = records(&rig);
    let raised = recs.iter().find(|(_, k, p)| k == "gpio.tamper" && p["active"] == true).unwrap().0;
    let cleared = recs.iter().find(|(_, k, _)| k == "tamper.cleared").expect("tamper.cleared");
    assert_eq!(cleared.2["officer"], SUPERVISOR.0);
    assert_eq!(cleared.2["reason"], "seal checked");
    assert_eq!(cleared.2["raised_seq"], raised);
    vanctl_verify(&rig);
}

#[test]
fn inputs_already_active_at_start_are_acted_on() {
    let mut rig = rig("0", 10, 3);
    // The box is open and mains is lost before vand starts.
    gpio(&rig, Input::Tamper, true);
    gpio(&rig, Input::PowerFail, true);
    rig.start(None);
    let t = rig.login(OFFICER.0, OFFICER.1);
    let (_, a) = rig.call("GET", "/alarms", &t, None);
    assert_eq!(a["power_failing"], true, "{a}");
    assert_eq!(a["tamper"]["latched"], true, "{a}");
    assert_eq!(a["tamper"]["switch_open"], true, "{a}");
    let status = rig.wait_exit(Duration::from_secs(10)).expect("vand stopped within the hold-up time");
    assert!(status.success(), "{status}");
    let recs = records(&rig);
    assert_eq!(recs.last().unwrap().2["reason"], "power-fail");
    vanctl_verify(&rig);
}
