//! Whole-document tests: golden images with a tolerance, PDF text extraction through ToUnicode,
//! QR round trips through PNG, and `vanctl render` / `verify-qr` end to end.
//!
//! Regenerate the goldens after an intended layout change with `UPDATE_GOLDEN=1 cargo test --test render`
//! and look at every PNG in tests/golden before committing.

mod common;
use common::{pdftotext, run_tool};

use std::collections::BTreeMap;
use std::path::PathBuf;

use mtu::cli::render::{
    RenderArgs, SAMPLE_SEED, VerifyQrArgs, qr_text_from_image, run_render, run_verify_qr,
};
use mtu::config::{Config, EMBEDDED_SIM, EMBEDDED_SIM_NAME};
use mtu::keys::VanKey;
use mtu::render::documents::{self, DocOptions, sample};
use mtu::render::output::{DocKind, PrinterOutput, pdf_of, printer_output, sample_scenes};
use mtu::render::qr::QrPayload;
use mtu::render::raster::{self, CARD_PANEL_HEIGHT, CARD_PANEL_WIDTH};
use mtu::render::{Digits, RenderError};

fn key() -> VanKey {
    VanKey::from_seed(&SAMPLE_SEED)
}

fn scenes(kind: DocKind) -> Vec<mtu::render::scene::Scene> {
    sample_scenes(kind, &key(), &sample::issuer(), DocOptions::default()).unwrap()
}

fn pdf(kind: DocKind, scenes: &[mtu::render::scene::Scene]) -> Vec<u8> {
    let created: jiff::Timestamp = "2026-11-23T12:35:00Z".parse().unwrap();
    pdf_of(kind, scenes, "mtu tests", created).unwrap()
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Share of pixels whose colour differs by more than a quarter of the range in any channel.
fn differing_share(a: &tiny_skia::Pixmap, b: &tiny_skia::Pixmap) -> f64 {
    let differ = a
        .pixels()
        .iter()
        .zip(b.pixels())
        .filter(|(p, q)| {
            let d = |x: u8, y: u8| x.abs_diff(y) > 64;
            d(p.red(), q.red()) || d(p.green(), q.green()) || d(p.blue(), q.blue())
        })
        .count();
    differ as f64 / a.pixels().len() as f64
}

#[test]
fn golden_images_of_every_document() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for kind in DocKind::ALL {
        let s = scenes(kind);
        let png = raster::preview_png(&s[0], kind.preview_dpi(&DocOptions::default())).unwrap();
        let path = golden_dir().join(format!("{}.png", kind.name()));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &png).unwrap();
            continue;
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
        let want = tiny_skia::Pixmap::decode_png(&golden).unwrap();
        let got = tiny_skia::Pixmap::decode_png(&png).unwrap();
        if (want.width(), want.height()) != (got.width(), got.height()) {
            failures.push(format!(
                "{}: size {}×{} vs golden {}×{}",
                kind.name(),
                got.width(),
                got.height(),
                want.width(),
                want.height()
            ));
            continue;
        }
        let share = differing_share(&want, &got);
        // Anti-aliasing noise stays far below this; a moved or missing line does not.
        if share > 0.002 {
            std::fs::write(std::env::temp_dir().join(format!("{}.actual.png", kind.name())), &png).unwrap();
            failures.push(format!("{}: {:.3} % of pixels differ", kind.name(), share * 100.0));
        }
    }
    assert!(failures.is_empty(), "golden mismatch (actual PNGs in the temp dir):\n{}", failures.join("\n"));
}

#[test]
fn golden_comparison_catches_a_changed_name() {
    let mut d = sample::driving_licence(&sample::issuer());
    d.qr = d.qr_payload().sign(&key()).unwrap();
    let a =
        raster::rasterize(&documents::driving_licence_front(&d, DocOptions::default()).unwrap(), 300.0, None)
            .unwrap();
    d.name_ar = "محمود حسن".into();
    let b =
        raster::rasterize(&documents::driving_licence_front(&d, DocOptions::default()).unwrap(), 300.0, None)
            .unwrap();
    assert!(differing_share(&a, &b) > 0.002);
}

#[test]
fn card_panels_have_the_printer_frame() {
    for kind in [DocKind::DrivingLicenceFront, DocKind::DrivingLicenceBack, DocKind::VehicleLicence] {
        let PrinterOutput::Card(p) = printer_output(kind, &scenes(kind), &DocOptions::default()).unwrap()
        else {
            panic!("card expected")
        };
        assert_eq!((p.k.width, p.k.height), (CARD_PANEL_WIDTH, CARD_PANEL_HEIGHT));
        assert_eq!(p.k.data.len(), 81 * 1016);
        for plane in [&p.y, &p.m, &p.c] {
            assert_eq!((plane.width, plane.height), (CARD_PANEL_WIDTH, CARD_PANEL_HEIGHT));
            assert_eq!(plane.data.len(), 648 * 1016);
        }
        // Text and QR are on K; some ink, far from all.
        let black = p.k.black_pixels() as f64 / (648.0 * 1016.0);
        assert!(black > 0.02 && black < 0.5, "{kind:?}: {black}");
        // The header band is on the colour panels (landscape top = portrait left edge, since
        // portrait (x, y) = landscape (1015 − y, x)).
        assert!(p.c.data[500 * 648] > 0, "{kind:?}");
    }
}

#[test]
fn sticker_bitmap_follows_the_configured_dpi() {
    for (dpi, w) in [(203, 480), (300, 709)] {
        let opts = DocOptions { sticker_dpi: dpi, ..DocOptions::default() };
        let s = sample_scenes(DocKind::Sticker, &key(), &sample::issuer(), opts).unwrap();
        let PrinterOutput::Mono(b) = printer_output(DocKind::Sticker, &s, &opts).unwrap() else {
            panic!("mono expected")
        };
        assert_eq!(b.width, w);
        assert_eq!(b.data.len(), b.stride() * b.height as usize);
    }
}

// ---- PDF text extraction through the ToUnicode CMap ----

fn parse_cmap(cmap: &str) -> BTreeMap<u16, String> {
    let mut map = BTreeMap::new();
    let mut in_bfchar = false;
    for line in cmap.lines() {
        if line.ends_with("beginbfchar") {
            in_bfchar = true;
        } else if line.starts_with("endbfchar") {
            in_bfchar = false;
        } else if in_bfchar {
            let parts: Vec<&str> = line.split(['<', '>']).filter(|s| !s.trim().is_empty()).collect();
            if let [code, target] = parts[..] {
                let code = u16::from_str_radix(code, 16).unwrap();
                let units: Vec<u16> = (0..target.len() / 4)
                    .map(|i| u16::from_str_radix(&target[i * 4..i * 4 + 4], 16).unwrap())
                    .collect();
                map.insert(code, String::from_utf16(&units).unwrap());
            }
        }
    }
    map
}

/// Text of each BT…ET block of each page, in content order.
fn extract(pdf: &[u8]) -> Vec<String> {
    let doc = lopdf::Document::load_mem(pdf).unwrap();
    let mut out = Vec::new();
    for (_, page) in doc.get_pages() {
        let fonts = doc.get_page_fonts(page).unwrap();
        let mut maps = BTreeMap::new();
        for (name, font) in fonts {
            let Ok(r) = font.get(b"ToUnicode").and_then(|o| o.as_reference()) else { continue };
            let stream = doc.get_object(r).unwrap().as_stream().unwrap();
            let data = stream.decompressed_content().unwrap_or_else(|_| stream.content.clone());
            maps.insert(name, parse_cmap(&String::from_utf8_lossy(&data)));
        }
        let content = lopdf::content::Content::decode(&doc.get_page_content(page)).unwrap();
        let mut current = None;
        let mut text = String::new();
        // Inside a `/Span << /ActualText … >>`, the span's text replaces its glyphs' text.
        let mut actual: Option<String> = None;
        for op in content.operations {
            match op.operator.as_str() {
                "Tf" => current = op.operands[0].as_name().ok().map(|n| n.to_vec()),
                "BT" => text.clear(),
                "ET" => out.push(std::mem::take(&mut text)),
                "BDC" => {
                    let props = op.operands[1].as_dict().unwrap();
                    let bytes = props.get(b"ActualText").unwrap().as_str().unwrap();
                    let units: Vec<u16> =
                        bytes[2..].chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
                    actual = Some(String::from_utf16(&units).unwrap());
                }
                "EMC" => text.push_str(&actual.take().expect("EMC closes an ActualText span")),
                "Tj" | "TJ" if actual.is_some() => {}
                "Tj" | "TJ" => {
                    let map = current.as_ref().and_then(|c| maps.get(c)).expect("font with ToUnicode");
                    let strings: Vec<&[u8]> = match &op.operands[0] {
                        lopdf::Object::Array(items) => items.iter().filter_map(|o| o.as_str().ok()).collect(),
                        other => vec![other.as_str().unwrap()],
                    };
                    for bytes in strings {
                        for pair in bytes.chunks(2) {
                            let code = u16::from_be_bytes([pair[0], pair[1]]);
                            text.push_str(map.get(&code).map_or("", |s| s.as_str()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn strip_controls(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')).collect()
}

#[test]
fn pdf_text_extracts_in_logical_order() {
    for kind in DocKind::ALL {
        let s = scenes(kind);
        let pdf = pdf(kind, &s);
        let got = extract(&pdf);
        let want: Vec<String> = s.iter().flat_map(|sc| sc.texts.iter().map(|t| strip_controls(t))).collect();
        assert_eq!(got, want, "{}", kind.name());
    }
    let front = extract(&pdf(DocKind::DrivingLicenceFront, &scenes(DocKind::DrivingLicenceFront)));
    for expected in [
        "أحمد محمد عبد الرحمن السيد",
        "Ahmed Mohamed Abdelrahman El-Sayed",
        "رقم الرخصة: 1234-567",
        "درجة الرخصة: خاصة",
    ] {
        assert!(front.iter().any(|l| l == expected), "{expected:?} not in {front:?}");
    }
    let vehicle = extract(&pdf(DocKind::VehicleLicence, &scenes(DocKind::VehicleLicence)));
    assert!(vehicle.iter().any(|l| l == "أ ب ج ١٢٣٤"), "{vehicle:?}");
    let receipt = extract(&pdf(DocKind::ReceiptA4, &scenes(DocKind::ReceiptA4)));
    assert!(receipt.iter().any(|l| l == "تجديد رخصة تسيير (ملاكي)"), "{receipt:?}");
    assert!(receipt.iter().any(|l| l == "835.50 EGP"), "{receipt:?}");
}

#[test]
fn pdf_embeds_a_font_subset() {
    let pdf = pdf(DocKind::ReceiptA4, &scenes(DocKind::ReceiptA4));
    assert!(pdf.len() < 120_000, "{} bytes", pdf.len());
    let doc = lopdf::Document::load_mem(&pdf).unwrap();
    let has_font_file = doc.objects.values().any(|o| o.as_dict().is_ok_and(|d| d.has(b"FontFile2")));
    assert!(has_font_file);
}

#[test]
fn eastern_digits_option() {
    let opts = DocOptions { digits: Digits::Eastern, ..DocOptions::default() };
    let s = sample_scenes(DocKind::ReceiptA6, &key(), &sample::issuer(), opts).unwrap();
    let texts: Vec<String> = s[0].texts.iter().map(|t| strip_controls(t)).collect();
    assert!(texts.iter().any(|t| t == "٨٣٥٫٥٠ EGP"), "{texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("٢٣/١١/٢٠٢٦")), "{texts:?}");
    // Identifiers stay ASCII.
    assert!(texts.iter().any(|t| t == "507803******1234"), "{texts:?}");
}

// ---- bad input ----

#[test]
fn bad_input_is_a_clear_error() {
    let mut d = sample::driving_licence(&sample::issuer());
    d.qr = d.qr_payload().sign(&key()).unwrap();
    d.name_ar = "محمد ☃".into();
    let err = documents::driving_licence_front(&d, DocOptions::default()).unwrap_err();
    assert!(matches!(err, RenderError::MissingGlyph { ch: '☃', .. }), "{err}");
    assert!(err.to_string().contains("name_ar"), "{err}");

    let mut d = sample::driving_licence(&sample::issuer());
    d.qr = d.qr_payload().sign(&key()).unwrap();
    d.name_ar = "عبد الرحمن محمد أحمد السيد إبراهيم عبد العزيز مصطفى الشربيني".into();
    // Long but reasonable: shrinks or wraps and stays inside its box.
    let s = documents::driving_licence_front(&d, DocOptions::default()).unwrap();
    for item in &s.items {
        if let mtu::render::scene::Item::Glyphs { x, line, size_mm, .. } = item {
            assert!(*x >= 0.0 && x + line.width / 1000.0 * size_mm <= s.width + 1e-3);
        }
    }
    d.name_ar = d.name_ar.repeat(5);
    let err = documents::driving_licence_front(&d, DocOptions::default()).unwrap_err();
    assert!(matches!(err, RenderError::TextOverflow { .. }), "{err}");
    assert!(err.to_string().contains("name_ar"), "{err}");

    let err = mtu::render::photo::Photo::decode(b"BM\x00\x00 bitmap").unwrap_err();
    assert!(err.to_string().contains("not a PNG or JPEG"), "{err}");
}

#[test]
fn jpeg_photo_decodes_and_prints() {
    // 24×32 JPEG made with libjpeg-turbo's cjpeg: left half red-ish, right half dark, lower half bluer.
    let bytes = std::fs::read(golden_dir().join("photo-24x32.jpg")).unwrap();
    let photo = mtu::render::photo::Photo::decode(&bytes).unwrap();
    assert_eq!((photo.width, photo.height), (24, 32));
    let px = |x: usize, y: usize| &photo.rgb[(y * 24 + x) * 3..(y * 24 + x) * 3 + 3];
    assert!(px(2, 2)[0] > 170 && px(2, 2)[2] < 150, "{:?}", px(2, 2));
    assert!(px(20, 2)[0] < 60, "{:?}", px(20, 2));
    assert!(px(2, 30)[2] > 190, "{:?}", px(2, 30));
    // A truncated JPEG is an error, not a panic.
    assert!(mtu::render::photo::Photo::decode(&bytes[..bytes.len() / 2]).is_err());

    let mut d = sample::driving_licence(&sample::issuer());
    d.qr = d.qr_payload().sign(&key()).unwrap();
    d.photo = std::sync::Arc::new(photo);
    let s = documents::driving_licence_front(&d, DocOptions::default()).unwrap();
    let panels = raster::card_panels(&s).unwrap();
    // The photo is on the colour panels only: (landscape 100, 200) → portrait (200, 1015 − 100).
    let i = (1015 - 100) * 648 + 200;
    assert!(panels.c.data[i] > 0 || panels.m.data[i] > 0 || panels.y.data[i] > 0);
    assert!(!panels.k.get(200, 1015 - 100));
}

/// Every glyph of every sample document lies on its page (nothing silently off the card).
#[test]
fn nothing_is_drawn_off_the_page() {
    let upem = mtu::render::font::Font::amiri().unwrap().units_per_em();
    for kind in DocKind::ALL {
        for scene in scenes(kind) {
            for item in &scene.items {
                if let mtu::render::scene::Item::Glyphs { x, baseline, size_mm, line, .. } = item {
                    let right = x + line.width / upem * size_mm;
                    assert!(*x >= 0.0 && right <= scene.width + 1e-3, "{}: x {x}..{right}", kind.name());
                    assert!(
                        *baseline > 0.0 && *baseline < scene.height,
                        "{}: baseline {baseline}",
                        kind.name()
                    );
                }
            }
        }
    }
}

#[test]
fn long_shift_report_continues_on_more_pages() {
    let mut r = sample::shift_report(&sample::issuer());
    let row = r.by_service[0].clone();
    r.by_service = vec![row; 80];
    let pages = documents::shift_report(&r, DocOptions::default()).unwrap();
    assert!(pages.len() >= 2, "{} pages", pages.len());
    for p in &pages {
        for item in &p.items {
            if let mtu::render::scene::Item::Glyphs { baseline, .. } = item {
                assert!(*baseline < p.height - 10.0);
            }
        }
    }
    let pdf = pdf(DocKind::ShiftReport, &pages);
    assert_eq!(lopdf::Document::load_mem(&pdf).unwrap().get_pages().len(), pages.len());
}

// ---- QR through the image and the command line ----

#[test]
fn qr_reads_back_from_the_rendered_png_and_verifies() {
    for kind in [DocKind::DrivingLicenceBack, DocKind::VehicleLicence, DocKind::Sticker, DocKind::Receipt80] {
        let s = scenes(kind);
        let png = raster::preview_png(&s[0], kind.preview_dpi(&DocOptions::default())).unwrap();
        let text = qr_text_from_image(&png).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        let (p, sig, body) = QrPayload::parse(&text).unwrap();
        p.verify(&body, &sig, &key().verifying_key()).unwrap();
        assert_eq!(p.van_id, "CAI-07");
        // What the printer gets must scan too: the 1-bit K panel (rotated) or label bitmap.
        let bitmap = match printer_output(kind, &s, &DocOptions::default()).unwrap() {
            PrinterOutput::Card(p) => p.k,
            PrinterOutput::Mono(b) => b,
            PrinterOutput::None => unreachable!("these documents have printer output"),
        };
        let from_printer = qr_text_from_image(&raster::bitmap1_png(&bitmap).unwrap()).unwrap();
        assert_eq!(from_printer, text, "{}", kind.name());
    }
}

fn config() -> Config {
    Config::parse(EMBEDDED_SIM, EMBEDDED_SIM_NAME).unwrap()
}

#[test]
fn vanctl_render_and_verify_qr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let args = RenderArgs {
        document: "all".into(),
        sample: true,
        out: dir.path().to_owned(),
        eastern_digits: false,
    };
    run_render(&args, &cfg).unwrap();
    for kind in DocKind::ALL {
        assert!(dir.path().join(format!("{}.pdf", kind.name())).exists());
    }
    assert!(dir.path().join("driving-licence-front.k.png").exists());
    assert!(dir.path().join("sticker.1bit.png").exists());

    let pk = hex::encode(key().verifying_key().as_bytes());
    let png = dir.path().join("sticker.png");
    let err =
        run_verify_qr(&VerifyQrArgs { payload: None, image: Some(png), public_key: Some(pk.clone()) }, &cfg)
            .unwrap_err();
    assert!(err.to_string().contains("SPECIMEN"), "{err}");
    // A code signed with a van's own key verifies as VALID.
    let van = VanKey::from_seed(&[7; 32]);
    let mut r = sample::receipt(&sample::issuer());
    r.qr = r.qr_payload().sign(&van).unwrap();
    let van_pk = hex::encode(van.verifying_key().as_bytes());
    run_verify_qr(&VerifyQrArgs { payload: Some(r.qr.clone()), image: None, public_key: Some(van_pk) }, &cfg)
        .unwrap();
    let other = hex::encode(VanKey::from_seed(&[9; 32]).verifying_key().as_bytes());
    let png = dir.path().join("sticker.png");
    let err = run_verify_qr(&VerifyQrArgs { payload: None, image: Some(png), public_key: Some(other) }, &cfg)
        .unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    let err = run_verify_qr(
        &VerifyQrArgs { payload: Some("hello".into()), image: None, public_key: Some(pk) },
        &cfg,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("prefix"), "{err:#}");

    let bad = RenderArgs {
        document: "passport".into(),
        sample: true,
        out: dir.path().to_owned(),
        eastern_digits: false,
    };
    assert!(run_render(&bad, &cfg).unwrap_err().to_string().contains("unknown document"));
}

// ---- documents read by outside software (poppler) and by a printer ----

/// An outside tool the tests read documents with; missing means the test fails, naming the package.
/// Renders every sample document with `vanctl render` into a fresh folder.
fn render_all(cfg: &Config) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let args = RenderArgs {
        document: "all".into(),
        sample: true,
        out: dir.path().to_owned(),
        eastern_digits: false,
    };
    run_render(&args, cfg).unwrap();
    dir
}

#[test]
fn poppler_extracts_every_line_as_drawn() {
    let cfg = config();
    let dir = render_all(&cfg);
    for kind in DocKind::ALL {
        let text = pdftotext(&dir.path().join(format!("{}.pdf", kind.name())));
        let bad: Vec<char> = text.chars().filter(|c| c.is_control() && !matches!(c, '\n' | '\x0c')).collect();
        assert!(bad.is_empty(), "{}: control characters {bad:?} in {text:?}", kind.name());
        let lines: Vec<&str> = text.lines().collect();
        for raw in scenes(kind).iter().flat_map(|s| s.texts.clone()) {
            let want = strip_controls(&raw);
            if want.contains("CAI-07") || want.contains("وحدة المرور المتنقلة") {
                continue; // the issuer comes from the configuration in `vanctl render`
            }
            // Lines mixing Arabic with Latin letters or digits are reordered by poppler's own
            // visual-to-logical heuristic (it moves a colon or a parenthesis); single-direction
            // lines must come out exactly.
            let arabic = want.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c));
            let runs = raw.matches('\u{2066}').count();
            if (arabic && want.chars().any(|c| c.is_ascii_alphanumeric())) || runs > 1 {
                continue;
            }
            // poppler also moves punctuation next to an Arabic word (a colon, a comma, a slash)
            // to the other side of the space: words are compared, whole and in order.
            let norm = |s: &str| {
                let words: String = s.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
                words.split_whitespace().collect::<Vec<_>>().join(" ")
            };
            let want = norm(&want);
            // Without Arabic, poppler gives the runs of an RTL line in visual order: compare the
            // runs, not their order.
            let same = |l: &str| {
                let l = norm(l);
                if arabic {
                    return l.contains(want.as_str());
                }
                let mut a: Vec<&str> = l.split(' ').collect();
                let mut b: Vec<&str> = want.split(' ').collect();
                a.sort_unstable();
                b.sort_unstable();
                a == b || l.contains(want.as_str())
            };
            assert!(
                lines.iter().any(|l| same(l)),
                "{}: {want:?} not extracted by pdftotext:\n{text}",
                kind.name()
            );
        }
    }
    let receipt = pdftotext(&dir.path().join("receipt-a4.pdf"));
    assert!(receipt.contains("إيصال دفع إلكتروني"), "{receipt}");
    let report = pdftotext(&dir.path().join("shift-report.pdf"));
    assert!(report.contains("الملصق الإلكتروني"), "{report}");
}

/// Every glyph code shown in a PDF maps to non-empty text in its font's ToUnicode CMap.
#[test]
fn every_glyph_shown_has_a_tounicode_entry() {
    for kind in DocKind::ALL {
        let pdf = pdf(kind, &scenes(kind));
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        for (_, page) in doc.get_pages() {
            let mut maps = BTreeMap::new();
            for (name, font) in doc.get_page_fonts(page).unwrap() {
                let r = font.get(b"ToUnicode").and_then(|o| o.as_reference()).expect("ToUnicode");
                let stream = doc.get_object(r).unwrap().as_stream().unwrap();
                let data = stream.decompressed_content().unwrap_or_else(|_| stream.content.clone());
                maps.insert(name, parse_cmap(&String::from_utf8_lossy(&data)));
            }
            let content = lopdf::content::Content::decode(&doc.get_page_content(page)).unwrap();
            let mut current = None;
            for op in content.operations {
                match op.operator.as_str() {
                    "Tf" => current = op.operands[0].as_name().ok().map(|n| n.to_vec()),
                    "Tj" | "TJ" => {
                        let map = &maps[current.as_ref().unwrap()];
                        let strings: Vec<&[u8]> = match &op.operands[0] {
                            lopdf::Object::Array(items) => {
                                items.iter().filter_map(|o| o.as_str().ok()).collect()
                            }
                            other => vec![other.as_str().unwrap()],
                        };
                        for code in strings.iter().flat_map(|b| b.chunks(2)) {
                            let code = u16::from_be_bytes([code[0], code[1]]);
                            let text = map.get(&code).map(String::as_str).unwrap_or("");
                            assert!(
                                !text.is_empty() && !text.chars().any(char::is_control),
                                "{}: glyph code {code} maps to {text:?}",
                                kind.name()
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn printed_facts_are_the_signed_facts() {
    let cfg = config();
    let dir = render_all(&cfg);
    for kind in [
        DocKind::ReceiptA4,
        DocKind::ReceiptA6,
        DocKind::Receipt80,
        DocKind::DrivingLicenceBack,
        DocKind::VehicleLicence,
        DocKind::Sticker,
    ] {
        let name = kind.name();
        let png = std::fs::read(dir.path().join(format!("{name}.png"))).unwrap();
        let qr = qr_text_from_image(&png).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (p, _, _) = QrPayload::parse(&qr).unwrap();
        let printed = pdftotext(&dir.path().join(format!("{name}.pdf")));
        let printed = if kind == DocKind::DrivingLicenceBack {
            // The licence number and expiry are on the front of the same card.
            printed + &pdftotext(&dir.path().join("driving-licence-front.pdf"))
        } else {
            printed
        };
        let plain: String = printed
            .chars()
            .map(|c| match c {
                '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
                c => c,
            })
            .collect();
        let mut facts = vec![("key field", p.key_field.clone())];
        if let Some(e) = p.expiry {
            facts.push(("expiry", format!("{:02}/{:02}/{}", e.day(), e.month(), e.year())));
        }
        if matches!(kind, DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::Receipt80) {
            facts.push(("van", p.van_id.clone()));
            facts.push(("journal seq", format!("#{}", p.journal_seq)));
            facts.push(("record hash", hex::encode(p.short_hash)));
            assert!(
                p.key_field.starts_with(&cfg.van.id),
                "{name}: receipt number {} is not of van {}",
                p.key_field,
                cfg.van.id
            );
        }
        assert_eq!(p.van_id, cfg.van.id, "{name}");
        for (what, value) in facts {
            assert!(
                plain.contains(&value),
                "{name}: the QR signs {what} {value:?}, the document prints:\n{printed}"
            );
        }
    }
}

#[test]
fn pdf_metadata_is_honest() {
    let cfg = config();
    let dir = render_all(&cfg);
    for kind in DocKind::ALL {
        let pdf = dir.path().join(format!("{}.pdf", kind.name()));
        let info = run_tool("pdfinfo", "poppler-utils", &[pdf.as_os_str()]);
        let field = |k: &str| {
            info.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned())).unwrap_or_default()
        };
        assert!(!field("Producer:").is_empty(), "{}: no Producer\n{info}", kind.name());
        assert!(!field("Creator:").is_empty(), "{}: no Creator\n{info}", kind.name());
        let created = field("CreationDate:");
        assert!(
            !created.is_empty() && !created.contains("1970"),
            "{}: CreationDate {created:?}",
            kind.name()
        );
        assert!(
            !info.contains("PDF/X") && !info.contains("PDF subtype"),
            "{}: claims a PDF subtype\n{info}",
            kind.name()
        );
        let fonts = run_tool("pdffonts", "poppler-utils", &[pdf.as_os_str()]);
        for line in fonts.lines().skip(2) {
            let name = line.split_whitespace().next().unwrap();
            let (tag, rest) = name.split_once('+').unwrap_or(("", name));
            assert!(
                tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_uppercase()) && rest.starts_with("Amiri"),
                "{}: font {name:?} is not named as a subset (ABCDEF+Amiri…)\n{fonts}",
                kind.name()
            );
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols[cols.len() - 4], "yes", "{}: subset column\n{fonts}", kind.name());
        }
    }
}

/// The QR side in an image (outer corners of its finder patterns), pixels.
fn qr_side_px(png: &[u8]) -> f32 {
    let pm = tiny_skia::Pixmap::decode_png(png).unwrap();
    let w = pm.width() as usize;
    let px = pm.pixels();
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, pm.height() as usize, |x, y| {
        let p = px[y * w + x];
        ((u32::from(p.red()) + u32::from(p.green()) + u32::from(p.blue())) / 3) as u8
    });
    let grids = img.detect_grids();
    let b = grids.first().expect("a QR code in the image").bounds;
    (((b[1].x - b[0].x) as f32).powi(2) + ((b[1].y - b[0].y) as f32).powi(2)).sqrt()
}

fn config_with(replace: &[(&str, &str)]) -> Config {
    let mut text = EMBEDDED_SIM.to_owned();
    for (from, to) in replace {
        assert!(text.contains(from), "{from:?} not in the embedded config");
        text = text.replace(from, to);
    }
    Config::parse(&text, EMBEDDED_SIM_NAME).unwrap()
}

/// The printer bitmap's QR is exactly as large as the PDF's (poppler rasterises the PDF at the
/// printer's resolution; both are measured the same way).
#[test]
fn printed_qr_has_the_size_of_the_pdf_qr() {
    for (dpi, docs) in [
        (203, vec![("sticker", "sticker.1bit.png"), ("receipt-80mm", "receipt-80mm.1bit.png")]),
        (300, vec![("sticker", "sticker.1bit.png"), ("vehicle-licence", "vehicle-licence.k.png")]),
    ] {
        let cfg = config_with(&[
            ("sticker_dpi = 203", &format!("sticker_dpi = {dpi}")),
            (
                "path = \"var/dev/sticker\"\n",
                &format!("path = \"var/dev/sticker\"\noptions = {{ dpi = {dpi} }}\n"),
            ),
        ]);
        let dir = render_all(&cfg);
        for (name, bitmap) in docs {
            let printer = qr_side_px(&std::fs::read(dir.path().join(bitmap)).unwrap()) / dpi as f32 * 25.4;
            let prefix = dir.path().join(format!("{name}-poppler"));
            let pdf = dir.path().join(format!("{name}.pdf"));
            run_tool(
                "pdftoppm",
                "poppler-utils",
                &[
                    "-r".as_ref(),
                    dpi.to_string().as_ref(),
                    "-png".as_ref(),
                    "-singlefile".as_ref(),
                    pdf.as_os_str(),
                    prefix.as_os_str(),
                ],
            );
            let png = std::fs::read(prefix.with_extension("png")).unwrap();
            let paper = qr_side_px(&png) / dpi as f32 * 25.4;
            assert!(
                (printer - paper).abs() < 0.25,
                "{name} at {dpi} dpi: the printer draws the QR {printer:.2} mm wide, the PDF {paper:.2} mm"
            );
        }
    }
}

#[test]
fn roll_bitmap_has_the_print_head_width() {
    let dir = render_all(&config());
    let png =
        tiny_skia::Pixmap::decode_png(&std::fs::read(dir.path().join("receipt-80mm.1bit.png")).unwrap())
            .unwrap();
    assert_eq!(png.width(), 576, "a 72 mm head at 203 dpi prints 576 dots");
    // An Epson-style 180 dpi head of 512 dots.
    let cfg = config_with(&[
        ("roll_dpi = 203", "roll_dpi = 180"),
        ("roll_width_dots = 576", "roll_width_dots = 512"),
    ]);
    let dir = render_all(&cfg);
    let png =
        tiny_skia::Pixmap::decode_png(&std::fs::read(dir.path().join("receipt-80mm.1bit.png")).unwrap())
            .unwrap();
    assert_eq!(png.width(), 512);
    let text = pdftotext(&dir.path().join("receipt-80mm.pdf"));
    assert!(text.contains("الإجمالي"), "{text}");
}

#[test]
fn samples_are_marked_as_specimens() {
    let cfg = config();
    let dir = render_all(&cfg);
    for kind in DocKind::ALL {
        let text = pdftotext(&dir.path().join(format!("{}.pdf", kind.name())));
        assert!(
            text.contains("SPECIMEN") && text.contains("نموذج"),
            "{}: not marked as a specimen:\n{text}",
            kind.name()
        );
    }
    let pk = hex::encode(key().verifying_key().as_bytes());
    let png = dir.path().join("sticker.png");
    let err = run_verify_qr(&VerifyQrArgs { payload: None, image: Some(png), public_key: Some(pk) }, &cfg)
        .expect_err("a specimen must not verify as a real document");
    assert!(format!("{err:#}").contains("SPECIMEN"), "{err:#}");
}

/// A photographed code: turned by `degrees` and scaled by `scale`, bilinear, on white.
fn photographed(png: &[u8], scale: f32, degrees: f32) -> Vec<u8> {
    let pm = tiny_skia::Pixmap::decode_png(png).unwrap();
    let (w, h) = ((pm.width() as f32 * scale) as u32, (pm.height() as f32 * scale) as u32);
    let mut out = tiny_skia::Pixmap::new(w, h).unwrap();
    out.fill(tiny_skia::Color::WHITE);
    let t =
        tiny_skia::Transform::from_rotate_at(degrees, w as f32 / 2.0, h as f32 / 2.0).pre_scale(scale, scale);
    let paint = tiny_skia::PixmapPaint { quality: tiny_skia::FilterQuality::Bilinear, ..Default::default() };
    out.draw_pixmap(0, 0, pm.as_ref(), &paint, t, None);
    out.encode_png().unwrap()
}

#[test]
fn verify_qr_reads_turned_and_small_photos() {
    let cfg = config();
    let dir = render_all(&cfg);
    let pk = hex::encode(key().verifying_key().as_bytes());
    for name in ["sticker", "vehicle-licence", "receipt-80mm"] {
        let png = std::fs::read(dir.path().join(format!("{name}.png"))).unwrap();
        for (scale, degrees) in
            [(1.0, 3.0), (1.0, -3.0), (0.5, 0.0), (0.6, 0.0), (0.66, 0.0), (0.75, 0.0), (0.75, 3.0)]
        {
            let path = dir.path().join(format!("{name}-{scale}-{degrees}.png"));
            let photo = photographed(&png, scale, degrees);
            std::fs::write(&path, &photo).unwrap();
            // zbar (an independent decoder) reads this image, and reads the same text as we do.
            let zbar =
                run_tool("zbarimg", "zbar-tools", &["-q".as_ref(), "--raw".as_ref(), path.as_os_str()]);
            let ours =
                qr_text_from_image(&photo).unwrap_or_else(|e| panic!("{name} {scale} {degrees}°: {e}"));
            assert_eq!(zbar.trim_end_matches('\n'), ours, "{name} scaled {scale}, turned {degrees}°");
            let r = run_verify_qr(
                &VerifyQrArgs { payload: None, image: Some(path), public_key: Some(pk.clone()) },
                &cfg,
            );
            if let Err(e) = r {
                let e = format!("{e:#}");
                assert!(e.contains("SPECIMEN"), "{name} scaled {scale}, turned {degrees}°: {e}");
            }
        }
    }
    // No code at all: a plain message.
    let mut white = tiny_skia::Pixmap::new(200, 100).unwrap();
    white.fill(tiny_skia::Color::WHITE);
    let path = dir.path().join("white.png");
    std::fs::write(&path, white.encode_png().unwrap()).unwrap();
    let e =
        run_verify_qr(&VerifyQrArgs { payload: None, image: Some(path), public_key: Some(pk.clone()) }, &cfg)
            .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("no QR code") && !e.contains("payload of") && !e.contains("does not fit"), "{e}");
    // A phone's JPEG (made with ImageMagick from the sticker, turned 2°, quality 85).
    let path = golden_dir().join("sticker-photo.jpg");
    let e = run_verify_qr(&VerifyQrArgs { payload: None, image: Some(path), public_key: Some(pk) }, &cfg)
        .expect_err("a specimen");
    let e = format!("{e:#}");
    assert!(e.contains("SPECIMEN") && !e.contains("PNG"), "JPEG: {e}");
}

/// poppler draws our PDF where our raster backend draws the page (both at 300 dpi, compared in
/// blocks of 4×4 pixels so anti-aliasing does not count): the glyph widths rewritten for text
/// extraction and the QR's whole-dot modules move nothing.
#[test]
fn poppler_draws_the_pdf_like_the_raster_backend() {
    let dir = tempfile::tempdir().unwrap();
    for kind in DocKind::ALL {
        let name = kind.name();
        let s = scenes(kind);
        let path = dir.path().join(format!("{name}.pdf"));
        std::fs::write(&path, pdf(kind, &s)).unwrap();
        let prefix = dir.path().join(name);
        let args = [
            "-r".as_ref(),
            "300".as_ref(),
            "-png".as_ref(),
            "-singlefile".as_ref(),
            path.as_os_str(),
            prefix.as_os_str(),
        ];
        run_tool("pdftoppm", "poppler-utils", &args);
        let theirs =
            tiny_skia::Pixmap::decode_png(&std::fs::read(prefix.with_extension("png")).unwrap()).unwrap();
        let ours = raster::rasterize(&s[0], 300.0, None).unwrap();
        assert!(
            theirs.width().abs_diff(ours.width()) <= 1 && theirs.height().abs_diff(ours.height()) <= 1,
            "{name}: page size"
        );
        let share = block_difference(&theirs, &ours);
        // Correct output stays below 1.7 %; glyphs shifted by a kerning step reach 4 %.
        assert!(
            share < 0.025,
            "{name}: {:.1} % of inked 4×4 blocks differ between poppler and us",
            share * 100.0
        );
    }
}

/// Share of 4×4 blocks (among those with ink in either image) whose mean darkness differs by more
/// than a quarter of the range.
fn block_difference(a: &tiny_skia::Pixmap, b: &tiny_skia::Pixmap) -> f64 {
    let (w, h) = (a.width().min(b.width()) / 4, a.height().min(b.height()) / 4);
    let mean = |p: &tiny_skia::Pixmap, bx: u32, by: u32| {
        let mut sum = 0u32;
        for y in by * 4..by * 4 + 4 {
            for x in bx * 4..bx * 4 + 4 {
                let c = p.pixels()[(y * p.width() + x) as usize];
                sum += 765 - (u32::from(c.red()) + u32::from(c.green()) + u32::from(c.blue()));
            }
        }
        sum / 16
    };
    let (mut inked, mut differ) = (0usize, 0usize);
    for by in 0..h {
        for bx in 0..w {
            let (da, db) = (mean(a, bx, by), mean(b, bx, by));
            if da > 60 || db > 60 {
                inked += 1;
                differ += usize::from(da.abs_diff(db) > 765 / 4);
            }
        }
    }
    differ as f64 / inked.max(1) as f64
}

#[test]
fn block_difference_sees_a_moved_word() {
    let mut d = sample::driving_licence(&sample::issuer());
    d.qr = d.qr_payload().sign(&key()).unwrap();
    let a =
        raster::rasterize(&documents::driving_licence_front(&d, DocOptions::default()).unwrap(), 300.0, None)
            .unwrap();
    let mut s = documents::driving_licence_front(&d, DocOptions::default()).unwrap();
    for item in &mut s.items {
        if let mtu::render::scene::Item::Glyphs { x, .. } = item {
            *x += 0.4; // less than 0.1 em of the smallest text
        }
    }
    let b = raster::rasterize(&s, 300.0, None).unwrap();
    assert!(block_difference(&a, &b) > 0.1, "{}", block_difference(&a, &b));
}

/// The renderer's portrait frame and the card printer agree on orientation: the panels
/// `card_panels` makes are sent byte for byte as the landscape rendering itself would be (which
/// the Evolis driver maps exactly as the vendor library does), so the card's top is the layout's
/// top.
#[test]
fn card_panels_print_the_same_card_as_the_landscape_image() {
    use mtu::devices::card::{CardJob, CardSide, ColourPlanes, Plane8};
    use mtu::devices::evolis::job::{JobSettings, build_job};
    let kind = DocKind::DrivingLicenceFront;
    let scene = &scenes(kind)[0];
    let p = raster::card_panels(scene).unwrap();
    let plane = |q: &raster::Plane8| Plane8 { width: q.width, height: q.height, data: q.data.clone() };
    let portrait = CardSide {
        k: Some(p.k.clone()),
        ymc: Some(ColourPlanes { y: plane(&p.y), m: plane(&p.m), c: plane(&p.c) }),
        overlay: true,
    };
    // The same scene, landscape, straight from the rasteriser.
    let k = raster::to_bitmap1(
        &raster::rasterize(scene, raster::CARD_DPI, Some(mtu::render::scene::Ink::K)).unwrap(),
    );
    let colour = raster::rasterize(scene, raster::CARD_DPI, Some(mtu::render::scene::Ink::Colour)).unwrap();
    let (w, h) = (colour.width(), colour.height());
    let ink = |f: &dyn Fn(&tiny_skia::PremultipliedColorU8) -> u8| Plane8 {
        width: w,
        height: h,
        data: colour.pixels().iter().map(|px| 255 - f(px)).collect(),
    };
    let landscape = CardSide {
        k: Some(k),
        ymc: Some(ColourPlanes { y: ink(&|p| p.blue()), m: ink(&|p| p.green()), c: ink(&|p| p.red()) }),
        overlay: true,
    };
    assert_eq!((landscape.k.as_ref().unwrap().width, portrait.k.as_ref().unwrap().width), (1016, 648));
    let s = JobSettings::default();
    let a = build_job(&s, &CardJob { front: portrait, back: None }).unwrap();
    let b = build_job(&s, &CardJob { front: landscape, back: None }).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.bytes == y.bytes, "{} differs between the portrait frame and the landscape image", x.label);
    }
}
