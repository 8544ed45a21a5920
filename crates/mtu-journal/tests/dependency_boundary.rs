//! The shared journal crate is what HQ and auditors build: it must not pull in the van's storage,
//! clock, device, serial or rendering code. `cargo tree` lists what it would link.

use std::process::Command;

/// Crates that belong to the van, not to the format.
const FORBIDDEN: &[&str] = &[
    "mtu",
    "rusqlite",
    "libsqlite3-sys",
    "rusqlite_migration",
    "printpdf",
    "rppal",
    "serialport",
    "tokio",
    "rustybuzz",
    "tiny-skia",
    "sd-notify",
    "libc",
];

#[test]
fn shared_crate_depends_on_no_van_code() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .args(["--manifest-path", manifest, "-p", "mtu-journal"])
        .output()
        .expect("running cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"ed25519-dalek"), "unexpected cargo tree output:\n{text}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(found.is_empty(), "mtu-journal must not depend on {found:?}; its tree:\n{text}");
}
