//! Running the van: `GET /healthz` and `GET /metrics` of a real vand (the metrics page parsed by
//! Python's `prometheus_client`, an outside parser, and checked against the journal and the
//! API), its log at debug level free of national IDs, PINs and session tokens, and SIGHUP
//! reloading the configuration (a good file applied, a bad one refused, each logged once).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::rig::Rig;
use mtu::journal::JournalReader;
use serde_json::{Value, json};

/// `GET path` outside `/api/v1`: status, headers (lower-cased names), body.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_owned())
}

fn python() -> String {
    std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The metrics page parsed by `prometheus_client.parser`: every sample as
/// `{"family", "type", "name", "labels", "value"}`.
fn parse_with_prometheus_client(text: &str) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{}: {e}; run tools/test, which installs python3 and prometheus-client", python())
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the page ({}); if it is missing, run tools/test, which \
         installs prometheus-client:\n{}\n---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .and_then(|s| s["value"].as_f64())
}

fn journal_head(rig: &Rig) -> u64 {
    JournalReader::open(&rig.var().join("journal.db")).unwrap().tail().unwrap().map_or(0, |r| r.seq)
}

/// The metrics page when the journal's head stays the same around it, parsed, with that head.
fn settled_metrics(rig: &Rig) -> (Vec<Value>, u64) {
    let started = Instant::now();
    loop {
        let before = journal_head(rig);
        let (code, head, body) = get(rig.port, "/metrics");
        assert_eq!(code, 200, "{body}");
        assert!(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
        if journal_head(rig) == before {
            return (parse_with_prometheus_client(&body), before);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the journal never settled");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn set_log_level(config: &Path, level: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("[log]\nlevel = \"").expect("the rig's config has a [log] level") + 15;
    let end = start + text[start..].find('"').unwrap();
    std::fs::write(config, format!("{}{level}{}", &text[..start], &text[end..])).unwrap();
}

#[test]
fn health_metrics_and_a_log_without_ids_pins_or_tokens() {
    let mut rig = Rig::new();
    set_log_level(&rig.config, "debug");
    let log = rig.dir.path().join("vand.log");
    rig.start_logged(&log);

    let (code, head, body) = get(rig.port, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"status": "ok"}));

    let (before, _) = settled_metrics(&rig);
    let t = rig.login("1001", "1234");
    rig.ensure_shift(&t);
    let (_, bookings) = rig.call("GET", "/bookings", &t, None);
    let booking = bookings[0]["booking"].clone();
    let national_id = booking["citizen"]["national_id"].as_str().unwrap().to_owned();
    let service = booking["service"].as_str().unwrap().to_owned();
    let txn = rig.try_open_booking(&t, 1).unwrap();
    let done = rig.finish(&t, &txn);
    let state = done["state"].as_str().unwrap().to_owned();
    // Look the citizen up too (the dossier is keyed by the national ID, in the query).
    let (code, _) = rig.call("GET", &format!("/dossier?national_id={national_id}"), &t, None);
    assert!(code < 500, "dossier lookup: {code}");

    let (after, head) = settled_metrics(&rig);
    assert_eq!(value(&after, "mtu_journal_head_seq", &[]), Some(head as f64), "head seq = the journal's");
    let outcome = [("service", service.as_str()), ("state", state.as_str())];
    assert_eq!(value(&before, "mtu_services", &outcome).unwrap_or(0.0), 0.0);
    assert_eq!(value(&after, "mtu_services", &outcome), Some(1.0), "{service} {state} counted: {after:?}");
    // The outcome counter moved by one for this service.
    let counted = [("service", service.as_str()), ("outcome", "completed")];
    assert_eq!(state, "completed", "{done}");
    assert_eq!(value(&before, "mtu_service_outcomes_total", &counted).unwrap_or(0.0), 0.0);
    assert_eq!(value(&after, "mtu_service_outcomes_total", &counted), Some(1.0), "{after:?}");
    assert!(after.iter().any(|s| s["family"] == "mtu_service_outcomes" && s["type"] == "counter"));
    assert_eq!(value(&after, "mtu_healthy", &[]), Some(1.0));
    assert_eq!(value(&after, "mtu_journal_failed_appends", &[]), Some(0.0));
    // Device states: one gauge per device and state, exactly one of them 1, as GET /devices says.
    let (_, devices) = rig.call("GET", "/devices", &t, None);
    for (name, view) in devices.as_object().unwrap() {
        let ones: Vec<_> = after
            .iter()
            .filter(|s| s["name"] == "mtu_device_state" && s["labels"]["device"] == *name)
            .filter(|s| s["value"] == 1.0)
            .map(|s| s["labels"]["state"].clone())
            .collect();
        assert_eq!(ones, vec![view["state"].clone()], "{name}");
    }
    // Sync as GET /sync reports it (the training van syncs with its in-process HQ): unsynced
    // records are the journal's head minus what HQ acknowledged.
    let (_, sync) = rig.call("GET", "/sync", &t, None);
    let enabled = sync["enabled"].as_bool().unwrap();
    assert_eq!(value(&after, "mtu_sync_enabled", &[]), Some(if enabled { 1.0 } else { 0.0 }), "{sync}");
    if enabled {
        let acked = value(&after, "mtu_sync_acked_seq", &[]).unwrap();
        assert!(acked <= head as f64, "acked {acked} > head {head}");
        assert_eq!(value(&after, "mtu_sync_unsynced_records", &[]), Some(head as f64 - acked), "{sync}");
        if let Some(t) = sync["last_success"].as_str() {
            let at = value(&after, "mtu_sync_last_success_timestamp_seconds", &[]).expect("last sync time");
            let ts: jiff::Timestamp = t.parse().unwrap();
            assert!(at <= ts.as_second() as f64 + 1.0 && at > 1.7e9, "{at} vs {t}");
        }
    }
    assert!(value(&after, "mtu_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == Some(1.0));
    assert!(value(&after, "process_start_time_seconds", &[]).is_some());
    // Nothing personal on the page.
    let (_, _, page) = get(rig.port, "/metrics");
    assert!(!page.contains(&national_id) && !page.contains(&txn), "{page}");

    rig.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "the log is at debug level:\n{text}");
    assert!(text.contains("api request"), "requests are logged:\n{text}");
    assert!(!text.contains(&national_id), "the log holds the national ID {national_id}:\n{text}");
    let tail = &national_id[national_id.len() - 4..];
    assert!(
        !text.contains(&format!("**********{tail}")),
        "a national ID reached the log and only the safety net masked it:\n{text}"
    );
    assert!(!text.contains(&t), "the log holds the session token:\n{text}");
    let words = text.split(|c: char| !c.is_ascii_digit());
    assert!(!words.clone().any(|w| w == "1234"), "the log holds the PIN 1234:\n{text}");
}

fn wait_for_log(log: &Path, what: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap();
        if text.contains(what) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no {what:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A bookings bundle with one booking tomorrow 08:30–09:00 Cairo (before the default opening).
fn early_booking() -> Value {
    let cairo = jiff::tz::TimeZone::get("Africa/Cairo").unwrap();
    let now = jiff::Timestamp::now();
    let tomorrow = now.to_zoned_datetime(cairo.clone()).date().tomorrow().unwrap();
    let mut b = mtu::office::sample::bookings("MTU-SIM-0001", tomorrow, &cairo, now);
    let at = |h: i8, m: i8| {
        tomorrow.at(h, m, 0, 0).to_zoned_datetime(cairo.clone()).unwrap().timestamp().to_string()
    };
    let mut item = b["items"][0].clone();
    item["slot"] = json!({"start": at(8, 30), "end": at(9, 0)});
    b["items"] = json!([item]);
    // Newer than the training day's bundle for today.
    b["version"] = json!(tomorrow.strftime("%Y%m%d").to_string().parse::<u64>().unwrap());
    b
}

fn hup(rig: &Rig) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rig.pid().unwrap() as i32, libc::SIGHUP) };
}

/// The payloads of the journal's records of `kind`.
fn records(rig: &Rig, kind: &str) -> Vec<Value> {
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    let mut out = Vec::new();
    reader
        .for_each(1, u64::MAX, |r| {
            if r.kind == kind {
                out.push(serde_json::from_slice(&r.payload).unwrap());
            }
            Ok(true)
        })
        .unwrap();
    out
}

#[test]
fn sighup_applies_a_good_file_and_keeps_the_old_config_on_a_bad_one() {
    let mut rig = Rig::new();
    let log = rig.dir.path().join("vand.log");
    rig.start_logged(&log);
    let t = rig.login("1001", "1234");
    let (code, _) = rig.call("GET", "/shift", &t, None);
    assert_eq!(code, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("api request"), "info level logs no requests:\n{text}");

    // Before the reload: two wrong PINs leave attempts, and a booking at 08:30 is outside hours.
    let login = |id: &str, pin: &str| {
        rig.http("POST", "/session", None, Some(&json!({"officer_id": id, "pin": pin}))).unwrap()
    };
    for left in [4, 3] {
        let (code, v) = login("1002", "0000");
        assert_eq!(code, 401, "{v}");
        assert!(v.to_string().contains(&format!("({left} attempts left)")), "{v}");
    }
    let sup = rig.login("9001", "9999");
    let early = early_booking();
    let (code, v) = rig.call("POST", "/import", &sup, Some(&early));
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("booking.outside_hours"), "{v}");

    // A good file: the log level, the lockout limit and the opening time apply at once; a
    // second listening address waits for a restart.
    set_log_level(&rig.config, "debug");
    let spare = common::rig::free_port();
    let good = std::fs::read_to_string(&rig.config)
        .unwrap()
        .replacen("[api]\n", "[api]\nmax_pin_failures = 2\n", 1)
        .replacen("opens = \"10:00\"", "opens = \"08:00\"", 1)
        .replacen(
            &format!("listen = [\"127.0.0.1:{}\"]", rig.port),
            &format!("listen = [\"127.0.0.1:{}\", \"127.0.0.1:{spare}\"]", rig.port),
            1,
        );
    assert!(good.contains("opens = \"08:00\"") && good.contains(&spare.to_string()), "{good}");
    std::fs::write(&rig.config, &good).unwrap();
    mtu::config::Config::load(&rig.config).expect("the good file is valid");
    hup(&rig);
    let text = wait_for_log(&log, "configuration reloaded from");
    assert_eq!(text.matches("need a restart").count(), 1, "{text}");
    let restart_line = text.lines().find(|l| l.contains("need a restart")).unwrap();
    assert!(restart_line.contains("api.listen") && !restart_line.contains("log.level"), "{text}");
    let (code, _) = rig.call("GET", "/shift", &t, None);
    assert_eq!(code, 200);
    wait_for_log(&log, "api request");
    let reloaded = records(&rig, "config.reloaded");
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["applied"], json!(["log.level", "service.opens", "api.max_pin_failures"]));
    assert_eq!(reloaded[0]["restart_needed"], json!(["api.listen"]));
    assert_eq!(reloaded[0]["kept_by_hq"], json!([]));
    assert_eq!(reloaded[0]["file"], rig.config.display().to_string());
    // In force: the two failures counted lock 1002 at the next wrong PIN (the limit is now 2)...
    let (code, v) = login("1002", "0000");
    assert_eq!(code, 423, "{v}");
    assert!(v.to_string().contains("auth.locked_out"), "{v}");
    // ...the early booking is inside the new hours...
    let (code, v) = rig.call("POST", "/import", &sup, Some(&early));
    assert_eq!(code, 200, "{v}");
    // ...and the second address is not served before a restart.
    assert!(TcpStream::connect(("127.0.0.1", spare)).is_err(), "api.listen applied without a restart");

    // A bad file: refused, logged once with its line and key, the old configuration stays.
    let bad = good.replace("level = \"debug\"", "level = 5");
    assert_ne!(bad, good);
    let bad_line = bad.lines().position(|l| l == "level = 5").unwrap() + 1;
    std::fs::write(&rig.config, &bad).unwrap();
    hup(&rig);
    wait_for_log(&log, "configuration not reloaded");
    // Give a second line, if any were written, the time to show.
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<_> = text.lines().filter(|l| l.contains("configuration not reloaded")).collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert!(refused[0].contains(&format!(":{bad_line}:")) && refused[0].contains("log.level"), "{refused:?}");
    assert!(rig.running(), "vand keeps running");
    let (code, _, body) = get(rig.port, "/healthz");
    assert_eq!(code, 200, "{body}");
    let before = text.matches("api request").count();
    let (code, _) = rig.call("GET", "/shift", &t, None);
    assert_eq!(code, 200, "vand keeps serving");
    let started = Instant::now();
    while std::fs::read_to_string(&log).unwrap().matches("api request").count() <= before {
        assert!(started.elapsed() < Duration::from_secs(10), "debug level kept after the refused reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = records(&rig, "config.refused");
    assert_eq!(
        refused,
        vec![json!({"file": rig.config.display().to_string(), "line": bad_line, "key": "log.level"})]
    );
    assert_eq!(records(&rig, "config.reloaded").len(), 1);
    rig.stop();
}

#[test]
fn on_sighup_the_service_hours_of_hqs_settings_keep_winning_over_the_file() {
    let mut rig = Rig::new();
    // HQ's settings bundle (as the down-sync or `vanctl settings import` stores it) sets 09:00–21:00.
    let db = mtu::office::refdata::RefData::open(
        &rig.var().join("office.db"),
        "MTU-SIM-0001",
        mtu::office::refdata::ServiceHours::cairo_default(),
    )
    .unwrap();
    let settings = json!({"bundle": "settings", "version": 3, "van_id": "MTU-SIM-0001",
                          "issued_at": "2026-12-01T05:00:00Z",
                          "settings": {"opens": "09:00", "closes": "21:00"}});
    db.apply(settings.to_string().as_bytes(), jiff::Timestamp::now()).unwrap();
    drop(db);
    let log = rig.dir.path().join("vand.log");
    rig.start_logged(&log);
    assert_eq!(records(&rig, "settings.effective").len(), 1);
    let sup = rig.login("9001", "9999");
    let early = early_booking();
    let (code, v) = rig.call("POST", "/import", &sup, Some(&early));
    assert_eq!(code, 422, "{v}");

    // The file opens at 08:00 now and locks after 3 wrong PINs: the lockout applies, the hours
    // stay HQ's.
    let text = std::fs::read_to_string(&rig.config)
        .unwrap()
        .replacen("opens = \"10:00\"", "opens = \"08:00\"", 1)
        .replacen("[api]\n", "[api]\nmax_pin_failures = 3\n", 1);
    std::fs::write(&rig.config, &text).unwrap();
    hup(&rig);
    let text = wait_for_log(&log, "configuration reloaded from");
    assert!(
        text.contains("HQ's settings bundle sets these and stays in force over the file: service.opens"),
        "{text}"
    );
    let reloaded = records(&rig, "config.reloaded");
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["applied"], json!(["api.max_pin_failures"]));
    assert_eq!(reloaded[0]["kept_by_hq"], json!(["service.opens"]));
    assert_eq!(reloaded[0]["restart_needed"], json!([]));
    let (code, v) = rig.call("POST", "/import", &sup, Some(&early));
    assert_eq!(code, 422, "HQ's 09:00 opening stays in force: {v}");
    assert!(v.to_string().contains("09:00"), "{v}");
    rig.stop();
}
