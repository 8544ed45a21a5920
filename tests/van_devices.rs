//! The device contract through the real binaries: `vand` with its simulated devices, `van-sim ctl`
//! faults, `vanctl devices` and the journal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mtu::journal::{JournalReader, kinds};
use serde_json::Value;

struct Van {
    dir: tempfile::TempDir,
    config: PathBuf,
    vand: Child,
}

/// The simulation config, with everything under a temp dir, status polls every 200 ms and a 3 s
/// shutdown budget.
fn start() -> Van {
    start_with_scenario(None)
}

/// As [`start`]; `scenario` replaces the realistic-timing scenario file.
fn start_with_scenario(scenario: Option<(&str, &str)>) -> Van {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(Path::new(root).join("config/sim.toml"))
        .unwrap()
        .replace("\"var/", &format!("\"{d}/var/"))
        .replace("state_dir = \"var\"", &format!("state_dir = \"{d}/var\""))
        .replace("scenario = \"hw/sim/default.toml\"", &format!("scenario = \"{root}/hw/sim/default.toml\""))
        .replace("timeout_ms = 5000\n", "timeout_ms = 5000\nhealth_poll_ms = 200\n")
        .replace("timeout_ms = 2000\n", "timeout_ms = 2000\nhealth_poll_ms = 200\n")
        + "\n[daemon]\nshutdown_budget_ms = 3000\n";
    assert_eq!(text.matches("health_poll_ms = 200").count(), 4, "every device polls");
    let text = match scenario {
        Some((body, extra_config)) => {
            let file = dir.path().join("scenario.toml");
            std::fs::write(&file, body).unwrap();
            text.replace(&format!("{root}/hw/sim/default.toml"), file.to_str().unwrap()) + extra_config
        }
        None => text,
    };
    let config = dir.path().join("vand.toml");
    std::fs::write(&config, text).unwrap();
    let mut vand = Command::new(env!("CARGO_BIN_EXE_vand"))
        .args(["--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(vand.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("vand exited before ready").unwrap();
        if line.contains("ready") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "vand not ready");
    }
    std::thread::spawn(move || lines.for_each(drop));
    Van { dir, config, vand }
}

impl Drop for Van {
    /// A failed test must not leave its daemon running (it holds the test's output open).
    fn drop(&mut self) {
        let _ = self.vand.kill();
        let _ = self.vand.wait();
    }
}

impl Van {
    fn vanctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .args(["--config", self.config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    }

    fn devices(&self) -> Value {
        serde_json::from_slice(&self.vanctl(&["devices", "--json"]).stdout).unwrap_or_default()
    }

    fn wait_devices(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.devices();
            if pred(&v) {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{what}: never; now {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sim(&self, words: &[&str]) {
        let sock = self.dir.path().join("var/sim.sock");
        let out = Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args(["--control", sock.to_str().unwrap(), "ctl"])
            .args(words)
            .output()
            .unwrap();
        assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn records(&self) -> Vec<(String, Value)> {
        let j = JournalReader::open(&self.dir.path().join("var/journal.db")).unwrap();
        j.verify_all(None).unwrap();
        let last = j.tail().unwrap().unwrap().seq;
        (1..=last)
            .map(|seq| {
                let r = j.get(seq).unwrap();
                (r.kind.clone(), serde_json::from_slice(&r.payload).unwrap())
            })
            .collect()
    }
}

fn all_connected(v: &Value) -> bool {
    ["payment", "card", "sticker", "rfid"].iter().all(|d| v[d]["state"] == "connected")
}

/// Findings 3 and 5, end to end: a simulated fault reaches `vanctl devices` and the journal
/// without any job, and so does its recovery; a technician test job is journaled with its id; a
/// SIGTERM during a long card print still ends with `daemon.stop` within the budget, and the
/// print is on record as interrupted.
#[test]
fn faults_recoveries_test_jobs_and_a_bounded_stop_are_on_record() {
    let mut van = start();
    van.wait_devices("all connected", all_connected);

    van.sim(&["fault", "card", "ribbon_ended"]);
    let v = van.wait_devices("card fault", |v| v["card"]["state"] == "fault");
    assert_eq!(v["card"]["fault"], "card.ribbon_ended", "{v}");
    let table = String::from_utf8(van.vanctl(&["devices"]).stdout).unwrap();
    assert!(table.contains("ribbon ended — replace the ribbon [card.ribbon_ended]"), "{table}");
    van.sim(&["clear", "card"]);
    van.wait_devices("card recovered", |v| v["card"]["state"] == "connected");

    let out = van.vanctl(&["devices", "test", "payment"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("payment test: OK (job-") && text.contains("nothing was charged"), "{text}");

    // A real test card (colour ribbon: ~1 MB of panels and the printer's own timing), then SIGTERM.
    let mut print = Command::new(env!("CARGO_BIN_EXE_vanctl"))
        .args(["--config", van.config.to_str().unwrap(), "devices", "test", "card"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    van.wait_devices("card busy", |v| v["card"]["state"] == "busy");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(van.vand.id() as i32, libc::SIGTERM) };
    assert!(van.vand.wait().unwrap().success());
    let _ = print.wait();

    let records = van.records();
    let (kind, stop) = records.last().unwrap();
    assert_eq!(kind, kinds::DAEMON_STOP);
    assert_eq!(stop["interrupted_jobs"], 1, "{stop}");
    assert!(stop["stop_ms"].as_u64().unwrap() <= 3000, "the stop took longer than its budget: {stop}");
    let of = |k: &str| records.iter().filter(|(kind, _)| kind == k).map(|(_, p)| p).collect::<Vec<_>>();
    let card_health: Vec<&Value> =
        of("device.health").into_iter().filter(|p| p["device"] == "card").collect();
    let pos = |pred: &dyn Fn(&Value) -> bool| card_health.iter().position(|p| pred(p));
    let fault = pos(&|p| p["health"]["fault"] == "card.ribbon_ended").expect("the fault is on record");
    let back = card_health[fault..].iter().any(|p| p["health"]["state"] == "connected");
    assert!(back, "the recovery is on record: {card_health:?}");
    let jobs = of("device.job");
    let diag = jobs.iter().find(|j| j["what"] == "terminal diagnosis").expect("test job journaled");
    assert_eq!(diag["outcome"], "done");
    let card = jobs.iter().find(|j| j["what"] == "test card").expect("interrupted print journaled");
    assert_eq!(
        (&card["outcome"], &card["may_have_acted"]),
        (&Value::from("interrupted"), &Value::from(true))
    );
}

/// Every technician test job runs to the end on the simulated devices (instant timing) and
/// reports what it did; each is a `device.job` record with its id.
#[test]
fn every_test_job_runs_and_is_journaled() {
    let mut van = start_with_scenario(Some((
        "[timing]\nscale = 0\n[sticker]\nrfid = true\n",
        "[devices.sticker.options]\nrfid = true\n",
    )));
    van.wait_devices("all connected", all_connected);
    let mut ids = Vec::new();
    for (device, says) in [
        ("payment", "nothing was charged"),
        ("card", "printed a test card: panels"),
        ("sticker", "printed a test label with an RFID write"),
        ("rfid", "encoded a test tag: TID"),
    ] {
        let out = van.vanctl(&["devices", "test", device, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(out.status.success(), "{device}: {v} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(v["ok"], true, "{device}: {v}");
        assert!(v["lines"].to_string().contains(says), "{device}: {v}");
        ids.push((device, v["job"].as_str().unwrap().to_owned()));
    }
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(van.vand.id() as i32, libc::SIGTERM) };
    assert!(van.vand.wait().unwrap().success());
    let jobs: Vec<Value> =
        van.records().into_iter().filter(|(k, _)| k == "device.job").map(|(_, p)| p).collect();
    for (device, id) in ids {
        let rec = jobs.iter().find(|j| j["device"] == device && j["what"] != "self-test");
        let rec = rec.unwrap_or_else(|| panic!("{device}: no device.job record in {jobs:?}"));
        assert_eq!(rec["outcome"], "done", "{rec}");
        assert_eq!(format!("job-{:x}", rec["job"].as_u64().unwrap()), id);
    }
}

/// Under the production configuration a test job asks first (it uses real stock); `--yes` skips
/// the question. Without a running vand nothing is opened: test jobs are journaled by the daemon.
#[test]
fn production_test_jobs_ask_for_confirmation() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vand.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"production\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{}\"\n[gpio]\nbackend = \"none\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], answer: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .args(["--config", config.to_str().unwrap(), "devices", "test", "card"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, err) = run(&[], "n\n");
    assert!(!ok && err.contains("Continue? [y/N]") && err.contains("not confirmed"), "{err}");
    let (ok, err) = run(&[], "y\n");
    assert!(!ok && err.contains("vand is not running"), "{err}");
    let (ok, err) = run(&["--yes"], "");
    assert!(!ok && !err.contains("Continue?") && err.contains("vand is not running"), "{err}");
}
