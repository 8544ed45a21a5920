//! The sticker simulator against labels from outside our encoder: examples of the ZPL II guide
//! and of Zebra's RFID user guide (`tests/data/zpl/examples.toml`, each with its source), and
//! labels made by two independent encoders from PyPI (`zpl`, `zplgrf`) whose expected bitmaps
//! come from the same encoders' inputs (`tests/data/zpl/independent_labels.py`). Then the
//! never-success property: a malformed format prints nothing, writes no tag, returns nothing,
//! and is counted and logged.

use std::time::Instant;

use mtu::sim::sticker::{SimOptions, StickerSim};
use mtu::sim::{SimDevice, SimOut};
use proptest::prelude::*;

fn sim() -> StickerSim {
    StickerSim::new(SimOptions {
        dpi: 203,
        rfid: true,
        output_dir: None,
        timing_scale: 0.0,
        silent_faults: true,
    })
}

fn feed(s: &mut StickerSim, bytes: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut out = s.receive(bytes, now);
    out.extend(s.poll(now));
    out.into_iter().filter_map(|o| if let SimOut::Send(b) = o { Some(b) } else { None }).flatten().collect()
}

fn strings(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn guide_examples() {
    let text = std::fs::read_to_string("tests/data/zpl/examples.toml").unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let labels = doc["label"].as_array().unwrap();
    assert!(labels.len() >= 15);
    for e in labels {
        let source = e["source"].as_str().unwrap();
        let bytes = match (e.get("zpl"), e.get("zpl_hex")) {
            (Some(z), _) => z.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(h)) => hex::decode(h.as_str().unwrap()).unwrap(),
            _ => panic!("{source}: no zpl"),
        };
        let mut s = sim();
        let reply = feed(&mut s, &bytes);
        let st = s.status();
        let why = format!("{source}: status {st}");
        let printed = e["printed"].as_integer().unwrap() as usize;
        assert_eq!(s.labels().len(), printed, "{why}");
        let tags = e.get("tags").and_then(|t| t.as_integer()).unwrap_or(0) as usize;
        assert_eq!(st["tags_encoded"].as_array().unwrap().len(), tags, "{why}");
        let want_reply = e.get("reply").and_then(|r| r.as_str()).unwrap_or("");
        assert_eq!(String::from_utf8_lossy(&reply), want_reply, "{why}");
        if printed == 0 {
            assert_eq!(st["rejected_formats"], 1, "{why}");
            let reason = st["last_rejection"].as_str().unwrap();
            assert!(reason.contains(e["refusal"].as_str().unwrap()), "{why}");
            continue;
        }
        assert_eq!(st["rejected_formats"], 0, "{why}");
        let l = &s.labels()[0];
        let texts: Vec<String> = l.texts.iter().map(|t| t.2.clone()).collect();
        assert_eq!(texts, strings(e.get("texts")), "{why}");
        let qr: Vec<String> = l.qr.iter().map(|q| q.data.clone()).collect();
        assert_eq!(qr, strings(e.get("qr")), "{why}");
        let graphics: Vec<String> = l
            .graphics
            .iter()
            .map(|g| format!("{},{},{},{}", g.x, g.y, g.graphic.rows, g.graphic.bytes_per_row))
            .collect();
        assert_eq!(graphics, strings(e.get("graphics")), "{why}");
    }
}

#[test]
fn guide_binary_and_compressed_graphics_decode_to_the_same_bits() {
    // The two graphics entries of examples.toml, checked bit by bit.
    let mut s = sim();
    feed(&mut s, b"^XA^FO0,0^GFA,8,8,2,F,!:FF00^FS^XZ");
    assert_eq!(s.labels()[0].graphics[0].graphic.data, [0xF0, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
    let mut job = b"^XA^FO5,5^GFB,4,4,2,".to_vec();
    job.extend_from_slice(&[b'^', b'~', 0x00, 0xFF]);
    job.extend_from_slice(b"^FS^XZ");
    feed(&mut s, &job);
    assert_eq!(s.labels()[1].graphics[0].graphic.data, [b'^', b'~', 0x00, 0xFF]);
}

#[test]
fn host_status_has_the_guide_shape() {
    // ~HS: three strings, each STX … ETX CR LF; string 1 has 12 fields, string 2 has 11.
    let mut s = sim();
    let reply = feed(&mut s, b"~HS");
    let text = String::from_utf8(reply).unwrap();
    let parts: Vec<&str> = text.split("\x03\r\n").filter(|p| !p.is_empty()).collect();
    assert_eq!(parts.len(), 3, "{text:?}");
    assert!(parts.iter().all(|p| p.starts_with('\x02')));
    assert_eq!(parts[0].split(',').count(), 12);
    assert_eq!(parts[1].split(',').count(), 11);
}

#[test]
fn unknown_control_commands_are_counted_not_acted_on() {
    let mut s = sim();
    let reply = feed(&mut s, b"~ZZ^FO1,1^XA^FO1,1^FDok^FS^XZ");
    assert!(reply.is_empty());
    assert_eq!(s.labels().len(), 1, "the format after them still prints");
    assert_eq!(s.status()["ignored_commands"], 2, "~ZZ and the ^FO outside a format");
}

fn python() -> String {
    std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn labels_from_independent_encoders() {
    let py = python();
    let out = std::process::Command::new(&py)
        .arg("tests/data/zpl/independent_labels.py")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}; run tools/test, which installs zpl and zplgrf"));
    assert!(
        out.status.success(),
        "{py} tests/data/zpl/independent_labels.py failed (run tools/test, which installs the PyPI packages \
         zpl and zplgrf from tools/test-requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let labels: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(labels.len(), 3);
    for e in labels {
        let source = e["source"].as_str().unwrap();
        let mut s = sim();
        feed(&mut s, e["zpl"].as_str().unwrap().as_bytes());
        let why = format!("{source}: {}", s.status());
        assert_eq!(s.labels().len(), 1, "{why}");
        let l = &s.labels()[0];
        if let Some(w) = e.get("width") {
            assert_eq!(
                (u64::from(l.width), u64::from(l.length)),
                (w.as_u64().unwrap(), e["length"].as_u64().unwrap())
            );
        }
        if let Some(t) = e.get("texts") {
            let texts: Vec<&str> = l.texts.iter().map(|t| t.2.as_str()).collect();
            let want: Vec<&str> = t.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(texts, want, "{why}");
        }
        if let Some(q) = e.get("qr") {
            let qr: Vec<&str> = l.qr.iter().map(|q| q.data.as_str()).collect();
            assert_eq!(qr, [q[0].as_str().unwrap()], "{why}");
        }
        if let Some(m) = e.get("expected_matches_image") {
            assert_eq!(m, true, "zplgrf's GRF differs from the image it was made from");
        }
        let g = &e["graphic"];
        assert_eq!(l.graphics.len(), 1, "{why}");
        let got = &l.graphics[0];
        assert_eq!(
            (u64::from(got.x), u64::from(got.y)),
            (g["x"].as_u64().unwrap(), g["y"].as_u64().unwrap())
        );
        assert_eq!(got.graphic.rows as u64, g["rows"].as_u64().unwrap(), "{why}");
        assert_eq!(got.graphic.bytes_per_row as u64, g["bytes_per_row"].as_u64().unwrap(), "{why}");
        assert_eq!(hex::encode_upper(&got.graphic.data), g["hex"].as_str().unwrap(), "{why}: bitmap differs");
    }
}

// ---------------------------------------------------------------- never success

/// Formats the simulator prints (each from the examples above or the guide's command forms).
const VALID: [&str; 4] = [
    "^XA^FO50,50^A0N,50,50^FDHello^FS^XZ",
    "^XA^FO20,20^BQ,2,10^FDQA,0123456789ABCD 2D code^FS^XZ",
    "^XA^RS8^RFW,H,2,12,1^FD112233445566778899AABBCC^FS^RFR,H,0,8,2^FN1^FS^HV1,,TID:^FS^XZ",
    "^XA^FO10,20^GFA,8,8,2,F0F0FFFF0000A5A5^FS^XZ",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// A two-letter command the simulator does not know (most are in no guide; a few, such as
    /// ^BA, are bar codes it does not draw), inserted before ^XZ.
    Unknown(char, char),
    /// A letter where ^FO (or ^HV's field number, ^GF's b) wants a digit.
    LetterForDigit(usize, char),
    /// A hex digit of the tag data or graphic replaced by a character that is neither hex nor
    /// part of the compression scheme.
    BadHex(usize, char),
    /// The last n characters of the ^GFA data dropped.
    CutGraphic(usize),
    /// The QR error-correction letter replaced.
    QrLevel(char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (proptest::char::range('B', 'Z'), proptest::char::range('A', 'Z'))
            .prop_filter("defined", |(a, b)| {
                let code = format!("{a}{b}");
                ![
                    "BC", "BQ", "BY", "B3", "CF", "CI", "FB", "FD", "FH", "FN", "FO", "FR", "FS", "FT", "FW",
                    "FX", "GB", "GC", "GD", "GE", "GF", "HV", "LH", "LL", "LR", "LS", "LT", "MD", "MM", "MN",
                    "MT", "PO", "PQ", "PR", "PW", "RF", "RL", "RS", "XA", "XZ",
                ]
                .contains(&code.as_str())
            })
            .prop_map(|(a, b)| Mutation::Unknown(a, b)),
        (0usize..4, proptest::char::range('G', 'Z')).prop_map(|(i, c)| Mutation::LetterForDigit(i, c)),
        // Not G–Y/g–z either: in ^GFA data those are repeat counts of the compression scheme.
        (
            0usize..16,
            proptest::sample::select(vec!['#', '%', '&', '*', '.', ';', '?', '@', '[', ']', '|', '"'])
        )
            .prop_map(|(i, c)| Mutation::BadHex(i, c)),
        (1usize..16).prop_map(Mutation::CutGraphic),
        proptest::char::range('!', '~')
            .prop_filter("level", |c| !"HQML".contains(*c))
            .prop_map(Mutation::QrLevel),
    ]
}

/// Applies `m` to format `which`; `None` when it does not apply to that format.
fn mutate(which: usize, m: &Mutation) -> Option<String> {
    let f = VALID[which];
    Some(match *m {
        Mutation::Unknown(a, b) => f.replace("^XZ", &format!("^{a}{b}1,2^XZ")),
        Mutation::LetterForDigit(i, c) => {
            let at = f.find("^FO").or_else(|| f.find("^HV"))? + 3 + (i % 2);
            let mut s = f.to_string();
            s.replace_range(at..at + 1, &c.to_string());
            s
        }
        Mutation::BadHex(i, c) => {
            let at = f.find("^FD1122").map(|p| p + 3).or_else(|| f.find(",2,F0").map(|p| p + 3))? + i;
            let mut s = f.to_string();
            s.replace_range(at..at + 1, &c.to_string());
            s
        }
        Mutation::CutGraphic(n) => {
            let end = f.find("^FS^XZ").filter(|_| which == 3)?;
            format!("{}{}", &f[..end - n], &f[end..])
        }
        Mutation::QrLevel(c) => {
            let at = f.find("^FDQA").filter(|_| which == 1)? + 3;
            let mut s = f.to_string();
            s.replace_range(at..at + 1, &c.to_string());
            s
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A malformed format prints nothing, encodes no tag and sends nothing back.
    #[test]
    fn malformed_formats_never_print(which in 0..VALID.len(), m in mutation()) {
        let Some(zpl) = mutate(which, &m) else { return Ok(()) };
        let mut s = sim();
        let reply = feed(&mut s, zpl.as_bytes());
        let st = s.status();
        prop_assert_eq!(s.labels().len(), 0, "{} printed: {}", zpl, st);
        prop_assert!(st["tags_encoded"].as_array().unwrap().is_empty(), "{}", zpl);
        prop_assert!(reply.is_empty(), "{} got {:?}", zpl, String::from_utf8_lossy(&reply));
        prop_assert_eq!(&st["rejected_formats"], 1, "{}", zpl);
    }

    /// Bytes without a command prefix never print, write or answer.
    #[test]
    fn noise_never_prints(noise in proptest::collection::vec(any::<u8>().prop_filter("prefix", |b| *b != b'^' && *b != b'~'), 0..400)) {
        let mut s = sim();
        let reply = feed(&mut s, &noise);
        prop_assert!(reply.is_empty());
        prop_assert_eq!(s.labels().len(), 0);
        prop_assert!(s.status()["tags_encoded"].as_array().unwrap().is_empty());
    }

    /// Each valid format still prints after any split of its bytes (the tokenizer waits).
    #[test]
    fn valid_formats_print_however_split(which in 0..VALID.len(), cut in 0usize..120) {
        let f = VALID[which].as_bytes();
        let cut = cut.min(f.len());
        let mut s = sim();
        feed(&mut s, &f[..cut]);
        feed(&mut s, &f[cut..]);
        prop_assert_eq!(s.labels().len(), 1, "{}", s.status());
    }
}

#[test]
fn refused_format_leaves_a_log_line() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut s = sim();
        feed(&mut s, b"^XA^FO50,50^A0N,50,50^FDHello^FS^QQ1^XZ");
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN") && log.contains("^QQ: unknown command"), "{log}");
}
