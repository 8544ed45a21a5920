//! Reading a document's QR code back from a photo or a scan (PNG or JPEG), for `vanctl verify-qr`.
//!
//! rqrr finds and decodes the code; a phone photo is seldom as clean as our own bitmaps, so the
//! image is tried in a few forms until one reads: as it is, binarised (Otsu's threshold), and
//! enlarged (bicubic) then binarised, which brings small or slightly turned codes, whose modules
//! are only two or three pixels wide, within rqrr's reach.

use tiny_skia::{FilterQuality, Pixmap, PixmapPaint, Transform};

use super::photo::Photo;

/// Largest image side accepted, pixels (a 48-megapixel phone photo is 8000 wide).
pub const MAX_SIDE: u32 = 10_000;
/// Enlarged attempts stop at this many pixels.
const MAX_ENLARGED_PIXELS: u64 = 24_000_000;

/// Why no QR text could be read from an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The bytes are not an image we read, or a broken one.
    #[error("{0}")]
    Image(String),
    /// Nothing that looks like a QR code.
    #[error(
        "no QR code found in the image; photograph the code square-on so it fills a good part of the frame"
    )]
    NoCode,
    /// A code was found but its modules could not be read.
    #[error("a QR code was found but could not be read ({0}); photograph it again, sharper and flatter")]
    Unreadable(String),
}

/// Finds and decodes the first readable QR code in a PNG or JPEG image.
pub fn qr_text_from_image(bytes: &[u8]) -> Result<String, ScanError> {
    let photo = Photo::decode_limited(bytes, MAX_SIDE).map_err(|e| {
        let text = e.to_string();
        ScanError::Image(text.strip_prefix("photo: ").unwrap_or(&text).to_owned())
    })?;
    let mut pm =
        Pixmap::new(photo.width, photo.height).ok_or_else(|| ScanError::Image("empty image".into()))?;
    for (dst, src) in pm.data_mut().chunks_exact_mut(4).zip(photo.rgb.chunks_exact(3)) {
        dst.copy_from_slice(&[src[0], src[1], src[2], 255]);
    }
    let mut failure = ScanError::NoCode;
    let pixels = u64::from(photo.width) * u64::from(photo.height);
    for (scale, binarise) in
        [(1.0f32, false), (1.0, true), (2.0, true), (3.0, true), (2.0, false), (0.5, true)]
    {
        if scale > 1.0 && pixels as f64 * f64::from(scale * scale) > MAX_ENLARGED_PIXELS as f64 {
            continue;
        }
        let (w, h, grey) = greyscale(&pm, scale);
        if w < 21 || h < 21 {
            continue;
        }
        let grey = if binarise { threshold(&grey) } else { grey };
        match decode(w, h, &grey) {
            Ok(text) => return Ok(text),
            Err(ScanError::NoCode) => {}
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// Luminance of the image scaled by `scale` (bicubic), row-major.
fn greyscale(pm: &Pixmap, scale: f32) -> (usize, usize, Vec<u8>) {
    let scaled;
    let src = if (scale - 1.0).abs() < f32::EPSILON {
        pm
    } else {
        let (w, h) = ((pm.width() as f32 * scale) as u32, (pm.height() as f32 * scale) as u32);
        let Some(mut out) = Pixmap::new(w.max(1), h.max(1)) else { return (0, 0, Vec::new()) };
        out.fill(tiny_skia::Color::WHITE);
        let paint = PixmapPaint { quality: FilterQuality::Bicubic, ..PixmapPaint::default() };
        out.draw_pixmap(0, 0, pm.as_ref(), &paint, Transform::from_scale(scale, scale), None);
        scaled = out;
        &scaled
    };
    let grey = src
        .pixels()
        .iter()
        .map(|p| {
            ((u32::from(p.red()) * 299 + u32::from(p.green()) * 587 + u32::from(p.blue()) * 114) / 1000) as u8
        })
        .collect();
    (src.width() as usize, src.height() as usize, grey)
}

/// Black and white at Otsu's threshold (the one that best separates the two classes of pixels).
fn threshold(grey: &[u8]) -> Vec<u8> {
    let mut hist = [0u64; 256];
    for &v in grey {
        hist[usize::from(v)] += 1;
    }
    let total = grey.len() as f64;
    let sum: f64 = hist.iter().enumerate().map(|(i, &n)| i as f64 * n as f64).sum();
    let (mut best, mut best_t) = (0.0, 128u8);
    let (mut w0, mut sum0) = (0.0, 0.0);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n as f64;
        sum0 += t as f64 * n as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    grey.iter().map(|&v| if v <= best_t { 0 } else { 255 }).collect()
}

fn decode(w: usize, h: usize, grey: &[u8]) -> Result<String, ScanError> {
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| grey.get(y * w + x).copied().unwrap_or(255));
    let mut failure = ScanError::NoCode;
    for g in img.detect_grids() {
        match g.decode() {
            Ok((_, text)) => return Ok(text),
            Err(e) => failure = ScanError::Unreadable(e.to_string()),
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_images_are_clear_errors() {
        assert!(
            matches!(qr_text_from_image(b"GIF89a"), Err(ScanError::Image(m)) if m.contains("not a PNG or JPEG"))
        );
        let mut white = Pixmap::new(64, 64).unwrap();
        white.fill(tiny_skia::Color::WHITE);
        assert_eq!(qr_text_from_image(&white.encode_png().unwrap()), Err(ScanError::NoCode));
        assert!(
            matches!(qr_text_from_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Err(ScanError::Image(m)) if m.contains("JPEG"))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = qr_text_from_image(&b);
            for head in [&b"\x89PNG\r\n\x1a\n"[..], &[0xFF, 0xD8, 0xFF][..]] {
                let mut bytes = head.to_vec();
                bytes.extend_from_slice(&b);
                let _ = qr_text_from_image(&bytes);
            }
        }
    }

    #[test]
    fn otsu_splits_two_levels() {
        assert_eq!(threshold(&[20, 30, 200, 220]), vec![0, 0, 255, 255]);
    }
}
