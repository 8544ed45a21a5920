//! Text layout: UAX #9 bidi (unicode-bidi) → rustybuzz shaping per visual run → positioned glyphs,
//! and fitting text into boxes (shrink to fit, then wrap, else a clear error; never silent overflow).

use std::collections::HashSet;

use unicode_bidi::{BidiInfo, Level};

use super::RenderError;
use super::font::Font;

/// Points to millimetres.
pub const MM_PER_PT: f32 = 25.4 / 72.0;

/// Base direction of a paragraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Right to left (Arabic text; start = right edge).
    Rtl,
    /// Left to right (Latin text; start = left edge).
    Ltr,
}

/// Horizontal alignment inside a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// The paragraph's start edge: right for RTL, left for LTR.
    Start,
    /// Centred.
    Center,
    /// The paragraph's end edge.
    End,
}

/// One positioned glyph, in font units relative to the line's left end and baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct PosGlyph {
    /// Glyph id in the Amiri font.
    pub gid: u16,
    /// Left edge of the glyph's pen position plus its offset, font units.
    pub x: f32,
    /// Vertical offset (up positive), font units.
    pub y: f32,
    /// The logical text this glyph stands for (its whole cluster, e.g. both letters of lam-alef),
    /// empty for the second and later glyphs of a cluster; used for PDF ToUnicode.
    pub text: String,
    /// Byte offset of the cluster in the logical line, for emitting glyphs in logical order.
    pub logical: usize,
    /// Pen advance after this glyph as shaped (kerning included), font units. It can differ from
    /// the font's own advance; the PDF backend tells readers so that words stay whole.
    pub advance: f32,
}

/// A shaped line in visual order (left to right).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShapedLine {
    /// Glyphs in visual order.
    pub glyphs: Vec<PosGlyph>,
    /// Total advance, font units.
    pub width: f32,
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks every character has a glyph (bidi controls excepted), naming `field` in the error.
pub fn check_coverage(font: &Font, field: &str, text: &str) -> Result<(), RenderError> {
    for ch in text.chars() {
        if is_bidi_control(ch) || ch == '\n' {
            continue;
        }
        if !font.has_glyph(ch) {
            return Err(RenderError::MissingGlyph {
                field: field.to_owned(),
                ch,
                code: ch as u32,
                text: text.to_owned(),
            });
        }
    }
    Ok(())
}

/// Shapes one line of logical text with base direction `dir`: bidi visual runs, each shaped by
/// rustybuzz (joining forms, ligatures, mirroring of `( )` in RTL runs).
pub fn shape_line(font: &Font, text: &str, dir: Dir) -> ShapedLine {
    let mut line = ShapedLine::default();
    if text.is_empty() {
        return line;
    }
    let level = match dir {
        Dir::Rtl => Level::rtl(),
        Dir::Ltr => Level::ltr(),
    };
    let bidi = BidiInfo::new(text, Some(level));
    let mut assigned: HashSet<usize> = HashSet::new();
    for para in &bidi.paragraphs {
        let (levels, runs) = bidi.visual_runs(para, para.range.clone());
        for run in runs {
            let sub = &text[run.clone()];
            let rtl = levels.get(run.start).is_some_and(|l| l.is_rtl());
            let mut buf = rustybuzz::UnicodeBuffer::new();
            buf.push_str(sub);
            buf.guess_segment_properties();
            buf.set_direction(if rtl {
                rustybuzz::Direction::RightToLeft
            } else {
                rustybuzz::Direction::LeftToRight
            });
            buf.set_cluster_level(rustybuzz::BufferClusterLevel::MonotoneCharacters);
            let out = rustybuzz::shape(font.face(), &[], buf);
            let mut starts: Vec<usize> = out.glyph_infos().iter().map(|g| g.cluster as usize).collect();
            starts.sort_unstable();
            starts.dedup();
            for (info, pos) in out.glyph_infos().iter().zip(out.glyph_positions()) {
                let c = info.cluster as usize;
                let end = starts.iter().copied().find(|&s| s > c).unwrap_or(sub.len());
                let cluster: String =
                    sub.get(c..end).unwrap_or("").chars().filter(|&ch| !is_bidi_control(ch)).collect();
                if cluster.is_empty() {
                    // A bidi control: it steers the order and is never drawn.
                    continue;
                }
                let logical = run.start + c;
                let text = if assigned.insert(logical) { cluster } else { String::new() };
                line.glyphs.push(PosGlyph {
                    gid: info.glyph_id as u16,
                    x: line.width + pos.x_offset as f32,
                    y: pos.y_offset as f32,
                    text,
                    logical,
                    advance: pos.x_advance as f32,
                });
                line.width += pos.x_advance as f32;
            }
        }
    }
    line
}

/// How a text box is styled and how far it may shrink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextStyle {
    /// Preferred size, points.
    pub size_pt: f32,
    /// Smallest size the text may shrink to, points.
    pub min_size_pt: f32,
    /// Base direction.
    pub dir: Dir,
    /// Horizontal alignment.
    pub align: Align,
    /// Most lines wrapping may produce.
    pub max_lines: usize,
}

impl TextStyle {
    /// Arabic, right-aligned, one or two lines, shrinking to 70 % of `size_pt`.
    pub fn ar(size_pt: f32) -> Self {
        TextStyle { size_pt, min_size_pt: size_pt * 0.7, dir: Dir::Rtl, align: Align::Start, max_lines: 2 }
    }
    /// Latin, left-aligned, one or two lines, shrinking to 70 % of `size_pt`.
    pub fn latin(size_pt: f32) -> Self {
        TextStyle { size_pt, min_size_pt: size_pt * 0.7, dir: Dir::Ltr, align: Align::Start, max_lines: 2 }
    }
    /// The same style with another alignment.
    pub fn align(mut self, align: Align) -> Self {
        self.align = align;
        self
    }
    /// The same style limited to `n` lines.
    pub fn lines(mut self, n: usize) -> Self {
        self.max_lines = n.max(1);
        self
    }
}

/// Line height as a multiple of the font size.
pub const LINE_HEIGHT_EM: f32 = 1.45;
/// Baseline position below the top of a line, as a multiple of the font size.
pub const BASELINE_EM: f32 = 1.0;

/// Text fitted into a box: lines already shaped, with their chosen size and placement.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedText {
    /// Chosen size, millimetres per em.
    pub size_mm: f32,
    /// Lines with the x of their left end (mm) and baseline y (mm).
    pub lines: Vec<(f32, f32, ShapedLine)>,
}

/// Fits `text` into the box `(x, y, w, h)` (mm): first on one line shrinking from `size_pt` down to
/// `min_size_pt`, then wrapped at spaces over up to `max_lines` lines, again shrinking. Text that fits
/// in no way is an error naming `field`, never drawn outside the box.
pub fn fit(
    font: &Font,
    field: &str,
    text: &str,
    rect: (f32, f32, f32, f32),
    style: &TextStyle,
) -> Result<FittedText, RenderError> {
    check_coverage(font, field, text)?;
    let (x, y, w, h) = rect;
    let upem = font.units_per_em();
    // Sizes below 1 pt are never useful and would make the shrinking loop endless.
    let min_pt = style.min_size_pt.max(1.0);
    let sizes: Vec<f32> = {
        let mut v = Vec::new();
        let mut s = style.size_pt.max(min_pt);
        while s >= min_pt - 1e-3 {
            v.push(s);
            s *= 0.95;
        }
        if v.last().is_none_or(|&l| l > min_pt) {
            v.push(min_pt);
        }
        v
    };
    let whole = shape_line(font, text, style.dir);
    let mut candidate: Option<(f32, Vec<ShapedLine>)> = None;
    for &pt in &sizes {
        let size_mm = pt * MM_PER_PT;
        if whole.width / upem * size_mm <= w && size_mm * LINE_HEIGHT_EM <= h + 1e-3 {
            candidate = Some((size_mm, vec![whole.clone()]));
            break;
        }
    }
    if candidate.is_none() && style.max_lines > 1 {
        let words: Vec<&str> = text.split(' ').filter(|s| !s.is_empty()).collect();
        'sizes: for &pt in &sizes {
            let size_mm = pt * MM_PER_PT;
            let max_w = w / size_mm * upem;
            let mut lines: Vec<ShapedLine> = Vec::new();
            let mut current = String::new();
            for word in &words {
                let trial = if current.is_empty() { (*word).to_owned() } else { format!("{current} {word}") };
                let shaped = shape_line(font, &trial, style.dir);
                if shaped.width <= max_w {
                    current = trial;
                } else if current.is_empty() {
                    continue 'sizes; // one word alone is too wide at this size
                } else {
                    lines.push(shape_line(font, &current, style.dir));
                    current = (*word).to_owned();
                    if shape_line(font, &current, style.dir).width > max_w {
                        continue 'sizes;
                    }
                }
            }
            if !current.is_empty() {
                lines.push(shape_line(font, &current, style.dir));
            }
            if lines.len() <= style.max_lines && lines.len() as f32 * size_mm * LINE_HEIGHT_EM <= h + 1e-3 {
                candidate = Some((size_mm, lines));
                break;
            }
        }
    }
    let Some((size_mm, lines)) = candidate else {
        return Err(RenderError::TextOverflow {
            field: field.to_owned(),
            text: text.to_owned(),
            width_mm: w,
            height_mm: h,
            min_pt: style.min_size_pt,
            max_lines: style.max_lines,
        });
    };
    let lh = size_mm * LINE_HEIGHT_EM;
    let top = y + (h - lh * lines.len() as f32) / 2.0;
    let placed = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let lw = line.width / upem * size_mm;
            let lx = match (style.align, style.dir) {
                (Align::Center, _) => x + (w - lw) / 2.0,
                (Align::Start, Dir::Rtl) | (Align::End, Dir::Ltr) => x + w - lw,
                (Align::Start, Dir::Ltr) | (Align::End, Dir::Rtl) => x,
            };
            (lx, top + lh * i as f32 + size_mm * BASELINE_EM, line)
        })
        .collect();
    Ok(FittedText { size_mm, lines: placed })
}

/// The text of a shaped line in logical order, as a PDF reader gets it through ToUnicode.
pub fn logical_text(line: &ShapedLine) -> String {
    let mut glyphs: Vec<&PosGlyph> = line.glyphs.iter().collect();
    glyphs.sort_by_key(|g| g.logical);
    glyphs.iter().map(|g| g.text.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> &'static Font {
        Font::amiri().unwrap()
    }

    /// The visual (left-to-right) sequence of cluster texts.
    fn visual(text: &str, dir: Dir) -> Vec<String> {
        shape_line(font(), text, dir)
            .glyphs
            .into_iter()
            .filter(|g| !g.text.is_empty())
            .map(|g| g.text)
            .collect()
    }

    #[test]
    fn arabic_is_laid_out_right_to_left_and_joined() {
        let line = shape_line(font(), "رخصة", Dir::Rtl);
        // Visual order is the reverse of logical order.
        let v: String = visual("رخصة", Dir::Rtl).concat();
        assert_eq!(v, "ةصخر");
        // Joining: the medial khah is not the isolated form's glyph.
        let isolated = shape_line(font(), "خ", Dir::Rtl).glyphs[0].gid;
        assert!(line.glyphs.iter().all(|g| g.gid != isolated));
        assert_eq!(logical_text(&line), "رخصة");
    }

    #[test]
    fn lam_alef_is_ligated_or_contextual() {
        let ligated = shape_line(font(), "لا", Dir::Rtl);
        let lam_alone = shape_line(font(), "ل", Dir::Rtl).glyphs[0].gid;
        let alef_alone = shape_line(font(), "ا", Dir::Rtl).glyphs[0].gid;
        assert!(ligated.glyphs.iter().all(|g| g.gid != lam_alone && g.gid != alef_alone));
        assert_eq!(logical_text(&ligated), "لا");
    }

    #[test]
    fn number_inside_arabic_stays_left_to_right() {
        let v = visual("سعر 125 جنيه", Dir::Rtl);
        let digits: String = v.iter().filter(|t| t.chars().all(|c| c.is_ascii_digit())).cloned().collect();
        assert_eq!(digits, "125");
        // The number sits between the two Arabic words, which are reversed around it.
        let s = v.concat();
        assert!(s.starts_with("هينج"), "{s}");
        assert!(s.ends_with("رعس"), "{s}");
    }

    #[test]
    fn licence_number_with_hyphen_keeps_its_order() {
        // Bare, UAX #9 splits it around the hyphen (this is why documents wrap numbers in isolates).
        let bare = visual("رقم الرخصة 1234-567", Dir::Rtl).concat();
        assert!(bare.starts_with("567-1234 "), "{bare}");
        let isolated = visual(&format!("رقم الرخصة {}", super::super::ltr("1234-567")), Dir::Rtl).concat();
        assert!(isolated.starts_with("1234-567 "), "{isolated}");
    }

    #[test]
    fn parentheses_are_mirrored_in_rtl() {
        let line = shape_line(font(), "(ملاكي)", Dir::Rtl);
        let open = font().face().glyph_index('(').unwrap().0;
        let close = font().face().glyph_index(')').unwrap().0;
        // Leftmost glyph on screen is the logical closing parenthesis drawn as "(".
        assert_eq!(line.glyphs.first().unwrap().gid, open);
        assert_eq!(line.glyphs.first().unwrap().text, ")");
        assert_eq!(line.glyphs.last().unwrap().gid, close);
        assert_eq!(logical_text(&line), "(ملاكي)");
    }

    #[test]
    fn latin_name_inside_arabic_reads_left_to_right() {
        let s = visual(&format!("الاسم {}", super::super::ltr("Ahmed Ali")), Dir::Rtl).concat();
        assert!(s.starts_with("Ahmed Ali"), "{s}");
    }

    #[test]
    fn eastern_digits_stay_in_order() {
        // Dates are written DD/MM/YYYY: `/` is a common separator, so the date stays one number.
        let text = format!("ينتهي {}", super::super::Digits::Eastern.apply("14/05/2031"));
        let s = visual(&text, Dir::Rtl).concat();
        assert!(s.starts_with("١٤/٠٥/٢٠٣١ "), "{s}");
        // Hyphens between Arabic-Indic digits are neutral: the parts read right to left.
        let hy =
            visual(&super::super::ltr(&super::super::Digits::Eastern.apply("2031-05-14")), Dir::Rtl).concat();
        assert_eq!(hy, "١٤-٠٥-٢٠٣١");
    }

    #[test]
    fn missing_glyph_is_an_error_naming_the_field() {
        let err = check_coverage(font(), "name_ar", "محمد 😀").unwrap_err();
        assert!(matches!(err, RenderError::MissingGlyph { ch: '😀', .. }), "{err}");
        assert!(err.to_string().contains("name_ar"));
        let cjk = check_coverage(font(), "name_ar", "名").unwrap_err();
        assert!(cjk.to_string().contains("U+540D"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}", w in 0.0f32..80.0, size in -5.0f32..20.0) {
            let style = TextStyle { size_pt: size, min_size_pt: size * 0.5, ..TextStyle::ar(8.0) };
            if let Ok(f) = fit(font(), "f", &text, (0.0, 0.0, w, 10.0), &style) {
                for (x, _, line) in &f.lines {
                    proptest::prop_assert!(*x >= -1e-3);
                    proptest::prop_assert!(line.width / font().units_per_em() * f.size_mm <= w + 1e-3);
                }
            }
        }
    }

    #[test]
    fn long_text_shrinks_then_wraps_then_errors() {
        let style = TextStyle::ar(10.0);
        let short = fit(font(), "f", "محمد", (0.0, 0.0, 40.0, 10.0), &style).unwrap();
        assert!((short.size_mm - 10.0 * MM_PER_PT).abs() < 1e-4);
        let long = "محمد عبد الرحمن السيد أحمد";
        let shrunk = fit(font(), "f", long, (0.0, 0.0, 30.0, 6.0), &style.lines(1));
        if let Ok(f) = &shrunk {
            assert!(f.size_mm < 10.0 * MM_PER_PT);
            let w = f.lines[0].2.width / font().units_per_em() * f.size_mm;
            assert!(w <= 30.0);
        }
        let wrapped = fit(font(), "f", long, (0.0, 0.0, 18.0, 12.0), &style).unwrap();
        assert_eq!(wrapped.lines.len(), 2);
        assert_eq!(wrapped.lines.iter().map(|l| logical_text(&l.2)).collect::<Vec<_>>().join(" "), long);
        for (x, _, line) in &wrapped.lines {
            assert!(*x >= -1e-3);
            assert!(line.width / font().units_per_em() * wrapped.size_mm <= 18.0 + 1e-3);
        }
        let err = fit(font(), "name_ar", &long.repeat(4), (0.0, 0.0, 25.0, 12.0), &style).unwrap_err();
        assert!(matches!(err, RenderError::TextOverflow { .. }), "{err}");
    }
}
