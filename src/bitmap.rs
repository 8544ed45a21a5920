//! The 1-bit image the renderer draws and the card and sticker drivers print: one type, so a
//! rendered panel goes to a printer without conversion.

/// A 1-bit image: rows of `ceil(width / 8)` bytes, most significant bit = leftmost pixel,
/// bit set = ink (black resin or overlay varnish).
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap1 {
    /// Pixels per row.
    pub width: u32,
    /// Number of rows.
    pub height: u32,
    /// Packed rows, `stride() * height` bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Bitmap1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitmap1({}x{}, {} bytes)", self.width, self.height, self.data.len())
    }
}

impl Bitmap1 {
    /// A blank (no ink) bitmap.
    pub fn blank(width: u32, height: u32) -> Self {
        let stride = (width as usize).div_ceil(8);
        Bitmap1 { width, height, data: vec![0; stride * height as usize] }
    }

    /// A bitmap with ink everywhere (e.g. a full-card overlay).
    pub fn full(width: u32, height: u32) -> Self {
        let mut b = Self::blank(width, height);
        for y in 0..height {
            for x in 0..width {
                b.set(x, y, true);
            }
        }
        b
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        (self.width as usize).div_ceil(8)
    }

    /// Number of ink pixels.
    pub fn black_pixels(&self) -> usize {
        self.data.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Whether the pixel has ink; pixels outside the image or the buffer read as blank.
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let i = y as usize * self.stride() + x as usize / 8;
        self.data.get(i).is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
    }

    /// Sets or clears one pixel; out-of-range writes are ignored.
    pub fn set(&mut self, x: u32, y: u32, ink: bool) {
        if x >= self.width || y >= self.height {
            return;
        }
        let i = y as usize * self.stride() + x as usize / 8;
        if let Some(b) = self.data.get_mut(i) {
            if ink {
                *b |= 0x80 >> (x % 8);
            } else {
                *b &= !(0x80 >> (x % 8));
            }
        }
    }
}
