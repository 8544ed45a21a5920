//! A laid-out page: shaped glyph runs, rectangles, QR codes and images in millimetres (origin top
//! left, y down). Both backends draw the same scene, so PDF and print match.

use std::sync::Arc;

use super::RenderError;
use super::font::Font;
use super::photo::Photo;
use super::text::{FittedText, ShapedLine, TextStyle, fit};

/// Which print panel an item goes to on a card printer: black resin (K) or dye colour (YMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ink {
    /// The 1-bit black panel: text, lines, QR.
    K,
    /// The 8-bit Y/M/C panels: photo and coloured bands.
    Colour,
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Black.
    pub const BLACK: Rgb = Rgb(0, 0, 0);
}

/// One drawing item.
#[derive(Debug, Clone)]
pub enum Item {
    /// A shaped line: glyphs in font units from `(x, baseline)` at `size_mm` per em.
    Glyphs { x: f32, baseline: f32, size_mm: f32, line: ShapedLine, colour: Rgb, ink: Ink },
    /// A filled rectangle.
    Rect { x: f32, y: f32, w: f32, h: f32, colour: Rgb, ink: Ink },
    /// A QR code of `width`×`width` modules (row-major, true = dark) drawn as a square of side
    /// `size` mm from `(x, y)`.
    Qr { x: f32, y: f32, size: f32, width: usize, modules: Vec<bool> },
    /// A photo scaled to the box.
    Image { x: f32, y: f32, w: f32, h: f32, photo: Arc<Photo> },
}

/// A page of items, `width`×`height` millimetres.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Page width, mm.
    pub width: f32,
    /// Page height, mm.
    pub height: f32,
    /// Items in painting order.
    pub items: Vec<Item>,
    /// Plain text lines in logical order, as drawn (for tests and accessibility).
    pub texts: Vec<String>,
}

impl Scene {
    /// An empty page.
    pub fn new(width: f32, height: f32) -> Self {
        Scene { width, height, items: Vec::new(), texts: Vec::new() }
    }

    /// Fits `text` into the box and adds it in black on the K panel.
    pub fn text(
        &mut self,
        field: &str,
        text: &str,
        rect: (f32, f32, f32, f32),
        style: TextStyle,
    ) -> Result<(), RenderError> {
        self.text_in(field, text, rect, style, Rgb::BLACK, Ink::K)
    }

    /// Fits `text` into the box and adds it with the given colour and panel.
    pub fn text_in(
        &mut self,
        field: &str,
        text: &str,
        rect: (f32, f32, f32, f32),
        style: TextStyle,
        colour: Rgb,
        ink: Ink,
    ) -> Result<(), RenderError> {
        if text.is_empty() {
            return Ok(());
        }
        let font = Font::amiri()?;
        let FittedText { size_mm, lines } = fit(font, field, text, rect, &style)?;
        for (x, baseline, line) in lines {
            self.texts.push(super::text::logical_text(&line));
            self.items.push(Item::Glyphs { x, baseline, size_mm, line, colour, ink });
        }
        Ok(())
    }

    /// Adds a filled rectangle.
    pub fn rect(&mut self, rect: (f32, f32, f32, f32), colour: Rgb, ink: Ink) {
        let (x, y, w, h) = rect;
        self.items.push(Item::Rect { x, y, w, h, colour, ink });
    }

    /// Adds a QR code for `payload` inside the square `(x, y, side)` (mm), for a printer of `dpi`:
    /// each module is a whole number of dots at that resolution (as large as fits), and the code
    /// is centred in the square. The item's size is the drawn size, so PDF and print agree.
    pub fn qr(&mut self, payload: &str, square: (f32, f32, f32), dpi: f32) -> Result<(), RenderError> {
        let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
            .map_err(|e| RenderError::Qr { len: payload.len(), reason: e.to_string() })?;
        let width = code.width();
        let (x, y, side) = square;
        let dots = (side * dpi / 25.4 / width as f32).floor().max(1.0);
        let size = dots * width as f32 * 25.4 / dpi;
        let (x, y) = (x + (side - size) / 2.0, y + (side - size) / 2.0);
        let modules = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
        self.items.push(Item::Qr { x, y, size, width, modules });
        Ok(())
    }

    /// Adds a photo scaled into the box.
    pub fn image(&mut self, photo: Arc<Photo>, rect: (f32, f32, f32, f32)) {
        let (x, y, w, h) = rect;
        self.items.push(Item::Image { x, y, w, h, photo });
    }
}
