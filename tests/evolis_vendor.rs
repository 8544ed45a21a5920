//! The card stream against Evolis's own library.
//!
//! Each test writes the card's images to files, has the vendor library (`evolis-sdk`, libevolis,
//! virtual printer `model://Evolis Primacy 2`) write its job for them with
//! `tests/vendor/evolis_stream.py`, and compares it with our driver's job for the same card,
//! command by command and panel by panel. The vendor's file is then fed to the card simulator,
//! which must accept every command and decode the same images.
//!
//! Deliberate differences, removed from the vendor's side before comparing (see
//! `src/devices/evolis/job.rs`): `Psync;…` commands and the `<…>` tags between commands (job
//! structure for the vendor's spooler), `Psmgr;1` and `Ppws;<Unix time>` (the library's session
//! management). Everything else must be equal byte for byte.
//!
//! The interpreter is `$MTU_TEST_PYTHON`, else `python3`; `tools/test` installs `evolis-sdk`
//! (tools/test-requirements.txt) into its venv and sets it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mtu::devices::card::{Bitmap1, CardJob, CardSide, ColourPlanes, Plane8};
use mtu::devices::evolis::job::{JobSettings, Ribbon, build_job};
use mtu::sim::card::{EvolisSim, SimPanel};
use mtu::sim::{SimDevice, SimOut};

const K_BYTES: usize = 648 * 1016 / 8;
const C_BYTES: usize = 648 * 1016;

/// One unit of an Evolis stream, parsed here independently of the driver and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    /// A text command without ESC and CR.
    Cmd(String),
    /// A panel download: header fields up to the data (`Db;k;2` or `Dbc;k;2;1234`) and data.
    Panel(String, Vec<u8>),
    /// Bytes between commands.
    Text(String),
}

fn parse_stream(bytes: &[u8]) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1B {
            let end = bytes[i..].iter().position(|&b| b == 0x1B).map_or(bytes.len(), |n| i + n);
            out.push(Unit::Text(String::from_utf8_lossy(&bytes[i..end]).into_owned()));
            i = end;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        let mut panel = None;
        while j < bytes.len() && bytes[j] != 0x0D {
            if bytes[j] == b';' {
                let head = std::str::from_utf8(&bytes[start..j]).unwrap_or("");
                let f: Vec<&str> = head.split(';').collect();
                let len = match (f[0], f.len()) {
                    ("Db", 3) => Some(if f[2] == "2" { K_BYTES } else { C_BYTES }),
                    ("Dbc", 4) => f[3].parse().ok(),
                    _ => None,
                };
                if let Some(len) = len {
                    panel = Some((head.to_string(), j + 1, len));
                    break;
                }
            }
            j += 1;
        }
        match panel {
            Some((head, data_at, len)) => {
                assert_eq!(bytes.get(data_at + len), Some(&0x0D), "{head}: no CR after {len} data bytes");
                out.push(Unit::Panel(head, bytes[data_at..data_at + len].to_vec()));
                i = data_at + len + 1;
            }
            None => {
                out.push(Unit::Cmd(String::from_utf8_lossy(&bytes[start..j]).into_owned()));
                i = j + 1;
            }
        }
    }
    out
}

/// The vendor's units minus the deliberate differences listed in the module documentation.
fn comparable(units: Vec<Unit>) -> Vec<Unit> {
    units
        .into_iter()
        .filter(|u| match u {
            Unit::Text(t) => {
                assert!(t.starts_with('<') && t.ends_with('>'), "vendor text between commands: {t:?}");
                false
            }
            Unit::Cmd(c) => !(c.starts_with("Psync;") || c == "Psmgr;1" || c.starts_with("Ppws;")),
            Unit::Panel(..) => true,
        })
        .collect()
}

/// Decodes `Dbc` compressed K/O data (guide page 5) back to the 82,296-byte `Db` form.
fn undo_dbc(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(K_BYTES);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            0 => out.extend([0u8; 81]),
            255 => out.extend([0xFFu8; 81]),
            n => {
                let n = n as usize;
                out.extend_from_slice(&data[i + 1..i + 1 + n]);
                out.extend(std::iter::repeat_n(0u8, 81 - n));
                i += n;
            }
        }
        i += 1;
    }
    out
}

fn python() -> String {
    std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// What the vendor library is given for one side.
struct VendorSide<'a> {
    k: Option<&'a Bitmap1>,
    ymc: Option<&'a ColourPlanes>,
    overlay: bool,
}

fn vendor_side(s: &CardSide) -> VendorSide<'_> {
    VendorSide { k: s.k.as_ref(), ymc: s.ymc.as_ref(), overlay: s.overlay }
}

/// Runs the vendor library on the card's images; returns its job file.
fn vendor_stream(ribbon: &str, card: &CardJob) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let side_of = |s: &CardSide| s.k.as_ref().map(|k| (k.width, k.height)).unwrap_or((648, 1016));
    let (w, h) = side_of(&card.front);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vendor/evolis_stream.py");
    let out = dir.path().join("job.prn");
    let mut cmd = Command::new(python());
    cmd.arg(&script).args(["--ribbon", ribbon, "--width", &w.to_string(), "--height", &h.to_string()]);
    cmd.arg("--out").arg(&out);
    let sides = [("front", Some(vendor_side(&card.front))), ("back", card.back.as_ref().map(vendor_side))];
    for (name, side) in sides {
        let Some(side) = side else { continue };
        if let Some(k) = side.k {
            let path = dir.path().join(format!("{name}-k.raw"));
            let raw: Vec<u8> =
                (0..k.height).flat_map(|y| (0..k.width).map(move |x| u8::from(k.get(x, y)))).collect();
            std::fs::write(&path, raw).unwrap();
            cmd.arg(format!("--{name}-k")).arg(&path);
        }
        if let Some(p) = side.ymc {
            let path = dir.path().join(format!("{name}-ymc.raw"));
            let raw: Vec<u8> =
                (0..p.y.data.len()).flat_map(|i| [p.y.data[i], p.m.data[i], p.c.data[i]]).collect();
            std::fs::write(&path, raw).unwrap();
            cmd.arg(format!("--{name}-ymc")).arg(&path);
        }
        if side.overlay {
            cmd.arg(format!("--{name}-overlay"));
        }
    }
    let result = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): run tools/test, which installs evolis-sdk into its Python venv",
            python()
        )
    });
    assert!(
        result.status.success(),
        "the vendor library failed ({}): {}\n(run tools/test, which installs evolis-sdk)",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn our_stream(settings: &JobSettings, card: &CardJob) -> Vec<u8> {
    build_job(settings, card).expect("job").into_iter().flat_map(|c| c.bytes).collect()
}

/// Compares two unit lists, describing the first difference precisely.
fn assert_same(ours: &[Unit], vendor: &[Unit]) {
    let name = |u: &Unit| match u {
        Unit::Cmd(c) => c.clone(),
        Unit::Panel(h, d) => format!("{h}; + {} bytes", d.len()),
        Unit::Text(t) => format!("text {t:?}"),
    };
    for (i, (a, b)) in ours.iter().zip(vendor.iter()).enumerate() {
        if let (Unit::Panel(ha, da), Unit::Panel(hb, db)) = (a, b) {
            assert_eq!(ha, hb, "unit {i}: panel header");
            assert_eq!(da.len(), db.len(), "unit {i} {ha}: data length");
            if let Some(at) = da.iter().zip(db.iter()).position(|(x, y)| x != y) {
                let per_line = if ha.ends_with(";2") { 81 } else { 648 };
                panic!(
                    "unit {i} {ha}: first difference at byte {at} (line {}, byte {} of the line): ours {:#04x}, vendor {:#04x}",
                    at / per_line,
                    at % per_line,
                    da[at],
                    db[at]
                );
            }
        } else {
            assert_eq!(name(a), name(b), "unit {i}");
        }
    }
    let all = |u: &[Unit]| u.iter().map(name).collect::<Vec<_>>();
    assert_eq!(all(ours), all(vendor), "command lists differ in length");
}

// ---- test images -------------------------------------------------------------------------

/// Text-like blocks, a frame, a diagonal and a few single pixels near the corners.
fn k_image(w: u32, h: u32, seed: u32) -> Bitmap1 {
    let mut b = Bitmap1::blank(w, h);
    for x in 0..w {
        b.set(x, 0, true);
        b.set(x, h - 1, true);
    }
    for y in 0..h {
        b.set(0, y, true);
        b.set(w - 1, y, true);
        b.set(y * (w - 1) / (h - 1), y, true);
    }
    for y in (60..h - 60).step_by(37) {
        for dy in 0..14 {
            for x in (30..w - 30).filter(|x| (x / 5 + y / 37 + seed) % 3 != 0) {
                b.set(x, y + dy, true);
            }
        }
    }
    for (x, y) in [(2, 2), (w - 3, 2), (2, h - 3), (w - 3, h - 3), (7 + seed, 11)] {
        b.set(x, y, true);
    }
    b
}

/// Text-like blocks only (no frame), so `Dbc` is shorter than `Db`.
fn sparse_k(w: u32, h: u32) -> Bitmap1 {
    let mut b = Bitmap1::blank(w, h);
    for y in (100..h - 200).step_by(40) {
        for dy in 0..12 {
            for x in (40..w / 2).filter(|x| (x / 6 + y / 40) % 3 != 0) {
                b.set(x, y + dy, true);
            }
        }
    }
    b
}

/// Ink gradients with an unpainted band, so some pixels carry no colour at all.
fn plane(w: u32, h: u32, seed: u32) -> Plane8 {
    let mut p = Plane8::filled(w, h, 0);
    for y in 0..h {
        for x in 0..w {
            if x < w / 5 {
                continue;
            }
            p.data[(y * w + x) as usize] = ((x * 3 + y * 5 + seed * 41) % 256) as u8;
        }
    }
    p
}

/// Colour planes; none under the K pixels, as a renderer would lay them out.
fn colours(k: &Bitmap1) -> ColourPlanes {
    let (w, h) = (k.width, k.height);
    let mut planes = ColourPlanes { y: plane(w, h, 0), m: plane(w, h, 1), c: plane(w, h, 2) };
    for y in 0..h {
        for x in 0..w {
            if k.get(x, y) {
                let i = (y * w + x) as usize;
                planes.y.data[i] = 0;
                planes.m.data[i] = 0;
                planes.c.data[i] = 0;
            }
        }
    }
    planes
}

/// Checks that the simulator prints the vendor's job and decodes the card's images.
fn simulator_prints(vendor: &[u8], card: &CardJob) {
    let mut sim = EvolisSim::from_options(&toml::from_str("timing_scale = 0").unwrap()).unwrap();
    let mut replies = Vec::new();
    for chunk in vendor.chunks(65_536) {
        for o in sim.receive(chunk, Instant::now()) {
            if let SimOut::Send(b) = o {
                replies.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
    let commands = parse_stream(vendor).iter().filter(|u| !matches!(u, Unit::Text(_))).count();
    assert_eq!(replies, vec!["OK\r".to_string(); commands], "every vendor command answered OK");
    let printed = &sim.printed()[0];
    let check = |panels: &[SimPanel], side: &CardSide, what: &str| {
        let landscape = side.k.as_ref().is_some_and(|k| k.width == 1016);
        let image = |p: &SimPanel| if landscape { p.landscape() } else { p.portrait() };
        let find = |c: char| panels.iter().find(|p| p.panel == c);
        if let Some(k) = &side.k {
            let want: Vec<u8> =
                (0..k.height).flat_map(|y| (0..k.width).map(move |x| u8::from(k.get(x, y)))).collect();
            assert_eq!(image(find('k').expect("k panel")), want, "{what} k");
        }
        if let Some(ymc) = &side.ymc {
            for (c, p) in [('y', &ymc.y), ('m', &ymc.m), ('c', &ymc.c)] {
                match find(c) {
                    Some(panel) => assert_eq!(image(panel), p.data, "{what} {c}"),
                    None => assert!(p.data.iter().all(|&v| v == 0), "{what} {c}: inked plane not printed"),
                }
            }
        }
        assert_eq!(find('o').is_some_and(|o| o.inked() == 648 * 1016), side.overlay, "{what} overlay");
    };
    check(&printed.front, &card.front, "front");
    if let Some(back) = &card.back {
        check(&printed.back, back, "back");
    }
}

fn compare(ribbon: Ribbon, vendor_ribbon: &str, card: &CardJob) -> Vec<u8> {
    let vendor = vendor_stream(vendor_ribbon, card);
    let settings = JobSettings { ribbon, ..JobSettings::default() };
    let ours = parse_stream(&our_stream(&settings, card));
    assert_same(&ours, &comparable(parse_stream(&vendor)));
    vendor
}

#[test]
fn k_only_card_ko_ribbon_portrait_matches_the_vendor() {
    let card = CardJob {
        front: CardSide { k: Some(k_image(648, 1016, 0)), ymc: None, overlay: true },
        back: Some(CardSide { k: Some(k_image(648, 1016, 1)), ymc: None, overlay: true }),
    };
    let vendor = compare(Ribbon::Ko, "KO", &card);
    simulator_prints(&vendor, &card);
}

#[test]
fn k_only_card_black_ribbon_landscape_matches_the_vendor() {
    let card = CardJob {
        front: CardSide { k: Some(k_image(1016, 648, 2)), ymc: None, overlay: false },
        back: Some(CardSide { k: Some(k_image(1016, 648, 3)), ymc: None, overlay: false }),
    };
    let vendor = compare(Ribbon::K, "KBLACK", &card);
    simulator_prints(&vendor, &card);
}

#[test]
fn colour_card_ymcko_landscape_matches_the_vendor() {
    let card = CardJob {
        front: CardSide {
            k: Some(k_image(1016, 648, 4)),
            ymc: Some(colours(&k_image(1016, 648, 4))),
            overlay: true,
        },
        back: Some(CardSide { k: Some(k_image(1016, 648, 5)), ymc: None, overlay: false }),
    };
    let vendor = compare(Ribbon::Ymcko, "YMCKO", &card);
    simulator_prints(&vendor, &card);
}

#[test]
fn colour_both_sides_portrait_with_a_blank_plane_matches_the_vendor() {
    let mut back = colours(&k_image(648, 1016, 7));
    back.m = Plane8::filled(648, 1016, 0);
    let card = CardJob {
        front: CardSide {
            k: Some(k_image(648, 1016, 6)),
            ymc: Some(colours(&k_image(648, 1016, 6))),
            overlay: true,
        },
        back: Some(CardSide { k: Some(k_image(648, 1016, 7)), ymc: Some(back), overlay: true }),
    };
    let vendor = compare(Ribbon::Ymcko, "YMCKO", &card);
    // The vendor sends no panel for the blank magenta plane, and neither do we.
    let heads: Vec<String> = parse_stream(&vendor)
        .into_iter()
        .filter_map(|u| if let Unit::Panel(h, _) = u { Some(h) } else { None })
        .collect();
    assert_eq!(
        heads,
        ["Db;y;256", "Db;m;256", "Db;c;256", "Db;k;2", "Db;o;2", "Db;y;256", "Db;c;256", "Db;k;2", "Db;o;2"]
    );
    simulator_prints(&vendor, &card);
}

/// `Dbc` is our one deliberate panel difference (off by default): the header keeps the
/// vendor's form `Dbc;<panel>;2;<length>;` and the data decodes to the vendor's own `Db` panel.
#[test]
fn compressed_panels_decode_to_the_vendors() {
    let card = CardJob {
        front: CardSide {
            k: Some(sparse_k(1016, 648)),
            ymc: Some(colours(&sparse_k(1016, 648))),
            overlay: true,
        },
        back: Some(CardSide { k: Some(sparse_k(1016, 648)), ymc: None, overlay: true }),
    };
    let vendor = comparable(parse_stream(&vendor_stream("YMCKO", &card)));
    let settings = JobSettings { ribbon: Ribbon::Ymcko, compress: true, ..JobSettings::default() };
    let ours_raw = our_stream(&settings, &card);
    let mut compressed = 0;
    let ours: Vec<Unit> = parse_stream(&ours_raw)
        .into_iter()
        .map(|u| match u {
            Unit::Panel(h, d) if h.starts_with("Dbc;") => {
                let f: Vec<&str> = h.split(';').collect();
                assert_eq!(f.len(), 4, "{h}");
                assert_eq!(f[2], "2", "{h}: the third field is the level count");
                assert_eq!(f[3], d.len().to_string(), "{h}: the fourth field is the data length");
                compressed += 1;
                Unit::Panel(format!("Db;{};2", f[1]), undo_dbc(&d))
            }
            other => other,
        })
        .collect();
    assert_eq!(compressed, 4, "front k, front o, back k, back o");
    assert_same(&ours, &vendor);
    let sent: usize = ours_raw.len();
    let vendor_len: usize = vendor
        .iter()
        .map(|u| match u {
            Unit::Cmd(c) => c.len() + 2,
            Unit::Panel(h, d) => h.len() + 3 + d.len(),
            Unit::Text(_) => 0,
        })
        .sum();
    assert!(sent < vendor_len, "compression saves bytes: {sent} vs {vendor_len}");
}
