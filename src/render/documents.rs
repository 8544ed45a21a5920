//! Document layouts: plain data structs in, [`Scene`]s out. Cards are laid out landscape (CR-80) and
//! turned into the printer's portrait frame by [`super::raster::card_panels`]; receipts and the shift
//! report are pages (A4, A6 or an 80 mm roll).
//!
//! Numbers, dates, licence numbers and Latin names are wrapped in LTR isolates so UAX #9 keeps their
//! order inside Arabic lines. Dates are printed DD/MM/YYYY.

use std::sync::Arc;

use jiff::civil::{Date, DateTime};

use super::photo::Photo;
use super::qr::{DocType, QrPayload};
use super::raster::{CARD_DPI, CARD_HEIGHT_MM, CARD_WIDTH_MM};
use super::scene::{Ink, Rgb, Scene};
use super::text::{Align, TextStyle};
use super::{Digits, RenderError, format_egp, ltr};
use crate::keys::KEY_ID_LEN;

/// Page and printing options shared by all documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocOptions {
    /// Digit style of dates and amounts in Arabic lines (identifiers stay ASCII).
    pub digits: Digits,
    /// Mark the document visibly as a specimen (نموذج – SPECIMEN). A document whose QR is signed
    /// with the public test key is marked whatever this says.
    pub specimen: bool,
    /// Sticker printer resolution, dots per inch (the QR's modules are whole dots at it).
    pub sticker_dpi: u32,
    /// The receipt roll printer.
    pub roll: RollPrinter,
}

impl Default for DocOptions {
    fn default() -> Self {
        DocOptions {
            digits: Digits::Western,
            specimen: false,
            sticker_dpi: 203,
            roll: RollPrinter::default(),
        }
    }
}

/// A thermal receipt printer: the roll receipt is laid out exactly as wide as its print head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollPrinter {
    /// Resolution, dots per inch (203 for most 80 mm printers, 180 for some).
    pub dpi: u32,
    /// Dots across the print head (576 = 72 mm at 203 dpi on 80 mm paper; 512 at 180 dpi).
    pub width_dots: u32,
}

impl Default for RollPrinter {
    fn default() -> Self {
        RollPrinter { dpi: 203, width_dots: 576 }
    }
}

impl RollPrinter {
    /// Printable width, mm.
    pub fn width_mm(self) -> f32 {
        self.width_dots as f32 * 25.4 / self.dpi as f32
    }
}

/// Resolution the A4/A6 receipts' QR modules are snapped to (office printers print at 300 or 600).
pub const PAPER_DPI: f32 = 300.0;

/// The visible mark of a specimen (sample) document.
pub const SPECIMEN_MARK: &str = "نموذج – SPECIMEN";

/// The journal record that issued a document: its sequence number and the first 8 bytes of its
/// hash. Printed (receipts) and signed (every QR) from this one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalRef {
    /// Sequence number of the record.
    pub seq: u64,
    /// First 8 bytes of SHA-256 of the record (see [`super::qr::short_hash`]).
    pub hash: [u8; 8],
}

/// Who issued a document (printed on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// Issuing unit in Arabic.
    pub unit_ar: String,
    /// Van id as enrolled at HQ.
    pub van_id: String,
}

/// A licence plate: Arabic letters and digits, kept apart as entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plate {
    /// One to three Arabic letters, e.g. `أ ب ج` (spaces between letters allowed).
    pub letters: String,
    /// Up to four ASCII digits, e.g. `1234`.
    pub digits: String,
}

impl Plate {
    /// The plate as printed: letters then Eastern Arabic digits, as on Egyptian plates (`أ ب ج ١٢٣٤`).
    pub fn display(&self) -> String {
        format!("{} {}", self.letters, Digits::Eastern.apply(&self.digits))
    }
    /// The plate as carried in the QR payload (ASCII digits).
    pub fn key(&self) -> String {
        format!("{} {}", self.letters, self.digits)
    }
}

fn date(d: Date, digits: Digits) -> String {
    digits.apply(&format!("{:02}/{:02}/{:04}", d.day(), d.month(), d.year()))
}

fn datetime(d: DateTime, digits: Digits) -> String {
    let t = format!("{:02}:{:02}", d.hour(), d.minute());
    format!("{} {}", date(d.date(), digits), ltr(&digits.apply(&t)))
}

/// Driving licence card (رخصة قيادة), front and back.
#[derive(Debug, Clone)]
pub struct DrivingLicence {
    /// Holder's name in Arabic, as entered.
    pub name_ar: String,
    /// Holder's name in Latin script.
    pub name_en: String,
    /// 14-digit national ID.
    pub national_id: String,
    /// Grade in Arabic (e.g. `خاصة`, `درجة ثالثة`).
    pub grade_ar: String,
    /// Licence number, e.g. `1234-567`.
    pub licence_number: String,
    /// Issue date.
    pub issued: Date,
    /// Expiry date.
    pub expires: Date,
    /// Restrictions in Arabic, one per line (back).
    pub restrictions: Vec<String>,
    /// Holder's photo.
    pub photo: Arc<Photo>,
    /// Issuing unit.
    pub issuer: Issuer,
    /// The journal record that issued the licence.
    pub journal: JournalRef,
    /// Signed QR text (`MTU1:…`, see [`super::qr`]); made from [`DrivingLicence::qr_payload`].
    pub qr: String,
}

/// Vehicle licence card (رخصة تسيير).
#[derive(Debug, Clone)]
pub struct VehicleLicence {
    /// Owner's name in Arabic.
    pub owner_ar: String,
    /// Owner's national ID.
    pub owner_national_id: String,
    /// Plate.
    pub plate: Plate,
    /// Make and model in Arabic or Latin.
    pub make_model: String,
    /// Chassis number (VIN).
    pub chassis: String,
    /// Engine number.
    pub engine: String,
    /// Category in Arabic (e.g. `ملاكي`, `نقل خفيف`).
    pub category_ar: String,
    /// Plate band colour of the category (printed on the colour panel).
    pub band: Rgb,
    /// Colour of the vehicle in Arabic.
    pub colour_ar: String,
    /// Licence expiry.
    pub expires: Date,
    /// Date of the last passed technical inspection.
    pub last_inspection: Date,
    /// Issuing unit.
    pub issuer: Issuer,
    /// The journal record that issued the licence.
    pub journal: JournalRef,
    /// Signed QR text; made from [`VehicleLicence::qr_payload`].
    pub qr: String,
}

/// Windscreen sticker label, printed next to the RFID e-sticker.
#[derive(Debug, Clone)]
pub struct StickerLabel {
    /// Plate.
    pub plate: Plate,
    /// Licence expiry.
    pub expires: Date,
    /// Issuing unit (its van id is signed in the QR).
    pub issuer: Issuer,
    /// The journal record that issued the sticker.
    pub journal: JournalRef,
    /// Signed QR text; made from [`StickerLabel::qr_payload`].
    pub qr: String,
}

/// One priced line of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    /// What is paid for, in Arabic.
    pub label_ar: String,
    /// Amount in piastres.
    pub piastres: u64,
}

/// The card payment of a receipt, as the terminal reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPayment {
    /// Card scheme (e.g. `Meeza`, `Visa`).
    pub scheme: String,
    /// Masked card number, e.g. `507803******1234`.
    pub masked_pan: String,
    /// Terminal id.
    pub terminal_id: String,
    /// Terminal trace number.
    pub trace: u32,
    /// Terminal receipt number.
    pub terminal_receipt: u32,
    /// Authorisation code.
    pub auth_code: String,
}

/// Electronic receipt (إيصال دفع إلكتروني).
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Our receipt number.
    pub number: String,
    /// Local date and time of payment (Africa/Cairo).
    pub at: DateTime,
    /// Service in Arabic.
    pub service_ar: String,
    /// Fee lines; the total is their sum.
    pub lines: Vec<FeeLine>,
    /// Card payment.
    pub payment: CardPayment,
    /// The payment's journal record (printed as `#seq hash`).
    pub journal: JournalRef,
    /// Issuing unit.
    pub issuer: Issuer,
    /// Signed QR text; made from [`Receipt::qr_payload`].
    pub qr: String,
}

impl Receipt {
    /// Sum of the fee lines in piastres (saturating; a real total never comes near u64::MAX).
    pub fn total(&self) -> u64 {
        self.lines.iter().fold(0u64, |a, l| a.saturating_add(l.piastres))
    }
}

/// Receipt page formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptFormat {
    /// A4 sheet.
    A4,
    /// A6 sheet.
    A6,
    /// 80 mm thermal roll (72 mm printable), height as needed.
    Roll80,
}

/// Count and amount of one row of a shift total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalLine {
    /// Row label in Arabic.
    pub label_ar: String,
    /// Number of transactions.
    pub count: u32,
    /// Amount in piastres.
    pub piastres: u64,
}

/// Controlled stock reconciliation of one item (card blanks, labels, RFID tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLine {
    /// Item in Arabic.
    pub item_ar: String,
    /// Count at shift open.
    pub opening: u32,
    /// Issued on documents.
    pub issued: u32,
    /// Spoiled (misprints, failed encodes), kept for audit.
    pub spoiled: u32,
    /// Counted at shift close.
    pub counted: u32,
}

impl StockLine {
    /// Expected closing count (opening − issued − spoiled), or `None` if that is negative.
    pub fn expected(&self) -> Option<u32> {
        self.opening.checked_sub(self.issued)?.checked_sub(self.spoiled)
    }
}

/// Shift report (تقرير الوردية).
#[derive(Debug, Clone)]
pub struct ShiftReport {
    /// Issuing unit.
    pub issuer: Issuer,
    /// Shift opened (local time).
    pub opened: DateTime,
    /// Shift closed (local time).
    pub closed: DateTime,
    /// Officers on shift, in Arabic.
    pub officers: Vec<String>,
    /// Totals by service.
    pub by_service: Vec<TotalLine>,
    /// Totals by payment method.
    pub by_payment: Vec<TotalLine>,
    /// Stock reconciliation.
    pub stock: Vec<StockLine>,
    /// First and last journal sequence of the shift.
    pub journal_range: (u64, u64),
}

fn payload(
    doc_type: DocType,
    issuer: &Issuer,
    journal: JournalRef,
    key_field: String,
    expiry: Option<Date>,
) -> QrPayload {
    QrPayload {
        doc_type,
        key_id: [0; KEY_ID_LEN],
        journal_seq: journal.seq,
        van_id: issuer.van_id.clone(),
        key_field,
        expiry,
        short_hash: journal.hash,
    }
}

impl DrivingLicence {
    /// The facts its QR signs, all taken from the licence itself (the key id is the signer's).
    pub fn qr_payload(&self) -> QrPayload {
        let key = self.licence_number.clone();
        payload(DocType::DrivingLicence, &self.issuer, self.journal, key, Some(self.expires))
    }
}

impl VehicleLicence {
    /// The facts its QR signs, all taken from the licence itself.
    pub fn qr_payload(&self) -> QrPayload {
        payload(DocType::VehicleLicence, &self.issuer, self.journal, self.plate.key(), Some(self.expires))
    }
}

impl StickerLabel {
    /// The facts its QR signs, all taken from the label itself.
    pub fn qr_payload(&self) -> QrPayload {
        payload(DocType::Sticker, &self.issuer, self.journal, self.plate.key(), Some(self.expires))
    }
}

impl Receipt {
    /// The facts its QR signs, all taken from the receipt itself.
    pub fn qr_payload(&self) -> QrPayload {
        payload(DocType::Receipt, &self.issuer, self.journal, self.number.clone(), None)
    }
}

/// Checks that the QR text signs exactly the facts of `expected` (its key id and signature aside):
/// a document never carries a QR about something else. Returns whether its key is the public test
/// key (the document is then a specimen).
fn check_qr(qr: &str, expected: &QrPayload) -> Result<bool, RenderError> {
    let (got, _, _) = QrPayload::parse(qr)?;
    let fields: [(&'static str, String, String); 6] = [
        ("document type", got.doc_type.name().to_owned(), expected.doc_type.name().to_owned()),
        ("journal sequence", got.journal_seq.to_string(), expected.journal_seq.to_string()),
        ("van id", got.van_id.clone(), expected.van_id.clone()),
        ("key field", got.key_field.clone(), expected.key_field.clone()),
        ("expiry", format!("{:?}", got.expiry), format!("{:?}", expected.expiry)),
        ("record hash", hex::encode(got.short_hash), hex::encode(expected.short_hash)),
    ];
    for (field, signed, printed) in fields {
        if signed != printed {
            return Err(RenderError::QrMismatch { field, signed, printed });
        }
    }
    Ok(got.is_specimen())
}

/// Draws the specimen mark large on a card's colour panel, under everything drawn later, in a
/// box that keeps clear of the QR code (a tinted background would make it hard to scan).
fn card_specimen(s: &mut Scene, rect: (f32, f32, f32, f32)) -> Result<(), RenderError> {
    s.text_in(
        "specimen",
        SPECIMEN_MARK,
        rect,
        TextStyle { min_size_pt: 12.0, ..TextStyle::ar(30.0).lines(1).align(Align::Center) },
        Rgb(225, 90, 90),
        Ink::Colour,
    )
}

const BAND: Rgb = Rgb(196, 224, 242);
const RULE: Rgb = Rgb(0, 0, 0);

fn card_header(s: &mut Scene, title: &str, opts: DocOptions) -> Result<(), RenderError> {
    let _ = opts;
    s.rect((0.0, 0.0, CARD_WIDTH_MM, 10.0), BAND, Ink::Colour);
    s.text(
        "header",
        "جمهورية مصر العربية – وزارة الداخلية",
        (40.0, 0.8, 43.0, 4.6),
        TextStyle::ar(7.0).lines(1),
    )?;
    s.text("header", "الإدارة العامة للمرور", (40.0, 5.0, 43.0, 4.6), TextStyle::ar(6.5).lines(1))?;
    s.text("title", title, (3.0, 1.2, 36.0, 8.0), TextStyle::ar(13.0).lines(1).align(Align::End))?;
    Ok(())
}

/// A label/value row: label at the right, value after it, one Arabic line.
fn row(
    s: &mut Scene,
    field: &str,
    label: &str,
    value: &str,
    rect: (f32, f32, f32, f32),
) -> Result<(), RenderError> {
    s.text(field, &format!("{label}: {value}"), rect, TextStyle::ar(7.5).lines(1))
}

/// Driving licence front: photo, names, national ID, grade, dates, licence number, issuing unit.
pub fn driving_licence_front(d: &DrivingLicence, opts: DocOptions) -> Result<Scene, RenderError> {
    let specimen = check_qr(&d.qr, &d.qr_payload())? || opts.specimen;
    let mut s = Scene::new(CARD_WIDTH_MM, CARD_HEIGHT_MM);
    if specimen {
        card_specimen(&mut s, (6.0, 19.0, CARD_WIDTH_MM - 12.0, 17.0))?;
    }
    card_header(&mut s, "رخصة قيادة", opts)?;
    // Photo on the left (ID-photo proportions 3:4).
    s.image(d.photo.clone(), (3.5, 13.0, 21.0, 28.0));
    s.text(
        "licence_number",
        &ltr(&d.licence_number),
        (3.0, 42.0, 22.0, 5.0),
        TextStyle::latin(8.0).lines(1).align(Align::Center),
    )?;
    let (x, w) = (27.0, 56.0);
    let mut y = 12.0;
    let lh = 4.6;
    s.text("name_ar", &d.name_ar, (x, y, w, 6.0), TextStyle::ar(10.0))?;
    y += 6.0;
    s.text("name_en", &ltr(&d.name_en), (x, y, w, lh), TextStyle::latin(7.5).lines(1).align(Align::End))?;
    y += lh;
    row(&mut s, "national_id", "الرقم القومي", &ltr(&d.national_id), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "grade", "درجة الرخصة", &d.grade_ar, (x, y, w, lh))?;
    y += lh;
    row(&mut s, "licence_number", "رقم الرخصة", &ltr(&d.licence_number), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "issued", "تاريخ الإصدار", &date(d.issued, opts.digits), (x + w / 2.0, y, w / 2.0, lh))?;
    row(&mut s, "expires", "تاريخ الانتهاء", &date(d.expires, opts.digits), (x, y, w / 2.0, lh))?;
    y += lh;
    row(&mut s, "issuer", "جهة الإصدار", &d.issuer.unit_ar, (x, y, w, lh * 2.0))?;
    Ok(s)
}

/// Driving licence back: restrictions and the signed QR code.
pub fn driving_licence_back(d: &DrivingLicence, opts: DocOptions) -> Result<Scene, RenderError> {
    let specimen = check_qr(&d.qr, &d.qr_payload())? || opts.specimen;
    let mut s = Scene::new(CARD_WIDTH_MM, CARD_HEIGHT_MM);
    if specimen {
        card_specimen(&mut s, (39.0, 24.0, 45.0, 14.0))?;
    }
    s.rect((0.0, 0.0, CARD_WIDTH_MM, 6.0), BAND, Ink::Colour);
    s.text("header", "رخصة قيادة – بيانات إضافية", (3.0, 0.5, 80.0, 5.0), TextStyle::ar(8.0).lines(1))?;
    s.qr(&d.qr, (3.0, 10.0, 34.0), CARD_DPI)?;
    let (x, w) = (40.0, 43.0);
    let mut y = 9.0;
    s.text("restrictions", "القيود والملاحظات:", (x, y, w, 5.0), TextStyle::ar(8.5).lines(1))?;
    y += 5.5;
    let items = if d.restrictions.is_empty() {
        vec!["لا توجد قيود".to_owned()]
    } else {
        d.restrictions.clone()
    };
    for r in items.iter().take(5) {
        s.text("restrictions", &format!("• {r}"), (x, y, w, 4.6), TextStyle::ar(7.5).lines(1))?;
        y += 4.8;
    }
    if items.len() > 5 {
        return Err(RenderError::TextOverflow {
            field: "restrictions".into(),
            text: items.join("؛ "),
            width_mm: w,
            height_mm: 24.0,
            min_pt: 7.5,
            max_lines: 5,
        });
    }
    s.text(
        "footer",
        &format!("{} {}", "تحقق من صحة الرخصة بمسح الرمز", ltr(&format!("({})", d.issuer.van_id))),
        (x, 44.0, w, 8.0),
        TextStyle::ar(6.5),
    )?;
    let _ = opts;
    Ok(s)
}

/// Vehicle licence card: owner, plate, chassis, engine, category, colour, expiry, inspection, QR.
pub fn vehicle_licence(v: &VehicleLicence, opts: DocOptions) -> Result<Scene, RenderError> {
    let specimen = check_qr(&v.qr, &v.qr_payload())? || opts.specimen;
    let mut s = Scene::new(CARD_WIDTH_MM, CARD_HEIGHT_MM);
    if specimen {
        card_specimen(&mut s, (31.0, 22.0, 53.0, 16.0))?;
    }
    card_header(&mut s, "رخصة تسيير", opts)?;
    // Plate: category colour band (colour panel) above a framed plate (black panel).
    let (px, py, pw) = (3.0, 13.0, 30.0);
    s.rect((px, py, pw, 4.5), v.band, Ink::Colour);
    s.text("category", &v.category_ar, (px, py, pw, 4.5), TextStyle::ar(7.0).lines(1).align(Align::Center))?;
    for r in [
        (px, py + 4.5, pw, 0.3),
        (px, py + 12.8, pw, 0.3),
        (px, py + 4.5, 0.3, 8.6),
        (px + pw - 0.3, py + 4.5, 0.3, 8.6),
    ] {
        s.rect(r, RULE, Ink::K);
    }
    s.text(
        "plate",
        &v.plate.display(),
        (px + 1.0, py + 5.0, pw - 2.0, 7.6),
        TextStyle::ar(14.0).lines(1).align(Align::Center),
    )?;
    s.qr(&v.qr, (5.0, 27.5, 23.0), CARD_DPI)?;
    let (x, w) = (35.0, 48.0);
    let mut y = 11.5;
    let lh = 4.3;
    row(&mut s, "owner", "المالك", &v.owner_ar, (x, y, w, lh * 1.3))?;
    y += lh * 1.3;
    row(&mut s, "owner_national_id", "الرقم القومي", &ltr(&v.owner_national_id), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "make_model", "الماركة والطراز", &v.make_model, (x, y, w, lh))?;
    y += lh;
    row(&mut s, "chassis", "رقم الشاسيه", &ltr(&v.chassis), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "engine", "رقم المحرك", &ltr(&v.engine), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "category", "النوع", &v.category_ar, (x + w / 2.0, y, w / 2.0, lh))?;
    row(&mut s, "colour", "اللون", &v.colour_ar, (x, y, w / 2.0, lh))?;
    y += lh;
    row(&mut s, "expires", "تنتهي في", &date(v.expires, opts.digits), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "last_inspection", "آخر فحص فني", &date(v.last_inspection, opts.digits), (x, y, w, lh))?;
    y += lh;
    row(&mut s, "issuer", "جهة الإصدار", &v.issuer.unit_ar, (x, y, w, CARD_HEIGHT_MM - y - 0.5))?;
    Ok(s)
}

/// Sticker label size, mm (width × height).
pub const STICKER_MM: (f32, f32) = (60.0, 40.0);

/// Windscreen sticker label: plate, expiry and QR (black only).
pub fn sticker(l: &StickerLabel, opts: DocOptions) -> Result<Scene, RenderError> {
    let (w, h) = STICKER_MM;
    let specimen = check_qr(&l.qr, &l.qr_payload())? || opts.specimen;
    let mut s = Scene::new(w, h);
    s.qr(&l.qr, (2.5, 6.0, 28.0), opts.sticker_dpi as f32)?;
    if specimen {
        let style = TextStyle::ar(7.0).lines(1).align(Align::Center);
        s.text("specimen", SPECIMEN_MARK, (2.5, 0.6, 28.0, 4.6), style)?;
        s.text("specimen", SPECIMEN_MARK, (2.5, 34.6, 55.0, 4.6), style)?;
    }
    s.text("title", "ملصق المركبة", (32.0, 2.0, 26.0, 6.0), TextStyle::ar(10.0).lines(1))?;
    s.rect((32.0, 9.0, 26.0, 0.3), RULE, Ink::K);
    s.text(
        "plate",
        &l.plate.display(),
        (32.0, 10.5, 26.0, 10.0),
        TextStyle::ar(17.0).lines(1).align(Align::Center),
    )?;
    s.rect((32.0, 21.5, 26.0, 0.3), RULE, Ink::K);
    s.text("expires", "تنتهي في", (32.0, 23.0, 26.0, 5.0), TextStyle::ar(8.0).lines(1).align(Align::Center))?;
    s.text(
        "expires",
        &date(l.expires, opts.digits),
        (32.0, 28.0, 26.0, 7.0),
        TextStyle::ar(12.0).lines(1).align(Align::Center),
    )?;
    Ok(s)
}

/// A vertical flow of boxes over pages; used by receipts and the shift report.
struct Flow {
    pages: Vec<Scene>,
    page_w: f32,
    page_h: Option<f32>,
    margin: f32,
    y: f32,
    scale: f32,
    /// Whether every page starts and ends with the specimen mark.
    specimen: bool,
}

impl Flow {
    fn new(
        page_w: f32,
        page_h: Option<f32>,
        margin: f32,
        scale: f32,
        specimen: bool,
    ) -> Result<Self, RenderError> {
        let mut f = Flow {
            pages: vec![Scene::new(page_w, page_h.unwrap_or(10_000.0))],
            page_w,
            page_h,
            margin,
            y: margin,
            scale,
            specimen,
        };
        f.mark()?;
        Ok(f)
    }
    /// The specimen mark as a line of its own (nothing when the document is real).
    fn mark(&mut self) -> Result<(), RenderError> {
        if !self.specimen {
            return Ok(());
        }
        let pt = 9.0 * self.scale;
        let h = pt * super::text::MM_PER_PT * super::text::LINE_HEIGHT_EM;
        let (x, w, y) = (self.margin, self.width(), self.y);
        let style = TextStyle::ar(pt).lines(1).align(Align::Center);
        self.page().text("specimen", SPECIMEN_MARK, (x, y, w, h), style)?;
        self.y += h;
        Ok(())
    }
    fn width(&self) -> f32 {
        self.page_w - 2.0 * self.margin
    }
    fn page(&mut self) -> &mut Scene {
        let n = self.pages.len() - 1;
        &mut self.pages[n]
    }
    /// Makes room for `h` mm (and the closing specimen mark), starting a new page if needed.
    fn need(&mut self, h: f32) -> Result<(), RenderError> {
        let reserve = if self.specimen { 9.0 * self.scale * super::text::MM_PER_PT * 1.5 } else { 0.0 };
        if let Some(ph) = self.page_h
            && self.y + h + reserve > ph - self.margin
        {
            self.mark()?;
            self.pages.push(Scene::new(self.page_w, ph));
            self.y = self.margin;
            self.mark()?;
        }
        Ok(())
    }
    fn line(&mut self, field: &str, text: &str, pt: f32, align: Align) -> Result<(), RenderError> {
        let pt = pt * self.scale;
        let h = pt * super::text::MM_PER_PT * super::text::LINE_HEIGHT_EM;
        self.need(h)?;
        let (x, w, y) = (self.margin, self.width(), self.y);
        self.page().text(field, text, (x, y, w, h), TextStyle::ar(pt).lines(1).align(align))?;
        self.y += h;
        Ok(())
    }
    /// Label at the right, value at the left, same line.
    fn pair(&mut self, field: &str, label: &str, value: &str, pt: f32) -> Result<(), RenderError> {
        let pt = pt * self.scale;
        let h = pt * super::text::MM_PER_PT * super::text::LINE_HEIGHT_EM;
        self.need(h)?;
        let (x, w, y) = (self.margin, self.width(), self.y);
        self.page().text(field, label, (x + w * 0.45, y, w * 0.55, h), TextStyle::ar(pt).lines(1))?;
        self.page().text(field, value, (x, y, w * 0.45, h), TextStyle::ar(pt).lines(1).align(Align::End))?;
        self.y += h;
        Ok(())
    }
    /// Table row: columns given right to left as (fraction of width, text).
    fn columns(&mut self, field: &str, cols: &[(f32, &str)], pt: f32) -> Result<(), RenderError> {
        let pt = pt * self.scale;
        let h = pt * super::text::MM_PER_PT * super::text::LINE_HEIGHT_EM;
        self.need(h)?;
        let (x0, w, y) = (self.margin, self.width(), self.y);
        let mut right = x0 + w;
        for (i, (frac, text)) in cols.iter().enumerate() {
            let cw = w * frac;
            let align = if i == 0 { Align::Start } else { Align::Center };
            self.page().text(field, text, (right - cw, y, cw, h), TextStyle::ar(pt).lines(1).align(align))?;
            right -= cw;
        }
        self.y += h;
        Ok(())
    }
    fn rule(&mut self) -> Result<(), RenderError> {
        self.need(1.5)?;
        let (x, w, y) = (self.margin, self.width(), self.y + 0.6);
        self.page().rect((x, y, w, 0.25), RULE, Ink::K);
        self.y += 1.5;
        Ok(())
    }
    fn gap(&mut self, mm: f32) {
        self.y += mm;
    }
    fn finish(mut self) -> Result<Vec<Scene>, RenderError> {
        self.mark()?;
        if self.page_h.is_none() {
            let h = self.y + self.margin;
            self.page().height = h;
        }
        Ok(self.pages)
    }
}

/// E-receipt in the given format. A4 and A6 give one page; the roll is as long as needed.
pub fn receipt(r: &Receipt, format: ReceiptFormat, opts: DocOptions) -> Result<Scene, RenderError> {
    let specimen = check_qr(&r.qr, &r.qr_payload())? || opts.specimen;
    // The roll is laid out exactly as wide as the print head: its bitmap is `width_dots` wide.
    let (w, h, margin, scale, dpi) = match format {
        ReceiptFormat::A4 => (210.0, Some(297.0), 18.0, 1.35, PAPER_DPI),
        ReceiptFormat::A6 => (105.0, Some(148.0), 6.0, 0.85, PAPER_DPI),
        ReceiptFormat::Roll80 => (opts.roll.width_mm(), None, 1.5, 0.95, opts.roll.dpi as f32),
    };
    let mut f = Flow::new(w, h, margin, scale, specimen)?;
    let d = opts.digits;
    f.line("header", "جمهورية مصر العربية – وزارة الداخلية", 10.0, Align::Center)?;
    f.line("issuer", &r.issuer.unit_ar, 9.0, Align::Center)?;
    f.line("title", "إيصال دفع إلكتروني", 13.0, Align::Center)?;
    f.rule()?;
    f.pair("number", "رقم الإيصال", &ltr(&r.number), 9.0)?;
    f.pair("at", "التاريخ والوقت", &datetime(r.at, d), 9.0)?;
    f.pair("van", "الوحدة", &ltr(&r.issuer.van_id), 9.0)?;
    f.pair("service", "الخدمة", &r.service_ar, 9.0)?;
    f.rule()?;
    for l in &r.lines {
        f.pair("fee", &l.label_ar, &format_egp(l.piastres, d), 9.0)?;
    }
    f.rule()?;
    f.pair("total", "الإجمالي", &format_egp(r.total(), d), 11.0)?;
    f.rule()?;
    let p = &r.payment;
    f.pair("payment", "طريقة الدفع", &format!("بطاقة {}", ltr(&p.scheme)), 8.5)?;
    f.pair("payment", "رقم البطاقة", &ltr(&p.masked_pan), 8.5)?;
    f.pair("payment", "رقم الجهاز", &ltr(&p.terminal_id), 8.5)?;
    f.pair("payment", "رقم التتبع", &ltr(&format!("{:06}", p.trace)), 8.5)?;
    f.pair("payment", "رقم إيصال الجهاز", &ltr(&format!("{:06}", p.terminal_receipt)), 8.5)?;
    f.pair("payment", "رمز الموافقة", &ltr(&p.auth_code), 8.5)?;
    f.rule()?;
    let journal = format!("#{} {}", r.journal.seq, hex::encode(r.journal.hash));
    f.pair("journal", "تسلسل السجل", &ltr(&journal), 8.0)?;
    f.gap(1.0);
    let qr_side = match format {
        ReceiptFormat::A4 => 45.0,
        ReceiptFormat::A6 => 30.0,
        ReceiptFormat::Roll80 => 36.0,
    };
    f.need(qr_side + 2.0)?;
    let (qx, qy) = ((w - qr_side) / 2.0, f.y);
    f.page().qr(&r.qr, (qx, qy, qr_side), dpi)?;
    f.y += qr_side + 1.0;
    f.line("footer", "امسح الرمز للتحقق من الإيصال دون اتصال", 7.5, Align::Center)?;
    let pages = f.finish()?;
    if pages.len() > 1 {
        return Err(RenderError::TextOverflow {
            field: "receipt".into(),
            text: format!("{} fee lines", r.lines.len()),
            width_mm: w,
            height_mm: h.unwrap_or(0.0),
            min_pt: 8.0,
            max_lines: 1,
        });
    }
    pages.into_iter().next().ok_or(RenderError::BitmapSize { width: 0, height: 0 })
}

/// Shift report on A4 pages: totals by service and payment, stock reconciliation, officers and the
/// journal range. More rows than fit start a new page.
pub fn shift_report(r: &ShiftReport, opts: DocOptions) -> Result<Vec<Scene>, RenderError> {
    let d = opts.digits;
    let mut f = Flow::new(210.0, Some(297.0), 15.0, 1.0, opts.specimen)?;
    f.line("header", "وزارة الداخلية – الإدارة العامة للمرور", 11.0, Align::Center)?;
    f.line("title", "تقرير الوردية", 16.0, Align::Center)?;
    f.line(
        "issuer",
        &format!("{} {}", r.issuer.unit_ar, ltr(&format!("({})", r.issuer.van_id))),
        10.0,
        Align::Center,
    )?;
    f.rule()?;
    f.pair("opened", "بداية الوردية", &datetime(r.opened, d), 10.0)?;
    f.pair("closed", "نهاية الوردية", &datetime(r.closed, d), 10.0)?;
    f.pair("officers", "الضباط", &r.officers.join("، "), 10.0)?;
    f.pair(
        "journal",
        "تسلسل السجل",
        &format!(
            "{} {} {} {}",
            "من",
            ltr(&r.journal_range.0.to_string()),
            "إلى",
            ltr(&r.journal_range.1.to_string())
        ),
        10.0,
    )?;
    for (title, rows) in [("الإجمالي حسب الخدمة", &r.by_service), ("الإجمالي حسب طريقة الدفع", &r.by_payment)]
    {
        f.gap(3.0);
        f.line("section", title, 12.0, Align::Start)?;
        f.rule()?;
        f.columns("table", &[(0.5, "البند"), (0.2, "العدد"), (0.3, "المبلغ")], 10.0)?;
        f.rule()?;
        let mut count = 0u32;
        let mut sum = 0u64;
        for row in rows.iter() {
            count = count.saturating_add(row.count);
            sum = sum.saturating_add(row.piastres);
            let c = ltr(&d.apply(&row.count.to_string()));
            f.columns(
                "table",
                &[(0.5, &row.label_ar), (0.2, &c), (0.3, &format_egp(row.piastres, d))],
                10.0,
            )?;
        }
        f.rule()?;
        let c = ltr(&d.apply(&count.to_string()));
        f.columns("table", &[(0.5, "الإجمالي"), (0.2, &c), (0.3, &format_egp(sum, d))], 10.5)?;
    }
    f.gap(3.0);
    f.line("section", "مطابقة المخزون", 12.0, Align::Start)?;
    f.rule()?;
    let head = [
        (0.3, "الصنف"),
        (0.12, "أول الوردية"),
        (0.12, "صُرف"),
        (0.12, "تالف"),
        (0.12, "المتوقع"),
        (0.1, "الجرد"),
        (0.12, "الحالة"),
    ];
    f.columns("stock", &head, 9.5)?;
    f.rule()?;
    for s in &r.stock {
        let n = |v: u32| ltr(&d.apply(&v.to_string()));
        let (exp, state) = match s.expected() {
            Some(e) if e == s.counted => (n(e), "مطابق".to_owned()),
            Some(e) => {
                let diff = i64::from(s.counted) - i64::from(e);
                (n(e), format!("فرق {}", ltr(&d.apply(&format!("{diff:+}")))))
            }
            None => ("—".to_owned(), "خطأ في العد".to_owned()),
        };
        let cols = [
            (0.3, s.item_ar.as_str()),
            (0.12, &n(s.opening)),
            (0.12, &n(s.issued)),
            (0.12, &n(s.spoiled)),
            (0.12, &exp),
            (0.1, &n(s.counted)),
            (0.12, &state),
        ];
        f.columns("stock", &cols, 9.5)?;
    }
    f.rule()?;
    f.gap(8.0);
    f.pair("signature", "توقيع المشرف", "....................", 10.0)?;
    f.finish()
}

/// Sample data: realistic Arabic names and numbers for `vanctl render --sample` and the tests.
///
/// Each builder takes the issuer, so everything derived from it (the van id inside a receipt
/// number, the QR's van id) comes from one place. QR texts are left empty: sign each document's
/// own [`DrivingLicence::qr_payload`] (etc.) to fill them.
pub mod sample {
    use super::*;
    use crate::render::qr::short_hash;

    /// The sample journal record `seq`; its hash is that of the text `sample record <seq>`.
    pub fn journal(seq: u64) -> JournalRef {
        JournalRef { seq, hash: short_hash(format!("sample record {seq}").as_bytes()) }
    }

    /// Sample issuing unit.
    pub fn issuer() -> Issuer {
        Issuer {
            unit_ar: "وحدة المرور المتنقلة – القاهرة".into(), van_id: "CAI-07".into()
        }
    }

    /// A driving licence (the QR text is filled in by the caller after signing).
    pub fn driving_licence(issuer: &Issuer) -> DrivingLicence {
        DrivingLicence {
            name_ar: "أحمد محمد عبد الرحمن السيد".into(),
            name_en: "Ahmed Mohamed Abdelrahman El-Sayed".into(),
            // C=2 (1900s), born 1990-01-15, governorate 01 Cairo, sequence 0123 (odd: male), check 4.
            national_id: "29001150101234".into(),
            grade_ar: "خاصة".into(),
            licence_number: "1234-567".into(),
            issued: jiff::civil::date(2026, 11, 23),
            expires: jiff::civil::date(2036, 11, 22),
            restrictions: vec![
                "يلزم ارتداء نظارة طبية أثناء القيادة".into(),
                "ناقل حركة أوتوماتيكي فقط (A)".into(),
            ],
            photo: Arc::new(Photo::placeholder(120, 160)),
            issuer: issuer.clone(),
            journal: journal(4709),
            qr: String::new(),
        }
    }

    /// A vehicle licence.
    pub fn vehicle_licence(issuer: &Issuer) -> VehicleLicence {
        VehicleLicence {
            owner_ar: "فاطمة حسن إبراهيم علي".into(),
            owner_national_id: "29508210201482".into(),
            plate: Plate { letters: "أ ب ج".into(), digits: "1234".into() },
            make_model: "تويوتا كورولا 2020".into(),
            chassis: "JTDBR32E720123456".into(),
            engine: "1ZR-4567890".into(),
            category_ar: "ملاكي".into(),
            band: Rgb(110, 170, 230),
            colour_ar: "فضي".into(),
            expires: jiff::civil::date(2029, 11, 22),
            last_inspection: jiff::civil::date(2026, 11, 20),
            issuer: issuer.clone(),
            journal: journal(4710),
            qr: String::new(),
        }
    }

    /// A sticker label (issued by the same record as the vehicle licence).
    pub fn sticker(issuer: &Issuer) -> StickerLabel {
        let v = vehicle_licence(issuer);
        StickerLabel {
            plate: v.plate,
            expires: v.expires,
            issuer: v.issuer,
            journal: v.journal,
            qr: String::new(),
        }
    }

    /// A receipt for a vehicle licence renewal; its number starts with the issuer's van id.
    pub fn receipt(issuer: &Issuer) -> Receipt {
        Receipt {
            number: format!("{}-2026-000481", issuer.van_id),
            at: jiff::civil::date(2026, 11, 23).at(14, 35, 0, 0),
            service_ar: "تجديد رخصة تسيير (ملاكي)".into(),
            lines: vec![
                FeeLine { label_ar: "رسم تجديد الرخصة".into(), piastres: 45_000 },
                FeeLine { label_ar: "رسم الفحص الفني".into(), piastres: 12_500 },
                FeeLine { label_ar: "الملصق الإلكتروني".into(), piastres: 18_500 },
                FeeLine { label_ar: "مثلث عاكس".into(), piastres: 7_550 },
            ],
            payment: CardPayment {
                scheme: "Meeza".into(),
                masked_pan: "507803******1234".into(),
                terminal_id: "52001234".into(),
                trace: 1187,
                terminal_receipt: 342,
                auth_code: "A7K29Q".into(),
            },
            journal: journal(4711),
            issuer: issuer.clone(),
            qr: String::new(),
        }
    }

    /// A shift report.
    pub fn shift_report(issuer: &Issuer) -> ShiftReport {
        let tl = |l: &str, count, piastres| TotalLine { label_ar: l.into(), count, piastres };
        let st = |i: &str, opening, issued, spoiled, counted| StockLine {
            item_ar: i.into(),
            opening,
            issued,
            spoiled,
            counted,
        };
        ShiftReport {
            issuer: issuer.clone(),
            opened: jiff::civil::date(2026, 11, 23).at(10, 0, 0, 0),
            closed: jiff::civil::date(2026, 11, 23).at(22, 0, 0, 0),
            officers: vec!["نقيب محمود سامي".into(), "أمين شرطة كريم عادل".into()],
            by_service: vec![
                tl("رخص التسيير", 14, 1_064_000),
                tl("رخص القيادة", 9, 540_000),
                tl("الملصق الإلكتروني", 11, 203_500),
                tl("الفحص الفني", 12, 150_000),
                tl("مستلزمات المرور", 6, 45_300),
            ],
            by_payment: vec![tl("ميزة", 31, 1_402_300), tl("فيزا / ماستركارد", 21, 600_500)],
            stock: vec![
                st("كروت رخص فارغة", 200, 23, 1, 176),
                st("ملصقات الزجاج", 150, 11, 0, 139),
                st("شرائح الملصق الإلكتروني", 100, 11, 1, 87),
            ],
            journal_range: (4650, 4733),
        }
    }
}
