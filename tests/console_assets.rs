//! The officer console's embedded files without a browser: the size budget (HTML, CSS, JS and
//! catalogues under 300 KB compressed), and the message catalogue's discipline (Arabic and
//! English hold the same keys, every key the code names exists, no text in the markup or the
//! script).

use std::collections::BTreeMap;
use std::io::Write;

use mtu::console::{ASSETS, INDEX_HTML};

fn catalogue(name: &str) -> BTreeMap<String, String> {
    let a = ASSETS.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{name} is embedded"));
    serde_json::from_slice(a.bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn asset_text(name: &str) -> &'static str {
    std::str::from_utf8(ASSETS.iter().find(|a| a.name == name).unwrap().bytes).unwrap()
}

#[test]
fn the_console_is_under_300_kb_compressed() {
    let mut total = 0;
    let mut gz_total = 0;
    let files = std::iter::once(("index.html", INDEX_HTML))
        .chain(ASSETS.iter().filter(|a| !a.media_type.starts_with("font/")).map(|a| (a.name, a.bytes)));
    for (name, bytes) in files {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).unwrap();
        let n = gz.finish().unwrap().len();
        println!("{name}: {} bytes, {n} gzipped", bytes.len());
        total += bytes.len();
        gz_total += n;
    }
    println!("console: {total} bytes, {gz_total} gzipped (budget 300 KB)");
    assert!(gz_total < 300 * 1024, "the console is {gz_total} bytes compressed, over its 300 KB budget");
}

#[test]
fn arabic_and_english_catalogues_hold_the_same_messages() {
    let ar = catalogue("messages/ar.json");
    let en = catalogue("messages/en.json");
    let only_ar: Vec<_> = ar.keys().filter(|k| !en.contains_key(*k)).collect();
    let only_en: Vec<_> = en.keys().filter(|k| !ar.contains_key(*k)).collect();
    assert!(only_ar.is_empty() && only_en.is_empty(), "only in ar: {only_ar:?}; only in en: {only_en:?}");
    for (k, v) in &ar {
        assert!(!v.trim().is_empty() && !en[k].trim().is_empty(), "{k} is empty");
        // Placeholders agree.
        let ph = |s: &str| {
            s.split('{').skip(1).map(|p| p.split('}').next().unwrap_or("").to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(ph(v), ph(&en[k]), "{k}: placeholders differ");
    }
}

#[test]
fn every_message_the_console_names_is_in_the_catalogue() {
    let en = catalogue("messages/en.json");
    let js = asset_text("app.js");
    let html = std::str::from_utf8(INDEX_HTML).unwrap();
    let mut named = Vec::new();
    // Static keys: t('a.b'), btn('a.b', …), heading('a.b'), field(…, 'a.b'), askReason('a.b', …), chip(…, 'a.b').
    for call in ["t(", "tRaw(", "btn(", "heading(", "askReason(", "tOr("] {
        for (at, _) in js.match_indices(call) {
            // A call of this function, not of one whose name ends the same (`get(`, `split(`).
            if js[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            if let Some(rest) = js[at + call.len()..].strip_prefix('\'') {
                named.push(rest.split('\'').next().unwrap().to_owned());
            }
        }
    }
    for piece in html.split("data-i18n=\"").skip(1) {
        named.push(piece.split('"').next().unwrap().to_owned());
    }
    assert!(named.len() > 50, "found the keys: {named:?}");
    let missing: Vec<_> = named.iter().filter(|k| !k.ends_with('.') && !en.contains_key(*k)).collect();
    assert!(missing.is_empty(), "named but not in the catalogue: {missing:?}");
    // Keys built from API values: every value the API documents has its message.
    for (prefix, values) in [
        (
            "state.",
            &[
                "open",
                "quoted",
                "refused",
                "paying",
                "paid",
                "printing",
                "encoding",
                "labelling",
                "completed",
                "payment_unknown",
                "held",
                "cancelled",
                "voiding",
                "voided",
                "reversed",
            ][..],
        ),
        ("booking.", &["assigned", "arrived", "in_service", "done", "no_show", "cancelled"]),
        (
            "service.",
            &[
                "driving_licence_renewal",
                "driving_licence_replacement",
                "driving_licence_update",
                "vehicle_licence_renewal",
                "vehicle_licence_replacement",
                "e_sticker_issue",
                "e_sticker_replacement",
                "inspection",
                "supplies",
            ],
        ),
        ("step.", &["payment", "card", "tag", "label", "reversal"]),
        ("step_state.", &["pending", "running", "done", "failed", "unknown", "spoiled"]),
        ("device.", &["payment", "card", "sticker", "rfid", "gpio"]),
        ("device_state.", &["absent", "connected", "busy", "fault", "disconnected"]),
        ("payment.outcome.", &["approved", "declined", "aborted", "not_charged", "unknown", "reversed"]),
        ("channel.", &["hotline", "web", "walk_up"]),
    ] {
        for v in values {
            assert!(en.contains_key(&format!("{prefix}{v}")), "no message {prefix}{v}");
        }
    }
}

#[test]
fn no_text_lives_in_the_markup_or_the_script() {
    let html = std::str::from_utf8(INDEX_HTML).unwrap();
    let mut outside = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => outside.push(c),
            _ => {}
        }
    }
    assert!(outside.trim().is_empty(), "text in index.html: {outside:?}");
    assert!(html.contains("<html dir=\"rtl\" lang=\"ar\">"), "Arabic, right to left, by default");
    let js = asset_text("app.js");
    let arabic: Vec<&str> =
        js.lines().filter(|l| l.chars().any(|c| ('\u{0621}'..='\u{064A}').contains(&c))).collect();
    assert!(arabic.is_empty(), "Arabic text in app.js belongs in the catalogue: {arabic:?}");
}

/// The ranges `tools/make-console-font` keeps (its `ranges`): Basic Latin, Latin-1, Arabic,
/// Arabic Supplement, joiners and marks, punctuation, bidi controls, presentation forms.
const UNICODE_RANGES: &[(u32, u32)] = &[
    (0x0020, 0x007E),
    (0x00A0, 0x00FF),
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x200C, 0x200F),
    (0x2010, 0x2027),
    (0x202A, 0x202E),
    (0x2066, 0x2069),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
];

/// The web font read back by fontTools (an outside reader of WOFF2): it is a real WOFF2 with
/// Arabic shaping tables, and its character map covers every character of both catalogues and
/// every Arabic letter and digit an officer may type, as far as Amiri itself has them.
#[test]
fn the_web_font_covers_the_catalogues_and_the_arabic_an_officer_types() {
    let font = ASSETS.iter().find(|a| a.name == "fonts/amiri-console.woff2").expect("the WOFF2 is embedded");
    assert_eq!(&font.bytes[..4], b"wOF2", "not a WOFF2 file");
    let css = asset_text("app.css");
    assert!(css.contains("/console/fonts/amiri-console.woff2"), "app.css does not load the WOFF2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.woff2");
    std::fs::write(&path, font.bytes).unwrap();
    let script = r#"
import sys, json
from fontTools.ttLib import TTFont
f = TTFont(sys.argv[1])
print(json.dumps({"flavor": f.flavor, "tables": sorted(f.keys()), "cmap": sorted(f.getBestCmap().keys())}))
"#;
    let py = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&py).args(["-c", script]).arg(&path).output().unwrap_or_else(|e| {
        panic!("{py}: {e}: run tools/test, which installs fontTools (tools/test-requirements.txt)")
    });
    assert!(
        out.status.success(),
        "fontTools could not read the font (run tools/test, which installs fonttools and brotli): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flavor"], "woff2");
    let tables: Vec<&str> = v["tables"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    for t in ["GSUB", "GPOS", "cmap", "glyf"] {
        assert!(tables.contains(&t), "the subset lost its {t} table: {tables:?}");
    }
    let cmap: std::collections::BTreeSet<u32> =
        v["cmap"].as_array().unwrap().iter().filter_map(|c| c.as_u64()).map(|c| c as u32).collect();
    // Every character of every message, both languages.
    for name in ["messages/ar.json", "messages/en.json"] {
        for (k, text) in catalogue(name) {
            for c in text.chars().filter(|c| !c.is_control() && !matches!(c, '{' | '}')) {
                assert!(
                    cmap.contains(&(c as u32)),
                    "{name} {k}: {c:?} (U+{:04X}) is not in the font",
                    c as u32
                );
            }
        }
    }
    // Every Arabic letter (U+0621–U+064A) and both digit sets, whatever a citizen's name holds.
    for c in (0x0621..=0x064A).chain(0x0660..=0x0669).chain(0x0030..=0x0039) {
        assert!(cmap.contains(&c), "U+{c:04X} is not in the font");
    }
    // Nothing outside the ranges the script keeps.
    for c in &cmap {
        assert!(
            UNICODE_RANGES.iter().any(|(a, b)| (a..=b).contains(&c)),
            "U+{c:04X} is outside the kept ranges"
        );
    }
}
