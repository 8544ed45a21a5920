//! HQ shares the journal format and nothing of the van: `van-hq` must not depend on `mtu` (the
//! van's devices, documents, daemon). `cargo tree` lists what it would link.

use std::process::Command;

/// The van's package and van-only crates.
const FORBIDDEN: &[&str] = &["mtu", "printpdf", "rppal", "serialport", "rustybuzz", "tiny-skia", "sd-notify"];

#[test]
fn hq_depends_on_no_van_code() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .args(["--manifest-path", manifest, "-p", "van-hq"])
        .output()
        .expect("running cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"mtu-journal"), "unexpected cargo tree output:\n{text}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(found.is_empty(), "van-hq must not depend on {found:?}; its tree:\n{text}");
}
