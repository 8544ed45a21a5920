//! Checks on what an officer types or a booking carries: national IDs, plates, VINs, engine
//! numbers, phones, and Arabic name matching. Pure functions, no I/O, no clock.
//!
//! Every number an officer types may use Eastern Arabic (٠-٩) or Persian (۰-۹) digits: they are
//! turned into ASCII digits ([`ascii_digits`]) before anything is checked or stored. Every failure
//! is a [`FieldError`] with a stable code (`national_id.bad_date`, `plate.letters`, …) and words
//! in Arabic and English that say what is wrong and where.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Citizen, Date, FieldError, Plate, Vehicle};

/// Turns Eastern Arabic (U+0660–U+0669) and Persian (U+06F0–U+06F9) digits into ASCII digits;
/// every other character is kept as it is.
pub fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
            '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
            _ => c,
        })
        .collect()
}

/// A character as the officer would recognise it in a message (control characters escaped).
fn shown(c: char) -> String {
    if c.is_control() || c.is_whitespace() { c.escape_unicode().to_string() } else { c.to_string() }
}

// ---------------------------------------------------------------------------------------------
// Governorates

/// A governorate of birth as coded in the national ID (digits 8–9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Governorate {
    /// Two-digit code, e.g. `01`.
    pub code: &'static str,
    /// Arabic name.
    pub name_ar: &'static str,
    /// English name.
    pub name_en: &'static str,
}

/// The governorate codes a national ID may carry (`88`: born abroad).
pub const GOVERNORATES: [Governorate; 28] = [
    Governorate { code: "01", name_ar: "القاهرة", name_en: "Cairo" },
    Governorate { code: "02", name_ar: "الإسكندرية", name_en: "Alexandria" },
    Governorate { code: "03", name_ar: "بورسعيد", name_en: "Port Said" },
    Governorate { code: "04", name_ar: "السويس", name_en: "Suez" },
    Governorate { code: "11", name_ar: "دمياط", name_en: "Damietta" },
    Governorate { code: "12", name_ar: "الدقهلية", name_en: "Dakahlia" },
    Governorate { code: "13", name_ar: "الشرقية", name_en: "Sharqia" },
    Governorate { code: "14", name_ar: "القليوبية", name_en: "Qalyubia" },
    Governorate { code: "15", name_ar: "كفر الشيخ", name_en: "Kafr El Sheikh" },
    Governorate { code: "16", name_ar: "الغربية", name_en: "Gharbia" },
    Governorate { code: "17", name_ar: "المنوفية", name_en: "Monufia" },
    Governorate { code: "18", name_ar: "البحيرة", name_en: "Beheira" },
    Governorate { code: "19", name_ar: "الإسماعيلية", name_en: "Ismailia" },
    Governorate { code: "21", name_ar: "الجيزة", name_en: "Giza" },
    Governorate { code: "22", name_ar: "بني سويف", name_en: "Beni Suef" },
    Governorate { code: "23", name_ar: "الفيوم", name_en: "Fayoum" },
    Governorate { code: "24", name_ar: "المنيا", name_en: "Minya" },
    Governorate { code: "25", name_ar: "أسيوط", name_en: "Asyut" },
    Governorate { code: "26", name_ar: "سوهاج", name_en: "Sohag" },
    Governorate { code: "27", name_ar: "قنا", name_en: "Qena" },
    Governorate { code: "28", name_ar: "أسوان", name_en: "Aswan" },
    Governorate { code: "29", name_ar: "الأقصر", name_en: "Luxor" },
    Governorate { code: "31", name_ar: "البحر الأحمر", name_en: "Red Sea" },
    Governorate { code: "32", name_ar: "الوادي الجديد", name_en: "New Valley" },
    Governorate { code: "33", name_ar: "مطروح", name_en: "Matrouh" },
    Governorate { code: "34", name_ar: "شمال سيناء", name_en: "North Sinai" },
    Governorate { code: "35", name_ar: "جنوب سيناء", name_en: "South Sinai" },
    Governorate { code: "88", name_ar: "خارج الجمهورية", name_en: "Born abroad" },
];

/// The governorate with this two-digit code, if there is one.
pub fn governorate(code: &str) -> Option<&'static Governorate> {
    GOVERNORATES.iter().find(|g| g.code == code)
}

// ---------------------------------------------------------------------------------------------
// National ID

/// Sex as coded in the national ID (13th digit: odd male, even female).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// ذكر.
    Male,
    /// أنثى.
    Female,
}

impl Sex {
    /// Arabic word.
    pub fn name_ar(self) -> &'static str {
        match self {
            Sex::Male => "ذكر",
            Sex::Female => "أنثى",
        }
    }
}

const MONTHS_AR: [&str; 12] = [
    "يناير",
    "فبراير",
    "مارس",
    "أبريل",
    "مايو",
    "يونيو",
    "يوليو",
    "أغسطس",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// An Egyptian national ID (`C YYMMDD GG SSSS Z`) that passed every public check: 14 digits,
/// century 2 or 3, a real birth date not in the future, a known governorate. The check digit's
/// algorithm is not public, so it is never checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NationalId {
    digits: String,
    birth_date: Date,
    governorate: &'static Governorate,
    sex: Sex,
}

impl NationalId {
    /// Field name used in errors.
    pub const FIELD: &'static str = "national_id";

    /// Parses what was typed: trims, turns Arabic/Persian digits into ASCII, then checks length,
    /// century, birth date (against `today`, the Cairo calendar date), and governorate.
    pub fn parse(s: &str, today: Date) -> Result<NationalId, FieldError> {
        let err = |code: &str, ar: String, en: String| FieldError::new(Self::FIELD, code, ar, en);
        let text = ascii_digits(s.trim());
        if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(err(
                "national_id.not_digits",
                format!("الرقم القومي يجب أن يكون أرقامًا فقط؛ الحرف «{}» في الموضع {}", shown(c), i + 1),
                format!(
                    "the national ID must be digits only; character '{}' at position {}",
                    shown(c),
                    i + 1
                ),
            ));
        }
        if text.len() != 14 {
            return Err(err(
                "national_id.length",
                format!("الرقم القومي 14 رقمًا، وما أُدخل {} رقمًا", text.len()),
                format!("the national ID has 14 digits, {} were entered", text.len()),
            ));
        }
        let d = text.as_bytes();
        let num = |a: usize, b: usize| -> i16 { text[a..b].parse().unwrap_or(0) };
        let century = match d[0] {
            b'2' => 1900,
            b'3' => 2000,
            other => {
                return Err(err(
                    "national_id.century",
                    format!("الرقم الأول (القرن) يجب أن يكون 2 أو 3، وليس {}", other as char),
                    format!("the first digit (century) must be 2 or 3, not {}", other as char),
                ));
            }
        };
        let year = century + num(1, 3);
        let month = num(3, 5);
        let day = num(5, 7);
        if !(1..=12).contains(&month) {
            return Err(err(
                "national_id.bad_date",
                format!("تاريخ الميلاد غير صحيح: الشهر {month} غير موجود"),
                format!("birth date is wrong: month {month} does not exist"),
            ));
        }
        let first = Date::new(year, month as i8, 1).map_err(|_| {
            err(
                "national_id.bad_date",
                format!("تاريخ الميلاد غير صحيح: السنة {year}"),
                format!("birth date is wrong: year {year}"),
            )
        })?;
        let birth_date = match Date::new(year, month as i8, day as i8) {
            Ok(date) if day >= 1 => date,
            _ => {
                let m = (month - 1) as usize;
                return Err(err(
                    "national_id.bad_date",
                    format!(
                        "تاريخ الميلاد غير صحيح: اليوم {day} غير موجود في {} {year} (فيه {} يومًا)",
                        MONTHS_AR[m],
                        first.days_in_month()
                    ),
                    format!(
                        "birth date is wrong: day {day} does not exist in {} {year} (it has {} days)",
                        MONTHS_EN[m],
                        first.days_in_month()
                    ),
                ));
            }
        };
        if birth_date > today {
            return Err(err(
                "national_id.future_birth",
                format!("تاريخ الميلاد {birth_date} في المستقبل"),
                format!("birth date {birth_date} is in the future"),
            ));
        }
        let code = &text[7..9];
        let Some(governorate) = governorate(code) else {
            return Err(err(
                "national_id.governorate",
                format!("كود المحافظة {code} (الرقمان 8 و9) غير موجود"),
                format!("governorate code {code} (digits 8-9) does not exist"),
            ));
        };
        let sex = if (d[12] - b'0') % 2 == 1 { Sex::Male } else { Sex::Female };
        Ok(NationalId { digits: text, birth_date, governorate, sex })
    }

    /// The 14 ASCII digits.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// Date of birth.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// Governorate of birth.
    pub fn governorate(&self) -> &'static Governorate {
        self.governorate
    }

    /// Sex.
    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// Age in completed years on `date` (0 before the birth date). Someone born on 29 February
    /// turns a year older on 1 March in a common year.
    pub fn age_on(&self, date: Date) -> u32 {
        let b = self.birth_date;
        let mut years = i32::from(date.year()) - i32::from(b.year());
        if (date.month(), date.day()) < (b.month(), b.day()) {
            years -= 1;
        }
        years.max(0) as u32
    }
}

/// What a national ID says, for showing next to it (`POST /validate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NationalIdInfo {
    /// The 14 ASCII digits.
    pub national_id: String,
    /// Date of birth.
    pub birth_date: Date,
    /// Governorate of birth.
    pub governorate: Governorate,
    /// Sex.
    pub sex: Sex,
}

impl NationalId {
    /// What the ID says, as data.
    pub fn info(&self) -> NationalIdInfo {
        NationalIdInfo {
            national_id: self.digits.clone(),
            birth_date: self.birth_date,
            governorate: *self.governorate,
            sex: self.sex,
        }
    }
}

impl std::fmt::Display for NationalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.digits)
    }
}

// ---------------------------------------------------------------------------------------------
// Arabic text

const TATWEEL: char = '\u{0640}';

/// Whether `c` is an Arabic diacritic (harakat U+064B–U+065F, superscript alef U+0670).
fn is_haraka(c: char) -> bool {
    matches!(c, '\u{064B}'..='\u{065F}' | '\u{0670}')
}

/// A name reduced for matching only (never stored): alef forms أ إ آ → ا, ة → ه, ى → ي, tatweel
/// and diacritics removed, runs of white space made one space, ends trimmed. Two spellings of the
/// same name (`أحمد` / `احمد`, `فاطمة` / `فاطمه`) give the same result.
pub fn normalise_name_ar(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c == TATWEEL || is_haraka(c) {
            continue;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(match c {
            'أ' | 'إ' | 'آ' => 'ا',
            'ة' => 'ه',
            'ى' => 'ي',
            other => other,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Plates

/// How plates are checked: letter and digit counts and the Arabic letters in use. It is data
/// (the fee schedule's `plate` object), so a new plate series changes the schedule, not the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateRules {
    /// Fewest letters on a plate (at least 1).
    pub min_letters: u8,
    /// Most letters on a plate (at most 3).
    pub max_letters: u8,
    /// Most digits on a plate (1 to 4).
    pub max_digits: u8,
    /// The letters used on plates, one letter each, in their printed form.
    pub letters: Vec<String>,
    /// Other spellings an officer may type for a plate letter, mapped to its printed form
    /// (`"ا": "أ"`, `"ي": "ى"`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

impl Default for PlateRules {
    /// The letters of Egypt's current plate series and the usual alef/ya/ha spellings.
    fn default() -> Self {
        let letters =
            ["أ", "ب", "ج", "د", "ر", "س", "ص", "ط", "ع", "ف", "ق", "ك", "ل", "م", "ن", "ه", "و", "ى"];
        let aliases = [("ا", "أ"), ("إ", "أ"), ("آ", "أ"), ("ي", "ى"), ("ة", "ه")];
        PlateRules {
            min_letters: 1,
            max_letters: 3,
            max_digits: 4,
            letters: letters.iter().map(|s| (*s).to_owned()).collect(),
            aliases: aliases.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
        }
    }
}

impl PlateRules {
    /// Checks the rules themselves (used when a schedule is loaded): counts in range, letters are
    /// single characters, aliases lead to a plate letter. Returns (field, message) of the first
    /// problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.min_letters < 1 || self.max_letters > 3 || self.min_letters > self.max_letters {
            return Err((
                "min_letters".into(),
                format!(
                    "letters per plate must satisfy 1 <= min_letters <= max_letters <= 3, got {}..{}",
                    self.min_letters, self.max_letters
                ),
            ));
        }
        if !(1..=4).contains(&self.max_digits) {
            return Err(("max_digits".into(), format!("must be 1 to 4, got {}", self.max_digits)));
        }
        if self.letters.is_empty() {
            return Err(("letters".into(), "must list at least one letter".into()));
        }
        for (i, l) in self.letters.iter().enumerate() {
            if l.chars().count() != 1 || l.chars().any(|c| c.is_whitespace()) {
                return Err((format!("letters[{i}]"), format!("'{l}' must be exactly one letter")));
            }
            if self.letters[..i].contains(l) {
                return Err((format!("letters[{i}]"), format!("'{l}' is listed twice")));
            }
        }
        for (from, to) in &self.aliases {
            if from.chars().count() != 1 {
                return Err((format!("aliases.{from}"), format!("'{from}' must be exactly one letter")));
            }
            if !self.letters.contains(to) {
                return Err((format!("aliases.{from}"), format!("'{to}' is not one of the plate letters")));
            }
        }
        Ok(())
    }

    /// Parses a plate as typed: letters with or without spaces (tatweel and diacritics ignored,
    /// alternative spellings mapped by `aliases`), digits Arabic or ASCII. The plate's letters
    /// are stored in their printed form separated by single spaces, its digits in ASCII.
    pub fn parse(&self, letters: &str, digits: &str) -> Result<Plate, FieldError> {
        let lerr = |code: &str, ar: String, en: String| FieldError::new("plate.letters", code, ar, en);
        let mut out: Vec<&str> = Vec::new();
        for c in letters.chars() {
            if c.is_whitespace() || c == TATWEEL || is_haraka(c) {
                continue;
            }
            let mut buf = [0u8; 4];
            let key: &str = c.encode_utf8(&mut buf);
            let printed = self.aliases.get(key).map(String::as_str).unwrap_or(key);
            match self.letters.iter().find(|l| l.as_str() == printed) {
                Some(l) => out.push(l),
                None => {
                    return Err(lerr(
                        "plate.letters",
                        format!("الحرف «{}» لا يُستعمل في لوحات المركبات", shown(c)),
                        format!("'{}' is not a letter used on number plates", shown(c)),
                    ));
                }
            }
        }
        let (min, max) = (usize::from(self.min_letters), usize::from(self.max_letters));
        if out.len() < min || out.len() > max {
            return Err(lerr(
                "plate.letters_count",
                format!("اللوحة فيها من {min} إلى {max} حروف، وأُدخل {}", out.len()),
                format!("a plate has {min} to {max} letters, {} were entered", out.len()),
            ));
        }
        let derr = |code: &str, ar: String, en: String| FieldError::new("plate.digits", code, ar, en);
        let text: String = ascii_digits(digits).chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(c) = text.chars().find(|c| !c.is_ascii_digit()) {
            return Err(derr(
                "plate.digits",
                format!("أرقام اللوحة يجب أن تكون أرقامًا فقط، لا «{}»", shown(c)),
                format!("plate digits must be digits only, not '{}'", shown(c)),
            ));
        }
        let max = usize::from(self.max_digits);
        if text.is_empty() || text.len() > max {
            return Err(derr(
                "plate.digits_count",
                format!("اللوحة فيها من 1 إلى {max} أرقام، وأُدخل {}", text.len()),
                format!("a plate has 1 to {max} digits, {} were entered", text.len()),
            ));
        }
        Ok(Plate { letters: out.join(" "), digits: text })
    }
}

// ---------------------------------------------------------------------------------------------
// VIN, engine number, phone

/// Parses a chassis number (VIN, ISO 3779): trimmed, upper-cased, 17 of A–Z and 0–9 without
/// I, O and Q. Position 9's check digit is a North American rule and is not checked.
pub fn parse_vin(s: &str) -> Result<String, FieldError> {
    let err = |code: &str, ar: String, en: String| FieldError::new("vin", code, ar, en);
    let vin = ascii_digits(s.trim()).to_uppercase();
    if let Some((i, c)) = vin.chars().enumerate().find(|(_, c)| !c.is_ascii_alphanumeric()) {
        return Err(err(
            "vin.bad_char",
            format!("رقم الشاسيه حروف لاتينية وأرقام فقط؛ «{}» في الموضع {}", shown(c), i + 1),
            format!("a VIN has Latin letters and digits only; '{}' at position {}", shown(c), i + 1),
        ));
    }
    if let Some((i, c)) = vin.chars().enumerate().find(|(_, c)| matches!(c, 'I' | 'O' | 'Q')) {
        let instead = if c == 'I' { '1' } else { '0' };
        return Err(err(
            "vin.forbidden_letter",
            format!("الحرف {c} لا يُستعمل في رقم الشاسيه (الموضع {}); ربما {instead}", i + 1),
            format!("a VIN never contains {c} (position {}); perhaps {instead}", i + 1),
        ));
    }
    let n = vin.chars().count();
    if n != 17 {
        return Err(err(
            "vin.length",
            format!("رقم الشاسيه 17 خانة، وأُدخل {n}"),
            format!("a VIN has 17 characters, {n} were entered"),
        ));
    }
    Ok(vin)
}

/// Parses an engine number: trimmed, upper-cased, 4 to 20 of A–Z, 0–9 and `-`.
pub fn parse_engine_no(s: &str) -> Result<String, FieldError> {
    let err = |code: &str, ar: String, en: String| FieldError::new("engine_no", code, ar, en);
    let no = ascii_digits(s.trim()).to_uppercase();
    if let Some((i, c)) = no.chars().enumerate().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(err(
            "engine_no.bad_char",
            format!("رقم المحرك حروف لاتينية وأرقام و«-» فقط؛ «{}» في الموضع {}", shown(c), i + 1),
            format!(
                "an engine number has Latin letters, digits and '-' only; '{}' at position {}",
                shown(c),
                i + 1
            ),
        ));
    }
    let n = no.len();
    if !(4..=20).contains(&n) {
        return Err(err(
            "engine_no.length",
            format!("رقم المحرك من 4 إلى 20 خانة، وأُدخل {n}"),
            format!("an engine number has 4 to 20 characters, {n} were entered"),
        ));
    }
    Ok(no)
}

/// Parses an Egyptian mobile number: digits Arabic or ASCII, spaces and dashes ignored, an
/// international `+20` / `0020` prefix accepted; the result is the 11-digit national form
/// `01[0125]XXXXXXXX`.
pub fn parse_phone(s: &str) -> Result<String, FieldError> {
    let err = |code: &str, ar: String, en: String| FieldError::new("phone", code, ar, en);
    let raw: String = ascii_digits(s.trim()).chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let rest = if let Some(r) = raw.strip_prefix("+20").or_else(|| raw.strip_prefix("0020")) {
        format!("0{r}")
    } else {
        raw
    };
    if let Some(c) = rest.chars().find(|c| !c.is_ascii_digit()) {
        return Err(err(
            "phone.not_digits",
            format!("رقم المحمول أرقام فقط، لا «{}»", shown(c)),
            format!("a mobile number is digits only, not '{}'", shown(c)),
        ));
    }
    if rest.len() != 11 {
        return Err(err(
            "phone.length",
            format!("رقم المحمول 11 رقمًا (01xxxxxxxxx)، وأُدخل {}", rest.len()),
            format!("a mobile number has 11 digits (01xxxxxxxxx), {} were entered", rest.len()),
        ));
    }
    let b = rest.as_bytes();
    if !(b[0] == b'0' && b[1] == b'1' && matches!(b[2], b'0' | b'1' | b'2' | b'5')) {
        return Err(err(
            "phone.prefix",
            format!("رقم المحمول يبدأ بـ 010 أو 011 أو 012 أو 015، لا {}", &rest[..3]),
            format!("a mobile number starts 010, 011, 012 or 015, not {}", &rest[..3]),
        ));
    }
    Ok(rest)
}

// ---------------------------------------------------------------------------------------------
// Whole records

/// Checks a citizen as entered or booked: the national ID, an Arabic name, the phone if any.
/// Returns a copy with the ID and phone normalised (names are kept exactly as entered, only
/// trimmed) and the parsed ID, or every problem found (fields relative to the citizen:
/// `national_id`, `name_ar`, `phone`).
pub fn citizen(c: &Citizen, today: Date) -> Result<(Citizen, NationalId), Vec<FieldError>> {
    let mut errors = Vec::new();
    let id = NationalId::parse(&c.national_id, today).map_err(|e| errors.push(e)).ok();
    let name_ar = c.name_ar.trim();
    if name_ar.is_empty() {
        errors.push(FieldError::new(
            "name_ar",
            "name_ar.empty",
            "الاسم بالعربية مطلوب",
            "the Arabic name is required",
        ));
    } else if !name_ar.chars().any(|ch| ('\u{0621}'..='\u{064A}').contains(&ch)) {
        errors.push(FieldError::new(
            "name_ar",
            "name_ar.not_arabic",
            "الاسم يجب أن يُكتب بالحروف العربية",
            "the name must be written in Arabic letters",
        ));
    } else if name_ar.chars().count() > 100 {
        errors.push(FieldError::new(
            "name_ar",
            "name_ar.too_long",
            "الاسم أطول من 100 حرف",
            "the name is longer than 100 characters",
        ));
    }
    let phone = match c.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => parse_phone(p).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    match id {
        Some(id) if errors.is_empty() => {
            let name_en = c.name_en.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
            let out =
                Citizen { national_id: id.as_str().to_owned(), name_ar: name_ar.to_owned(), name_en, phone };
            Ok((out, id))
        }
        _ => Err(errors),
    }
}

/// Checks a vehicle as entered or booked: plate (by `rules`), VIN, engine number, owner's
/// national ID, make and model, model year (1900 to next year). Returns the normalised copy or
/// every problem found (fields relative to the vehicle: `plate.letters`, `vin`, …).
pub fn vehicle(v: &Vehicle, rules: &PlateRules, today: Date) -> Result<Vehicle, Vec<FieldError>> {
    let mut errors = Vec::new();
    let plate = rules.parse(&v.plate.letters, &v.plate.digits).map_err(|e| errors.push(e)).ok();
    let vin = parse_vin(&v.vin).map_err(|e| errors.push(e)).ok();
    let engine_no = parse_engine_no(&v.engine_no).map_err(|e| errors.push(e)).ok();
    let owner = NationalId::parse(&v.owner_national_id, today)
        .map_err(|e| errors.push(FieldError { field: "owner_national_id".into(), ..e }))
        .ok();
    if v.make_model.trim().is_empty() {
        errors.push(FieldError::new(
            "make_model",
            "make_model.empty",
            "الماركة والطراز مطلوبان",
            "the make and model are required",
        ));
    }
    let last = today.year() + 1;
    if let Some(year) = v.year.filter(|y| !(1900..=last as u16).contains(y)) {
        errors.push(FieldError::new(
            "year",
            "year.range",
            format!("سنة الصنع {year} خارج المدى 1900–{last}"),
            format!("model year {year} is outside 1900-{last}"),
        ));
    }
    match (plate, vin, engine_no, owner) {
        (Some(plate), Some(vin), Some(engine_no), Some(owner)) if errors.is_empty() => Ok(Vehicle {
            plate,
            vin,
            engine_no,
            owner_national_id: owner.as_str().to_owned(),
            make_model: v.make_model.trim().to_owned(),
            colour_ar: v.colour_ar.trim().to_owned(),
            ..v.clone()
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    const TODAY: Date = date(2026, 12, 1);

    fn code(r: Result<impl std::fmt::Debug, FieldError>) -> String {
        r.expect_err("should be refused").code
    }

    #[test]
    fn digits_are_normalised() {
        assert_eq!(ascii_digits("٠١٢٣٤٥٦٧٨٩"), "0123456789");
        assert_eq!(ascii_digits("۰۱۲۳۴۵۶۷۸۹"), "0123456789");
        assert_eq!(ascii_digits("أ١b۲ 3"), "أ1b2 3");
    }

    #[test]
    fn a_valid_id_gives_its_facts() {
        // Born 1 January 1990 in Giza (21), 13th digit 6 → female.
        let id = NationalId::parse(" 29001012101261 ", TODAY).unwrap();
        assert_eq!(id.as_str(), "29001012101261");
        assert_eq!(id.birth_date(), date(1990, 1, 1));
        assert_eq!(id.governorate().name_en, "Giza");
        assert_eq!(id.governorate().name_ar, "الجيزة");
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.age_on(TODAY), 36);
        assert_eq!(id.age_on(date(2008, 12, 31)), 18);
        assert_eq!(id.age_on(date(1980, 1, 1)), 0);
        assert_eq!(
            serde_json::to_value(id.info()).unwrap(),
            serde_json::json!({
                "national_id": "29001012101261",
                "birth_date": "1990-01-01",
                "governorate": {"code": "21", "name_ar": "الجيزة", "name_en": "Giza"},
                "sex": "female",
            })
        );
        // Century 3, born 2005-07-15 in Cairo, 13th digit 3 → male.
        let id = NationalId::parse("30507150112339", TODAY).unwrap();
        assert_eq!(id.birth_date(), date(2005, 7, 15));
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.age_on(date(2023, 7, 14)), 17);
        assert_eq!(id.age_on(date(2023, 7, 15)), 18);
    }

    #[test]
    fn eastern_and_persian_digits_are_accepted() {
        let east = NationalId::parse("٢٩٠٠١٠١٢١٠١٢٦١", TODAY).unwrap();
        let persian = NationalId::parse("۲۹۰۰۱۰۱۲۱۰۱۲۶۱", TODAY).unwrap();
        assert_eq!(east.as_str(), "29001012101261");
        assert_eq!(east, persian);
    }

    #[test]
    fn check_digit_is_never_judged() {
        for z in 0..10 {
            assert!(NationalId::parse(&format!("2900101210126{z}"), TODAY).is_ok());
        }
    }

    #[test]
    fn each_failure_has_its_code_and_says_what() {
        assert_eq!(code(NationalId::parse("2900101210126", TODAY)), "national_id.length");
        assert_eq!(code(NationalId::parse("", TODAY)), "national_id.length");
        assert_eq!(code(NationalId::parse("290010121012611", TODAY)), "national_id.length");
        let e = NationalId::parse("2900101210126x", TODAY).unwrap_err();
        assert_eq!(e.code, "national_id.not_digits");
        assert!(e.en.contains("position 14"), "{}", e.en);
        assert_eq!(e.field, "national_id");
        assert_eq!(code(NationalId::parse("19001012101261", TODAY)), "national_id.century");
        let e = NationalId::parse("29013012101261", TODAY).unwrap_err();
        assert_eq!(e.code, "national_id.bad_date");
        assert!(e.en.contains("month 13 does not exist"), "{}", e.en);
        assert!(e.ar.contains("الشهر 13"), "{}", e.ar);
        assert_eq!(code(NationalId::parse("29000012101261", TODAY)), "national_id.bad_date");
        let e = NationalId::parse("29002302101261", TODAY).unwrap_err(); // 30 February 1990
        assert_eq!(e.code, "national_id.bad_date");
        assert!(e.en.contains("day 30 does not exist in February 1990"), "{}", e.en);
        assert!(e.ar.contains("فبراير"), "{}", e.ar);
        assert_eq!(code(NationalId::parse("29001002101261", TODAY)), "national_id.bad_date");
        // 29 February exists in 2000 (leap) but not in 1900.
        assert!(NationalId::parse("30002290101261", TODAY).is_ok());
        assert_eq!(code(NationalId::parse("20002290101261", TODAY)), "national_id.bad_date");
        let e = NationalId::parse("32701012101261", TODAY).unwrap_err(); // 2027-01-01
        assert_eq!(e.code, "national_id.future_birth");
        assert!(NationalId::parse("32612012101261", TODAY).is_ok(), "born today is not the future");
        assert_eq!(code(NationalId::parse("32612022101261", TODAY)), "national_id.future_birth");
        let e = NationalId::parse("29001012001261", TODAY).unwrap_err();
        assert_eq!(e.code, "national_id.governorate");
        assert!(e.en.contains("20"), "{}", e.en);
        assert!(NationalId::parse("29001018801261", TODAY).is_ok(), "88 = born abroad");
    }

    #[test]
    fn every_governorate_is_accepted() {
        for g in GOVERNORATES {
            let id = NationalId::parse(&format!("2900101{}01261", g.code), TODAY).unwrap();
            assert_eq!(id.governorate().code, g.code);
        }
        assert_eq!(GOVERNORATES.len(), 28);
    }

    #[test]
    fn names_match_across_spellings() {
        assert_eq!(normalise_name_ar("أحمد"), normalise_name_ar("احمد"));
        assert_eq!(normalise_name_ar("إيمان"), "ايمان");
        assert_eq!(normalise_name_ar("آمال"), "امال");
        assert_eq!(normalise_name_ar("فاطمة"), "فاطمه");
        assert_eq!(normalise_name_ar("مصطفى"), "مصطفي");
        assert_eq!(normalise_name_ar("مُحَمَّـــد"), "محمد");
        assert_eq!(normalise_name_ar("  محمد   \t علي  "), "محمد علي");
        assert_eq!(normalise_name_ar("عبد الرحمٰن"), "عبد الرحمن");
    }

    #[test]
    fn plates() {
        let r = PlateRules::default();
        r.check().unwrap();
        let p = r.parse("ا ب ج", "١٢٣٤").unwrap();
        assert_eq!(p.letters, "أ ب ج");
        assert_eq!(p.digits, "1234");
        assert_eq!(r.parse("أبج", "1234").unwrap(), p);
        assert_eq!(r.parse("إ  بـ ج", " 12 34 ").unwrap(), p);
        assert_eq!(r.parse("ي", "7").unwrap().letters, "ى");
        assert_eq!(r.parse("هـ", "7").unwrap().letters, "ه");
        let e = r.parse("ث", "1").unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("plate.letters", "plate.letters"));
        assert!(e.en.contains('ث'));
        assert_eq!(code(r.parse("A", "1")), "plate.letters");
        assert_eq!(code(r.parse("", "1")), "plate.letters_count");
        assert_eq!(code(r.parse("أ ب ج د", "1")), "plate.letters_count");
        let e = r.parse("أ", "").unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("plate.digits", "plate.digits_count"));
        assert_eq!(code(r.parse("أ", "12345")), "plate.digits_count");
        assert_eq!(code(r.parse("أ", "12a")), "plate.digits");
    }

    #[test]
    fn plate_rules_are_data() {
        let mut r = PlateRules { max_letters: 2, ..Default::default() };
        r.letters.push("ث".into());
        assert!(r.parse("ث", "1").is_ok());
        assert_eq!(code(r.parse("أ ب ج", "1")), "plate.letters_count");
        r.aliases.insert("ئ".into(), "ز".into());
        assert_eq!(r.check().unwrap_err().0, "aliases.ئ");
        let r = PlateRules { max_letters: 4, ..Default::default() };
        assert!(r.check().is_err());
        let mut r = PlateRules::default();
        r.letters.push("أب".into());
        assert!(r.check().is_err());
    }

    #[test]
    fn vins() {
        assert_eq!(parse_vin(" 1hgcm82633a004352 ").unwrap(), "1HGCM82633A004352");
        // The North American check digit (position 9) is not judged: 'X' or a wrong digit pass.
        assert!(parse_vin("1HGCM826X3A004352").is_ok());
        assert!(parse_vin("1HGCM82643A004352").is_ok());
        assert_eq!(code(parse_vin("1HGCM82633A00435")), "vin.length");
        assert_eq!(code(parse_vin("1HGCM82633A0043521")), "vin.length");
        let e = parse_vin("1HGCM82633AO04352").unwrap_err();
        assert_eq!(e.code, "vin.forbidden_letter");
        assert!(e.en.contains("position 12"), "{}", e.en);
        assert_eq!(code(parse_vin("IHGCM82633A004352")), "vin.forbidden_letter");
        assert_eq!(code(parse_vin("1HGCM8263-A004352")), "vin.bad_char");
        assert_eq!(code(parse_vin("1HGCM82633Aب04352")), "vin.bad_char");
    }

    #[test]
    fn engine_numbers() {
        assert_eq!(parse_engine_no(" g4fc-ab1234 ").unwrap(), "G4FC-AB1234");
        assert_eq!(parse_engine_no("٤٥٦٧").unwrap(), "4567");
        assert_eq!(code(parse_engine_no("ABC")), "engine_no.length");
        assert_eq!(code(parse_engine_no("A".repeat(21).as_str())), "engine_no.length");
        assert_eq!(code(parse_engine_no("AB_123")), "engine_no.bad_char");
        assert_eq!(code(parse_engine_no("AB 123")), "engine_no.bad_char");
    }

    #[test]
    fn phones() {
        assert_eq!(parse_phone("01012345678").unwrap(), "01012345678");
        assert_eq!(parse_phone("٠١١٢٣٤٥٦٧٨٩").unwrap(), "01123456789");
        assert_eq!(parse_phone("+20 122 345 6789").unwrap(), "01223456789");
        assert_eq!(parse_phone("0020-155-345-6789").unwrap(), "01553456789");
        assert_eq!(code(parse_phone("0101234567")), "phone.length");
        assert_eq!(code(parse_phone("01312345678")), "phone.prefix");
        assert_eq!(code(parse_phone("02123456789")), "phone.prefix");
        assert_eq!(code(parse_phone("0101234567a")), "phone.not_digits");
    }

    fn a_citizen() -> Citizen {
        Citizen {
            national_id: " ٢٩٠٠١٠١٢١٠١٢٦١ ".into(),
            name_ar: " منى أحمد ".into(),
            name_en: Some(" ".into()),
            phone: Some("+20 100 123 4567".into()),
        }
    }

    #[test]
    fn citizens_are_normalised_or_every_problem_named() {
        let (c, id) = citizen(&a_citizen(), TODAY).unwrap();
        assert_eq!(c.national_id, "29001012101261");
        assert_eq!(c.name_ar, "منى أحمد");
        assert_eq!(c.name_en, None);
        assert_eq!(c.phone.as_deref(), Some("01001234567"));
        assert_eq!(id.sex(), Sex::Female);
        let bad = Citizen {
            national_id: "123".into(),
            name_ar: "Mona".into(),
            phone: Some("0131".into()),
            ..a_citizen()
        };
        let errors = citizen(&bad, TODAY).unwrap_err();
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["national_id.length", "name_ar.not_arabic", "phone.length"]);
        let errors =
            citizen(&Citizen { name_ar: "  ".into(), phone: None, ..a_citizen() }, TODAY).unwrap_err();
        assert_eq!(errors[0].code, "name_ar.empty");
    }

    #[test]
    fn vehicles_are_normalised_or_every_problem_named() {
        let v = Vehicle {
            plate: Plate { letters: "ابج".into(), digits: "١٢٣".into() },
            category: crate::office::model::VehicleCategory::Private,
            vin: "1hgcm82633a004352".into(),
            engine_no: "g4fc-1".into(),
            make_model: " Hyundai Elantra ".into(),
            year: Some(2018),
            colour_ar: "أبيض".into(),
            owner_national_id: "٢٩٠٠١٠١٢١٠١٢٦١".into(),
        };
        let ok = vehicle(&v, &PlateRules::default(), TODAY).unwrap();
        assert_eq!(ok.plate, Plate { letters: "أ ب ج".into(), digits: "123".into() });
        assert_eq!((ok.vin.as_str(), ok.engine_no.as_str()), ("1HGCM82633A004352", "G4FC-1"));
        assert_eq!(ok.owner_national_id, "29001012101261");
        assert_eq!(ok.make_model, "Hyundai Elantra");
        let bad = Vehicle {
            vin: "1HGCM82633AO04352".into(),
            owner_national_id: "29013012101261".into(),
            year: Some(2028),
            make_model: String::new(),
            ..v
        };
        let errors = vehicle(&bad, &PlateRules::default(), TODAY).unwrap_err();
        let fields: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("vin", "vin.forbidden_letter"),
                ("owner_national_id", "national_id.bad_date"),
                ("make_model", "make_model.empty"),
                ("year", "year.range"),
            ]
        );
    }

    fn valid_id() -> impl Strategy<Value = (String, Date)> {
        (1900i16..=2026, 1i8..=12, 1i8..=31, 0usize..GOVERNORATES.len(), 0u32..100_000).prop_filter_map(
            "a real date not after today",
            |(y, m, d, g, seq)| {
                let birth = Date::new(y, m, d).ok().filter(|b| *b <= TODAY)?;
                let c = if y < 2000 { 2 } else { 3 };
                let id = format!("{c}{:02}{m:02}{d:02}{}{seq:05}", y % 100, GOVERNORATES[g].code);
                Some((id, birth))
            },
        )
    }

    proptest! {
        #[test]
        fn built_plates_parse_back(
            letters in prop::collection::vec(prop::sample::select(PlateRules::default().letters), 1..=3),
            digits in "[0-9]{1,4}",
            spaced in any::<bool>(),
        ) {
            let typed = letters.join(if spaced { " " } else { "" });
            let p = PlateRules::default().parse(&typed, &digits).unwrap();
            prop_assert_eq!(p.letters, letters.join(" "));
            prop_assert_eq!(p.digits, digits);
        }

        #[test]
        fn any_text_gives_an_answer_not_a_panic(s in ".{0,40}") {
            let _ = NationalId::parse(&s, TODAY);
            let _ = PlateRules::default().parse(&s, &s);
            let _ = parse_vin(&s);
            let _ = parse_engine_no(&s);
            let _ = parse_phone(&s);
            let n = normalise_name_ar(&s);
            prop_assert_eq!(normalise_name_ar(&n), n);
        }

        #[test]
        fn built_ids_parse_back((id, birth) in valid_id()) {
            let parsed = NationalId::parse(&id, TODAY).unwrap();
            prop_assert_eq!(parsed.birth_date(), birth);
            prop_assert_eq!(parsed.as_str(), id.as_str());
            let male = (id.as_bytes()[12] - b'0') % 2 == 1;
            prop_assert_eq!(parsed.sex() == Sex::Male, male);
            // The same ID typed in Eastern Arabic digits is the same ID.
            let east: String = id.chars().map(|c| char::from_u32(0x0660 + c.to_digit(10).unwrap()).unwrap()).collect();
            prop_assert_eq!(NationalId::parse(&east, TODAY).unwrap(), parsed);
        }

        #[test]
        fn digit_normalisation_only_touches_digits(s in "\\PC{0,30}") {
            let a = ascii_digits(&s);
            prop_assert_eq!(a.chars().count(), s.chars().count());
            prop_assert_eq!(ascii_digits(&a), a.clone());
            for (x, y) in s.chars().zip(a.chars()) {
                if x != y { prop_assert!(y.is_ascii_digit()); }
            }
        }
    }
}
