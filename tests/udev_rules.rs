//! The udev rules as the outside world knows the devices: every USB vendor and product id in
//! `hw/udev/99-mtu-van.rules` must be the one the usb.ids database (Debian package usb.ids) gives
//! that vendor and product; every name the rules make is one `config/vand.toml` opens; ports are
//! for the daemon's user alone; no placeholder is left.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const USB_IDS: &str = "/usr/share/misc/usb.ids";

/// usb.ids: vendor id → (vendor name, product id → product name).
fn usb_ids() -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let bytes = std::fs::read(USB_IDS).unwrap_or_else(|e| {
        panic!("{USB_IDS}: {e}: run tools/test, which installs the Debian package usb.ids")
    });
    let text = String::from_utf8_lossy(&bytes);
    let mut out: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    let mut vendor: Option<String> = None;
    for line in text.lines() {
        // The device classes and other tables follow the vendor list.
        if line.starts_with("C ") {
            break;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if rest.starts_with('\t') {
                continue; // interfaces
            }
            if let (Some(v), Some((id, name))) = (&vendor, rest.split_once("  ")) {
                out.get_mut(v).unwrap().1.insert(id.to_owned(), name.to_owned());
            }
        } else if let Some((id, name)) = line.split_once("  ") {
            out.insert(id.to_owned(), (name.to_owned(), BTreeMap::new()));
            vendor = Some(id.to_owned());
        }
    }
    out
}

/// The active rules as key → value lists (`ATTRS{idVendor}` → `0403`, `SYMLINK+` → `van/rfid`).
fn rules() -> Vec<(usize, BTreeMap<String, String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hw/udev/99-mtu-van.rules");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut map = BTreeMap::new();
        for part in line.split(", ") {
            let (key, value) = ["==", "+=", "="]
                .iter()
                .find_map(|op| {
                    part.split_once(op)
                        .map(|(k, v)| (format!("{k}{}", if *op == "+=" { "+" } else { "" }), v))
                })
                .unwrap_or_else(|| panic!("line {}: cannot read {part:?}", i + 1));
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
            let value = value.unwrap_or_else(|| panic!("line {}: {part:?} is not quoted", i + 1));
            map.insert(key, value.to_owned());
        }
        out.push((i + 1, map));
    }
    out
}

#[test]
fn every_usb_id_is_the_one_usb_ids_gives() {
    let db = usb_ids();
    assert!(db.len() > 1000, "{USB_IDS} looks truncated");
    let mut checked = 0;
    for (line, rule) in rules() {
        let Some(vendor) = rule.get("ATTRS{idVendor}") else { continue };
        let (vendor_name, products) =
            db.get(vendor).unwrap_or_else(|| panic!("line {line}: vendor {vendor} is not in usb.ids"));
        if let Some(product) = rule.get("ATTRS{idProduct}") {
            let name = products.get(product).unwrap_or_else(|| {
                panic!("line {line}: product {vendor}:{product} is not in usb.ids ({vendor_name})")
            });
            checked += 1;
            eprintln!("line {line}: {vendor}:{product} = {vendor_name} / {name}");
        } else {
            eprintln!("line {line}: {vendor} = {vendor_name} (any product)");
        }
    }
    assert!(checked >= 8, "only {checked} vendor:product pairs checked");
}

#[test]
fn vendors_are_the_device_makers_named_in_the_rules() {
    let db = usb_ids();
    let name = |id: &str| db[id].0.to_lowercase();
    assert!(name("0f49").contains("evolis"));
    assert!(name("0a5f").contains("zebra"));
    assert!(name("11ca").contains("verifone"));
    assert!(name("0403").contains("future technology"));
}

#[test]
fn names_are_those_the_config_opens_and_ports_are_the_daemons_alone() {
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vand.toml")).unwrap();
    let mut made = BTreeSet::new();
    for (line, rule) in rules() {
        let text = format!("{rule:?}");
        assert!(
            !text.contains("VVVV") && !text.contains("PPPP") && !text.contains("SERIAL-"),
            "line {line}: placeholder"
        );
        if let Some(link) = rule.get("SYMLINK+") {
            assert!(link.starts_with("van/"), "line {line}: {link}");
            made.insert(format!("/dev/{link}"));
            assert_eq!(rule.get("OWNER").map(String::as_str), Some("mtu"), "line {line}");
            assert_eq!(
                rule.get("MODE").map(String::as_str),
                Some("0600"),
                "line {line}: ports are for vand alone"
            );
        } else {
            assert_eq!(rule.get("SUBSYSTEM").map(String::as_str), Some("gpio"), "line {line}: no symlink");
            assert_eq!(rule.get("GROUP").map(String::as_str), Some("gpio"), "line {line}");
        }
    }
    let opened: BTreeSet<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|p| p.starts_with("/dev/van/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(made, opened, "udev makes {made:?}; config/vand.toml opens {opened:?}");
}
