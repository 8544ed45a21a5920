//! Card images to Evolis panel data: line order, bit packing, padding and `Dbc` compression.
//! Pure functions, no I/O.
//!
//! Programming Guide A5013 Rev. E, §2 (page 4): the printer keeps bitmaps of 1016 lines of
//! 648 pixels at 300 dpi. `Db` (page 14): a panel is always downloaded whole, pixels
//! concatenated "in a way that each bit is useful": 1 bit per pixel for K and O (levels 2),
//! 5/6/7 bits per pixel for Y, M, C (levels 32/64/128). We send line after line, 648 pixels
//! (81 bytes at 1 bit) per line, most significant bit first.
//!
//! **Byte-count discrepancy.** The guide's formula `648 × 1016 × bits / 8` gives 82 296 bytes
//! for K, but the same page lists 84 624 bytes (and 423 120 / 507 744 / 592 368 for 5/6/7
//! bits), i.e. it counts 676 992 pixels rather than 648 × 1016 = 658 368. The open-source
//! Perl driver (dpavlin/Printer-EVOLIS) pads K to 648 × 1016 / 8 = 82 296 bytes and its decoder
//! reads 1015 lines. We follow the guide's listed counts: the 658 368 image pixels first,
//! then white padding up to the listed size.

use crate::devices::card::{Bitmap1, CARD_HEIGHT, CARD_WIDTH, Plane8};

/// Pixels per printer line.
pub const LINE_PIXELS: usize = CARD_WIDTH as usize;
/// Lines per card side.
pub const LINES: usize = CARD_HEIGHT as usize;
/// Bytes per line at 1 bit per pixel.
pub const LINE_BYTES: usize = LINE_PIXELS / 8;
/// Pixels in one card image (648 × 1016).
pub const IMAGE_PIXELS: usize = LINE_PIXELS * LINES;
/// Pixel count behind the byte sizes the guide lists for `Db` (page 14).
pub const GUIDE_PIXELS: usize = 676_992;

/// Grey levels of a panel download (the `Db` second parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Levels {
    /// 2 levels, 1 bit per pixel (K, O).
    Two,
    /// 32 levels, 5 bits per pixel.
    L32,
    /// 64 levels, 6 bits per pixel.
    L64,
    /// 128 levels, 7 bits per pixel.
    L128,
}

impl Levels {
    /// Bits per pixel.
    pub fn bits(self) -> u32 {
        match self {
            Levels::Two => 1,
            Levels::L32 => 5,
            Levels::L64 => 6,
            Levels::L128 => 7,
        }
    }

    /// The parameter as sent (`2`, `32`, `64`, `128`).
    pub fn param(self) -> &'static str {
        match self {
            Levels::Two => "2",
            Levels::L32 => "32",
            Levels::L64 => "64",
            Levels::L128 => "128",
        }
    }

    /// Parses the parameter.
    pub fn from_param(p: &str) -> Option<Levels> {
        match p {
            "2" => Some(Levels::Two),
            "32" => Some(Levels::L32),
            "64" => Some(Levels::L64),
            "128" => Some(Levels::L128),
            _ => None,
        }
    }

    /// Highest level value.
    pub fn max(self) -> u32 {
        (1 << self.bits()) - 1
    }

    /// Bytes of one `Db` panel as the guide lists them (page 14): 84 624, 423 120, 507 744,
    /// 592 368.
    pub fn guide_bytes(self) -> usize {
        GUIDE_PIXELS * self.bits() as usize / 8
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

/// How a source image maps onto printer lines.
fn orientation(what: &str, width: u32, height: u32) -> Result<bool, RasterError> {
    if width == CARD_WIDTH && height == CARD_HEIGHT {
        Ok(false)
    } else if width == CARD_HEIGHT && height == CARD_WIDTH {
        Ok(true)
    } else {
        Err(RasterError::Size { what: what.into(), width, height })
    }
}

/// Source coordinates of printer pixel `col` on printer line `line`. A landscape image is
/// turned a quarter clockwise: its left column becomes the first line.
fn source_xy(landscape: bool, line: usize, col: usize) -> (u32, u32) {
    if landscape { (line as u32, (LINE_PIXELS - 1 - col) as u32) } else { (col as u32, line as u32) }
}

/// A K or O bitmap in printer line order: 1016 lines × 81 bytes, MSB first, 1 = ink.
pub fn mono_lines(what: &str, b: &Bitmap1) -> Result<Vec<u8>, RasterError> {
    let landscape = orientation(what, b.width, b.height)?;
    let need = b.stride() * b.height as usize;
    if b.data.len() < need {
        return Err(RasterError::Buffer { what: what.into(), got: b.data.len(), need });
    }
    let mut out = vec![0u8; LINES * LINE_BYTES];
    if !landscape {
        // Same layout: copy row by row (stride is 81 already).
        out.copy_from_slice(&b.data[..need]);
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

/// An 8-bit plane in printer line order, one byte per pixel.
pub fn plane_lines(what: &str, p: &Plane8) -> Result<Vec<u8>, RasterError> {
    let landscape = orientation(what, p.width, p.height)?;
    let need = p.width as usize * p.height as usize;
    if p.data.len() < need {
        return Err(RasterError::Buffer { what: what.into(), got: p.data.len(), need });
    }
    if !landscape {
        return Ok(p.data[..need].to_vec());
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

/// The `Db` payload of a K/O panel: the 1016 × 81 line bytes, then white padding up to the
/// guide's 84 624 bytes.
pub fn pack_mono(lines: &[u8]) -> Vec<u8> {
    let mut out = lines.to_vec();
    out.resize(Levels::Two.guide_bytes(), 0);
    out
}

/// Quantises an 8-bit ink amount (0–255) to a level (0–max), rounding to nearest.
pub fn quantise(v: u8, levels: Levels) -> u32 {
    (v as u32 * levels.max() + 127) / 255
}

/// The `Db` payload of a Y/M/C panel: every pixel quantised to `levels`, its bits
/// concatenated MSB first with no gaps (guide page 14), then zero padding to the guide's size.
pub fn pack_levels(plane: &[u8], levels: Levels) -> Vec<u8> {
    let bits = levels.bits();
    let mut out = Vec::with_capacity(levels.guide_bytes());
    let mut acc: u32 = 0;
    let mut n: u32 = 0;
    for &v in plane {
        acc = (acc << bits) | quantise(v, levels);
        n += bits;
        while n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
        acc &= (1 << n) - 1;
    }
    if n > 0 {
        out.push((acc << (8 - n)) as u8);
    }
    if out.len() < levels.guide_bytes() {
        out.resize(levels.guide_bytes(), 0);
    }
    out
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
    fn guide_sizes() {
        // Guide page 14: "For 2 levels of gray 84 624 bytes, 32 → 423 120, 64 → 507 744,
        // 128 → 592 368".
        assert_eq!(Levels::Two.guide_bytes(), 84_624);
        assert_eq!(Levels::L32.guide_bytes(), 423_120);
        assert_eq!(Levels::L64.guide_bytes(), 507_744);
        assert_eq!(Levels::L128.guide_bytes(), 592_368);
    }

    #[test]
    fn known_k_pattern_encodes_exactly() {
        // Pixel (0,0) and (647,1015) inked, plus a full black line 10.
        let mut b = Bitmap1::blank(648, 1016);
        b.set(0, 0, true);
        b.set(647, 1015, true);
        for x in 0..648 {
            b.set(x, 10, true);
        }
        let lines = mono_lines("k", &b).unwrap();
        let db = pack_mono(&lines);
        assert_eq!(db.len(), 84_624);
        assert_eq!(db[0], 0x80);
        assert!(db[1..81].iter().all(|&x| x == 0));
        assert!(db[810..891].iter().all(|&x| x == 0xFF));
        assert_eq!(db[1015 * 81 + 80], 0x01);
        assert!(db[82_296..].iter().all(|&x| x == 0));
        assert_eq!(db.iter().map(|b| b.count_ones()).sum::<u32>(), 2 + 648);
    }

    #[test]
    fn landscape_is_turned() {
        let mut b = Bitmap1::blank(1016, 648);
        b.set(0, 647, true); // bottom-left of the landscape image
        b.set(1015, 0, true); // top-right
        let lines = mono_lines("k", &b).unwrap();
        assert_eq!(lines[0], 0x80); // line 0, column 0
        assert_eq!(lines[1015 * 81 + 80], 0x01); // last line, last column
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(matches!(mono_lines("k", &Bitmap1::blank(640, 1016)), Err(RasterError::Size { .. })));
        let short = Bitmap1 { width: 648, height: 1016, data: vec![0; 10] };
        assert!(matches!(mono_lines("k", &short), Err(RasterError::Buffer { .. })));
    }

    #[test]
    fn packs_five_bit_levels() {
        // 8 pixels × 5 bits = 40 bits = 5 bytes: levels 31,0,31,0,... → 11111 00000 11111 00000 …
        let plane = [255, 0, 255, 0, 255, 0, 255, 0];
        let out = pack_levels(&plane, Levels::L32);
        assert_eq!(&out[..5], &[0b1111_1000, 0b0011_1110, 0b0000_1111, 0b1000_0011, 0b1110_0000]);
        assert_eq!(out.len(), 423_120);
        assert_eq!(quantise(128, Levels::L32), 16);
        assert_eq!(quantise(255, Levels::L128), 127);
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
