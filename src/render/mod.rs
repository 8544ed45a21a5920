//! Documents in correct Arabic: one layout per document, rendered from the same shaped glyph runs to
//! PDF and to printer bitmaps.
