//! Driver options are typed and checked with the rest of the configuration: `vand check-config`
//! (the unit's `ExecStartPre`) rejects a typo or a bad value in `[devices.X.options]`, naming the
//! file, the line and the full key.

use std::path::Path;
use std::process::Command;

use mtu::config::{Config, ConfigError};
use mtu::devices::DeviceError;
use mtu::devices::options::{self, DriverOptions};

const BASE: &str = "mode = \"simulation\"\n[van]\nid = \"MTU-1\"\n[paths]\nstate_dir = \"var\"\n";

const RFID: &str = "[devices.rfid]\ndriver = \"mercury\"\npath = \"/dev/van/rfid\"\nbaud = 115200\n";
const PAYMENT: &str = "[devices.payment]\ndriver = \"zvt\"\npath = \"/dev/van/payment\"\nbaud = 9600\n";

/// Parses `text` and returns (line, key, message) of its error.
fn err(text: &str) -> (usize, String, String) {
    match Config::parse(text, "van.toml") {
        Err(ConfigError::Invalid { file, line, key, message, .. }) => {
            assert_eq!(file, "van.toml");
            (line, key, message)
        }
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => panic!("{e}"),
    }
}

/// 1-based line of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines().position(|l| l.trim_start().starts_with(start)).expect(start) + 1
}

#[test]
fn a_misspelt_rfid_option_names_the_full_key_and_its_line() {
    let text = format!(
        "{BASE}{RFID}[devices.rfid.options]\npassword_file = \"/etc/mtu/rfid-tag-secret\"\nregoin = \"eu3\"\n"
    );
    let (line, key, message) = err(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "regoin"), "devices.rfid.options.regoin"), "{message}");
    assert!(message.contains("unknown field") && message.contains("region"), "{message}");
}

#[test]
fn a_five_digit_zvt_password_names_the_key_and_never_the_password() {
    let text = format!("{BASE}{PAYMENT}[devices.payment.options]\ncurrency = true\npassword = \"12345\"\n");
    let (line, key, message) = err(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "password"), "devices.payment.options.password"));
    assert!(message.contains("6 decimal digits"), "{message}");
    assert!(!message.contains("12345"), "the password is a secret: {message}");
    // Not a string: refused without echoing the digits either.
    let text = format!("{BASE}{PAYMENT}options = {{ password = 654321 }}\n");
    let (line, key, message) = err(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "options"), "devices.payment.options.password"));
    assert!(!message.contains("654321"), "{message}");
}

#[test]
fn bad_values_of_every_driver_name_their_key_and_line() {
    let card = "[devices.card]\ndriver = \"evolis\"\npath = \"/dev/van/card\"\nbaud = 115200\n";
    let sticker = "[devices.sticker]\ndriver = \"zpl\"\npath = \"/dev/van/sticker\"\nbaud = 9600\n";
    let rfid_opts = format!("{RFID}[devices.rfid.options]\npassword_file = \"/x\"\n");
    let cases: [(String, &str, &str); 10] = [
        (format!("{PAYMENT}[devices.payment.options]\nt3_ms = 0\n"), "t3_ms", "payment.options.t3_ms"),
        (
            format!("{PAYMENT}[devices.payment.options]\ncurrency = \"yes\"\n"),
            "currency",
            "payment.options.currency",
        ),
        (format!("{card}[devices.card.options]\nribbon = \"rgb\"\n"), "ribbon", "card.options.ribbon"),
        (format!("{card}[devices.card.options]\ncontrast = 21\n"), "contrast", "card.options.contrast"),
        (
            format!("{card}[devices.card.options]\ninsertion = \"auto\"\n"),
            "insertion",
            "card.options.insertion",
        ),
        (format!("{sticker}[devices.sticker.options]\ndpi = 200\n"), "dpi", "sticker.options.dpi"),
        (
            format!("{sticker}[devices.sticker.options]\ngraphics = \"png\"\n"),
            "graphics",
            "sticker.options.graphics",
        ),
        (format!("{rfid_opts}region = \"mars\"\n"), "region", "rfid.options.region"),
        (format!("{rfid_opts}epc_bytes = 11\n"), "epc_bytes", "rfid.options.epc_bytes"),
        (format!("{rfid_opts}read_power_cdbm = 9000\n"), "read_power_cdbm", "rfid.options.read_power_cdbm"),
    ];
    for (devices, at, key) in cases {
        let text = format!("{BASE}{devices}");
        let (line, got, message) = err(&text);
        assert_eq!(got, format!("devices.{key}"), "{text}\n{message}");
        assert_eq!(line, line_of(&text, at), "{got}: {message}");
    }
    // A bank name inside the lock list.
    let text = format!("{BASE}{rfid_opts}lock = [\"epc\", \"everything\"]\n");
    let (line, key, message) = err(&text);
    assert!(key.starts_with("devices.rfid.options.lock"), "{key}");
    assert_eq!(line, line_of(&text, "lock"), "{message}");
    assert!(message.contains("everything"), "{message}");
}

#[test]
fn a_missing_tag_secret_and_a_dpi_mismatch_are_configuration_errors() {
    // In production an enabled encoder needs its tag secret.
    let production = BASE.replace("simulation", "production");
    let (_, key, message) = err(&format!("{production}{RFID}"));
    assert_eq!(key, "devices.rfid.options.password_file", "{message}");
    // A disabled encoder is never opened: its secret is not required.
    let text = format!("{production}{}", RFID.replace("baud", "enabled = false\nbaud"));
    Config::parse(&text, "van.toml").unwrap();
    // In simulation the driver reports it when the port opens.
    Config::parse(&format!("{BASE}{RFID}"), "van.toml").unwrap();
    let missing = mtu::devices::mercury::profile::TagProfile::from_options(&toml::Table::new());
    assert!(
        matches!(&missing, Err(DeviceError::Config { key, .. }) if key == "devices.rfid.options.password_file"),
        "{missing:?}"
    );

    let sticker = "[devices.sticker]\ndriver = \"zpl\"\npath = \"/dev/van/sticker\"\nbaud = 9600\n";
    let text = format!("{BASE}{sticker}[devices.sticker.options]\ndpi = 300\n");
    let (line, key, message) = err(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "dpi"), "devices.sticker.options.dpi"), "{message}");
    assert!(message.contains("documents.sticker_dpi"), "{message}");
    let ok = format!("{text}[documents]\nsticker_dpi = 300\n");
    Config::parse(&ok, "van.toml").unwrap();
}

#[test]
fn check_config_rejects_a_bad_option_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vand.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/vand.toml"))
        .unwrap()
        .replace("password_file = \"/etc/mtu/rfid-tag-secret\"", "password_file = \"/x\"\nregoin = \"eu3\"");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:{}:1: devices.rfid.options.regoin: unknown field",
        file.display(),
        line_of(&text, "regoin")
    );
    assert!(stderr.contains(&want), "{stderr}\nwanted: {want}");

    let text = text
        .replace("regoin = \"eu3\"", "")
        .replace("[devices.payment]\n", "[devices.payment]\noptions = { password = \"12345\" }\n");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!("{}:{}:", file.display(), line_of(&text, "options = { password"));
    assert!(stderr.contains(&want) && stderr.contains("devices.payment.options.password"), "{stderr}");
    assert!(!stderr.contains("12345"), "{stderr}");
}

#[test]
fn every_example_config_passes_check_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        checked += 1;
    }
    assert!(checked >= 2, "config/sim.toml and config/vand.toml at least");
}

#[test]
fn drivers_read_the_same_typed_options_and_name_the_full_key() {
    let table = |s: &str| -> toml::Table { s.parse().unwrap() };
    match mtu::devices::mercury::profile::TagProfile::from_options(&table(
        "password_file = \"/x\"\nregoin = \"eu3\"",
    )) {
        Err(DeviceError::Config { key, .. }) => assert_eq!(key, "devices.rfid.options.regoin"),
        other => panic!("{other:?}"),
    }
    match mtu::devices::mercury::profile::TagProfile::from_options(&table(
        "password_file = \"/x\"\nregion = \"mars\"",
    )) {
        Err(DeviceError::Config { key, .. }) => assert_eq!(key, "devices.rfid.options.region"),
        other => panic!("{other:?}"),
    }
    match mtu::devices::zvt::ZvtOptions::from_table(&table("password = \"12345\"")) {
        Err(DeviceError::Config { key, message, .. }) => {
            assert_eq!(key, "devices.payment.options.password");
            assert!(!message.contains("12345"));
        }
        other => panic!("{other:?}"),
    }
    let p = mtu::devices::mercury::profile::TagProfile::from_options(&table(
        "password_file = \"/x\"\nregion = \"NA\"\nlock = [\"user\", \"user\"]",
    ))
    .unwrap();
    assert_eq!(p.region, mtu::devices::mercury::codec::Region::NA);
    assert_eq!(p.lock.len(), 1);
}

/// The keys a driver's options struct accepts, as its own "unknown field" error lists them.
fn known_keys<T: DriverOptions>() -> Vec<String> {
    let e = options::from_table::<T>(&"zz_not_an_option = 1".parse().unwrap()).unwrap_err();
    let list = e.message.split("expected one of").nth(1).unwrap_or_else(|| panic!("{}", e.message));
    list.split(',').map(|k| k.trim().trim_matches('`').to_owned()).collect()
}

#[test]
fn docs_config_lists_every_option_of_every_driver() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md")).unwrap();
    let section = |heading: &str| -> String {
        let start = docs.find(heading).unwrap_or_else(|| panic!("docs/config.md has no {heading}"));
        let rest = &docs[start + heading.len()..];
        rest[..rest.find("\n#").unwrap_or(rest.len())].to_owned()
    };
    let drivers: [(&str, Vec<String>); 4] = [
        ("### `[devices.payment.options]`", known_keys::<options::ZvtOptions>()),
        ("### `[devices.card.options]`", known_keys::<options::EvolisOptions>()),
        ("### `[devices.sticker.options]`", known_keys::<options::ZplOptions>()),
        ("### `[devices.rfid.options]`", known_keys::<options::MercuryOptions>()),
    ];
    for (heading, keys) in drivers {
        assert!(keys.len() >= 4, "{heading}: {keys:?}");
        let text = section(heading);
        for k in keys {
            assert!(text.contains(&format!("`{k}`")), "docs/config.md {heading} does not list `{k}`");
        }
    }
}
