//! The Mercury e-sticker encoder driver against the simulator over a real pseudo-terminal.

mod mercury_pty;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mercury_pty::{Served, serve};
use mtu::config::{DeviceConfig, Parity, SerialConfig};
use mtu::devices::DeviceError;
use mtu::devices::mercury::{MercuryEncoder, MercuryError, TagProfile, TagSecret};
use mtu::devices::registry::rfid as driver_from_config;
use mtu::devices::rfid::{TagData, TagEncoder};

const SIM_TID: &str = "E28011702000000000000001";

struct Setup {
    _dir: tempfile::TempDir,
    options: toml::Table,
}

/// Driver options with a fresh 0600 secret file.
fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tag-secret");
    std::fs::write(&path, "000102030405060708090a0b0c0d0e0f\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "password_file = {:?}\ntag_op_timeout_ms = 200\ninventory_ms = 50\n{extra}",
        path.to_str().unwrap()
    );
    Setup { _dir: dir, options: text.parse().unwrap() }
}

/// The simulator with the given scenario options and no waits.
fn sim(options: &str) -> Box<dyn mtu::sim::SimDevice> {
    let text = format!("timing_scale = 0\n{options}");
    mtu::sim::rfid::simulator(&text.parse().unwrap()).unwrap()
}

fn encoder(s: &Setup, sim_options: &str) -> (MercuryEncoder, Served) {
    let (link, served) = serve(sim(sim_options));
    let profile = TagProfile::from_options(&s.options).unwrap();
    let secret = TagSecret::load(&profile.password_file).unwrap();
    (MercuryEncoder::new(Box::new(link), profile, secret, Duration::from_millis(500)), served)
}

fn vehicle() -> TagData {
    TagData {
        epc: hex::decode("3034257BF400B7800004CB2F").unwrap(),
        user: b"EG-CAIRO 1234 ABC|2026-11-23|fee 15000".to_vec(),
    }
}

#[test]
fn full_encode_from_bootloader() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    let tag = enc.encode_tag(&vehicle()).unwrap();
    assert_eq!(hex::encode_upper(&tag.tid), SIM_TID);
    // The first frames on the wire are the verified vectors: Boot Firmware, Get Version.
    let sent = served.from_host.lock().unwrap().clone();
    assert_eq!(&sent[..10], &hex::decode("FF00041D0BFF00031D0C").unwrap()[..]);
    let st = served.status();
    assert_eq!(st["program"], "application");
    assert_eq!(st["region"], 8, "EU3 by default");
    assert_eq!(st["protocol"], 5);
    let t = &st["tags"][0];
    assert_eq!(t["epc"], "3034257BF400B7800004CB2F");
    assert_eq!(t["pc"].as_str().unwrap()[..2], *"30", "PC length bits = 6 words");
    let mut user = vehicle().user;
    user.push(0);
    assert!(t["user"].as_str().unwrap().starts_with(&hex::encode_upper(&user)));
    assert_eq!(t["access_password_set"], true);
    assert_eq!(t["kill_password_set"], true);
    for field in ["epc", "user", "access", "kill"] {
        assert_eq!(t["locks"][field], "locked", "{field}");
    }
    // Re-encoding our own locked tag (e.g. after an interrupted job) works with the derived password.
    let mut again = vehicle();
    again.epc[11] = 0x30;
    enc.encode_tag(&again).unwrap();
    assert_eq!(served.status()["tags"][0]["epc"], "3034257BF400B7800004CB30");
}

#[test]
fn through_the_trait_and_config() {
    let s = setup("region = \"in\"\nlock = [\"epc\", \"access\"]\npermalock = true");
    let (link, served) = serve(sim("start = \"app\""));
    let cfg = DeviceConfig {
        driver: "mercury".into(),
        enabled: true,
        serial: SerialConfig {
            path: "/dev/van/rfid".into(),
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            timeout_ms: 500,
        },
        options: s.options.clone(),
        health_poll: None,
    };
    let mut enc: Box<dyn TagEncoder> = driver_from_config(&cfg, Box::new(link)).unwrap();
    enc.init().unwrap();
    let report = enc.self_test().unwrap();
    assert!(report.ok, "{:?}", report.lines);
    assert!(report.lines[1].contains("region in"), "{:?}", report.lines);
    enc.encode(&vehicle()).unwrap();
    let t = &served.status()["tags"][0];
    assert_eq!(t["locks"]["epc"], "permalocked");
    assert_eq!(t["locks"]["access"], "permalocked");
    assert_eq!(t["locks"]["user"], "unlocked");

    // Configuration errors name the key.
    let mut bad = cfg.clone();
    bad.options.insert("epc_bytes".into(), toml::Value::Integer(7));
    let (link, _served) = serve(sim(""));
    match driver_from_config(&bad, Box::new(link)) {
        Err(DeviceError::Config { key, .. }) => assert_eq!(key, "epc_bytes"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted a bad option"),
    }
    let mut bad = cfg.clone();
    bad.driver = "acme".into();
    let (link, _served) = serve(sim(""));
    assert!(
        matches!(driver_from_config(&bad, Box::new(link)), Err(DeviceError::Config { key, .. }) if key == "devices.rfid.driver")
    );
}

#[test]
fn self_test_never_writes() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    let before = served.status()["tags"].clone();
    let report = enc.check().unwrap();
    assert!(!report.ok, "module still in its bootloader");
    assert!(report.lines[1].contains("bootloader"), "{:?}", report.lines);
    enc.start().unwrap();
    let report = enc.check().unwrap();
    assert!(report.ok, "{:?}", report.lines);
    assert!(report.lines[0].contains("M6e Nano"), "{:?}", report.lines);
    assert_eq!(served.status()["tags"], before);
}

#[test]
fn no_tag() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("no_tag");
    assert!(matches!(enc.encode_tag(&vehicle()), Err(MercuryError::NoTag)));
}

#[test]
fn two_tags() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("two_tags");
    assert!(matches!(enc.encode_tag(&vehicle()), Err(MercuryError::MultipleTags { count: 2 })));
    // Nothing was written to the tag.
    assert_eq!(served.status()["tags"][0]["access_password_set"], false);
}

#[test]
fn write_failure() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("write_fail");
    match enc.encode_tag(&vehicle()) {
        Err(MercuryError::WriteFailed { what, status }) => {
            assert_eq!(what, "passwords");
            assert_eq!(status.0, 0x0406);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lock_failure() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("lock_fail");
    assert!(matches!(enc.encode_tag(&vehicle()), Err(MercuryError::LockFailed { .. })));
    assert_eq!(served.status()["tags"][0]["locks"]["epc"], "unlocked");
}

#[test]
fn wrong_password() {
    let s = setup("");
    let sim_options = r#"
        [[tags]]
        tid = "E2801170200000000000BEEF"
        access_password = "12345678"
        kill_password = "87654321"
        locked = ["epc", "user", "access", "kill"]
    "#;
    let (mut enc, served) = encoder(&s, sim_options);
    let err = enc.encode_tag(&vehicle()).unwrap_err();
    assert!(matches!(err, MercuryError::WrongPassword), "{err:?}");
    assert_eq!(served.status()["tags"][0]["epc"], "300000000000000000000000");
    // The device error tells the officer what to do, and carries no password.
    let text = err.into_device_error("/dev/van/rfid").to_string();
    assert!(text.contains("use a blank sticker"), "{text}");
    assert!(!text.contains("12345678"));
}

#[test]
fn wrong_region() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("wrong_region");
    match enc.start() {
        Err(MercuryError::WrongRegion { configured, status }) => {
            assert_eq!(configured, "eu3");
            assert_eq!(status.0, 0x010B);
        }
        other => panic!("{other:?}"),
    }
    let text = enc.encode(&vehicle()).unwrap_err().to_string();
    assert!(text.contains("region"), "{text}");
}

#[test]
fn garbage_on_the_line_is_survived() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    served.fault("garbage");
    let tag = enc.encode_tag(&vehicle()).unwrap();
    assert_eq!(hex::encode_upper(tag.tid), SIM_TID);
    assert_eq!(served.status()["tags"][0]["locks"]["epc"], "locked");
}

#[test]
fn profile_mismatch_is_refused_before_touching_the_tag() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    let mut data = vehicle();
    data.epc.pop();
    assert!(matches!(enc.encode_tag(&data), Err(MercuryError::BadRequest(_))));
    assert_eq!(served.status()["commands"], 0);
}

#[test]
fn void_kills_only_with_the_derived_password() {
    let s = setup("");
    let (mut enc, served) = encoder(&s, "");
    // A blank tag has kill password 0: Gen2 refuses to kill it.
    let tid = hex::decode(SIM_TID).unwrap();
    assert!(matches!(enc.kill_tag(&tid), Err(MercuryError::WrongPassword)));
    enc.encode_tag(&vehicle()).unwrap();
    assert_eq!(served.status()["tags"][0]["kill_password_set"], true);
    enc.kill_tag(&tid).unwrap();
    let st = served.status();
    assert_eq!(st["killed"], 1);
    assert_eq!(st["tags"].as_array().unwrap().len(), 0);
    assert!(matches!(enc.kill_tag(&tid), Err(MercuryError::NoTag)));
}

#[test]
fn permalocked_tag_cannot_be_reencoded() {
    let s = setup("permalock = true");
    let (mut enc, served) = encoder(&s, "");
    enc.encode_tag(&vehicle()).unwrap();
    assert_eq!(served.status()["tags"][0]["locks"]["epc"], "permalocked");
    let mut other = vehicle();
    other.epc[0] = 0x31;
    let err = enc.encode_tag(&other).unwrap_err();
    assert!(matches!(err, MercuryError::PermanentlyLocked), "{err:?}");
    assert_eq!(served.status()["tags"][0]["epc"], "3034257BF400B7800004CB2F");
}

#[test]
fn silent_or_vanished_module_is_a_link_error() {
    let s = setup("");
    let (link, served) = serve(sim(""));
    let profile = TagProfile::from_options(&s.options).unwrap();
    let secret = TagSecret::load(&profile.password_file).unwrap();
    let mut enc = MercuryEncoder::new(Box::new(link), profile, secret, Duration::from_millis(50));
    enc.start().unwrap();
    served.fault("mute");
    match enc.encode_tag(&vehicle()) {
        Err(MercuryError::Link(mtu::devices::LinkError::Timeout { .. })) => {}
        other => panic!("{other:?}"),
    }
    // After a link failure the driver starts the module again before the next job.
    served.sim.lock().unwrap().clear_faults();
    enc.encode_tag(&vehicle()).unwrap();
    let sent = served.from_host.lock().unwrap().clone();
    let boots = sent.windows(5).filter(|w| *w == [0xFF, 0x00, 0x04, 0x1D, 0x0B]).count();
    assert_eq!(boots, 2);
    // The far end goes away: a link error, never a hang.
    drop(served);
    // Through the trait a link failure during an encode is conservatively "may have written":
    // the driver cannot tell from the error alone whether a write command had gone out.
    let err = enc.encode(&vehicle()).unwrap_err();
    assert!(matches!(err.kind(), mtu::devices::Fault::Link(_)), "{err}");
    assert!(err.may_have_acted(), "{err}");
}

#[test]
fn a_corrupted_answer_is_asked_again() {
    let s = setup("");
    let (link, served) = serve(sim(""));
    let profile = TagProfile::from_options(&s.options).unwrap();
    let secret = TagSecret::load(&profile.password_file).unwrap();
    let mut enc = MercuryEncoder::new(Box::new(link), profile, secret, Duration::from_millis(50));
    enc.start().unwrap();
    let trips = enc.wire_stats().round_trips;
    served.fault("corrupt_next");
    enc.encode_tag(&vehicle()).unwrap();
    // 11 exchanges for an encode, plus the repeated inventory.
    assert_eq!(enc.wire_stats().round_trips - trips, 12);
    assert_eq!(served.status()["bad_frames"], 0, "the host never sent a bad frame");
}
