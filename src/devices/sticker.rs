//! The sticker printer kind: what the workflow asks of any label printer protocol (ZPL II today).
//!
//! The types here are protocol-neutral: a label is a list of positioned elements in printer dots,
//! an RFID tag write is what to put on the tag. The ZPL driver (the `zpl` module) turns them into
//! printer language.

use std::fmt;

use super::{DeviceError, SelfTestReport};

/// A monochrome bitmap, row-major, one bit per pixel, most significant bit first, `1` = black.
///
/// Each row starts on a byte boundary (`stride = ceil(width / 8)` bytes); padding bits at the end of
/// a row are ignored. This is what the document renderer hands over for text the printer cannot
/// shape itself (Arabic).
#[derive(Clone, PartialEq, Eq)]
pub struct MonoBitmap {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl fmt::Debug for MonoBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MonoBitmap({}x{})", self.width, self.height)
    }
}

/// A bitmap whose size and data length disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bitmap {width}x{height} needs {expected} bytes ({stride} per row), got {got}")]
pub struct BitmapSizeError {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// Bytes expected.
    pub expected: usize,
    /// Bytes given.
    pub got: usize,
}

impl MonoBitmap {
    /// Bytes per row for a width in pixels.
    pub fn stride_for(width: u32) -> usize {
        (width as usize).div_ceil(8)
    }

    /// Wraps packed rows; fails when `data` is not exactly `stride * height` bytes.
    pub fn from_packed(width: u32, height: u32, data: Vec<u8>) -> Result<Self, BitmapSizeError> {
        let stride = Self::stride_for(width);
        let expected = stride * height as usize;
        if data.len() != expected {
            return Err(BitmapSizeError { width, height, stride, expected, got: data.len() });
        }
        let mut bitmap = MonoBitmap { width, height, data };
        bitmap.clear_padding();
        Ok(bitmap)
    }

    /// Builds a bitmap from a pixel function (`true` = black).
    pub fn from_fn(width: u32, height: u32, mut black: impl FnMut(u32, u32) -> bool) -> Self {
        let stride = Self::stride_for(width);
        let mut data = vec![0u8; stride * height as usize];
        for y in 0..height {
            for x in 0..width {
                if black(x, y) {
                    data[y as usize * stride + (x / 8) as usize] |= 0x80 >> (x % 8);
                }
            }
        }
        MonoBitmap { width, height, data }
    }

    /// Width in pixels (printer dots).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels (printer dots).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        Self::stride_for(self.width)
    }

    /// Packed rows.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// One packed row; empty when `y` is out of range.
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.stride();
        let start = y as usize * stride;
        self.data.get(start..start + stride).unwrap_or(&[])
    }

    /// Whether the pixel is black; out-of-range pixels are white.
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let byte = self.data[y as usize * self.stride() + (x / 8) as usize];
        byte & (0x80 >> (x % 8)) != 0
    }

    fn clear_padding(&mut self) {
        let pad = (self.stride() * 8) as u32 - self.width;
        if pad == 0 || self.width == 0 {
            return;
        }
        let mask = 0xFFu8 << pad;
        let stride = self.stride();
        for row in self.data.chunks_mut(stride) {
            if let Some(last) = row.last_mut() {
                *last &= mask;
            }
        }
    }
}

/// QR error correction level (ISO/IEC 18004): L 7 %, M 15 %, Q 25 %, H 30 % of codewords restorable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrLevel {
    /// About 7 % recovery (highest density).
    L,
    /// About 15 % recovery (standard).
    M,
    /// About 25 % recovery.
    Q,
    /// About 30 % recovery.
    H,
}

/// One element placed on a label; positions are the element's top-left corner in dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelElement {
    /// A rendered bitmap (Arabic text, logos).
    Bitmap { x: u32, y: u32, bitmap: MonoBitmap },
    /// A QR code rendered by the printer (model 2).
    Qr { x: u32, y: u32, data: String, magnification: u8, level: QrLevel },
    /// Latin text in the printer's scalable font (ASCII only: the printer cannot shape Arabic).
    Text { x: u32, y: u32, height: u32, text: String },
    /// A filled black box (rules and frames).
    Box { x: u32, y: u32, width: u32, height: u32, thickness: u32 },
}

/// A label to print: size in dots at `dpi`, elements and number of copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickerLabel {
    /// Printer resolution the dots refer to (203 or 300).
    pub dpi: u32,
    /// Label width in dots.
    pub width: u32,
    /// Label length in dots.
    pub height: u32,
    /// What goes on the label, in drawing order.
    pub elements: Vec<LabelElement>,
    /// Number of identical copies (at least 1).
    pub copies: u32,
}

impl StickerLabel {
    /// An empty label of `width_mm` × `height_mm` at `dpi`, one copy.
    pub fn new_mm(dpi: u32, width_mm: f64, height_mm: f64) -> Self {
        StickerLabel {
            dpi,
            width: mm_to_dots(width_mm, dpi),
            height: mm_to_dots(height_mm, dpi),
            elements: Vec::new(),
            copies: 1,
        }
    }
}

/// Millimetres to printer dots at `dpi`, rounded to the nearest dot.
pub fn mm_to_dots(mm: f64, dpi: u32) -> u32 {
    let dots = (mm * f64::from(dpi) / 25.4).round();
    if dots.is_finite() && dots > 0.0 { dots.min(f64::from(u32::MAX)) as u32 } else { 0 }
}

/// A 32-bit Gen2 tag password (access or kill). Never printed: `Debug` is redacted and the value
/// is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct TagPassword([u8; 4]);

impl TagPassword {
    /// Wraps the four password bytes.
    pub fn new(bytes: [u8; 4]) -> Self {
        TagPassword(bytes)
    }

    /// The password bytes, for encoding into a job only.
    pub fn expose(&self) -> [u8; 4] {
        self.0
    }
}

impl fmt::Debug for TagPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagPassword(<redacted>)")
    }
}

impl Drop for TagPassword {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// How a tag's memory is locked after writing (Gen2 lock actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagLock {
    /// Leave the lock state as it is.
    Unchanged,
    /// Lock: writes (and password reads) need the access password.
    Lock,
    /// Permanently lock: can never be written again.
    Permalock,
}

/// What to write on an e-sticker tag printed inside a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagWrite {
    /// EPC bank contents from word 2 on (whole 16-bit words, e.g. 12 bytes for a 96-bit EPC).
    pub epc: Vec<u8>,
    /// User bank contents from word 0 on (whole words); empty = not written.
    pub user: Vec<u8>,
    /// Access password written to the reserved bank; needed for locking.
    pub access_password: Option<TagPassword>,
    /// Kill password written to the reserved bank.
    pub kill_password: Option<TagPassword>,
    /// Lock applied to the EPC and user banks and both passwords after writing.
    pub lock: TagLock,
}

/// The tag identifier (TID bank) read back while encoding: the tag's factory serial.
#[derive(Clone, PartialEq, Eq)]
pub struct Tid(pub Vec<u8>);

impl fmt::Debug for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tid({})", hex::encode_upper(&self.0))
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(&self.0))
    }
}

/// Printer condition as reported by the printer, in protocol-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StickerStatus {
    /// Nothing stops printing.
    pub ready: bool,
    /// Conditions that need a person, each with what to do (empty when ready).
    pub faults: Vec<StickerFault>,
    /// Label formats received but not yet printed.
    pub formats_queued: u32,
    /// Labels of the current batch still to print.
    pub labels_remaining: u32,
}

/// A condition that stops the sticker printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StickerFault {
    /// Out of labels (or the printer did not answer, which printers do when out of media).
    PaperOut,
    /// Print head open.
    HeadOpen,
    /// Ribbon ended.
    RibbonOut,
    /// Paused from the front panel.
    Paused,
    /// Head too hot.
    OverTemperature,
    /// Head too cold.
    UnderTemperature,
    /// Receive buffer full.
    BufferFull,
    /// Configuration lost (corrupt RAM).
    CorruptRam,
    /// No answer to the status query at all.
    NoAnswer,
    /// The RFID tag could not be encoded; the printer voided the label.
    RfidVoid,
    /// The label did not finish printing in time (jam or stall).
    NotFinished,
}

impl StickerFault {
    /// Every fault, for listings.
    pub const ALL: [StickerFault; 11] = [
        StickerFault::PaperOut,
        StickerFault::HeadOpen,
        StickerFault::RibbonOut,
        StickerFault::Paused,
        StickerFault::OverTemperature,
        StickerFault::UnderTemperature,
        StickerFault::BufferFull,
        StickerFault::CorruptRam,
        StickerFault::NoAnswer,
        StickerFault::RfidVoid,
        StickerFault::NotFinished,
    ];

    /// What is wrong, for a technician.
    pub fn describe(self) -> &'static str {
        match self {
            StickerFault::PaperOut => "out of labels",
            StickerFault::HeadOpen => "print head open",
            StickerFault::RibbonOut => "ribbon ended",
            StickerFault::Paused => "paused",
            StickerFault::OverTemperature => "print head too hot",
            StickerFault::UnderTemperature => "print head too cold",
            StickerFault::BufferFull => "receive buffer full",
            StickerFault::CorruptRam => "configuration lost (corrupt RAM)",
            StickerFault::NoAnswer => "no answer to the status query",
            StickerFault::RfidVoid => "RFID tag not encoded; the label was voided",
            StickerFault::NotFinished => "label did not finish printing",
        }
    }

    /// What a person should do about it.
    pub fn action(self) -> &'static str {
        match self {
            StickerFault::PaperOut => "load a new label roll",
            StickerFault::HeadOpen => "close the print head",
            StickerFault::RibbonOut => "replace the ribbon",
            StickerFault::Paused => "press PAUSE on the printer to resume",
            StickerFault::OverTemperature => "let the printer cool down",
            StickerFault::UnderTemperature => "let the printer warm up",
            StickerFault::BufferFull => "wait, then retry",
            StickerFault::CorruptRam => "reconfigure the printer (call a technician)",
            StickerFault::NoAnswer => {
                "check labels, ribbon and print head (the printer stays silent when out of media, \
                 out of ribbon or open), then cable and power"
            }
            StickerFault::RfidVoid => "check the RFID label stock and its position, then print again",
            StickerFault::NotFinished => "check the printer for a jam, then retry",
        }
    }
}

/// A sticker printer, driven on the thread that owns its port.
pub trait StickerPrinter: Send {
    /// Safe checks only (host status, identification); never prints.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
    /// Asks the printer for its condition. No answer is a fault, never "ready".
    fn host_status(&mut self) -> Result<StickerStatus, DeviceError>;
    /// Prints a label and waits until the printer reports it done.
    fn print_label(&mut self, label: &StickerLabel) -> Result<(), DeviceError>;
    /// Prints a label on RFID stock, encoding its tag; returns the tag's TID.
    fn print_rfid_label(&mut self, label: &StickerLabel, tag: &TagWrite) -> Result<Tid, DeviceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_packing_and_padding() {
        let b = MonoBitmap::from_fn(10, 2, |x, y| x == 0 || (y == 1 && x == 9));
        assert_eq!(b.stride(), 2);
        assert_eq!(b.data(), &[0x80, 0x00, 0x80, 0x40]);
        assert!(b.get(9, 1));
        assert!(!b.get(10, 1));
        let p = MonoBitmap::from_packed(10, 1, vec![0xFF, 0xFF]).unwrap();
        assert_eq!(p.data(), &[0xFF, 0xC0], "padding bits beyond the width are cleared");
        assert!(MonoBitmap::from_packed(10, 2, vec![0; 3]).is_err());
    }

    #[test]
    fn mm_conversion() {
        assert_eq!(mm_to_dots(25.4, 203), 203);
        assert_eq!(mm_to_dots(50.0, 300), 591);
        assert_eq!(mm_to_dots(-1.0, 300), 0);
    }

    #[test]
    fn passwords_never_show() {
        let p = TagPassword::new([0x12, 0x34, 0x56, 0x78]);
        let text = format!("{p:?}");
        assert!(!text.contains("12345678") && !text.contains("18"), "{text}");
    }
}
