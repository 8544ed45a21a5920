//! The documents by name, their sample data with signed QR codes, and their outputs: PDF, a preview
//! PNG, and the printer buffers (card panels, 1-bit sticker or roll bitmaps).

use super::documents::{self, DocOptions, Issuer, ReceiptFormat, sample};
use super::pdf::PdfInfo;
use super::raster::{self, Bitmap1, CardPanels};
use super::scene::Scene;
use super::{RenderError, pdf};
use crate::keys::VanKey;

/// Every document `vanctl render` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Driving licence card, front.
    DrivingLicenceFront,
    /// Driving licence card, back.
    DrivingLicenceBack,
    /// Vehicle licence card.
    VehicleLicence,
    /// Windscreen sticker label.
    Sticker,
    /// Receipt on A4.
    ReceiptA4,
    /// Receipt on A6.
    ReceiptA6,
    /// Receipt on an 80 mm roll.
    Receipt80,
    /// Shift report (A4).
    ShiftReport,
}

impl DocKind {
    /// All documents, in a fixed order.
    pub const ALL: [DocKind; 8] = [
        DocKind::DrivingLicenceFront,
        DocKind::DrivingLicenceBack,
        DocKind::VehicleLicence,
        DocKind::Sticker,
        DocKind::ReceiptA4,
        DocKind::ReceiptA6,
        DocKind::Receipt80,
        DocKind::ShiftReport,
    ];

    /// Command-line and file name.
    pub fn name(self) -> &'static str {
        match self {
            DocKind::DrivingLicenceFront => "driving-licence-front",
            DocKind::DrivingLicenceBack => "driving-licence-back",
            DocKind::VehicleLicence => "vehicle-licence",
            DocKind::Sticker => "sticker",
            DocKind::ReceiptA4 => "receipt-a4",
            DocKind::ReceiptA6 => "receipt-a6",
            DocKind::Receipt80 => "receipt-80mm",
            DocKind::ShiftReport => "shift-report",
        }
    }

    /// The document with this name.
    pub fn from_name(name: &str) -> Option<DocKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Resolution of the preview PNG (the printer's own resolution where there is one).
    pub fn preview_dpi(self, opts: &DocOptions) -> f32 {
        match self {
            DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack | DocKind::VehicleLicence => {
                raster::CARD_DPI
            }
            DocKind::Sticker => opts.sticker_dpi as f32,
            DocKind::Receipt80 => opts.roll.dpi as f32,
            DocKind::ReceiptA6 => 150.0,
            DocKind::ReceiptA4 | DocKind::ShiftReport => 100.0,
        }
    }
}

/// What a printer gets for a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterOutput {
    /// Card printer: Y/M/C planes and the K panel, portrait 648×1016.
    Card(CardPanels),
    /// Label or roll printer: a 1-bit bitmap.
    Mono(Bitmap1),
    /// Paper only (A4/A6 PDF).
    None,
}

/// The sample document's pages for `issuer`, with its QR signed by `key`. Samples are always
/// marked as specimens; their QR facts are taken from the sample document itself.
pub fn sample_scenes(
    kind: DocKind,
    key: &VanKey,
    issuer: &Issuer,
    opts: DocOptions,
) -> Result<Vec<Scene>, RenderError> {
    let opts = DocOptions { specimen: true, ..opts };
    Ok(match kind {
        DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack => {
            let mut d = sample::driving_licence(issuer);
            d.qr = d.qr_payload().sign(key)?;
            if kind == DocKind::DrivingLicenceFront {
                vec![documents::driving_licence_front(&d, opts)?]
            } else {
                vec![documents::driving_licence_back(&d, opts)?]
            }
        }
        DocKind::VehicleLicence => {
            let mut v = sample::vehicle_licence(issuer);
            v.qr = v.qr_payload().sign(key)?;
            vec![documents::vehicle_licence(&v, opts)?]
        }
        DocKind::Sticker => {
            let mut s = sample::sticker(issuer);
            s.qr = s.qr_payload().sign(key)?;
            vec![documents::sticker(&s, opts)?]
        }
        DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::Receipt80 => {
            let mut r = sample::receipt(issuer);
            r.qr = r.qr_payload().sign(key)?;
            let format = match kind {
                DocKind::ReceiptA4 => ReceiptFormat::A4,
                DocKind::ReceiptA6 => ReceiptFormat::A6,
                _ => ReceiptFormat::Roll80,
            };
            vec![documents::receipt(&r, format, opts)?]
        }
        DocKind::ShiftReport => documents::shift_report(&sample::shift_report(issuer), opts)?,
    })
}

/// The printer buffers for a document's first page.
pub fn printer_output(
    kind: DocKind,
    scenes: &[Scene],
    opts: &DocOptions,
) -> Result<PrinterOutput, RenderError> {
    let Some(scene) = scenes.first() else { return Ok(PrinterOutput::None) };
    Ok(match kind {
        DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack | DocKind::VehicleLicence => {
            PrinterOutput::Card(raster::card_panels(scene)?)
        }
        DocKind::Sticker => {
            PrinterOutput::Mono(raster::to_bitmap1(&raster::rasterize(scene, opts.sticker_dpi as f32, None)?))
        }
        DocKind::Receipt80 => {
            PrinterOutput::Mono(raster::to_bitmap1(&raster::rasterize(scene, opts.roll.dpi as f32, None)?))
        }
        DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::ShiftReport => PrinterOutput::None,
    })
}

/// The PDF of a document's pages, made by `creator` (the program) at `created`.
pub fn pdf_of(
    kind: DocKind,
    scenes: &[Scene],
    creator: &str,
    created: jiff::Timestamp,
) -> Result<Vec<u8>, RenderError> {
    let info = PdfInfo { title: kind.name().to_owned(), creator: creator.to_owned(), created };
    pdf::to_pdf(&info, scenes)
}
