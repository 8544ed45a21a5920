//! The card printer kind: what the workflow asks of any card printer protocol (Evolis today).
//!
//! The input types are deliberately plain (width, height, pixel buffers) so the document renderer
//! can fill them without knowing any printer protocol.

use super::{DeviceError, Health, SelfTestReport};

/// Width of a CR-80 card image at 300 dpi in the printer's line direction (pixels per line).
pub const CARD_WIDTH: u32 = 648;
/// Height of a CR-80 card image at 300 dpi (number of lines).
pub const CARD_HEIGHT: u32 = 1016;

pub use crate::bitmap::Bitmap1;

/// An 8-bit ink plane, one byte per pixel, row-major: 0 = no ink, 255 = full ink.
#[derive(Clone, PartialEq, Eq)]
pub struct Plane8 {
    /// Pixels per row.
    pub width: u32,
    /// Number of rows.
    pub height: u32,
    /// `width * height` bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Plane8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plane8({}x{}, {} bytes)", self.width, self.height, self.data.len())
    }
}

impl Plane8 {
    /// A plane with the same ink amount everywhere.
    pub fn filled(width: u32, height: u32, value: u8) -> Self {
        Plane8 { width, height, data: vec![value; width as usize * height as usize] }
    }

    /// Ink at a pixel; outside the image or the buffer reads as 0.
    pub fn get(&self, x: u32, y: u32) -> u8 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        self.data.get(y as usize * self.width as usize + x as usize).copied().unwrap_or(0)
    }
}

/// The three dye-sublimation colour planes of one card side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColourPlanes {
    /// Yellow ink.
    pub y: Plane8,
    /// Magenta ink.
    pub m: Plane8,
    /// Cyan ink.
    pub c: Plane8,
}

/// What to print on one side of a card. Images are either 648 wide × 1016 high (the printer's
/// own line order) or 1016 wide × 648 high (landscape; turned by the driver).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CardSide {
    /// Black resin panel (text, QR codes, photos dithered by the renderer).
    pub k: Option<Bitmap1>,
    /// Colour panels, if the card has colour on this side.
    pub ymc: Option<ColourPlanes>,
    /// Whether to lay a full protective overlay varnish on this side.
    pub overlay: bool,
}

impl CardSide {
    /// Whether nothing at all would be printed on this side.
    pub fn is_empty(&self) -> bool {
        self.k.is_none() && self.ymc.is_none() && !self.overlay
    }
}

/// One card: the front and an optional back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CardJob {
    /// Front side (recto).
    pub front: CardSide,
    /// Back side (verso), if printed.
    pub back: Option<CardSide>,
}

/// A condition of a card printer that needs a person, with what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardFault {
    /// No cards left in the feeder.
    FeederEmpty,
    /// The ribbon is used up.
    RibbonEnded,
    /// No ribbon is installed (or it is not recognised).
    NoRibbon,
    /// The printer cover is open.
    CoverOpen,
    /// A card is stuck in the printer.
    CardJam,
    /// The ribbon is stuck or torn.
    RibbonJam,
    /// The feeder itself failed (not just empty).
    FeederError,
    /// The printer refused the card (wrong thickness, bent, double feed).
    CardRejected,
}

impl CardFault {
    /// Every fault, for listings.
    pub const ALL: [CardFault; 8] = [
        CardFault::FeederEmpty,
        CardFault::RibbonEnded,
        CardFault::NoRibbon,
        CardFault::CoverOpen,
        CardFault::CardJam,
        CardFault::RibbonJam,
        CardFault::FeederError,
        CardFault::CardRejected,
    ];

    /// What is wrong, in words for an officer or technician.
    pub fn what(self) -> &'static str {
        match self {
            CardFault::FeederEmpty => "card feeder empty",
            CardFault::RibbonEnded => "ribbon ended",
            CardFault::NoRibbon => "no ribbon installed",
            CardFault::CoverOpen => "printer cover open",
            CardFault::CardJam => "card jammed",
            CardFault::RibbonJam => "ribbon jammed or torn",
            CardFault::FeederError => "card feeder error",
            CardFault::CardRejected => "card rejected",
        }
    }

    /// What a person should do.
    pub fn action(self) -> &'static str {
        match self {
            CardFault::FeederEmpty => "load blank cards into the feeder",
            CardFault::RibbonEnded => "replace the ribbon",
            CardFault::NoRibbon => "install a ribbon of the configured type",
            CardFault::CoverOpen => "close the printer cover",
            CardFault::CardJam => "open the cover, remove the stuck card, close the cover",
            CardFault::RibbonJam => "open the cover, free or replace the ribbon, close the cover",
            CardFault::FeederError => "check the feeder is seated and the cards are not stuck together",
            CardFault::CardRejected => "remove the rejected card and check the card stock",
        }
    }
}

/// What a card printer reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CardPrinterStatus {
    /// Firmware version as reported.
    pub firmware: String,
    /// Printer serial number as reported.
    pub serial: String,
    /// Cards the ribbon can still print, when the printer reports it.
    pub ribbon_remaining: Option<u32>,
    /// Whether the feeder sensor sees cards, when the printer reports it.
    pub feeder_loaded: Option<bool>,
    /// Active faults; empty when ready.
    pub faults: Vec<CardFault>,
}

impl CardPrinterStatus {
    /// The state to show officers: ready, or the first fault with what to do.
    pub fn health(&self) -> Health {
        match self.faults.first() {
            None => Health::Connected,
            Some(f) => Health::fault(super::Fault::Card(*f)),
        }
    }
}

/// What a finished print reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrintReceipt {
    /// Bytes sent to the printer for this card.
    pub bytes_sent: u64,
    /// Command/reply exchanges.
    pub round_trips: u32,
    /// Panels sent, e.g. `front:y`, `back:k`.
    pub panels: Vec<String>,
}

/// A card printer, driven on the thread that owns its port.
pub trait CardPrinter: Send {
    /// Safe checks only (status, version); never prints.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
    /// Queries firmware, serial, ribbon, feeder and fault state.
    fn status(&mut self) -> Result<CardPrinterStatus, DeviceError>;
    /// Prints one card (front and optional back). A fault ends the job with
    /// [`DeviceError::Fault`] saying what to do; the job is never re-sent automatically.
    fn print(&mut self, job: &CardJob) -> Result<PrintReceipt, DeviceError>;
}
