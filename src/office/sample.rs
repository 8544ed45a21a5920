//! The training van's sample day: a roster, a day of bookings covering every service, and a block
//! list, as bundles that [`super::refdata::RefData`] applies like HQ's.
//!
//! Sample officers (simulation only; the PINs are public):
//!
//! | id     | PIN    | role       | name                          |
//! |--------|--------|------------|-------------------------------|
//! | `1001` | `1234` | officer    | أحمد سامي عبد الله / Ahmed Samy Abdallah |
//! | `1002` | `2345` | officer    | منى حسن الشريف / Mona Hassan El-Sherif  |
//! | `9001` | `9999` | supervisor | خالد فؤاد منصور / Khaled Fouad Mansour   |
//!
//! The block list (`config/sample/blocklist.json`) holds one stolen vehicle that is in no booking,
//! plate `ق ط ع 7351`, VIN `JTDBR32E730058724` ([`STOLEN_PLATE_LETTERS`], [`STOLEN_PLATE_DIGITS`],
//! [`STOLEN_VIN`]): a walk-up with it is refused; and one suspended driving licence.
//!
//! Bundles are version 1 (roster, block list) and per-booking version 1: apply each only when its
//! kind was never applied (`RefData::version(kind)` is `None`); today's bookings can be applied on
//! every start (already-held bookings are skipped).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::model::{
    Booking, Channel, Citizen, Dossier, DrivingLicenceRecord, Fine, InspectionRecord, LicenceGrade, Place,
    Plate, ServiceKind, Slot, Vehicle, VehicleCategory, VehicleLicenceRecord,
};
use super::people::{PinError, hash_pin};

/// The sample officers: (id, PIN, role, Arabic name, English name).
pub const OFFICERS: [(&str, &str, &str, &str, &str); 3] = [
    ("1001", "1234", "officer", "أحمد سامي عبد الله", "Ahmed Samy Abdallah"),
    ("1002", "2345", "officer", "منى حسن الشريف", "Mona Hassan El-Sherif"),
    ("9001", "9999", "supervisor", "خالد فؤاد منصور", "Khaled Fouad Mansour"),
];

/// Letters of the stolen sample vehicle's plate (block list; in no booking).
pub const STOLEN_PLATE_LETTERS: &str = "ق ط ع";
/// Digits of the stolen sample vehicle's plate.
pub const STOLEN_PLATE_DIGITS: &str = "7351";
/// VIN of the stolen sample vehicle.
pub const STOLEN_VIN: &str = "JTDBR32E730058724";

const BLOCKLIST: &str = include_str!("../../config/sample/blocklist.json");

fn header(kind: &str, van_id: &str, issued_at: Timestamp) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("bundle".into(), json!(kind));
    m.insert("version".into(), json!(1));
    m.insert("van_id".into(), json!(van_id));
    m.insert("issued_at".into(), json!(issued_at));
    m
}

/// The sample roster bundle; the PINs of [`OFFICERS`] are hashed now (Argon2id, about 0.1 s each).
pub fn roster(van_id: &str, issued_at: Timestamp) -> Result<Value, PinError> {
    let mut officers = Vec::new();
    for (id, pin, role, name_ar, name_en) in OFFICERS {
        officers.push(json!({
            "id": id, "name_ar": name_ar, "name_en": name_en, "role": role,
            "pin_hash": hash_pin(pin)?, "active": true,
        }));
    }
    let mut m = header("roster", van_id, issued_at);
    m.insert("officers".into(), Value::Array(officers));
    Ok(Value::Object(m))
}

/// The sample block list bundle (`config/sample/blocklist.json` under `"blocklist"`).
pub fn blocklist(van_id: &str, issued_at: Timestamp) -> Value {
    let body: Value = serde_json::from_str(BLOCKLIST).expect("config/sample/blocklist.json is JSON");
    let mut m = header("blocklist", van_id, issued_at);
    m.insert("blocklist".into(), body);
    Value::Object(m)
}

/// A national ID by the published rules: century digit (2: 1900s, 3: 2000s), birth date,
/// governorate, a 4-digit sequence (its last digit odd for a man) and a check digit.
fn national_id(birth: Date, governorate: u8, sequence: u16, check: u8) -> String {
    let century = if birth.year() >= 2000 { 3 } else { 2 };
    format!(
        "{century}{:02}{:02}{:02}{governorate:02}{sequence:04}{check}",
        birth.year() % 100,
        birth.month(),
        birth.day()
    )
}

fn date(y: i16, m: i8, d: i8) -> Date {
    Date::new(y, m, d).expect("a real date")
}

fn days(d: Date, n: i64) -> Date {
    d.checked_add(SignedDuration::from_hours(24 * n)).unwrap_or(d)
}

struct Person {
    nid: String,
    ar: &'static str,
    en: &'static str,
    phone: &'static str,
}

fn citizen(p: &Person) -> Citizen {
    Citizen {
        national_id: p.nid.clone(),
        name_ar: p.ar.into(),
        name_en: Some(p.en.into()),
        phone: Some(p.phone.into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn vehicle(
    letters: &str,
    digits: &str,
    category: VehicleCategory,
    vin: &str,
    engine: &str,
    make_model: &str,
    year: u16,
    colour_ar: &str,
    owner: &Person,
) -> Vehicle {
    Vehicle {
        plate: Plate { letters: letters.into(), digits: digits.into() },
        category,
        vin: vin.into(),
        engine_no: engine.into(),
        make_model: make_model.into(),
        year: Some(year),
        colour_ar: colour_ar.into(),
        owner_national_id: owner.nid.clone(),
    }
}

/// Today's sample bookings (a bundle), one slot an hour from 10:00 local time, covering every
/// service, with stable ids `B-YYYYMMDD-NN`:
///
/// | NN | service | what it shows |
/// |----|---------|---------------|
/// | 01 | vehicle licence renewal | private car, inspection passed 10 days ago: the happy path |
/// | 02 | vehicle licence renewal | two unpaid fines (450 EGP) |
/// | 03 | vehicle licence renewal | light transport, inspection 120 days old |
/// | 04 | e-sticker issue | light transport, no sticker yet |
/// | 05 | e-sticker replacement | damaged sticker, old TID on record |
/// | 06 | driving licence renewal | private licence expiring in 12 days |
/// | 07 | driving licence replacement | lost (بدل فاقد) |
/// | 08 | traffic supplies | safety kit for a private car |
/// | 09 | technical inspection | taxi |
/// | 10 | driving licence data update | new address |
/// | 11 | vehicle licence replacement | damaged licence |
pub fn bookings(van_id: &str, today: Date, tz: &TimeZone, issued_at: Timestamp) -> Value {
    let at = |h: i8, m: i8| -> Timestamp {
        DateTime::from_parts(today, Time::new(h, m, 0, 0).expect("a real time"))
            .to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp())
            .unwrap_or(issued_at)
    };
    let as_of = at(10, 0).checked_sub(SignedDuration::from_hours(12)).unwrap_or(issued_at);
    let ymd = today.strftime("%Y%m%d").to_string();

    let p = [
        Person {
            nid: national_id(date(1985, 3, 14), 1, 2345, 8),
            ar: "محمد عبد الرحمن السيد",
            en: "Mohamed Abdelrahman El-Sayed",
            phone: "01012345678",
        },
        Person {
            nid: national_id(date(1979, 7, 2), 21, 1122, 4),
            ar: "سعاد إبراهيم حسين",
            en: "Souad Ibrahim Hussein",
            phone: "01122334455",
        },
        Person {
            nid: national_id(date(1968, 12, 30), 14, 3071, 1),
            ar: "حسن محمود عطية",
            en: "Hassan Mahmoud Attia",
            phone: "01233445566",
        },
        Person {
            nid: national_id(date(1990, 5, 21), 13, 559, 2),
            ar: "كريم عادل فهمي",
            en: "Karim Adel Fahmy",
            phone: "01544556677",
        },
        Person {
            nid: national_id(date(1982, 1, 9), 2, 4417, 6),
            ar: "نادية سمير زكي",
            en: "Nadia Samir Zaki",
            phone: "01066778899",
        },
        Person {
            nid: national_id(date(2001, 9, 17), 1, 815, 3),
            ar: "يوسف طارق البنا",
            en: "Youssef Tarek El-Banna",
            phone: "01099887766",
        },
        Person {
            nid: national_id(date(1995, 2, 28), 16, 2208, 5),
            ar: "ريهام أشرف مرسي",
            en: "Reham Ashraf Morsy",
            phone: "01155443322",
        },
        Person {
            nid: national_id(date(1973, 10, 5), 21, 6613, 0),
            ar: "عمرو جمال الدين شاكر",
            en: "Amr Gamal El-Din Shaker",
            phone: "01288776655",
        },
        Person {
            nid: national_id(date(1988, 6, 11), 1, 7051, 9),
            ar: "مصطفى رجب عبد العزيز",
            en: "Mostafa Ragab Abdelaziz",
            phone: "01511223344",
        },
        Person {
            nid: national_id(date(2000, 4, 3), 12, 1302, 7),
            ar: "سارة وليد منصور",
            en: "Sara Walid Mansour",
            phone: "01000112233",
        },
        Person {
            nid: national_id(date(1976, 8, 24), 18, 925, 1),
            ar: "طارق فتحي الجندي",
            en: "Tarek Fathy El-Gendy",
            phone: "01277665544",
        },
    ];
    let place = |address_ar: &str, governorate: &str| Place {
        address_ar: address_ar.into(),
        governorate: governorate.into(),
    };
    let dossier = |who: &Person| Dossier {
        citizen: citizen(who),
        driving_licence: None,
        vehicle: None,
        vehicle_licence: None,
        last_inspection: None,
        sticker_tid: None,
        unpaid_fines: Vec::new(),
        as_of,
    };
    let vl = |number: &str, expires: Date| Some(VehicleLicenceRecord { number: number.into(), expires });
    let dl = |number: &str, grade: LicenceGrade, expires: Date| {
        Some(DrivingLicenceRecord { number: number.into(), grade, expires, suspended: false })
    };

    let v1 = vehicle(
        "ب ط ع",
        "1234",
        VehicleCategory::Private,
        "KMHD841CBKU123456",
        "G4FG5A123456",
        "Hyundai Elantra",
        2019,
        "أبيض",
        &p[0],
    );
    let v2 = vehicle(
        "س م ل",
        "4821",
        VehicleCategory::Private,
        "MA3FB32S7K0291734",
        "K12MN4087215",
        "Suzuki Swift",
        2020,
        "أحمر",
        &p[1],
    );
    let v3 = vehicle(
        "ن ق ل",
        "903",
        VehicleCategory::LightTransport,
        "MR0HA3CD5L0712846",
        "2GDC981244",
        "Toyota Hilux",
        2020,
        "فضي",
        &p[2],
    );
    let v4 = vehicle(
        "ر ف",
        "5566",
        VehicleCategory::LightTransport,
        "LVBV3JBB2NE104583",
        "JX4D2027746",
        "Foton Tunland",
        2022,
        "أبيض",
        &p[3],
    );
    let v5 = vehicle(
        "ص و",
        "2718",
        VehicleCategory::Private,
        "VF1RJA00569451207",
        "H5HB470D022817",
        "Renault Megane",
        2021,
        "رمادي",
        &p[4],
    );
    let v8 = vehicle(
        "م ج د",
        "66",
        VehicleCategory::Private,
        "KNAB2512AKT583019",
        "G4LAKM731250",
        "Kia Picanto",
        2019,
        "أزرق",
        &p[7],
    );
    let v9 = vehicle(
        "ط ك س",
        "3140",
        VehicleCategory::Taxi,
        "MALA741CAKM325816",
        "G4LCKU140372",
        "Hyundai Accent",
        2019,
        "أبيض وأسود",
        &p[8],
    );
    let v11 = vehicle(
        "ه و",
        "8080",
        VehicleCategory::Private,
        "WVWZZZAUZKW168233",
        "CJZD492713",
        "Volkswagen Golf",
        2019,
        "أسود",
        &p[10],
    );

    struct B {
        service: ServiceKind,
        channel: Channel,
        who: usize,
        place: Place,
        dossier: Dossier,
        notes: &'static str,
    }
    let mut list = Vec::new();

    // 01: the happy path.
    let mut d = dossier(&p[0]);
    d.vehicle = Some(v1);
    d.vehicle_licence = vl("VL-01-2023-448812", days(today, 9));
    d.last_inspection = Some(InspectionRecord { date: days(today, -10), passed: true });
    list.push(B {
        service: ServiceKind::VehicleLicenceRenewal,
        channel: Channel::Hotline,
        who: 0,
        place: place("١٢ شارع مصدق، الدقي، الجيزة", "21"),
        dossier: d,
        notes: "",
    });

    // 02: unpaid fines.
    let mut d = dossier(&p[1]);
    d.vehicle = Some(v2);
    d.vehicle_licence = vl("VL-21-2022-117305", days(today, 3));
    d.last_inspection = Some(InspectionRecord { date: days(today, -6), passed: true });
    d.unpaid_fines = vec![
        Fine {
            id: "F-2026-0098123".into(),
            amount: 30_000,
            date: days(today, -140),
            what_ar: "تجاوز السرعة المقررة".into(),
        },
        Fine {
            id: "F-2026-0113577".into(),
            amount: 15_000,
            date: days(today, -45),
            what_ar: "انتظار في الممنوع".into(),
        },
    ];
    list.push(B {
        service: ServiceKind::VehicleLicenceRenewal,
        channel: Channel::Web,
        who: 1,
        place: place("مصنع النور للبلاستيك، المنطقة الصناعية، أكتوبر", "21"),
        dossier: d,
        notes: "",
    });

    // 03: stale inspection.
    let mut d = dossier(&p[2]);
    d.vehicle = Some(v3);
    d.vehicle_licence = vl("VL-14-2021-330971", days(today, -2));
    d.last_inspection = Some(InspectionRecord { date: days(today, -120), passed: true });
    list.push(B {
        service: ServiceKind::VehicleLicenceRenewal,
        channel: Channel::Hotline,
        who: 2,
        place: place("٣ شارع الجلاء، بنها", "14"),
        dossier: d,
        notes: "",
    });

    // 04: e-sticker issue.
    let mut d = dossier(&p[3]);
    d.vehicle = Some(v4);
    d.vehicle_licence = vl("VL-13-2026-501144", days(today, 1080));
    d.last_inspection = Some(InspectionRecord { date: days(today, -20), passed: true });
    list.push(B {
        service: ServiceKind::EStickerIssue,
        channel: Channel::Web,
        who: 3,
        place: place("مدرسة الزقازيق الثانوية بنين، الزقازيق", "13"),
        dossier: d,
        notes: "",
    });

    // 05: damaged e-sticker replacement, old TID on record.
    let mut d = dossier(&p[4]);
    d.vehicle = Some(v5);
    d.vehicle_licence = vl("VL-02-2024-228716", days(today, 400));
    d.sticker_tid = Some("E2801160200074CF085B0B13".into());
    list.push(B {
        service: ServiceKind::EStickerReplacement,
        channel: Channel::Hotline,
        who: 4,
        place: place("٢٥ طريق الحرية، الإسكندرية", "02"),
        dossier: d,
        notes: "الملصق تالف بعد تغيير الزجاج الأمامي",
    });

    // 06: driving licence renewal.
    let mut d = dossier(&p[5]);
    d.driving_licence = dl("3321-904", LicenceGrade::Private, days(today, 12));
    list.push(B {
        service: ServiceKind::DrivingLicenceRenewal,
        channel: Channel::Web,
        who: 5,
        place: place("جامعة القاهرة، البوابة الرئيسية، الجيزة", "21"),
        dossier: d,
        notes: "",
    });

    // 07: driving licence replacement, lost.
    let mut d = dossier(&p[6]);
    d.driving_licence = dl("5107-266", LicenceGrade::Private, days(today, 700));
    list.push(B {
        service: ServiceKind::DrivingLicenceReplacement,
        channel: Channel::Hotline,
        who: 6,
        place: place("١٨ شارع البحر، طنطا", "16"),
        dossier: d,
        notes: "بدل فاقد",
    });

    // 08: supplies.
    let mut d = dossier(&p[7]);
    d.vehicle = Some(v8);
    d.vehicle_licence = vl("VL-21-2025-093382", days(today, 650));
    list.push(B {
        service: ServiceKind::Supplies,
        channel: Channel::Hotline,
        who: 7,
        place: place("٧ شارع جامعة الدول العربية، المهندسين", "21"),
        dossier: d,
        notes: "شنطة إسعافات ومثلث عاكس",
    });

    // 09: technical inspection, taxi.
    let mut d = dossier(&p[8]);
    d.vehicle = Some(v9);
    d.vehicle_licence = vl("VL-01-2023-761290", days(today, 30));
    d.last_inspection = Some(InspectionRecord { date: days(today, -380), passed: true });
    list.push(B {
        service: ServiceKind::Inspection,
        channel: Channel::Web,
        who: 8,
        place: place("موقف الأتوبيس، رمسيس، القاهرة", "01"),
        dossier: d,
        notes: "",
    });

    // 10: driving licence data update.
    let mut d = dossier(&p[9]);
    d.driving_licence = dl("7740-318", LicenceGrade::Private, days(today, 1500));
    list.push(B {
        service: ServiceKind::DrivingLicenceUpdate,
        channel: Channel::Web,
        who: 9,
        place: place("٤ شارع الجمهورية، المنصورة", "12"),
        dossier: d,
        notes: "تغيير العنوان إلى المنصورة",
    });

    // 11: vehicle licence replacement, damaged.
    let mut d = dossier(&p[10]);
    d.vehicle = Some(v11);
    d.vehicle_licence = vl("VL-18-2024-415207", days(today, 500));
    list.push(B {
        service: ServiceKind::VehicleLicenceReplacement,
        channel: Channel::Hotline,
        who: 10,
        place: place("٩ شارع الجيش، دمنهور", "18"),
        dossier: d,
        notes: "بدل تالف",
    });

    let items: Vec<Booking> = list
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let hour = 10 + i as i8;
            Booking {
                id: format!("B-{ymd}-{:02}", i + 1),
                version: 1,
                channel: b.channel,
                service: b.service,
                citizen: citizen(&p[b.who]),
                place: b.place,
                slot: Slot { start: at(hour, 0), end: at(hour, 45) },
                dossier: Some(b.dossier),
                notes: b.notes.into(),
            }
        })
        .collect();
    let mut m = header("bookings", van_id, issued_at);
    m.insert("items".into(), serde_json::to_value(items).expect("bookings serialise"));
    Value::Object(m)
}

/// Why the sample day could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A sample PIN could not be hashed.
    #[error("sample roster: {0}")]
    Pin(#[from] PinError),
    /// office.db could not be read.
    #[error(transparent)]
    RefData(#[from] super::refdata::RefDataError),
}

/// The sample bundles a training van still needs, in order: the roster and the block list if
/// that kind was never applied, and today's bookings (already-held ones are skipped on import).
/// Apply each with `RefData::import`, which journals it first.
pub fn day_bundles(
    refdata: &super::refdata::RefData,
    van_id: &str,
    today: Date,
    now: Timestamp,
) -> Result<Vec<Vec<u8>>, SampleError> {
    use super::refdata::BundleKind;
    let mut out = Vec::new();
    if refdata.version(BundleKind::Roster)?.is_none() {
        out.push(roster(van_id, now)?.to_string().into_bytes());
    }
    if refdata.version(BundleKind::Blocklist)?.is_none() {
        out.push(blocklist(van_id, now).to_string().into_bytes());
    }
    out.push(bookings(van_id, today, &refdata.hours().tz, now).to_string().into_bytes());
    Ok(out)
}
