//! The documents by name, their sample data with signed QR codes, and their outputs: PDF, a preview
//! PNG, and the printer buffers (card panels, 1-bit sticker or roll bitmaps).

use super::documents::{self, DocOptions, Issuer, ReceiptFormat, sample};
use super::qr::{DocType, QrPayload, short_hash};
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
    pub fn preview_dpi(self, sticker_dpi: u32) -> f32 {
        match self {
            DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack | DocKind::VehicleLicence => {
                raster::CARD_DPI
            }
            DocKind::Sticker => sticker_dpi as f32,
            DocKind::Receipt80 => 203.0,
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

/// Signs a sample QR payload with `key`.
fn sample_qr(
    key: &VanKey,
    van_id: &str,
    doc_type: DocType,
    key_field: &str,
    expiry: Option<jiff::civil::Date>,
    seq: u64,
) -> Result<String, RenderError> {
    let payload = QrPayload {
        doc_type,
        key_id: key.key_id(),
        journal_seq: seq,
        van_id: van_id.to_owned(),
        key_field: key_field.to_owned(),
        expiry,
        short_hash: short_hash(format!("sample record {seq}").as_bytes()),
    };
    Ok(payload.sign(key)?)
}

/// The sample document's pages for `issuer`, with its QR signed by `key`.
pub fn sample_scenes(
    kind: DocKind,
    key: &VanKey,
    issuer: &Issuer,
    opts: DocOptions,
) -> Result<Vec<Scene>, RenderError> {
    let van_id = issuer.van_id.as_str();
    Ok(match kind {
        DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack => {
            let mut d = sample::driving_licence();
            d.issuer = issuer.clone();
            d.qr = sample_qr(key, van_id, DocType::DrivingLicence, &d.licence_number, Some(d.expires), 4709)?;
            if kind == DocKind::DrivingLicenceFront {
                vec![documents::driving_licence_front(&d, opts)?]
            } else {
                vec![documents::driving_licence_back(&d, opts)?]
            }
        }
        DocKind::VehicleLicence => {
            let mut v = sample::vehicle_licence();
            v.issuer = issuer.clone();
            v.qr = sample_qr(key, van_id, DocType::VehicleLicence, &v.plate.key(), Some(v.expires), 4710)?;
            vec![documents::vehicle_licence(&v, opts)?]
        }
        DocKind::Sticker => {
            let mut s = sample::sticker();
            s.qr = sample_qr(key, van_id, DocType::Sticker, &s.plate.key(), Some(s.expires), 4710)?;
            vec![documents::sticker(&s, opts)?]
        }
        DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::Receipt80 => {
            let mut r = sample::receipt();
            r.issuer = issuer.clone();
            r.qr = sample_qr(key, van_id, DocType::Receipt, &r.number, None, r.journal_seq)?;
            let format = match kind {
                DocKind::ReceiptA4 => ReceiptFormat::A4,
                DocKind::ReceiptA6 => ReceiptFormat::A6,
                _ => ReceiptFormat::Roll80,
            };
            vec![documents::receipt(&r, format, opts)?]
        }
        DocKind::ShiftReport => {
            let mut r = sample::shift_report();
            r.issuer = issuer.clone();
            documents::shift_report(&r, opts)?
        }
    })
}

/// The printer buffers for a document's first page.
pub fn printer_output(
    kind: DocKind,
    scenes: &[Scene],
    sticker_dpi: u32,
) -> Result<PrinterOutput, RenderError> {
    let Some(scene) = scenes.first() else { return Ok(PrinterOutput::None) };
    Ok(match kind {
        DocKind::DrivingLicenceFront | DocKind::DrivingLicenceBack | DocKind::VehicleLicence => {
            PrinterOutput::Card(raster::card_panels(scene)?)
        }
        DocKind::Sticker => {
            PrinterOutput::Mono(raster::to_bitmap1(&raster::rasterize(scene, sticker_dpi as f32, None)?))
        }
        DocKind::Receipt80 => {
            PrinterOutput::Mono(raster::to_bitmap1(&raster::rasterize(scene, 203.0, None)?))
        }
        DocKind::ReceiptA4 | DocKind::ReceiptA6 | DocKind::ShiftReport => PrinterOutput::None,
    })
}

/// The PDF of a document's pages.
pub fn pdf_of(kind: DocKind, scenes: &[Scene]) -> Result<Vec<u8>, RenderError> {
    pdf::to_pdf(kind.name(), scenes)
}
