//! Licence photos: PNG or JPEG in, RGB pixels out. A bad or unknown format is a clear error.

use super::RenderError;

/// Largest accepted photo side, pixels (a passport photo at 600 dpi is far below this).
pub const MAX_SIDE: u32 = 4000;

/// A decoded photo, 8-bit RGB, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Photo {
    /// Decodes PNG or JPEG bytes (detected by their signature), at most [`MAX_SIDE`] per side.
    pub fn decode(bytes: &[u8]) -> Result<Photo, RenderError> {
        Self::decode_limited(bytes, MAX_SIDE)
    }

    /// Decodes PNG or JPEG bytes with another limit per side (a phone photo of a QR code is larger
    /// than a licence photo).
    pub fn decode_limited(bytes: &[u8], max_side: u32) -> Result<Photo, RenderError> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Self::decode_png(bytes, max_side)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Self::decode_jpeg(bytes, max_side)
        } else {
            Err(RenderError::Photo(format!(
                "not a PNG or JPEG file (starts with {}); take the photo again as JPEG or PNG",
                hex::encode(&bytes[..bytes.len().min(8)])
            )))
        }
    }

    fn check_size(width: u32, height: u32, max_side: u32) -> Result<(), RenderError> {
        if width == 0 || height == 0 || width > max_side || height > max_side {
            return Err(RenderError::Photo(format!(
                "{width}×{height} pixels is outside 1…{max_side} per side"
            )));
        }
        Ok(())
    }

    fn decode_png(bytes: &[u8], max_side: u32) -> Result<Photo, RenderError> {
        let pixmap = tiny_skia::Pixmap::decode_png(bytes)
            .map_err(|e| RenderError::Photo(format!("PNG cannot be decoded: {e}")))?;
        Self::check_size(pixmap.width(), pixmap.height(), max_side)?;
        let mut rgb = Vec::with_capacity(pixmap.width() as usize * pixmap.height() as usize * 3);
        for p in pixmap.pixels() {
            // Composite on white (photos with transparency).
            let c = p.demultiply();
            let a = u16::from(c.alpha());
            for v in [c.red(), c.green(), c.blue()] {
                rgb.push(((u16::from(v) * a + 255 * (255 - a)) / 255) as u8);
            }
        }
        Ok(Photo { width: pixmap.width(), height: pixmap.height(), rgb })
    }

    fn decode_jpeg(bytes: &[u8], max_side: u32) -> Result<Photo, RenderError> {
        let mut dec = zune_jpeg::JpegDecoder::new(bytes);
        dec.decode_headers().map_err(|e| RenderError::Photo(format!("JPEG cannot be decoded: {e:?}")))?;
        let (w, h) = dec
            .dimensions()
            .map(|(w, h)| (u32::from(w as u16), u32::from(h as u16)))
            .ok_or_else(|| RenderError::Photo("JPEG has no size".into()))?;
        Self::check_size(w, h, max_side)?;
        let data = dec.decode().map_err(|e| RenderError::Photo(format!("JPEG cannot be decoded: {e:?}")))?;
        let n = w as usize * h as usize;
        let rgb = if data.len() == n * 3 {
            data
        } else if data.len() == n {
            data.iter().flat_map(|&g| [g, g, g]).collect()
        } else if data.len() == n * 4 {
            data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()
        } else {
            return Err(RenderError::Photo("JPEG has an unsupported colour layout".into()));
        };
        Ok(Photo { width: w, height: h, rgb })
    }

    /// A plain placeholder silhouette, for samples and tests (no real person's face).
    pub fn placeholder(width: u32, height: u32) -> Photo {
        let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
        let (cx, cy) = (width as f32 / 2.0, height as f32 * 0.38);
        let r = width as f32 * 0.22;
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f32, y as f32);
                let head = (fx - cx).powi(2) + (fy - cy).powi(2) < r * r;
                let body = fy > height as f32 * 0.62
                    && ((fx - cx) / (width as f32 * 0.42)).powi(2)
                        + ((fy - height as f32) / (height as f32 * 0.38)).powi(2)
                        < 1.0;
                let px = if head || body { [70, 80, 110] } else { [200, 215, 235] };
                rgb.extend_from_slice(&px);
            }
        }
        Photo { width, height, rgb }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_and_broken_formats() {
        let err = Photo::decode(b"GIF89a....").unwrap_err();
        assert!(err.to_string().contains("not a PNG or JPEG"), "{err}");
        let err = Photo::decode(b"\x89PNG\r\n\x1a\nbroken").unwrap_err();
        assert!(err.to_string().contains("PNG cannot be decoded"), "{err}");
        let err = Photo::decode(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("JPEG"), "{err}");
    }

    #[test]
    fn png_round_trip() {
        let mut pm = tiny_skia::Pixmap::new(3, 2).unwrap();
        pm.fill(tiny_skia::Color::from_rgba8(10, 20, 30, 255));
        let png = pm.encode_png().unwrap();
        let p = Photo::decode(&png).unwrap();
        assert_eq!((p.width, p.height), (3, 2));
        assert_eq!(&p.rgb[..3], &[10, 20, 30]);
    }
}
