//! The service desk's plain data: services, people, vehicles, bookings and dossiers.
//!
//! These types are what bookings and dossiers from HQ carry, what the local API takes and what
//! service records hold. They are data only (serde, no I/O); validation lives in
//! [`super::validate`], rules and fees in [`super::schedule`]. Field names are the wire names
//! (snake_case JSON) documented in `docs/api.md`.

use serde::{Deserialize, Serialize};

/// Money in piastres (1 EGP = 100 piastres). Never a float.
pub type Piastres = u64;

/// The services a van offers (from the source article), one workflow each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Driving licence renewal (تجديد رخصة قيادة).
    DrivingLicenceRenewal,
    /// Driving licence replacement, lost or damaged (بدل فاقد / تالف).
    DrivingLicenceReplacement,
    /// Driving licence data update (تعديل بيانات), e.g. address or name correction.
    DrivingLicenceUpdate,
    /// Vehicle licence renewal (تجديد رخصة تسيير); needs a passed inspection.
    VehicleLicenceRenewal,
    /// Vehicle licence replacement, lost or damaged.
    VehicleLicenceReplacement,
    /// A new e-sticker with a vehicle licence (ملصق إلكتروني).
    EStickerIssue,
    /// Replacement of a damaged e-sticker: the old TID is voided.
    EStickerReplacement,
    /// Technical inspection (الفحص الفني): identity checks and a checklist, pass or fail.
    Inspection,
    /// Traffic supplies (مستلزمات المرور): priced items.
    Supplies,
}

impl ServiceKind {
    /// Every service, in catalogue order.
    pub const ALL: [ServiceKind; 9] = [
        ServiceKind::DrivingLicenceRenewal,
        ServiceKind::DrivingLicenceReplacement,
        ServiceKind::DrivingLicenceUpdate,
        ServiceKind::VehicleLicenceRenewal,
        ServiceKind::VehicleLicenceReplacement,
        ServiceKind::EStickerIssue,
        ServiceKind::EStickerReplacement,
        ServiceKind::Inspection,
        ServiceKind::Supplies,
    ];

    /// The wire name (`driving_licence_renewal`, …).
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::DrivingLicenceRenewal => "driving_licence_renewal",
            ServiceKind::DrivingLicenceReplacement => "driving_licence_replacement",
            ServiceKind::DrivingLicenceUpdate => "driving_licence_update",
            ServiceKind::VehicleLicenceRenewal => "vehicle_licence_renewal",
            ServiceKind::VehicleLicenceReplacement => "vehicle_licence_replacement",
            ServiceKind::EStickerIssue => "e_sticker_issue",
            ServiceKind::EStickerReplacement => "e_sticker_replacement",
            ServiceKind::Inspection => "inspection",
            ServiceKind::Supplies => "supplies",
        }
    }

    /// The Arabic name printed on receipts and shown to officers.
    pub fn name_ar(self) -> &'static str {
        match self {
            ServiceKind::DrivingLicenceRenewal => "تجديد رخصة قيادة",
            ServiceKind::DrivingLicenceReplacement => "بدل رخصة قيادة",
            ServiceKind::DrivingLicenceUpdate => "تعديل بيانات رخصة قيادة",
            ServiceKind::VehicleLicenceRenewal => "تجديد رخصة تسيير",
            ServiceKind::VehicleLicenceReplacement => "بدل رخصة تسيير",
            ServiceKind::EStickerIssue => "ملصق إلكتروني",
            ServiceKind::EStickerReplacement => "بدل ملصق إلكتروني تالف",
            ServiceKind::Inspection => "فحص فني",
            ServiceKind::Supplies => "مستلزمات مرور",
        }
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            ServiceKind::DrivingLicenceRenewal => "Driving licence renewal",
            ServiceKind::DrivingLicenceReplacement => "Driving licence replacement",
            ServiceKind::DrivingLicenceUpdate => "Driving licence data update",
            ServiceKind::VehicleLicenceRenewal => "Vehicle licence renewal",
            ServiceKind::VehicleLicenceReplacement => "Vehicle licence replacement",
            ServiceKind::EStickerIssue => "E-sticker",
            ServiceKind::EStickerReplacement => "Damaged e-sticker replacement",
            ServiceKind::Inspection => "Technical inspection",
            ServiceKind::Supplies => "Traffic supplies",
        }
    }

    /// Whether the service is about a vehicle (needs plate, VIN, category) rather than a driver.
    pub fn is_vehicle(self) -> bool {
        !matches!(
            self,
            ServiceKind::DrivingLicenceRenewal
                | ServiceKind::DrivingLicenceReplacement
                | ServiceKind::DrivingLicenceUpdate
        )
    }

    /// The physical steps the service needs after payment, in workflow order.
    pub fn steps(self) -> Steps {
        match self {
            ServiceKind::DrivingLicenceRenewal
            | ServiceKind::DrivingLicenceReplacement
            | ServiceKind::DrivingLicenceUpdate => {
                Steps { card: Some(CardDoc::DrivingLicence), tag: false, label: false }
            }
            ServiceKind::VehicleLicenceRenewal | ServiceKind::VehicleLicenceReplacement => {
                Steps { card: Some(CardDoc::VehicleLicence), tag: false, label: false }
            }
            ServiceKind::EStickerIssue | ServiceKind::EStickerReplacement => {
                Steps { card: None, tag: true, label: true }
            }
            ServiceKind::Inspection | ServiceKind::Supplies => Steps { card: None, tag: false, label: false },
        }
    }
}

/// Which card a service prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardDoc {
    /// Driving licence card (front and back).
    DrivingLicence,
    /// Vehicle licence card.
    VehicleLicence,
}

/// The physical steps of a service after payment: card print → e-sticker encode → sticker label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Steps {
    /// The card printed, if any.
    pub card: Option<CardDoc>,
    /// Whether an e-sticker tag is encoded.
    pub tag: bool,
    /// Whether a sticker label is printed.
    pub label: bool,
}

/// Vehicle categories (egypt.md); each has its plate colour band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleCategory {
    /// ملاكي.
    Private,
    /// نقل خفيف.
    LightTransport,
    /// أجرة.
    Taxi,
    /// نقل.
    Transport,
    /// دراجة نارية (no e-sticker).
    Motorcycle,
}

impl VehicleCategory {
    /// Every category.
    pub const ALL: [VehicleCategory; 5] = [
        VehicleCategory::Private,
        VehicleCategory::LightTransport,
        VehicleCategory::Taxi,
        VehicleCategory::Transport,
        VehicleCategory::Motorcycle,
    ];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            VehicleCategory::Private => "private",
            VehicleCategory::LightTransport => "light_transport",
            VehicleCategory::Taxi => "taxi",
            VehicleCategory::Transport => "transport",
            VehicleCategory::Motorcycle => "motorcycle",
        }
    }

    /// Arabic name as printed on the licence.
    pub fn name_ar(self) -> &'static str {
        match self {
            VehicleCategory::Private => "ملاكي",
            VehicleCategory::LightTransport => "نقل خفيف",
            VehicleCategory::Taxi => "أجرة",
            VehicleCategory::Transport => "نقل",
            VehicleCategory::Motorcycle => "دراجة نارية",
        }
    }
}

/// Driving licence grades (Traffic Law 66/1973 as amended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceGrade {
    /// خاصة.
    Private,
    /// درجة ثالثة.
    Third,
    /// درجة ثانية.
    Second,
    /// درجة أولى.
    First,
    /// دراجة نارية.
    Motorcycle,
}

impl LicenceGrade {
    /// Every grade.
    pub const ALL: [LicenceGrade; 5] = [
        LicenceGrade::Private,
        LicenceGrade::Third,
        LicenceGrade::Second,
        LicenceGrade::First,
        LicenceGrade::Motorcycle,
    ];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            LicenceGrade::Private => "private",
            LicenceGrade::Third => "third",
            LicenceGrade::Second => "second",
            LicenceGrade::First => "first",
            LicenceGrade::Motorcycle => "motorcycle",
        }
    }

    /// Arabic name as printed.
    pub fn name_ar(self) -> &'static str {
        match self {
            LicenceGrade::Private => "خاصة",
            LicenceGrade::Third => "درجة ثالثة",
            LicenceGrade::Second => "درجة ثانية",
            LicenceGrade::First => "درجة أولى",
            LicenceGrade::Motorcycle => "دراجة نارية",
        }
    }
}

/// Why a document is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplacementReason {
    /// بدل فاقد.
    Lost,
    /// بدل تالف.
    Damaged,
}

/// A citizen as booked or entered (names stored exactly as entered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citizen {
    /// 14 ASCII digits after normalisation.
    pub national_id: String,
    /// Full name in Arabic, as entered.
    pub name_ar: String,
    /// Name in Latin script (printed on the driving licence), if known.
    #[serde(default)]
    pub name_en: Option<String>,
    /// Phone number (ASCII digits), if known.
    #[serde(default)]
    pub phone: Option<String>,
}

/// A licence plate: Arabic letters and digits, stored apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plate {
    /// One to three Arabic letters, separated by single spaces (`أ ب ج`).
    pub letters: String,
    /// One to four ASCII digits.
    pub digits: String,
}

/// A vehicle as the licensing record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vehicle {
    /// Plate.
    pub plate: Plate,
    /// Category.
    pub category: VehicleCategory,
    /// Chassis number (VIN), upper case.
    pub vin: String,
    /// Engine number, upper case.
    pub engine_no: String,
    /// Make and model, e.g. `Hyundai Elantra`.
    pub make_model: String,
    /// Model year.
    #[serde(default)]
    pub year: Option<u16>,
    /// Colour in Arabic.
    #[serde(default)]
    pub colour_ar: String,
    /// Owner's national ID.
    pub owner_national_id: String,
}

/// A civil date `YYYY-MM-DD` (Africa/Cairo calendar).
pub type Date = jiff::civil::Date;

/// A driving licence as the record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrivingLicenceRecord {
    /// Licence number, e.g. `1234-567`.
    pub number: String,
    /// Grade.
    pub grade: LicenceGrade,
    /// Expiry date.
    pub expires: Date,
    /// Suspended by a court or the traffic authority.
    #[serde(default)]
    pub suspended: bool,
}

/// A vehicle licence as the record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleLicenceRecord {
    /// Licence number.
    pub number: String,
    /// Expiry date.
    pub expires: Date,
}

/// An unpaid traffic fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fine {
    /// HQ's fine id.
    pub id: String,
    /// Amount in piastres.
    pub amount: Piastres,
    /// Date of the offence.
    pub date: Date,
    /// What it was for, in Arabic.
    #[serde(default)]
    pub what_ar: String,
}

/// The last technical inspection on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionRecord {
    /// Inspection date.
    pub date: Date,
    /// Passed or failed.
    pub passed: bool,
}

/// What HQ knows about a citizen and (for vehicle services) their vehicle: carried by a booking
/// so the van can serve offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dossier {
    /// The citizen.
    pub citizen: Citizen,
    /// Their driving licence, if any.
    #[serde(default)]
    pub driving_licence: Option<DrivingLicenceRecord>,
    /// The vehicle concerned, if a vehicle service.
    #[serde(default)]
    pub vehicle: Option<Vehicle>,
    /// Its licence, if any.
    #[serde(default)]
    pub vehicle_licence: Option<VehicleLicenceRecord>,
    /// The last inspection of the vehicle.
    #[serde(default)]
    pub last_inspection: Option<InspectionRecord>,
    /// The vehicle's current e-sticker TID (hex), if one was issued.
    #[serde(default)]
    pub sticker_tid: Option<String>,
    /// Unpaid fines (of the citizen, and of the vehicle for vehicle services).
    #[serde(default)]
    pub unpaid_fines: Vec<Fine>,
    /// When HQ produced this dossier (RFC 3339 UTC).
    pub as_of: jiff::Timestamp,
}

/// How a booking reached the van.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The hotline 15558.
    Hotline,
    /// The Ministry's website.
    Web,
    /// Made on the spot in the van.
    WalkUp,
}

/// Where the van goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Address in Arabic (home, factory, school…).
    pub address_ar: String,
    /// Governorate code (as in the national ID: `01` Cairo, `21` Giza, …).
    pub governorate: String,
}

/// A booking's time slot (UTC instants; shown in Africa/Cairo). Must lie inside service hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Start (RFC 3339 UTC).
    pub start: jiff::Timestamp,
    /// End (RFC 3339 UTC).
    pub end: jiff::Timestamp,
}

/// A booking as HQ assigns it to a van (ids and versions are stable across moves between vans).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// HQ's booking id, stable for the booking's life.
    pub id: String,
    /// Version: a higher version replaces a lower one.
    pub version: u32,
    /// How it was made.
    pub channel: Channel,
    /// The service asked for.
    pub service: ServiceKind,
    /// Who asked.
    pub citizen: Citizen,
    /// Where.
    pub place: Place,
    /// When.
    pub slot: Slot,
    /// What HQ knows, for offline service.
    #[serde(default)]
    pub dossier: Option<Dossier>,
    /// Free text from the call centre, in Arabic.
    #[serde(default)]
    pub notes: String,
}

/// A booking's life in the van.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// Assigned to this van by HQ.
    Assigned,
    /// The van is at the place and the citizen is there.
    Arrived,
    /// A service transaction is running for it.
    InService,
    /// Served.
    Done,
    /// The citizen did not come.
    NoShow,
    /// Cancelled (by the citizen via HQ, or in the van with a reason).
    Cancelled,
}

impl BookingState {
    /// Whether `self → to` is an allowed transition.
    pub fn can_become(self, to: BookingState) -> bool {
        use BookingState::*;
        matches!(
            (self, to),
            (Assigned, Arrived)
                | (Assigned, NoShow)
                | (Assigned, Cancelled)
                | (Arrived, InService)
                | (Arrived, NoShow)
                | (Arrived, Cancelled)
                | (InService, Done)
                | (InService, Arrived)
        )
    }
}

/// An officer's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Serves citizens.
    Officer,
    /// Also voids, reverses, overrides and approves reprints.
    Supervisor,
}

/// Who did something (every service record names its officer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// Officer id (from the roster).
    pub id: String,
    /// Role at the time.
    pub role: Role,
}

/// A field-level problem with what was entered or received: which field, a stable code, and the
/// words for the officer in Arabic and English. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {en}")]
pub struct FieldError {
    /// JSON path of the field, e.g. `citizen.national_id`.
    pub field: String,
    /// Stable code, e.g. `national_id.bad_date`.
    pub code: String,
    /// What is wrong, in Arabic.
    pub ar: String,
    /// What is wrong, in English.
    pub en: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        ar: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        FieldError { field: field.into(), code: code.into(), ar: ar.into(), en: en.into() }
    }

    /// The same error under a parent path (`vehicle` + `vin` → `vehicle.vin`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field =
            if self.field.is_empty() { parent.to_owned() } else { format!("{parent}.{}", self.field) };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for s in ServiceKind::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.name()));
        }
        for c in VehicleCategory::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.name()));
        }
        for g in LicenceGrade::ALL {
            assert_eq!(serde_json::to_value(g).unwrap(), serde_json::json!(g.name()));
        }
    }

    #[test]
    fn booking_transitions() {
        use BookingState::*;
        assert!(Assigned.can_become(Arrived));
        assert!(InService.can_become(Done));
        assert!(!Done.can_become(InService));
        assert!(!NoShow.can_become(Arrived));
        assert!(!Assigned.can_become(Done));
    }

    #[test]
    fn e_sticker_steps() {
        assert_eq!(ServiceKind::EStickerIssue.steps(), Steps { card: None, tag: true, label: true });
        assert!(ServiceKind::Inspection.steps().card.is_none());
    }
}
