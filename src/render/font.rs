//! The embedded Amiri font (OFL, `assets/fonts/`): parsed once, shared by shaping, PDF and raster.
//! Nothing depends on system fonts at run time.

use std::sync::OnceLock;

use super::RenderError;

/// Amiri Regular, unmodified from Debian's fonts-hosny-amiri 0.113 (licence: assets/fonts/OFL.txt).
pub static AMIRI_TTF: &[u8] = include_bytes!("../../assets/fonts/Amiri-Regular.ttf");

/// The parsed font: a rustybuzz face (which also gives ttf-parser's outlines and metrics).
pub struct Font {
    face: rustybuzz::Face<'static>,
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Font(Amiri-Regular, {} glyphs)", self.face.number_of_glyphs())
    }
}

static FONT: OnceLock<Option<Font>> = OnceLock::new();

impl Font {
    /// The embedded Amiri font, parsed on first use.
    pub fn amiri() -> Result<&'static Font, RenderError> {
        FONT.get_or_init(|| rustybuzz::Face::from_slice(AMIRI_TTF, 0).map(|face| Font { face }))
            .as_ref()
            .ok_or(RenderError::FontUnusable)
    }

    /// The shaping face (derefs to `ttf_parser::Face` for outlines and metrics).
    pub fn face(&self) -> &rustybuzz::Face<'static> {
        &self.face
    }

    /// Font units per em.
    pub fn units_per_em(&self) -> f32 {
        self.face.units_per_em() as f32
    }

    /// The raw font file.
    pub fn bytes(&self) -> &'static [u8] {
        AMIRI_TTF
    }

    /// Whether the font maps `ch` to a real glyph (not `.notdef`).
    pub fn has_glyph(&self, ch: char) -> bool {
        self.face.glyph_index(ch).is_some_and(|g| g.0 != 0)
    }

    /// The character a glyph draws, for glyphs reached only through shaping (contextual forms,
    /// kashida pieces): the font's cmap backwards, else the `uniXXXX` prefix of its glyph name.
    pub fn char_of(&self, gid: u16) -> Option<char> {
        static REVERSE: OnceLock<std::collections::HashMap<u16, char>> = OnceLock::new();
        let reverse = REVERSE.get_or_init(|| {
            let mut map = std::collections::HashMap::new();
            if let Some(cmap) = self.face.tables().cmap {
                for sub in cmap.subtables.into_iter().filter(|s| s.is_unicode()) {
                    sub.codepoints(|cp| {
                        if let (Some(ch), Some(g)) = (char::from_u32(cp), sub.glyph_index(cp)) {
                            // The lowest code point wins, so the result does not depend on order.
                            let e = map.entry(g.0).or_insert(ch);
                            if ch < *e {
                                *e = ch;
                            }
                        }
                    });
                }
            }
            map
        });
        if let Some(&ch) = reverse.get(&gid) {
            return Some(ch);
        }
        let name = self.face.glyph_name(ttf_parser::GlyphId(gid))?;
        let hex = name.strip_prefix("uni")?.get(..4)?;
        char::from_u32(u32::from_str_radix(hex, 16).ok()?).filter(|c| !c.is_control())
    }
}
