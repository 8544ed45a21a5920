//! PDF backend: the scene's shaped glyph runs placed by glyph id (`Tm` + `Tj`), with Amiri subset to
//! the glyphs used (subsetter) and each glyph's ToUnicode entry set to its whole cluster text.
//!
//! Glyphs are written in logical order (each with its own text matrix), so a reader extracting text
//! in content order gets the logical Arabic string, while the positions draw it in visual order.

use std::collections::{BTreeMap, HashMap};

use printpdf::{
    Codepoint, Color, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Polygon, PolygonRing, Pt, RawImage, RawImageData, RawImageFormat, TextItem,
    TextMatrix, WindingOrder, XObjectTransform,
};

use super::RenderError;
use super::font::{AMIRI_TTF, Font};
use super::scene::{Item, Rgb, Scene};

const PT_PER_MM: f32 = 72.0 / 25.4;

fn colour(c: Rgb) -> Color {
    Color::Rgb(printpdf::Rgb {
        r: f32::from(c.0) / 255.0,
        g: f32::from(c.1) / 255.0,
        b: f32::from(c.2) / 255.0,
        icc_profile: None,
    })
}

fn ring(points: [(f32, f32); 4]) -> PolygonRing {
    PolygonRing {
        points: points
            .iter()
            .map(|&(x, y)| LinePoint { p: Point { x: Pt(x), y: Pt(y) }, bezier: false })
            .collect(),
    }
}

/// A rectangle in mm (top-left origin) as a PDF ring in points (bottom-left origin).
fn rect_ring(page_h: f32, x: f32, y: f32, w: f32, h: f32) -> PolygonRing {
    let (x0, x1) = (x * PT_PER_MM, (x + w) * PT_PER_MM);
    let (y0, y1) = ((page_h - y - h) * PT_PER_MM, (page_h - y) * PT_PER_MM);
    ring([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
}

fn fill(rings: Vec<PolygonRing>) -> Op {
    Op::DrawPolygon {
        polygon: Polygon { rings, mode: PaintMode::Fill, winding_order: WindingOrder::NonZero },
    }
}

/// Writes the scenes as pages of one PDF. The font is embedded once, subset to the glyphs used.
pub fn to_pdf(title: &str, scenes: &[Scene]) -> Result<Vec<u8>, RenderError> {
    let font = Font::amiri()?;
    let upem = font.units_per_em();
    // ToUnicode maps a glyph code to one text, but one glyph can stand for different texts (a
    // parenthesis drawn mirrored in Arabic is the logical ")" there and "(" in Latin). Each
    // (glyph, text) pair goes to the first font slot where that glyph is free or means the same;
    // conflicting pairs go to a second subset of the same font.
    let mut slots: Vec<BTreeMap<u16, String>> = vec![BTreeMap::new()];
    let mut slot_of: HashMap<(u16, String), usize> = HashMap::new();
    for scene in scenes {
        for item in &scene.items {
            if let Item::Glyphs { line, .. } = item {
                for g in &line.glyphs {
                    if slot_of.contains_key(&(g.gid, g.text.clone())) {
                        continue;
                    }
                    let i = match slots.iter().position(|m| m.get(&g.gid).is_none_or(|t| *t == g.text)) {
                        Some(i) => i,
                        None => {
                            slots.push(BTreeMap::new());
                            slots.len() - 1
                        }
                    };
                    slots[i].insert(g.gid, g.text.clone());
                    slot_of.insert((g.gid, g.text.clone()), i);
                }
            }
        }
    }
    let mut doc = PdfDocument::new(title);
    let mut fonts = Vec::new();
    for glyphs in &slots {
        let mut remapper = subsetter::GlyphRemapper::new();
        for &gid in glyphs.keys() {
            remapper.remap(gid);
        }
        // A subset keeps the receipt small; if subsetting fails, the whole font is the defined fallback.
        let (program, subset) = match subsetter::subset(AMIRI_TTF, 0, &remapper) {
            Ok(bytes) => (bytes, true),
            Err(_) => (AMIRI_TTF.to_vec(), false),
        };
        let mut warnings = Vec::new();
        let parsed = ParsedFont::from_bytes(&program, 0, &mut warnings).ok_or(RenderError::FontUnusable)?;
        fonts.push((doc.add_font(&parsed), remapper, subset));
    }
    let code = |slot: usize, gid: u16| {
        let (_, remapper, subset) = &fonts[slot];
        if *subset { remapper.get(gid).unwrap_or(0) } else { gid }
    };
    let mut pages = Vec::new();
    for scene in scenes {
        let ph = scene.height;
        let mut ops = Vec::new();
        for item in &scene.items {
            match item {
                Item::Glyphs { x, baseline, size_mm, line, colour: c, .. } => {
                    ops.push(Op::SetFillColor { col: colour(*c) });
                    ops.push(Op::StartTextSection);
                    let mut order: Vec<usize> = (0..line.glyphs.len()).collect();
                    order.sort_by_key(|&i| line.glyphs[i].logical);
                    let mut current = usize::MAX;
                    for i in order {
                        let g = &line.glyphs[i];
                        let slot = slot_of.get(&(g.gid, g.text.clone())).copied().unwrap_or(0);
                        if slot != current {
                            ops.push(Op::SetFont {
                                font: PdfFontHandle::External(fonts[slot].0.clone()),
                                size: Pt(size_mm * PT_PER_MM),
                            });
                            current = slot;
                        }
                        let gx = (x + g.x * size_mm / upem) * PT_PER_MM;
                        let gy = (ph - baseline + g.y * size_mm / upem) * PT_PER_MM;
                        ops.push(Op::SetTextMatrix { matrix: TextMatrix::Raw([1.0, 0.0, 0.0, 1.0, gx, gy]) });
                        ops.push(Op::ShowText {
                            items: vec![TextItem::GlyphIds(vec![Codepoint::with_cid(
                                code(slot, g.gid),
                                0.0,
                                g.text.clone(),
                            )])],
                        });
                    }
                    ops.push(Op::EndTextSection);
                }
                Item::Rect { x, y, w, h, colour: c, .. } => {
                    ops.push(Op::SetFillColor { col: colour(*c) });
                    ops.push(fill(vec![rect_ring(ph, *x, *y, *w, *h)]));
                }
                Item::Qr { x, y, size, width, modules } => {
                    if *width == 0 {
                        continue;
                    }
                    let m = size / *width as f32;
                    // One rectangle per horizontal run of dark modules keeps the page small and fast.
                    let mut rings = Vec::new();
                    for (row, cells) in modules.chunks(*width).enumerate() {
                        let mut col = 0;
                        while col < cells.len() {
                            if !cells[col] {
                                col += 1;
                                continue;
                            }
                            let start = col;
                            while col < cells.len() && cells[col] {
                                col += 1;
                            }
                            let (rx, ry) = (x + start as f32 * m, y + row as f32 * m);
                            rings.push(rect_ring(ph, rx, ry, (col - start) as f32 * m, m));
                        }
                    }
                    ops.push(Op::SetFillColor { col: colour(Rgb::BLACK) });
                    ops.push(fill(rings));
                }
                Item::Image { x, y, w, h, photo } => {
                    let raw = RawImage {
                        pixels: RawImageData::U8(photo.rgb.clone()),
                        width: photo.width as usize,
                        height: photo.height as usize,
                        data_format: RawImageFormat::RGB8,
                        tag: Vec::new(),
                    };
                    let id = doc.add_image(&raw);
                    ops.push(Op::UseXobject {
                        id,
                        transform: XObjectTransform {
                            translate_x: Some(Pt(x * PT_PER_MM)),
                            translate_y: Some(Pt((ph - y - h) * PT_PER_MM)),
                            rotate: None,
                            scale_x: Some(w * PT_PER_MM / photo.width as f32),
                            scale_y: Some(h * PT_PER_MM / photo.height as f32),
                            dpi: Some(72.0),
                            no_auto_scale: false,
                        },
                    });
                }
            }
        }
        pages.push(PdfPage::new(Mm(scene.width), Mm(ph), ops));
    }
    let opts = PdfSaveOptions { subset_fonts: false, image_optimization: None, ..PdfSaveOptions::default() };
    let mut save_warnings = Vec::new();
    Ok(doc.with_pages(pages).save(&opts, &mut save_warnings))
}
