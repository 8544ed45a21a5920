//! Documents in correct Arabic: one layout per document, rendered from the same shaped glyph runs to
//! PDF and to printer bitmaps.
//!
//! Pipeline: text → UAX #9 bidi ([`text`]) → rustybuzz shaping per visual run → positioned glyphs in a
//! [`scene::Scene`] (millimetres, y down) → [`pdf`] (printpdf, subset Amiri) or [`raster`]
//! (tiny-skia filling the same glyph outlines). Document layouts live in [`documents`]; the signed QR
//! payload in [`qr`].

pub mod documents;
pub mod font;
pub mod output;
pub mod pdf;
pub mod photo;
pub mod qr;
pub mod raster;
pub mod scan;
pub mod scene;
pub mod text;

/// Why a document could not be rendered. Each names the field or input a person has to fix.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The embedded font could not be parsed (a broken build, not bad input).
    #[error("embedded font Amiri-Regular.ttf cannot be parsed")]
    FontUnusable,
    /// A character has no glyph in the font: refused rather than printed as a box (tofu).
    #[error("field {field}: character {ch:?} (U+{code:04X}) has no glyph in the Amiri font; text: {text:?}")]
    MissingGlyph { field: String, ch: char, code: u32, text: String },
    /// The text does not fit its box even at the smallest allowed size, wrapped.
    #[error(
        "field {field}: text {text:?} does not fit its {width_mm:.1}×{height_mm:.1} mm box even at \
         {min_pt} pt on {max_lines} line(s); shorten it"
    )]
    TextOverflow { field: String, text: String, width_mm: f32, height_mm: f32, min_pt: f32, max_lines: usize },
    /// The photo could not be decoded.
    #[error("photo: {0}")]
    Photo(String),
    /// The QR payload is too long for a QR code.
    #[error("QR code: payload of {len} characters does not fit a QR code: {reason}")]
    Qr { len: usize, reason: String },
    /// The QR payload could not be built (a field too long for the binary layout).
    #[error("QR payload: {0}")]
    Payload(#[from] qr::PayloadError),
    /// The PDF could not be finished (printpdf's output did not read back).
    #[error("PDF output: {0}")]
    Pdf(String),
    /// The QR code would sign other facts than the document prints.
    #[error("QR code: it signs {field} {signed:?}, but the document prints {printed:?}")]
    QrMismatch { field: &'static str, signed: String, printed: String },
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
    /// A bitmap size is impossible (zero or too large).
    #[error("bitmap of {width}×{height} pixels cannot be made")]
    BitmapSize { width: u32, height: u32 },
}

/// Western (0–9) or Eastern Arabic (٠–٩) digits in printed Arabic text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digits {
    /// ASCII digits, as on current Egyptian cards' machine-readable fields.
    #[default]
    Western,
    /// Eastern Arabic digits (U+0660–U+0669) with Arabic decimal and thousands separators.
    Eastern,
}

impl Digits {
    /// Rewrites ASCII digits (and `.`/`,` between digits) in `s` for this digit style.
    pub fn apply(self, s: &str) -> String {
        match self {
            Digits::Western => s.to_owned(),
            Digits::Eastern => {
                let chars: Vec<char> = s.chars().collect();
                let mut out = String::with_capacity(s.len() * 2);
                for (i, &c) in chars.iter().enumerate() {
                    let between_digits = i > 0
                        && chars[i - 1].is_ascii_digit()
                        && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                    match c {
                        '0'..='9' => out.push(char::from_u32(0x0660 + (c as u32 - '0' as u32)).unwrap_or(c)),
                        '.' if between_digits => out.push('\u{066B}'),
                        ',' if between_digits => out.push('\u{066C}'),
                        _ => out.push(c),
                    }
                }
                out
            }
        }
    }
}

/// Wraps `s` in a left-to-right isolate (LRI … PDI) so numbers, licence numbers and Latin names keep
/// their internal order inside Arabic text (UAX #9).
pub fn ltr(s: &str) -> String {
    format!("\u{2066}{s}\u{2069}")
}

/// Formats integer piastres as Egyptian pounds, e.g. `12345` → `123.45 EGP` (`1,234.50 EGP` with
/// thousands), in the requested digit style and wrapped in an LTR isolate.
pub fn format_egp(piastres: u64, digits: Digits) -> String {
    let pounds = piastres / 100;
    let pt = piastres % 100;
    let raw = pounds.to_string();
    let mut grouped = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && (raw.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    ltr(&format!("{} EGP", digits.apply(&format!("{grouped}.{pt:02}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egp_formatting() {
        assert_eq!(format_egp(12345, Digits::Western), "\u{2066}123.45 EGP\u{2069}");
        assert_eq!(format_egp(123456789, Digits::Western), "\u{2066}1,234,567.89 EGP\u{2069}");
        assert_eq!(format_egp(5, Digits::Western), "\u{2066}0.05 EGP\u{2069}");
        assert_eq!(format_egp(150000, Digits::Eastern), "\u{2066}١٬٥٠٠٫٠٠ EGP\u{2069}");
    }

    #[test]
    fn eastern_digits_leave_other_text() {
        assert_eq!(Digits::Eastern.apply("رخصة 2031-05-14."), "رخصة ٢٠٣١-٠٥-١٤.");
    }
}
