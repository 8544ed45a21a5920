//! Render time per document and backend, and PDF sizes, each printed against its target.
//! Run with `cargo bench --bench render` (release profile). Layout (bidi + shaping + fitting) is
//! included in every figure, as it is when the van prints.

use std::time::{Duration, Instant};

use mtu::keys::VanKey;
use mtu::render::documents::{DocOptions, sample};
use mtu::render::output::{DocKind, pdf_of, printer_output, sample_scenes};
use mtu::render::raster;

fn median<F: FnMut()>(mut f: F) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<Duration> = (0..25)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn report(what: &str, took: Duration, target_ms: Option<f64>) {
    let ms = took.as_secs_f64() * 1000.0;
    match target_ms {
        Some(t) => {
            let verdict = if ms <= t { "ok" } else { "OVER TARGET" };
            println!("{what:<38} {ms:>8.2} ms   target < {t} ms   {verdict}");
        }
        None => println!("{what:<38} {ms:>8.2} ms"),
    }
}

fn main() {
    let key = VanKey::from_seed(&[0x42; 32]);
    let opts = DocOptions::default();
    let scenes = |k| sample_scenes(k, &key, &sample::issuer(), opts).expect("sample renders");
    // Warm the font parse so it is not counted in the first document.
    let _ = scenes(DocKind::Sticker);

    for (kind, target) in [
        (DocKind::DrivingLicenceFront, Some(50.0)),
        (DocKind::DrivingLicenceBack, Some(50.0)),
        (DocKind::VehicleLicence, None),
        (DocKind::Sticker, None),
        (DocKind::Receipt80, None),
    ] {
        let took = median(|| {
            let s = scenes(kind);
            printer_output(kind, &s, &opts).expect("bitmap");
        });
        report(&format!("{} bitmap", kind.name()), took, target);
    }
    for kind in DocKind::ALL {
        let target =
            matches!(kind, DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::Receipt80).then_some(20.0);
        let took = median(|| {
            let s = scenes(kind);
            pdf_of(kind, &s, "bench", jiff::Timestamp::now()).expect("pdf");
        });
        report(&format!("{} PDF", kind.name()), took, target);
    }
    let took = median(|| {
        scenes(DocKind::ReceiptA4);
    });
    report("receipt-a4 layout only (no backend)", took, None);
    let took = median(|| {
        let mut r = subsetter::GlyphRemapper::new();
        for g in 0..150u16 {
            r.remap(g * 7);
        }
        subsetter::subset(mtu::render::font::AMIRI_TTF, 0, &r).expect("subset");
    });
    report("Amiri subset of 150 glyphs", took, None);
    let took = median(|| {
        let s = scenes(DocKind::ShiftReport);
        raster::preview_png(&s[0], 100.0).expect("png");
    });
    report("shift-report preview PNG (100 dpi)", took, None);

    println!();
    for kind in DocKind::ALL {
        let size = pdf_of(kind, &scenes(kind), "bench", jiff::Timestamp::now()).expect("pdf").len();
        let target =
            matches!(kind, DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::Receipt80).then_some(60_000);
        match target {
            Some(t) => {
                let verdict = if size <= t { "ok" } else { "OVER TARGET" };
                println!(
                    "{:<38} {:>8} bytes   target < {t} bytes   {verdict}",
                    format!("{} PDF size", kind.name()),
                    size
                );
            }
            None => println!("{:<38} {:>8} bytes", format!("{} PDF size", kind.name()), size),
        }
    }
}
