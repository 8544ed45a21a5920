//! Card images to Evolis panel data: pixel order, bit packing, the `Pida` ink summary and `Dbc`
//! compression. Pure functions, no I/O.
//!
//! **What the vendor library writes** (measured with Evolis's own library, `evolis-sdk` 9.4.1 /
//! libevolis on PyPI, virtual printer `model://Evolis Primacy 2`, `PrintSession.print_to_file`,
//! by feeding it images with single inked pixels at known positions and decoding its output;
//! `tests/evolis_vendor.rs` re-checks all of it on every test run):
//!
//! - A panel is 1016 printer lines of 648 pixels (CR-80 at 300 dpi), line after line, no padding.
//! - K and O: `Db;k;2;` / `Db;o;2;` + 82,296 bytes, 1 bit per pixel, most significant bit first
//!   (bit 7 of the first byte is pixel 0 of line 0), 1 = ink. 81 bytes per line.
//! - Y, M, C: `Db;y;256;` + 658,368 bytes, one byte per pixel, the ink amount (0 = none,
//!   255 = full). With colour management off (`GColorProfileMode=NOPROFILE`, `GSmoothing=NOSMOOTH`)
//!   the library writes Y = 255 − blue, M = 255 − green, C = 255 − red of the RGB image: exactly
//!   the ink planes we hold, so our planes go out unchanged.
//! - Image to printer pixels, whichever side:
//!   - portrait image (648 wide × 1016 high): turned half a turn. Image pixel (x, y) is printer
//!     line 1015 − y, position 647 − x: the first byte sent is the image's bottom-right corner.
//!   - landscape image (1016 wide × 648 high): image pixel (x, y) is printer line x, position
//!     647 − y: the image's left column is line 0, read from its bottom pixel up.
//!
//!   The back side is mapped the same way as the front (default duplex, no `PageRotate180`).
//!
//! The older Programming Guide (A5013 Rev. E, page 14) describes 32/64/128-level Y/M/C packing
//! and lists 84,624 bytes for a K panel; the library for current printers writes neither, so
//! neither is produced here.

use crate::devices::card::{Bitmap1, CARD_HEIGHT, CARD_WIDTH, Plane8};

/// Pixels per printer line.
pub const LINE_PIXELS: usize = CARD_WIDTH as usize;
/// Lines per card side.
pub const LINES: usize = CARD_HEIGHT as usize;
/// Bytes per line at 1 bit per pixel.
pub const LINE_BYTES: usize = LINE_PIXELS / 8;
/// Pixels in one card image (648 × 1016).
pub const IMAGE_PIXELS: usize = LINE_PIXELS * LINES;
/// Bytes of a K or O `Db` panel (1 bit per pixel): 82,296.
pub const MONO_PANEL_BYTES: usize = IMAGE_PIXELS / 8;
/// Bytes of a Y, M or C `Db` panel (one byte per pixel): 658,368.
pub const COLOUR_PANEL_BYTES: usize = IMAGE_PIXELS;

/// Grey levels of a panel download (the `Db` / `Dbc` second parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Levels {
    /// 2 levels, 1 bit per pixel (K, O).
    Two,
    /// 256 levels, one byte per pixel (Y, M, C).
    L256,
}

impl Levels {
    /// The parameter as sent (`2`, `256`).
    pub fn param(self) -> &'static str {
        match self {
            Levels::Two => "2",
            Levels::L256 => "256",
        }
    }

    /// Parses the parameter.
    pub fn from_param(p: &str) -> Option<Levels> {
        match p {
            "2" => Some(Levels::Two),
            "256" => Some(Levels::L256),
            _ => None,
        }
    }

    /// Bytes of one uncompressed panel at these levels.
    pub fn panel_bytes(self) -> usize {
        match self {
            Levels::Two => MONO_PANEL_BYTES,
            Levels::L256 => COLOUR_PANEL_BYTES,
        }
    }
}

/// An image that does not fit the card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RasterError {
    /// Wrong size.
    #[error("{what} is {width}x{height}; a card side is 648x1016 (or 1016x648 landscape)")]
    Size { what: String, width: u32, height: u32 },
    /// The pixel buffer is shorter than width and height promise.
    #[error("{what}: pixel buffer has {got} bytes, {need} needed")]
    Buffer { what: String, got: usize, need: usize },
}

/// Whether an image is landscape (1016 × 648) rather than portrait (648 × 1016).
fn orientation(what: &str, width: u32, height: u32) -> Result<bool, RasterError> {
    if width == CARD_WIDTH && height == CARD_HEIGHT {
        Ok(false)
    } else if width == CARD_HEIGHT && height == CARD_WIDTH {
        Ok(true)
    } else {
        Err(RasterError::Size { what: what.into(), width, height })
    }
}

/// Source image coordinates of printer pixel `col` on printer line `line` (see the module
/// documentation for where this mapping comes from).
pub fn source_xy(landscape: bool, line: usize, col: usize) -> (u32, u32) {
    if landscape {
        (line as u32, (LINE_PIXELS - 1 - col) as u32)
    } else {
        ((LINE_PIXELS - 1 - col) as u32, (LINES - 1 - line) as u32)
    }
}

/// A K or O bitmap as its `Db` payload: 1016 lines × 81 bytes, MSB first, 1 = ink.
pub fn mono_lines(what: &str, b: &Bitmap1) -> Result<Vec<u8>, RasterError> {
    let landscape = orientation(what, b.width, b.height)?;
    let need = b.stride() * b.height as usize;
    if b.data.len() < need {
        return Err(RasterError::Buffer { what: what.into(), got: b.data.len(), need });
    }
    let mut out = vec![0u8; MONO_PANEL_BYTES];
    if !landscape {
        // Half a turn: printer line L is image row 1015 − L read right to left, so each output
        // byte is a source byte (stride 81, no spare bits at 648 px) with its bits reversed.
        for line in 0..LINES {
            let src = &b.data[(LINES - 1 - line) * LINE_BYTES..(LINES - line) * LINE_BYTES];
            for (o, s) in out[line * LINE_BYTES..(line + 1) * LINE_BYTES].iter_mut().zip(src.iter().rev()) {
                *o = s.reverse_bits();
            }
        }
        return Ok(out);
    }
    for line in 0..LINES {
        for col in 0..LINE_PIXELS {
            let (x, y) = source_xy(true, line, col);
            if b.get(x, y) {
                out[line * LINE_BYTES + col / 8] |= 0x80 >> (col % 8);
            }
        }
    }
    Ok(out)
}

/// An 8-bit ink plane as its `Db` payload: one byte per pixel in printer order.
pub fn plane_lines(what: &str, p: &Plane8) -> Result<Vec<u8>, RasterError> {
    let landscape = orientation(what, p.width, p.height)?;
    let need = p.width as usize * p.height as usize;
    if p.data.len() < need {
        return Err(RasterError::Buffer { what: what.into(), got: p.data.len(), need });
    }
    if !landscape {
        // Half a turn of a row-major image is the same bytes in reverse order.
        let mut out = p.data[..need].to_vec();
        out.reverse();
        return Ok(out);
    }
    let mut out = vec![0u8; IMAGE_PIXELS];
    for line in 0..LINES {
        for col in 0..LINE_PIXELS {
            let (x, y) = source_xy(true, line, col);
            out[line * LINE_PIXELS + col] = p.get(x, y);
        }
    }
    Ok(out)
}

/// Whether a panel payload carries no ink. The vendor library sends no `Db` for such a panel
/// (its `ISendBlankPanel` setting is off by default), and neither do we.
pub fn is_blank(panel: &[u8]) -> bool {
    panel.iter().all(|&b| b == 0)
}

/// Rounds `num / den` to the nearest integer, halves to even: what the vendor library's
/// `%.0lf` formatting of the same quotient gives.
fn round_half_even(num: u64, den: u64) -> u64 {
    let (q, r) = (num / den, num % den);
    if 2 * r > den || (2 * r == den && q % 2 == 1) { q + 1 } else { q }
}

/// The `Pida` parameters the vendor library sends before a side's panels on a colour ribbon:
/// the percentage of pixels with no colour ink, then the mean Y, M and C ink (0–255), each
/// rounded to an integer. Measured: a white side gives `100;0;0;0`, a uniform 50 % grey
/// `0;127;127;127`, grey on the left half `50;64;64;64`. `planes` are in printer order; `None`
/// is a side without colour.
pub fn ink_summary(planes: Option<[&[u8]; 3]>) -> [u64; 4] {
    let Some([y, m, c]) = planes else { return [100, 0, 0, 0] };
    let n = IMAGE_PIXELS as u64;
    let mut white = 0u64;
    let mut sums = [0u64; 3];
    for i in 0..IMAGE_PIXELS {
        let (a, b, d) = (y[i], m[i], c[i]);
        if a == 0 && b == 0 && d == 0 {
            white += 1;
        }
        sums[0] += a as u64;
        sums[1] += b as u64;
        sums[2] += d as u64;
    }
    [
        round_half_even(100 * white, n),
        round_half_even(sums[0], n),
        round_half_even(sums[1], n),
        round_half_even(sums[2], n),
    ]
}

/// `Dbc` compression of a K/O panel (guide §4 page 5): line by line, a first byte 0 means a
/// white line, 255 a black line; otherwise it is the number of useful bytes (the index of the
/// last non-white byte) followed by those bytes.
pub fn compress_mono(lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines.chunks(LINE_BYTES) {
        if line.iter().all(|&b| b == 0) {
            out.push(0);
        } else if line.len() == LINE_BYTES && line.iter().all(|&b| b == 0xFF) {
            out.push(0xFF);
        } else {
            let useful = line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            // useful ≤ 81, so it never collides with the 0 / 255 markers.
            out.push(useful as u8);
            out.extend_from_slice(&line[..useful]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_sizes() {
        // Measured from libevolis 9.4.1: 648 × 1016 / 8 and 648 × 1016.
        assert_eq!(Levels::Two.panel_bytes(), 82_296);
        assert_eq!(Levels::L256.panel_bytes(), 658_368);
    }

    // Positions measured with the vendor library (one inked pixel per run, decoded from its
    // `Db;k;2;` panel as (line, position)).
    #[test]
    fn single_pixels_land_where_the_vendor_puts_them() {
        let portrait = [
            ((0, 0), (1015, 647)),
            ((1, 0), (1015, 646)),
            ((0, 1), (1014, 647)),
            ((647, 0), (1015, 0)),
            ((0, 1015), (0, 647)),
            ((647, 1015), (0, 0)),
            ((10, 3), (1012, 637)),
        ];
        let landscape = [
            ((0, 0), (0, 647)),
            ((1, 0), (1, 647)),
            ((0, 1), (0, 646)),
            ((1015, 0), (1015, 647)),
            ((0, 647), (0, 0)),
            ((1015, 647), (1015, 0)),
            ((10, 3), (10, 644)),
        ];
        for (cases, (w, h)) in [(&portrait, (648, 1016)), (&landscape, (1016, 648))] {
            for &((x, y), (line, col)) in cases.iter() {
                let mut b = Bitmap1::blank(w, h);
                b.set(x, y, true);
                let db = mono_lines("k", &b).unwrap();
                assert_eq!(db.len(), 82_296);
                let inked: Vec<usize> =
                    (0..IMAGE_PIXELS).filter(|&i| db[i / 8] & (0x80 >> (i % 8)) != 0).collect();
                assert_eq!(inked, [line * 648 + col], "{w}x{h} pixel ({x},{y})");
                let mut p = Plane8::filled(w, h, 0);
                p.data[(y * w + x) as usize] = 200;
                let c = plane_lines("c", &p).unwrap();
                assert_eq!(c.len(), 658_368);
                assert_eq!(c[line * 648 + col], 200, "{w}x{h} plane pixel ({x},{y})");
                assert_eq!(c.iter().filter(|&&v| v != 0).count(), 1);
            }
        }
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(matches!(mono_lines("k", &Bitmap1::blank(640, 1016)), Err(RasterError::Size { .. })));
        let short = Bitmap1 { width: 648, height: 1016, data: vec![0; 10] };
        assert!(matches!(mono_lines("k", &short), Err(RasterError::Buffer { .. })));
        let short = Plane8 { width: 1016, height: 648, data: vec![0; 10] };
        assert!(matches!(plane_lines("y", &short), Err(RasterError::Buffer { .. })));
    }

    #[test]
    fn ink_summary_matches_measured_values() {
        let n = IMAGE_PIXELS;
        assert_eq!(ink_summary(None), [100, 0, 0, 0]);
        let grey = vec![127u8; n];
        assert_eq!(ink_summary(Some([&grey, &grey, &grey])), [0, 127, 127, 127]);
        // Grey (127) on half the pixels: mean 63.5 rounds to 64 (half to even), white 50 %.
        let mut half = vec![0u8; n];
        half[..n / 2].fill(127);
        assert_eq!(ink_summary(Some([&half, &half, &half])), [50, 64, 64, 64]);
        // Measured: C = 55 on 16 of 1016 lines → `Pida;98;0;0;1`.
        let mut c = vec![0u8; n];
        c[1000 * 648..].fill(55);
        let z = vec![0u8; n];
        assert_eq!(ink_summary(Some([&z, &z, &c])), [98, 0, 0, 1]);
        assert_eq!(round_half_even(5, 2), 2);
        assert_eq!(round_half_even(7, 2), 4);
        assert_eq!(round_half_even(1, 2), 0);
    }

    #[test]
    fn dbc_vectors() {
        // Guide page 5: white line → 0, black line → 255, else count then bytes, count = index
        // of the last useful byte.
        let mut lines = vec![0u8; 4 * LINE_BYTES];
        lines[LINE_BYTES..2 * LINE_BYTES].fill(0xFF);
        lines[2 * LINE_BYTES] = 0xAA;
        lines[2 * LINE_BYTES + 2] = 0x01;
        lines[4 * LINE_BYTES - 1] = 0x80;
        let c = compress_mono(&lines);
        let mut expect = vec![0x00, 0xFF, 3, 0xAA, 0x00, 0x01, 81];
        expect.extend_from_slice(&lines[3 * LINE_BYTES..]);
        assert_eq!(c, expect);
    }

    #[test]
    fn dbc_of_blank_card_is_one_byte_per_line() {
        assert_eq!(compress_mono(&vec![0; LINES * LINE_BYTES]), vec![0; LINES]);
    }
}
