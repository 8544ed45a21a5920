//! The systemd units as a technician checks them: `systemd-analyze verify` accepts them and
//! `systemd-analyze security --offline=true` rates each at an exposure of 1.5 or less (the
//! hardening target), while vand keeps what it needs to reach its devices.

mod common;

use std::path::{Path, PathBuf};

const MAX_EXPOSURE_TENTHS: u32 = 15;

fn unit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(name)
}

/// The unit's text with `/usr/bin/<bin>` pointing at the binary cargo built, so `verify` finds
/// an executable without an installed package.
fn installed_copy(name: &str, bin: &str, built: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit(name)).unwrap().replace(&format!("/usr/bin/{bin}"), built);
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn exposure_tenths(path: &Path) -> (u32, String) {
    let out = common::tool("systemd-analyze", "systemd")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in systemd-analyze's answer:\n{text}"));
    // "→ Overall exposure level for vand.service: 1.5 OK 🙂"
    let value = line.rsplit(": ").next().unwrap().split_whitespace().next().unwrap();
    let (whole, tenth) = value.split_once('.').unwrap();
    (whole.parse::<u32>().unwrap() * 10 + tenth.parse::<u32>().unwrap(), text)
}

fn check(name: &str, bin: &str, built: &str) {
    let (_dir, path) = installed_copy(name, bin, built);
    let out = common::tool("systemd-analyze", "systemd").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify {name}:\n{stderr}");
    let (tenths, report) = exposure_tenths(&path);
    assert!(
        tenths <= MAX_EXPOSURE_TENTHS,
        "{name}: exposure {}.{} is above 1.5:\n{report}",
        tenths / 10,
        tenths % 10
    );
}

#[test]
fn vand_unit_verifies_and_is_hardened() {
    check("vand.service", "vand", env!("CARGO_BIN_EXE_vand"));
}

#[test]
fn van_hq_unit_verifies_and_is_hardened() {
    // van-hq is another package of the workspace; any executable stands in for `verify`.
    check("van-hq.service", "van-hq", env!("CARGO_BIN_EXE_vanctl"));
}

#[test]
fn vand_keeps_its_devices_network_and_notify_socket() {
    let text = std::fs::read_to_string(unit("vand.service")).unwrap();
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    for needed in [
        "Type=notify",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=char-ttyACM rw",
        "DeviceAllow=char-ttyAMA rw",
        "DeviceAllow=char-gpiochip rw",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "StateDirectory=mtu",
        "ConfigurationDirectory=mtu",
        "Restart=on-failure",
    ] {
        assert!(has(needed), "vand.service lacks {needed:?}");
    }
    let watchdog = text.lines().find_map(|l| l.trim().strip_prefix("WatchdogSec=")).expect("WatchdogSec");
    assert!(watchdog.parse::<u32>().is_ok_and(|s| (10..=120).contains(&s)), "WatchdogSec={watchdog}");
    // PrivateDevices would hide the serial ports and GPIO chips from the daemon.
    assert!(!has("PrivateDevices=yes"));
}
