//! Whole-document tests: golden images with a tolerance, PDF text extraction through ToUnicode,
//! QR round trips through PNG, and `vanctl render` / `verify-qr` end to end.
//!
//! Regenerate the goldens after an intended layout change with `UPDATE_GOLDEN=1 cargo test --test render`
//! and look at every PNG in tests/golden before committing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mtu::cli::render::{RenderArgs, SAMPLE_SEED, VerifyQrArgs, qr_text_from_png, run_render, run_verify_qr};
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
        let png = raster::preview_png(&s[0], kind.preview_dpi(203)).unwrap();
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
    let mut d = sample::driving_licence();
    d.qr = "MTU1:TEST".into();
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
        let PrinterOutput::Card(p) = printer_output(kind, &scenes(kind), 203).unwrap() else {
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
        // The header band is on the colour panels (landscape top = portrait right edge).
        assert!(p.c.data[647] > 0, "{kind:?}");
    }
}

#[test]
fn sticker_bitmap_follows_the_configured_dpi() {
    for (dpi, w) in [(203, 480), (300, 709)] {
        let PrinterOutput::Mono(b) =
            printer_output(DocKind::Sticker, &scenes(DocKind::Sticker), dpi).unwrap()
        else {
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
        for op in content.operations {
            match op.operator.as_str() {
                "Tf" => current = op.operands[0].as_name().ok().map(|n| n.to_vec()),
                "BT" => text.clear(),
                "ET" => out.push(std::mem::take(&mut text)),
                "Tj" | "TJ" => {
                    let map = current.as_ref().and_then(|c| maps.get(c)).expect("font with ToUnicode");
                    let strings: Vec<&[u8]> = match &op.operands[0] {
                        lopdf::Object::Array(items) => items.iter().filter_map(|o| o.as_str().ok()).collect(),
                        other => vec![other.as_str().unwrap()],
                    };
                    for bytes in strings {
                        for pair in bytes.chunks(2) {
                            let code = u16::from_be_bytes([pair[0], pair[1]]);
                            // Second and later glyphs of a cluster deliberately have no entry.
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
        let pdf = pdf_of(kind, &s).unwrap();
        let got = extract(&pdf);
        let want: Vec<String> = s.iter().flat_map(|sc| sc.texts.iter().map(|t| strip_controls(t))).collect();
        assert_eq!(got, want, "{}", kind.name());
    }
    let front =
        extract(&pdf_of(DocKind::DrivingLicenceFront, &scenes(DocKind::DrivingLicenceFront)).unwrap());
    for expected in [
        "أحمد محمد عبد الرحمن السيد",
        "Ahmed Mohamed Abdelrahman El-Sayed",
        "رقم الرخصة: 1234-567",
        "درجة الرخصة: خاصة",
    ] {
        assert!(front.iter().any(|l| l == expected), "{expected:?} not in {front:?}");
    }
    let vehicle = extract(&pdf_of(DocKind::VehicleLicence, &scenes(DocKind::VehicleLicence)).unwrap());
    assert!(vehicle.iter().any(|l| l == "أ ب ج ١٢٣٤"), "{vehicle:?}");
    let receipt = extract(&pdf_of(DocKind::ReceiptA4, &scenes(DocKind::ReceiptA4)).unwrap());
    assert!(receipt.iter().any(|l| l == "تجديد رخصة تسيير (ملاكي)"), "{receipt:?}");
    assert!(receipt.iter().any(|l| l == "835.50 EGP"), "{receipt:?}");
}

#[test]
fn pdf_embeds_a_font_subset() {
    let pdf = pdf_of(DocKind::ReceiptA4, &scenes(DocKind::ReceiptA4)).unwrap();
    assert!(pdf.len() < 120_000, "{} bytes", pdf.len());
    let doc = lopdf::Document::load_mem(&pdf).unwrap();
    let has_font_file = doc.objects.values().any(|o| o.as_dict().is_ok_and(|d| d.has(b"FontFile2")));
    assert!(has_font_file);
}

#[test]
fn eastern_digits_option() {
    let opts = DocOptions { digits: Digits::Eastern };
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
    let mut d = sample::driving_licence();
    d.qr = "MTU1:TEST".into();
    d.name_ar = "محمد ☃".into();
    let err = documents::driving_licence_front(&d, DocOptions::default()).unwrap_err();
    assert!(matches!(err, RenderError::MissingGlyph { ch: '☃', .. }), "{err}");
    assert!(err.to_string().contains("name_ar"), "{err}");

    let mut d = sample::driving_licence();
    d.qr = "MTU1:TEST".into();
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

    let mut d = sample::driving_licence();
    d.qr = "MTU1:TEST".into();
    d.photo = std::sync::Arc::new(photo);
    let s = documents::driving_licence_front(&d, DocOptions::default()).unwrap();
    let panels = raster::card_panels(&s).unwrap();
    // The photo is on the colour panels only: (landscape 100, 200) → portrait (647 − 200, 100).
    let i = 100 * 648 + (647 - 200);
    assert!(panels.c.data[i] > 0 || panels.m.data[i] > 0 || panels.y.data[i] > 0);
    assert!(!panels.k.get(647 - 200, 100));
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
    let mut r = sample::shift_report();
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
    let pdf = pdf_of(DocKind::ShiftReport, &pages).unwrap();
    assert_eq!(lopdf::Document::load_mem(&pdf).unwrap().get_pages().len(), pages.len());
}

// ---- QR through the image and the command line ----

#[test]
fn qr_reads_back_from_the_rendered_png_and_verifies() {
    for kind in [DocKind::DrivingLicenceBack, DocKind::VehicleLicence, DocKind::Sticker, DocKind::Receipt80] {
        let s = scenes(kind);
        let png = raster::preview_png(&s[0], kind.preview_dpi(203)).unwrap();
        let text = qr_text_from_png(&png).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        let (p, sig, body) = QrPayload::parse(&text).unwrap();
        p.verify(&body, &sig, &key().verifying_key()).unwrap();
        assert_eq!(p.van_id, "CAI-07");
        // What the printer gets must scan too: the 1-bit K panel (rotated) or label bitmap.
        let bitmap = match printer_output(kind, &s, 203).unwrap() {
            PrinterOutput::Card(p) => p.k,
            PrinterOutput::Mono(b) => b,
            PrinterOutput::None => unreachable!("these documents have printer output"),
        };
        let from_printer = qr_text_from_png(&raster::bitmap1_png(&bitmap).unwrap()).unwrap();
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
    run_verify_qr(&VerifyQrArgs { payload: None, png: Some(png), public_key: Some(pk.clone()) }, &cfg)
        .unwrap();
    let other = hex::encode(VanKey::from_seed(&[9; 32]).verifying_key().as_bytes());
    let png = dir.path().join("sticker.png");
    let err = run_verify_qr(&VerifyQrArgs { payload: None, png: Some(png), public_key: Some(other) }, &cfg)
        .unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    let err =
        run_verify_qr(&VerifyQrArgs { payload: Some("hello".into()), png: None, public_key: Some(pk) }, &cfg)
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
