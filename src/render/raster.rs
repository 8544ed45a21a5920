//! Raster backend: the scene's glyph outlines (ttf-parser), rectangles, QR modules and photos filled
//! by tiny-skia, then split into the plain buffers printer drivers consume.
//!
//! Card panels are 648×1016 pixels at 300 dpi, portrait in the printer's frame. Cards are laid out
//! landscape (CR-80, 86.02×54.86 mm = 1016×648 px) and turned 90° clockwise into that frame: the
//! landscape top edge becomes the portrait right edge (`portrait(x', y') = landscape(y', 647 − x')`).

use std::collections::HashMap;

use tiny_skia::{FillRule, FilterQuality, Paint, PathBuilder, Pixmap, PixmapPaint, Rect, Transform};

use super::RenderError;
use super::font::Font;
use super::scene::{Ink, Item, Rgb, Scene};

/// Card panel width in the printer's frame (portrait), pixels.
pub const CARD_PANEL_WIDTH: u32 = 648;
/// Card panel height in the printer's frame (portrait), pixels.
pub const CARD_PANEL_HEIGHT: u32 = 1016;
/// Card printing resolution.
pub const CARD_DPI: f32 = 300.0;
/// Landscape card layout width, mm (1016 px at 300 dpi; CR-80 is 85.60 mm plus bleed).
pub const CARD_WIDTH_MM: f32 = 1016.0 * 25.4 / 300.0;
/// Landscape card layout height, mm (648 px at 300 dpi; CR-80 is 53.98 mm plus bleed).
pub const CARD_HEIGHT_MM: f32 = 648.0 * 25.4 / 300.0;

pub use crate::bitmap::Bitmap1;

/// An 8-bit ink plane: one byte per pixel, 0 = no ink, 255 = full ink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plane8 {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

/// The panels of a colour card with a black resin panel (YMCK ribbon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPanels {
    /// Yellow.
    pub y: Plane8,
    /// Magenta.
    pub m: Plane8,
    /// Cyan.
    pub c: Plane8,
    /// Black resin: text and QR.
    pub k: Bitmap1,
}

struct GlyphPaths {
    cache: HashMap<u16, Option<tiny_skia::Path>>,
}

struct Builder(PathBuilder);

impl ttf_parser::OutlineBuilder for Builder {
    fn move_to(&mut self, x: f32, y: f32) {
        self.0.move_to(x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.0.line_to(x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        self.0.quad_to(x1, y1, x, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        self.0.cubic_to(x1, y1, x2, y2, x, y);
    }
    fn close(&mut self) {
        self.0.close();
    }
}

impl GlyphPaths {
    fn get(&mut self, font: &Font, gid: u16) -> Option<&tiny_skia::Path> {
        self.cache
            .entry(gid)
            .or_insert_with(|| {
                let mut b = Builder(PathBuilder::new());
                font.face().outline_glyph(ttf_parser::GlyphId(gid), &mut b)?;
                b.0.finish()
            })
            .as_ref()
    }
}

fn paint(colour: Rgb) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(colour.0, colour.1, colour.2, 255);
    p.anti_alias = true;
    p
}

/// Pixel size of a scene at `dpi`.
pub fn pixel_size(scene: &Scene, dpi: f32) -> (u32, u32) {
    let ppm = dpi / 25.4;
    ((scene.width * ppm).round() as u32, (scene.height * ppm).round() as u32)
}

/// Paints the scene on white at `dpi`; with `only` set, just the items of that panel.
pub fn rasterize(scene: &Scene, dpi: f32, only: Option<Ink>) -> Result<Pixmap, RenderError> {
    let font = Font::amiri()?;
    let (w, h) = pixel_size(scene, dpi);
    if w > 20_000 || h > 40_000 {
        return Err(RenderError::BitmapSize { width: w, height: h });
    }
    let mut pm = Pixmap::new(w, h).ok_or(RenderError::BitmapSize { width: w, height: h })?;
    pm.fill(tiny_skia::Color::WHITE);
    let ppm = dpi / 25.4;
    let upem = font.units_per_em();
    let mut paths = GlyphPaths { cache: HashMap::new() };
    for item in &scene.items {
        match item {
            Item::Glyphs { x, baseline, size_mm, line, colour, ink } => {
                if only.is_some_and(|o| o != *ink) {
                    continue;
                }
                let p = paint(*colour);
                let s = size_mm / upem * ppm;
                for g in &line.glyphs {
                    if let Some(path) = paths.get(font, g.gid) {
                        let tx = (x + g.x * size_mm / upem) * ppm;
                        let ty = (baseline - g.y * size_mm / upem) * ppm;
                        let t = Transform::from_row(s, 0.0, 0.0, -s, tx, ty);
                        pm.fill_path(path, &p, FillRule::Winding, t, None);
                    }
                }
            }
            Item::Rect { x, y, w, h, colour, ink } => {
                if only.is_some_and(|o| o != *ink) {
                    continue;
                }
                if let Some(r) = Rect::from_xywh(x * ppm, y * ppm, w * ppm, h * ppm) {
                    pm.fill_rect(r, &paint(*colour), Transform::identity(), None);
                }
            }
            Item::Qr { x, y, size, width, modules } => {
                if only.is_some_and(|o| o != Ink::K) || *width == 0 {
                    continue;
                }
                // Module edges on whole pixels keep the code crisp on a 1-bit panel. At the
                // resolution the scene was laid out for, every module is the same whole number of
                // dots; at another (a preview) edges are rounded, keeping the code's size.
                let module = size * ppm / *width as f32;
                let (x0, y0) = (x * ppm, y * ppm);
                let edge = |origin: f32, i: usize| (origin + i as f32 * module).round();
                let mut p = paint(Rgb::BLACK);
                p.anti_alias = false;
                let mut pb = PathBuilder::new();
                for (i, dark) in modules.iter().enumerate() {
                    if *dark {
                        let (mx, my) = (i % width, i / width);
                        let (l, t) = (edge(x0, mx), edge(y0, my));
                        let (r, b) = (edge(x0, mx + 1), edge(y0, my + 1));
                        if let Some(r) = Rect::from_ltrb(l, t, r, b) {
                            pb.push_rect(r);
                        }
                    }
                }
                if let Some(path) = pb.finish() {
                    pm.fill_path(&path, &p, FillRule::Winding, Transform::identity(), None);
                }
            }
            Item::Image { x, y, w, h, photo } => {
                if only.is_some_and(|o| o != Ink::Colour) {
                    continue;
                }
                let Some(mut img) = Pixmap::new(photo.width, photo.height) else { continue };
                for (dst, src) in img.data_mut().chunks_exact_mut(4).zip(photo.rgb.chunks_exact(3)) {
                    dst.copy_from_slice(&[src[0], src[1], src[2], 255]);
                }
                let sx = w * ppm / photo.width as f32;
                let sy = h * ppm / photo.height as f32;
                let t = Transform::from_row(sx, 0.0, 0.0, sy, x * ppm, y * ppm);
                let pp = PixmapPaint { quality: FilterQuality::Bilinear, ..PixmapPaint::default() };
                pm.draw_pixmap(0, 0, img.as_ref(), &pp, t, None);
            }
        }
    }
    Ok(pm)
}

/// Thresholds a painted page into a 1-bit bitmap (luminance below half = black).
pub fn to_bitmap1(pm: &Pixmap) -> Bitmap1 {
    let (w, h) = (pm.width(), pm.height());
    let stride = (w as usize).div_ceil(8);
    let mut data = vec![0u8; stride * h as usize];
    for (i, px) in pm.pixels().iter().enumerate() {
        let (x, y) = (i % w as usize, i / w as usize);
        let lum =
            (299 * u32::from(px.red()) + 587 * u32::from(px.green()) + 114 * u32::from(px.blue())) / 1000;
        if lum < 128 {
            data[y * stride + x / 8] |= 0x80 >> (x % 8);
        }
    }
    Bitmap1 { width: w, height: h, data }
}

/// Turns a landscape 1-bit bitmap 90° clockwise.
pub fn rotate_cw_1(b: &Bitmap1) -> Bitmap1 {
    let (w, h) = (b.height, b.width);
    let stride = (w as usize).div_ceil(8);
    let mut data = vec![0u8; stride * h as usize];
    for y in 0..h {
        for x in 0..w {
            if b.get(y, b.height - 1 - x) {
                data[y as usize * stride + x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    Bitmap1 { width: w, height: h, data }
}

/// Turns a landscape 1-bit bitmap 90° counter-clockwise: portrait (x, y) = landscape
/// (W − 1 − y, x). This is the printer's portrait frame (see [`card_panels`]).
pub fn rotate_ccw_1(b: &Bitmap1) -> Bitmap1 {
    let (w, h) = (b.height, b.width);
    let stride = (w as usize).div_ceil(8);
    let mut data = vec![0u8; stride * h as usize];
    for y in 0..h {
        for x in 0..w {
            if b.get(b.width - 1 - y, x) {
                data[y as usize * stride + x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    Bitmap1 { width: w, height: h, data }
}

fn rotate_ccw_8(p: &Plane8) -> Plane8 {
    let (w, h) = (p.height, p.width);
    let mut data = vec![0u8; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            data[(y * w + x) as usize] = p.data[(x * p.width + (p.width - 1 - y)) as usize];
        }
    }
    Plane8 { width: w, height: h, data }
}

/// Renders a landscape card scene into the printer's portrait panels: K from the black items,
/// Y/M/C (ink = 255 − RGB) from the colour items.
///
/// The portrait frame is the landscape layout turned 90° counter-clockwise, portrait (x, y) =
/// landscape (1015 − y, x): Evolis's own library turns a portrait image half a turn on its way to
/// the printer (see `devices::evolis::raster`), so this frame prints the same card as handing it
/// the landscape image, with the layout's top along the card's top edge.
pub fn card_panels(scene: &Scene) -> Result<CardPanels, RenderError> {
    let k = rotate_ccw_1(&to_bitmap1(&rasterize(scene, CARD_DPI, Some(Ink::K))?));
    let colour = rasterize(scene, CARD_DPI, Some(Ink::Colour))?;
    let (w, h) = (colour.width(), colour.height());
    let mut planes = [Vec::new(), Vec::new(), Vec::new()];
    for px in colour.pixels() {
        planes[0].push(255 - px.blue());
        planes[1].push(255 - px.green());
        planes[2].push(255 - px.red());
    }
    let [y, m, c] = planes.map(|data| rotate_ccw_8(&Plane8 { width: w, height: h, data }));
    Ok(CardPanels { y, m, c, k })
}

/// PNG of a 1-bit bitmap (for looking at what the printer gets).
pub fn bitmap1_png(b: &Bitmap1) -> Result<Vec<u8>, RenderError> {
    let mut pm =
        Pixmap::new(b.width, b.height).ok_or(RenderError::BitmapSize { width: b.width, height: b.height })?;
    for (i, px) in pm.data_mut().chunks_exact_mut(4).enumerate() {
        let (x, y) = ((i % b.width as usize) as u32, (i / b.width as usize) as u32);
        let v = if b.get(x, y) { 0 } else { 255 };
        px.copy_from_slice(&[v, v, v, 255]);
    }
    pm.encode_png().map_err(|e| RenderError::Png(e.to_string()))
}

/// PNG of the whole scene in colour at `dpi` (the preview a person looks at).
pub fn preview_png(scene: &Scene, dpi: f32) -> Result<Vec<u8>, RenderError> {
    rasterize(scene, dpi, None)?.encode_png().map_err(|e| RenderError::Png(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_bits_are_msb_first() {
        let mut pm = Pixmap::new(10, 2).unwrap();
        pm.fill(tiny_skia::Color::WHITE);
        pm.fill_rect(
            Rect::from_xywh(0.0, 0.0, 1.0, 1.0).unwrap(),
            &paint(Rgb::BLACK),
            Transform::identity(),
            None,
        );
        pm.fill_rect(
            Rect::from_xywh(9.0, 1.0, 1.0, 1.0).unwrap(),
            &paint(Rgb::BLACK),
            Transform::identity(),
            None,
        );
        let b = to_bitmap1(&pm);
        assert_eq!(b.stride(), 2);
        assert_eq!(b.data, vec![0x80, 0x00, 0x00, 0x40]);
        let r = rotate_cw_1(&b);
        assert_eq!((r.width, r.height), (2, 10));
        // Landscape top-left goes to the portrait top-right.
        assert!(r.get(1, 0));
        assert!(r.get(0, 9));
        assert_eq!(r.black_pixels(), 2);
    }

    /// The card frame: portrait (x, y) = landscape (W − 1 − y, x), for bits and ink planes.
    #[test]
    fn counter_clockwise_turn_of_one_pixel() {
        let mut b = Bitmap1::blank(10, 4);
        b.set(2, 1, true);
        let r = rotate_ccw_1(&b);
        assert_eq!((r.width, r.height), (4, 10));
        assert!(r.get(1, 7), "landscape (2, 1) → portrait (1, 10 − 1 − 2)");
        assert_eq!(r.black_pixels(), 1);
        let mut data = vec![0u8; 40];
        data[10 + 2] = 200;
        let p = rotate_ccw_8(&Plane8 { width: 10, height: 4, data });
        assert_eq!((p.width, p.height), (4, 10));
        assert_eq!(p.data[7 * 4 + 1], 200);
    }
}
