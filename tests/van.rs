//! The README's run command: `vand` with the embedded simulation config brings the whole van up
//! (journal, simulated devices on PTYs, device manager, control socket) and stops cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mtu::journal::{JournalReader, kinds};

/// Kills the daemon if the test fails before stopping it, so no vand outlives a failed run.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill with the pid of our own child.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn embedded_simulation_brings_the_whole_van_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut vand = Command::new(env!("CARGO_BIN_EXE_vand"))
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(vand.stderr.take().unwrap()).lines();
    let _reaper = KillOnPanic(vand.id());
    let started = Instant::now();
    let mut start_log = Vec::new();
    loop {
        let line = lines.next().expect("vand exited before ready").unwrap();
        start_log.push(line.clone());
        if line.contains("ready") && line.contains("MTU-SIM-0001") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "vand not ready");
    }
    // Into a pipe: plain text without colour codes, and a healthy start warns about nothing.
    let start_log = start_log.join("\n");
    assert!(!start_log.contains('\x1b'), "colour codes in a log written to a pipe:\n{start_log}");
    assert!(
        !start_log.contains("WARN") && !start_log.contains("ERROR"),
        "a healthy start warned:\n{start_log}"
    );
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    // Every device reaches `connected` through the real drivers and the simulators' PTYs.
    let devices = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .current_dir(dir.path())
            .args(["devices", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let all = ["payment", "card", "sticker", "rfid"].iter().all(|d| v[d]["state"] == "connected");
        if all {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "devices never all connected: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(dir.path().join("var/dev/payment").exists(), "{devices}");
    let out = Command::new(env!("CARGO_BIN_EXE_vanctl"))
        .current_dir(dir.path())
        .args(["devices", "self-test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(vand.id() as i32, libc::SIGTERM) };
    assert!(vand.wait().unwrap().success());
    let journal = JournalReader::open(&dir.path().join("var/journal.db")).unwrap();
    journal.verify_all(None).unwrap();
    assert_eq!(journal.tail().unwrap().unwrap().kind, kinds::DAEMON_STOP);
    assert!(!dir.path().join("var/dev/payment").exists(), "simulators remove their names on stop");
}

#[test]
fn a_fatal_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    // state_dir is a file: the daemon cannot start.
    std::fs::write(dir.path().join("state"), b"not a folder").unwrap();
    let cfg = dir.path().join("vand.toml");
    std::fs::write(&cfg, "mode = \"simulation\"\n[van]\nid = \"MTU-1\"\n[paths]\nstate_dir = \"state\"\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vand"))
        .current_dir(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr.lines().filter(|l| l.contains("ERROR") || l.starts_with("error:")).count();
    assert_eq!(errors, 1, "the fatal error should appear exactly once:\n{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr}");
}
