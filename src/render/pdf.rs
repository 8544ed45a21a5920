//! PDF backend: the scene's shaped glyph runs placed by glyph id (`Tm` + `Tj`), with Amiri subset to
//! the glyphs used (subsetter) and every glyph given a ToUnicode entry.
//!
//! Glyphs are written in logical order (each with its own text matrix), so a reader extracting text
//! in content order gets the logical Arabic string, while the positions draw it in visual order.
//! Three details keep extraction exact in readers such as poppler:
//! - a cluster drawn with several glyphs (Amiri draws some lams as a lam and a kashida piece) is
//!   wrapped in a `/Span` with `/ActualText` holding the cluster's text; each of its glyphs still
//!   maps to the character it draws;
//! - each glyph's width in the font's `/W` array reaches from where it is drawn to where the next
//!   glyph is drawn (kerning and cursive offsets included), so a reader's glyph boxes tile a word
//!   without gaps and it inserts no false spaces; a glyph used with two widths goes to a second
//!   subset, like a glyph with two meanings;
//! - the document information says who made the file and when, claims no PDF/X conformance, and
//!   subset fonts carry the `ABCDEF+` tag (a post-pass over printpdf's output with lopdf).

use std::collections::{BTreeMap, HashMap};

use printpdf::{
    Codepoint, Color, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Polygon, PolygonRing, Pt, RawImage, RawImageData, RawImageFormat, TextItem,
    TextMatrix, WindingOrder, XObjectTransform,
};

use super::RenderError;
use super::font::{AMIRI_TTF, Font};
use super::scene::{Item, Rgb, Scene};
use super::text::ShapedLine;
use sha2::{Digest, Sha256};

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

/// Who made a PDF and when: written into its document information dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfInfo {
    /// Document title (e.g. `receipt-80mm`).
    pub title: String,
    /// The application that made the document, e.g. `vanctl render (mtu 0.1.0)`.
    pub creator: String,
    /// When the document was made.
    pub created: jiff::Timestamp,
}

/// The `Producer` of every PDF we write.
pub const PRODUCER: &str = concat!("mtu ", env!("CARGO_PKG_VERSION"), " documents (printpdf 0.12.8)");

/// The text each glyph of a line maps to in ToUnicode: its cluster's text for the glyph that
/// carries it, and for the other glyphs of a cluster the character they draw (or, lacking one, the
/// cluster's text). Never empty.
fn glyph_texts(font: &Font, line: &ShapedLine) -> Vec<String> {
    line.glyphs
        .iter()
        .map(|g| {
            if !g.text.is_empty() {
                return g.text.clone();
            }
            if let Some(ch) = font.char_of(g.gid) {
                return ch.to_string();
            }
            line.glyphs
                .iter()
                .find(|o| o.logical == g.logical && !o.text.is_empty())
                .map_or_else(|| "\u{FFFD}".to_owned(), |o| o.text.clone())
        })
        .collect()
}

/// The width each glyph of a line gets in /W, font units: from where it is drawn to where the next
/// spacing glyph is drawn (the line's end for the last), so the boxes a reader computes tile the
/// line as shaped, kerning and cursive offsets included. A mark (no advance) reaches to the next
/// letter too, so a reader finds no gap between it and its neighbours.
fn box_widths(line: &ShapedLine) -> Vec<i32> {
    let g = &line.glyphs;
    (0..g.len())
        .map(|i| {
            let end = g[i + 1..].iter().find(|n| n.advance != 0.0).map_or(line.width, |n| n.x);
            (end - g[i].x).round().max(0.0) as i32
        })
        .collect()
}

/// A `/Span << /ActualText (…) >> BDC`: readers extract `text` for the glyphs up to the `EMC`.
fn actual_text(text: &str) -> Op {
    let mut data = vec![0xFE, 0xFF];
    for u in text.encode_utf16() {
        data.extend_from_slice(&u.to_be_bytes());
    }
    let mut map = BTreeMap::new();
    map.insert("ActualText".to_owned(), printpdf::DictItem::String { data, literal: false });
    Op::BeginMarkedContentWithProperties {
        tag: "Span".to_owned(),
        properties: printpdf::DictItem::Dict { map },
    }
}

/// Writes the scenes as pages of one PDF. The font is embedded once, subset to the glyphs used.
pub fn to_pdf(info: &PdfInfo, scenes: &[Scene]) -> Result<Vec<u8>, RenderError> {
    let font = Font::amiri()?;
    let upem = font.units_per_em();
    // ToUnicode maps a glyph code to one text and /W to one width, but one glyph can stand for
    // different texts (a parenthesis drawn mirrored in Arabic is the logical ")" there and "(" in
    // Latin) and be kerned differently in different words. Each (glyph, text, advance) goes to the
    // first font slot where that glyph is free or the same; others go to a further subset.
    type Use = (String, i32);
    let mut slots: Vec<BTreeMap<u16, Use>> = vec![BTreeMap::new()];
    let mut slot_of: HashMap<(u16, Use), usize> = HashMap::new();
    let mut texts_of: Vec<Vec<Vec<Use>>> = Vec::with_capacity(scenes.len());
    for scene in scenes {
        let mut per_item = Vec::new();
        for item in &scene.items {
            let Item::Glyphs { line, .. } = item else {
                per_item.push(Vec::new());
                continue;
            };
            let uses: Vec<Use> = glyph_texts(font, line).into_iter().zip(box_widths(line)).collect();
            for (g, u) in line.glyphs.iter().zip(&uses) {
                if slot_of.contains_key(&(g.gid, u.clone())) {
                    continue;
                }
                let i = match slots.iter().position(|m| m.get(&g.gid).is_none_or(|t| t == u)) {
                    Some(i) => i,
                    None => {
                        slots.push(BTreeMap::new());
                        slots.len() - 1
                    }
                };
                slots[i].insert(g.gid, u.clone());
                slot_of.insert((g.gid, u.clone()), i);
            }
            per_item.push(uses);
        }
        texts_of.push(per_item);
    }
    let mut doc = PdfDocument::new(&info.title);
    let mut fonts = Vec::new();
    let mut font_tags = Vec::new();
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
        let id = doc.add_font(&parsed);
        let widths = glyphs
            .iter()
            .map(|(&gid, (_, adv))| {
                let code = if subset { remapper.get(gid).unwrap_or(0) } else { gid };
                (code, *adv as f32 * 1000.0 / upem)
            })
            .collect();
        font_tags.push(FontMeta { id: id.0.clone(), tag: subset.then(|| subset_tag(glyphs)), widths });
        fonts.push((id, remapper, subset));
    }
    let code = |slot: usize, gid: u16| {
        let (_, remapper, subset) = &fonts[slot];
        if *subset { remapper.get(gid).unwrap_or(0) } else { gid }
    };
    let mut pages = Vec::new();
    for (scene, item_texts) in scenes.iter().zip(&texts_of) {
        let ph = scene.height;
        let mut ops = Vec::new();
        for (item, texts) in scene.items.iter().zip(item_texts) {
            match item {
                Item::Glyphs { x, baseline, size_mm, line, colour: c, .. } => {
                    ops.push(Op::SetFillColor { col: colour(*c) });
                    ops.push(Op::StartTextSection);
                    let mut order: Vec<usize> = (0..line.glyphs.len()).collect();
                    order.sort_by_key(|&i| line.glyphs[i].logical);
                    let size_pt = size_mm * PT_PER_MM;
                    let mut current = usize::MAX;
                    let mut span_open = false;
                    for (k, &i) in order.iter().enumerate() {
                        let g = &line.glyphs[i];
                        let text = &texts[i].0;
                        let first_of_cluster = k == 0 || line.glyphs[order[k - 1]].logical != g.logical;
                        let last_of_cluster =
                            order.get(k + 1).is_none_or(|&n| line.glyphs[n].logical != g.logical);
                        if first_of_cluster && !last_of_cluster {
                            let cluster = line
                                .glyphs
                                .iter()
                                .find(|o| o.logical == g.logical && !o.text.is_empty())
                                .map_or(text.as_str(), |o| o.text.as_str());
                            ops.push(actual_text(cluster));
                            span_open = true;
                        }
                        let slot = slot_of.get(&(g.gid, texts[i].clone())).copied().unwrap_or(0);
                        if slot != current {
                            ops.push(Op::SetFont {
                                font: PdfFontHandle::External(fonts[slot].0.clone()),
                                size: Pt(size_pt),
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
                                text.clone(),
                            )])],
                        });
                        if last_of_cluster && span_open {
                            ops.push(Op::EndMarkedContent);
                            span_open = false;
                        }
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
    let raw = doc.with_pages(pages).save(&opts, &mut save_warnings);
    finish(&raw, info, &font_tags)
}

/// What the post-pass needs to know of each embedded font.
struct FontMeta {
    /// printpdf's id: the font's resource name and its placeholder /BaseFont.
    id: String,
    /// Subset tag, if the font was subset.
    tag: Option<String>,
    /// Glyph code → width in /W units (1/1000 em), from [`box_widths`].
    widths: BTreeMap<u16, f32>,
}

fn number(o: &lopdf::Object) -> Option<f32> {
    o.as_float().ok().or_else(|| o.as_i64().ok().map(|v| v as f32))
}

/// A /W array (`c [w1 w2 …]` or `c1 c2 w`) as code → width.
fn read_widths(w: &lopdf::Object) -> BTreeMap<u16, f32> {
    let mut out = BTreeMap::new();
    let Ok(items) = w.as_array() else { return out };
    let mut i = 0;
    while i < items.len() {
        let Ok(first) = items[i].as_i64() else { break };
        match items.get(i + 1) {
            Some(lopdf::Object::Array(ws)) => {
                for (k, w) in ws.iter().enumerate() {
                    if let (Ok(c), Some(w)) = (u16::try_from(first + k as i64), number(w)) {
                        out.insert(c, w);
                    }
                }
                i += 2;
            }
            Some(last) => {
                let (Ok(last), Some(w)) = (last.as_i64(), items.get(i + 2).and_then(number)) else { break };
                for c in first..=last.min(first + 65_535) {
                    if let Ok(c) = u16::try_from(c) {
                        out.insert(c, w);
                    }
                }
                i += 3;
            }
            None => break,
        }
    }
    out
}

/// Rewrites a page's text so each glyph keeps its place under the new /W widths: after a glyph
/// whose width grew by `d`, the following `TJ` adjustment grows by `d` too.
fn keep_positions(content: &mut lopdf::content::Content, deltas: &HashMap<Vec<u8>, BTreeMap<u16, f32>>) {
    use lopdf::Object;
    let mut current: Option<&BTreeMap<u16, f32>> = None;
    for op in &mut content.operations {
        match op.operator.as_str() {
            "Tf" => current = op.operands.first().and_then(|n| n.as_name().ok()).and_then(|n| deltas.get(n)),
            "TJ" | "Tj" => {
                let Some(delta) = current else { continue };
                let items: Vec<Object> = match op.operands.first() {
                    Some(Object::Array(a)) => a.clone(),
                    Some(s @ Object::String(..)) => vec![s.clone()],
                    _ => continue,
                };
                let mut out = Vec::with_capacity(items.len() * 2);
                let mut pending = 0.0f32;
                for item in items {
                    match item {
                        Object::String(bytes, format) => {
                            for code in bytes.chunks(2) {
                                if pending != 0.0 {
                                    out.push(Object::Real(pending));
                                }
                                out.push(Object::String(code.to_vec(), format));
                                let c = u16::from_be_bytes([code[0], *code.get(1).unwrap_or(&0)]);
                                pending = delta.get(&c).copied().unwrap_or(0.0);
                            }
                        }
                        other => {
                            out.push(Object::Real(number(&other).unwrap_or(0.0) + pending));
                            pending = 0.0;
                        }
                    }
                }
                op.operator = "TJ".to_owned();
                op.operands = vec![Object::Array(out)];
            }
            _ => {}
        }
    }
}

/// The `ABCDEF+` tag of a subset font (ISO 32000-1, 9.6.4): six capital letters, here derived from
/// the glyphs it holds, so the same subset always gets the same name.
fn subset_tag<T>(glyphs: &BTreeMap<u16, T>) -> String {
    let mut h = Sha256::new();
    for gid in glyphs.keys() {
        h.update(gid.to_be_bytes());
    }
    h.finalize().iter().take(6).map(|b| char::from(b'A' + b % 26)).collect()
}

/// PDF date string `D:YYYYMMDDHHmmSSZ` (UTC).
fn pdf_date(t: jiff::Timestamp) -> String {
    let d = jiff::tz::TimeZone::UTC.to_datetime(t);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn text_string(s: &str) -> lopdf::Object {
    let mut data = vec![0xFE, 0xFF];
    for u in s.encode_utf16() {
        data.extend_from_slice(&u.to_be_bytes());
    }
    lopdf::Object::String(data, lopdf::StringFormat::Hexadecimal)
}

/// Rewrites printpdf's output: an honest document information dictionary (no PDF/X claim, real
/// dates, Producer and Creator), subset tags on the fonts printpdf names by a random id, and the
/// shaped advances as glyph widths.
fn finish(raw: &[u8], info: &PdfInfo, font_tags: &[FontMeta]) -> Result<Vec<u8>, RenderError> {
    use lopdf::Object;
    let broken = |e: lopdf::Error| RenderError::Pdf(e.to_string());
    let mut doc = lopdf::Document::load_mem(raw).map_err(broken)?;
    // ActualText spans are PDF 1.5 (marked content with properties).
    doc.version = "1.5".to_owned();
    let date = Object::String(pdf_date(info.created).into_bytes(), lopdf::StringFormat::Literal);
    let mut dict = lopdf::Dictionary::new();
    dict.set("Title", text_string(&info.title));
    dict.set("Creator", text_string(&info.creator));
    dict.set("Producer", text_string(PRODUCER));
    dict.set("CreationDate", date.clone());
    dict.set("ModDate", date);
    let info_id = doc.add_object(dict);
    doc.trailer.set("Info", info_id);
    // Font names: printpdf names each font by its random id; give subsets their tag. Widths: the
    // shaped advances (remembering printpdf's, to keep every glyph where it was drawn).
    let meta_of = |name: &[u8]| {
        let name = String::from_utf8_lossy(name);
        font_tags.iter().find(|m| name.contains(m.id.as_str()))
    };
    let new_name =
        |m: &FontMeta| m.tag.as_ref().map_or("Amiri-Regular".to_owned(), |t| format!("{t}+Amiri-Regular"));
    let mut deltas: HashMap<Vec<u8>, BTreeMap<u16, f32>> = HashMap::new();
    for (_, object) in doc.objects.iter_mut() {
        let dict = match object {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &mut s.dict,
            _ => continue,
        };
        for key in [b"BaseFont".as_slice(), b"FontName".as_slice()] {
            if let Some(m) = dict.get(key).and_then(Object::as_name).ok().and_then(meta_of) {
                dict.set(key, Object::Name(new_name(m).into_bytes()));
            }
        }
        if let Ok(Object::Array(items)) = dict.get_mut(b"DescendantFonts") {
            for item in items.iter_mut() {
                let Object::Dictionary(d) = item else { continue };
                let Some(m) = d.get(b"BaseFont").and_then(Object::as_name).ok().and_then(meta_of) else {
                    continue;
                };
                d.set("BaseFont", Object::Name(new_name(m).into_bytes()));
                let old = d.get(b"W").map(read_widths).unwrap_or_default();
                let delta =
                    m.widths.iter().map(|(c, w)| (*c, w - old.get(c).copied().unwrap_or(*w))).collect();
                deltas.insert(m.id.clone().into_bytes(), delta);
                let mut w = Vec::new();
                for (c, width) in &m.widths {
                    w.push(Object::Integer(i64::from(*c)));
                    w.push(Object::Array(vec![Object::Real(*width)]));
                }
                d.set("W", Object::Array(w));
            }
        }
    }
    let pages: Vec<lopdf::ObjectId> = doc.get_pages().into_values().collect();
    for page in pages {
        let bytes = doc.get_page_content(page);
        let mut content = lopdf::content::Content::decode(&bytes).map_err(broken)?;
        keep_positions(&mut content, &deltas);
        doc.change_page_content(page, content.encode().map_err(broken)?).map_err(broken)?;
    }
    doc.prune_objects();
    doc.compress();
    let mut out = Vec::with_capacity(raw.len());
    doc.save_to(&mut out).map_err(|e| RenderError::Pdf(e.to_string()))?;
    Ok(out)
}
