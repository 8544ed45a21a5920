//! The fee schedule and the service rules, as data: fees per service (by vehicle category or
//! licence grade, plus extra lines for a lost or damaged document), validity periods, minimum
//! ages, prerequisites, priced supplies, the inspection checklist and the plate rules.
//!
//! HQ pushes the schedule as the `schedule` bundle; a decree changes the JSON, not the code. Its
//! format, and the block list's, are documented field by field in `docs/rules.md`. Loading checks
//! everything that can be checked up front (every service priced, amounts in range, codes
//! unique), so [`Schedule::quote`] and [`Schedule::check`] only judge the request in hand.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::model::{
    Date, Dossier, FieldError, LicenceGrade, Piastres, Plate, ReplacementReason, ServiceKind, VehicleCategory,
};
use super::validate::{NationalId, PlateRules, ascii_digits, normalise_name_ar, parse_vin};

/// Every amount must be below this: 1,000,000 EGP in piastres.
pub const MAX_AMOUNT: Piastres = 100_000_000;

/// Most of one supply item in a quote.
pub const MAX_QTY: u32 = 99;

/// The only currency a schedule may be in.
pub const CURRENCY: &str = "EGP";

/// A schedule or block list that cannot be used, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not JSON, or JSON of the wrong shape (missing or unknown field, wrong type, unknown service).
    #[error("{what}: at `{path}` (line {line}, column {column}): {message}")]
    Json {
        /// `fee schedule` or `block list`.
        what: &'static str,
        /// JSON path, e.g. `services.inspection.fees[0].amount` (`.` for the whole document).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde found wrong.
        message: String,
    },
    /// Well-formed JSON that breaks a rule (amount out of range, service not priced, …).
    #[error("{what}: at `{path}`: {message}")]
    Rule {
        /// `fee schedule` or `block list`.
        what: &'static str,
        /// JSON path of the offending value.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ScheduleError {
    /// The JSON path the error is about.
    pub fn path(&self) -> &str {
        match self {
            ScheduleError::Json { path, .. } | ScheduleError::Rule { path, .. } => path,
        }
    }
}

fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, ScheduleError> {
    let json_err = |path: String, e: &serde_json::Error| ScheduleError::Json {
        what,
        path,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| json_err(e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| json_err(".".into(), &e))?;
    Ok(value)
}

/// A map keyed by a service, category or grade name, read with string keys first so that an
/// error inside a value names its key in the path (`services.inspection.fees[0]`, not `services.?`).
fn enum_keyed<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: DeserializeOwned + Ord,
    V: Deserialize<'de>,
{
    use serde::de::IntoDeserializer;
    let raw = BTreeMap::<String, V>::deserialize(d)?;
    raw.into_iter().map(|(k, v)| Ok((K::deserialize(k.into_deserializer())?, v))).collect()
}

/// Amount in EGP for people: `1,250.50`.
pub fn egp(amount: Piastres) -> String {
    let pounds = (amount / 100).to_string();
    let mut grouped = String::with_capacity(pounds.len() + pounds.len() / 3);
    for (i, c) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{:02}", amount % 100)
}

// ---------------------------------------------------------------------------------------------
// The schedule's data

/// One fee line as the schedule defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeLine {
    /// Stable code, printed nowhere but kept in records (`dl_renewal_fee`).
    pub code: String,
    /// Arabic label, as printed on the receipt.
    pub label_ar: String,
    /// English label.
    pub label_en: String,
    /// Amount in piastres.
    pub amount: Piastres,
    /// Only for these vehicle categories (vehicle services); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<VehicleCategory>>,
    /// Only for these licence grades (driving licence services); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grades: Option<Vec<LicenceGrade>>,
}

impl FeeLine {
    fn applies(&self, category: Option<VehicleCategory>, grade: Option<LicenceGrade>) -> bool {
        let cat_ok = match (&self.categories, category) {
            (None, _) => true,
            (Some(list), Some(c)) => list.contains(&c),
            (Some(_), None) => false,
        };
        let grade_ok = match (&self.grades, grade) {
            (None, _) => true,
            (Some(list), Some(g)) => list.contains(&g),
            (Some(_), None) => false,
        };
        cat_ok && grade_ok
    }
}

/// Extra lines for a replaced document, by reason (a lost document usually costs more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacementFees {
    /// Added when the document was lost (بدل فاقد).
    pub lost: Vec<FeeLine>,
    /// Added when it was damaged (بدل تالف).
    pub damaged: Vec<FeeLine>,
}

impl ReplacementFees {
    fn for_reason(&self, reason: ReplacementReason) -> &[FeeLine] {
        match reason {
            ReplacementReason::Lost => &self.lost,
            ReplacementReason::Damaged => &self.damaged,
        }
    }
}

/// What must hold before a service may start (checked by [`Schedule::check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// No unpaid traffic fines in the dossier (a supervisor may override).
    #[serde(default)]
    pub no_unpaid_fines: bool,
    /// A passed inspection no older than this many days (vehicle services; a supervisor may
    /// override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection_within_days: Option<u32>,
    /// The vehicle (vehicle services) or the licence (driving licence services) must not be on
    /// the block list.
    #[serde(default)]
    pub block_list: bool,
}

/// One service's fees and rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRules {
    /// Fee lines; each may be limited to some categories or grades.
    pub fees: Vec<FeeLine>,
    /// Extra lines by replacement reason: required for the two replacement services, refused on
    /// the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ReplacementFees>,
    /// Prerequisites.
    #[serde(default)]
    pub requires: Requirements,
    /// Vehicle categories the service is never given to (the e-sticker is not for motorcycles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_categories: Vec<VehicleCategory>,
}

/// A priced item sold as traffic supplies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supply {
    /// Stable code.
    pub code: String,
    /// Arabic label.
    pub label_ar: String,
    /// English label.
    pub label_en: String,
    /// Unit price in piastres.
    pub amount: Piastres,
}

/// One item of the technical inspection checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// Stable code (`brakes`).
    pub code: String,
    /// Arabic label.
    pub label_ar: String,
    /// English label.
    pub label_en: String,
}

/// How long a renewed document is valid, in years.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityYears {
    /// Driving licence, per grade (every grade).
    #[serde(deserialize_with = "enum_keyed")]
    pub grades: BTreeMap<LicenceGrade, u8>,
    /// Vehicle licence, per category (every category).
    #[serde(deserialize_with = "enum_keyed")]
    pub categories: BTreeMap<VehicleCategory, u8>,
}

/// The fee schedule's content as the JSON carries it, not yet checked. [`Schedule`] is the
/// checked form and reads through to these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleData {
    /// Version (HQ counts up; quotes and records name it).
    pub version: u64,
    /// First day (Cairo calendar) it applies.
    pub effective_from: Date,
    /// Always `EGP`; amounts are piastres.
    pub currency: String,
    /// Every service's fees and rules.
    #[serde(deserialize_with = "enum_keyed")]
    pub services: BTreeMap<ServiceKind, ServiceRules>,
    /// Validity of renewed documents.
    pub validity_years: ValidityYears,
    /// Minimum age per licence grade (every grade).
    #[serde(deserialize_with = "enum_keyed")]
    pub min_age: BTreeMap<LicenceGrade, u8>,
    /// Priced supply items.
    pub supplies: Vec<Supply>,
    /// The inspection checklist.
    pub inspection_checklist: Vec<ChecklistItem>,
    /// How plates are checked.
    pub plate: PlateRules,
}

/// Which dimension a service's fees vary by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Grade,
    Category,
    Neither,
}

fn dimension(service: ServiceKind) -> Dimension {
    match service {
        ServiceKind::Supplies => Dimension::Neither,
        s if s.is_vehicle() => Dimension::Category,
        _ => Dimension::Grade,
    }
}

fn takes_replacement_reason(service: ServiceKind) -> bool {
    matches!(service, ServiceKind::DrivingLicenceReplacement | ServiceKind::VehicleLicenceReplacement)
}

fn is_driving_licence_service(service: ServiceKind) -> bool {
    dimension(service) == Dimension::Grade
}

fn check_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if let Some(c) =
        code.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("'{code}' may only hold a-z, 0-9, '_', '.', '-' (found {c:?})"));
    }
    Ok(())
}

fn check_amount(amount: Piastres) -> Result<(), String> {
    if amount == 0 || amount >= MAX_AMOUNT {
        return Err(format!("{amount} piastres is out of range: more than 0 and less than 1,000,000 EGP"));
    }
    Ok(())
}

fn check_labels(ar: &str, en: &str) -> Result<(), (&'static str, String)> {
    if ar.trim().is_empty() {
        return Err(("label_ar", "must not be empty".into()));
    }
    if en.trim().is_empty() {
        return Err(("label_en", "must not be empty".into()));
    }
    Ok(())
}

/// The versioned fee schedule and service rules, checked whole: every service priced for every
/// category or grade it is given to, amounts in range, codes unique, every grade and category
/// with a validity and a minimum age. Only [`Schedule::from_json`] and [`Schedule::new`] make
/// one; its fields are read through [`ScheduleData`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Schedule(ScheduleData);

impl std::ops::Deref for Schedule {
    type Target = ScheduleData;
    fn deref(&self) -> &ScheduleData {
        &self.0
    }
}

impl ScheduleData {
    /// Checks every rule the JSON shape cannot express; returns (path, message).
    fn validate(&self) -> Result<(), (String, String)> {
        if self.version == 0 {
            return Err(("version".into(), "must be 1 or more".into()));
        }
        if self.currency != CURRENCY {
            return Err(("currency".into(), format!("must be \"EGP\", not {:?}", self.currency)));
        }
        for service in ServiceKind::ALL {
            if !self.services.contains_key(&service) {
                return Err((
                    "services".into(),
                    format!("`{}` is missing: every service must be priced", service.name()),
                ));
            }
        }
        let mut fee_codes = BTreeSet::new();
        for (&service, rules) in &self.services {
            let base = format!("services.{}", service.name());
            self.validate_service(service, rules, &base)?;
            fee_codes.extend(rules.fees.iter().map(|l| l.code.as_str()));
            if let Some(r) = &rules.replacement {
                fee_codes.extend(r.lost.iter().chain(&r.damaged).map(|l| l.code.as_str()));
            }
        }
        if self.supplies.is_empty() {
            return Err((
                "supplies".into(),
                "must list at least one item (the supplies service sells them)".into(),
            ));
        }
        for (i, s) in self.supplies.iter().enumerate() {
            let at = |f: &str| format!("supplies[{i}].{f}");
            check_code(&s.code).map_err(|m| (at("code"), m))?;
            check_amount(s.amount).map_err(|m| (at("amount"), m))?;
            check_labels(&s.label_ar, &s.label_en).map_err(|(f, m)| (at(f), m))?;
            if self.supplies[..i].iter().any(|o| o.code == s.code) {
                return Err((at("code"), format!("'{}' is listed twice", s.code)));
            }
            if fee_codes.contains(s.code.as_str()) {
                return Err((at("code"), format!("'{}' is also a fee line's code", s.code)));
            }
        }
        if self.inspection_checklist.is_empty() {
            return Err(("inspection_checklist".into(), "must list at least one item".into()));
        }
        for (i, item) in self.inspection_checklist.iter().enumerate() {
            let at = |f: &str| format!("inspection_checklist[{i}].{f}");
            check_code(&item.code).map_err(|m| (at("code"), m))?;
            check_labels(&item.label_ar, &item.label_en).map_err(|(f, m)| (at(f), m))?;
            if self.inspection_checklist[..i].iter().any(|o| o.code == item.code) {
                return Err((at("code"), format!("'{}' is listed twice", item.code)));
            }
        }
        for g in LicenceGrade::ALL {
            match self.validity_years.grades.get(&g) {
                None => return Err(("validity_years.grades".into(), format!("`{}` is missing", g.name()))),
                Some(&y) if !(1..=50).contains(&y) => {
                    return Err((
                        format!("validity_years.grades.{}", g.name()),
                        format!("{y} is not 1 to 50 years"),
                    ));
                }
                Some(_) => {}
            }
            match self.min_age.get(&g) {
                None => return Err(("min_age".into(), format!("`{}` is missing", g.name()))),
                Some(&a) if !(16..=99).contains(&a) => {
                    return Err((format!("min_age.{}", g.name()), format!("{a} is not 16 to 99 years")));
                }
                Some(_) => {}
            }
        }
        for c in VehicleCategory::ALL {
            match self.validity_years.categories.get(&c) {
                None => {
                    return Err(("validity_years.categories".into(), format!("`{}` is missing", c.name())));
                }
                Some(&y) if !(1..=50).contains(&y) => {
                    return Err((
                        format!("validity_years.categories.{}", c.name()),
                        format!("{y} is not 1 to 50 years"),
                    ));
                }
                Some(_) => {}
            }
        }
        self.plate.check().map_err(|(f, m)| (format!("plate.{f}"), m))?;
        Ok(())
    }

    fn validate_service(
        &self,
        service: ServiceKind,
        rules: &ServiceRules,
        base: &str,
    ) -> Result<(), (String, String)> {
        let dim = dimension(service);
        let check_lines = |lines: &[FeeLine], at: &str| -> Result<(), (String, String)> {
            for (i, l) in lines.iter().enumerate() {
                let p = |f: &str| format!("{at}[{i}].{f}");
                check_code(&l.code).map_err(|m| (p("code"), m))?;
                check_amount(l.amount).map_err(|m| (p("amount"), m))?;
                check_labels(&l.label_ar, &l.label_en).map_err(|(f, m)| (p(f), m))?;
                match (&l.categories, dim) {
                    (Some(_), Dimension::Grade | Dimension::Neither) => {
                        return Err((
                            p("categories"),
                            format!("`{}` does not vary by category", service.name()),
                        ));
                    }
                    (Some(list), _) if list.is_empty() => {
                        return Err((p("categories"), "must not be empty".into()));
                    }
                    _ => {}
                }
                match (&l.grades, dim) {
                    (Some(_), Dimension::Category | Dimension::Neither) => {
                        return Err((p("grades"), format!("`{}` does not vary by grade", service.name())));
                    }
                    (Some(list), _) if list.is_empty() => {
                        return Err((p("grades"), "must not be empty".into()));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        check_lines(&rules.fees, &format!("{base}.fees"))?;
        match (&rules.replacement, takes_replacement_reason(service)) {
            (Some(r), true) => {
                check_lines(&r.lost, &format!("{base}.replacement.lost"))?;
                check_lines(&r.damaged, &format!("{base}.replacement.damaged"))?;
            }
            (None, true) => {
                return Err((
                    format!("{base}.replacement"),
                    "is required: lines for `lost` and `damaged`".into(),
                ));
            }
            (Some(_), false) => {
                return Err((
                    format!("{base}.replacement"),
                    format!("`{}` has no replacement reason", service.name()),
                ));
            }
            (None, false) => {}
        }
        if !rules.refused_categories.is_empty() && dim != Dimension::Category {
            return Err((
                format!("{base}.refused_categories"),
                format!("`{}` is not a vehicle service", service.name()),
            ));
        }
        if let Some(days) = rules.requires.inspection_within_days {
            if dim != Dimension::Category {
                return Err((
                    format!("{base}.requires.inspection_within_days"),
                    format!("`{}` is not a vehicle service", service.name()),
                ));
            }
            if days == 0 {
                return Err((format!("{base}.requires.inspection_within_days"), "must be 1 or more".into()));
            }
        }
        // Every category or grade the service is given to must be priced, without two lines of
        // the same code.
        let cases: Vec<(Option<VehicleCategory>, Option<LicenceGrade>, String)> = match dim {
            Dimension::Category => VehicleCategory::ALL
                .iter()
                .filter(|c| !rules.refused_categories.contains(c))
                .map(|&c| (Some(c), None, format!("category `{}`", c.name())))
                .collect(),
            Dimension::Grade => {
                LicenceGrade::ALL.iter().map(|&g| (None, Some(g), format!("grade `{}`", g.name()))).collect()
            }
            Dimension::Neither => vec![(None, None, String::new())],
        };
        let filtered = |l: &FeeLine| l.categories.is_some() || l.grades.is_some();
        let varies = rules.fees.iter().any(filtered);
        for (c, g, what) in cases {
            let lines: Vec<&FeeLine> = rules.fees.iter().filter(|l| l.applies(c, g)).collect();
            if lines.is_empty() && dim != Dimension::Neither {
                return Err((format!("{base}.fees"), format!("no fee line applies to {what}")));
            }
            // Fees that vary by category or grade must name every one: a line for all of them
            // does not stand in for the missing specific fee.
            if varies && !lines.iter().any(|l| filtered(l)) {
                return Err((
                    format!("{base}.fees"),
                    format!("no fee line names {what}, though the service's fees vary by it"),
                ));
            }
            let reasons: Vec<(&str, Vec<&FeeLine>)> = match &rules.replacement {
                Some(r) => vec![
                    ("lost", r.lost.iter().filter(|l| l.applies(c, g)).collect()),
                    ("damaged", r.damaged.iter().filter(|l| l.applies(c, g)).collect()),
                ],
                None => vec![("", Vec::new())],
            };
            for (reason, extra) in reasons {
                let mut seen = BTreeSet::new();
                for l in lines.iter().chain(extra.iter()) {
                    if !seen.insert(l.code.as_str()) {
                        let how = if reason.is_empty() {
                            String::new()
                        } else {
                            format!(" (replacement `{reason}`)")
                        };
                        return Err((
                            format!("{base}.fees"),
                            format!("code '{}' applies twice to {what}{how}", l.code),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Schedule {
    /// Parses and checks a schedule (the `schedule` object of the bundle). Errors name the JSON
    /// path: `services.inspection.fees[1].amount: 0 piastres is out of range…`.
    pub fn from_json(bytes: &[u8]) -> Result<Schedule, ScheduleError> {
        Schedule::new(from_json_bytes(bytes, "fee schedule")?)
    }

    /// Checks schedule content built in code (tests, tools).
    pub fn new(data: ScheduleData) -> Result<Schedule, ScheduleError> {
        data.validate().map_err(|(path, message)| ScheduleError::Rule {
            what: "fee schedule",
            path,
            message,
        })?;
        Ok(Schedule(data))
    }

    /// Whether the schedule applies on `date` (Cairo calendar): from `effective_from` on. A
    /// schedule sent ahead of its date is kept aside until then.
    pub fn is_effective_on(&self, date: Date) -> bool {
        date >= self.effective_from
    }

    /// The content.
    pub fn data(&self) -> &ScheduleData {
        &self.0
    }

    /// The rules of one service (every service has them once loaded).
    pub fn service(&self, service: ServiceKind) -> &ServiceRules {
        // from_json refuses a schedule without every service.
        &self.services[&service]
    }

    /// The supply item with this code.
    pub fn supply(&self, code: &str) -> Option<&Supply> {
        self.supplies.iter().find(|s| s.code == code)
    }

    /// Prices a request: the service's lines for its category or grade, the replacement
    /// reason's extra lines, then any supplies. A category is ignored by driving licence
    /// services, a grade by vehicle services, a reason by services that are not replacements.
    pub fn quote(&self, req: &QuoteRequest) -> Result<Quote, FieldError> {
        let service = req.service;
        let rules = self.service(service);
        let dim = dimension(service);
        let (category, grade) = match dim {
            Dimension::Category => (req.category, None),
            Dimension::Grade => (None, req.grade),
            Dimension::Neither => (None, None),
        };
        if dim == Dimension::Category
            && category.is_none()
            && rules.fees.iter().any(|l| l.categories.is_some())
        {
            return Err(FieldError::new(
                "category",
                "quote.category_required",
                format!("اختر فئة المركبة: رسوم {} تختلف حسب الفئة", service.name_ar()),
                format!("choose the vehicle category: {} fees depend on it", service.name_en()),
            ));
        }
        if dim == Dimension::Grade && grade.is_none() && rules.fees.iter().any(|l| l.grades.is_some()) {
            return Err(FieldError::new(
                "grade",
                "quote.grade_required",
                format!("اختر درجة الرخصة: رسوم {} تختلف حسب الدرجة", service.name_ar()),
                format!("choose the licence grade: {} fees depend on it", service.name_en()),
            ));
        }
        if let Some(c) = category.filter(|c| rules.refused_categories.contains(c)) {
            return Err(FieldError::new(
                "category",
                "quote.category_not_allowed",
                format!("{} لا يُقدَّم لفئة {}", service.name_ar(), c.name_ar()),
                format!("{} is not given to the category `{}`", service.name_en(), c.name()),
            ));
        }
        let mut lines: Vec<QuoteLine> =
            rules.fees.iter().filter(|l| l.applies(category, grade)).map(QuoteLine::from_fee).collect();
        if takes_replacement_reason(service) {
            let Some(reason) = req.replacement else {
                return Err(FieldError::new(
                    "replacement",
                    "quote.reason_required",
                    "اختر سبب البدل: فاقد أو تالف",
                    "choose the replacement reason: lost or damaged",
                ));
            };
            if let Some(r) = &rules.replacement {
                lines.extend(
                    r.for_reason(reason)
                        .iter()
                        .filter(|l| l.applies(category, grade))
                        .map(QuoteLine::from_fee),
                );
            }
        }
        if service == ServiceKind::Supplies && req.supplies.is_empty() {
            return Err(FieldError::new(
                "supplies",
                "quote.no_items",
                "اختر صنفًا واحدًا على الأقل من المستلزمات",
                "choose at least one supply item",
            ));
        }
        for (i, want) in req.supplies.iter().enumerate() {
            let at = |f: &str| format!("supplies[{i}].{f}");
            let Some(item) = self.supply(&want.code) else {
                return Err(FieldError::new(
                    at("code"),
                    "quote.unknown_supply",
                    format!("الصنف «{}» غير موجود في جدول الرسوم {}", want.code, self.version),
                    format!("no supply item '{}' in fee schedule {}", want.code, self.version),
                ));
            };
            if req.supplies[..i].iter().any(|o| o.code == want.code) {
                return Err(FieldError::new(
                    at("code"),
                    "quote.supply_repeated",
                    format!("الصنف «{}» مكرر؛ اجمع الكمية في سطر واحد", item.label_ar),
                    format!("'{}' is listed twice; give one line with the whole quantity", item.code),
                ));
            }
            if want.qty == 0 || want.qty > MAX_QTY {
                return Err(FieldError::new(
                    at("qty"),
                    "quote.supply_qty",
                    format!("كمية «{}» يجب أن تكون من 1 إلى {MAX_QTY}، لا {}", item.label_ar, want.qty),
                    format!("quantity of '{}' must be 1 to {MAX_QTY}, not {}", item.code, want.qty),
                ));
            }
            let amount = item.amount.checked_mul(u64::from(want.qty)).ok_or_else(too_large)?;
            lines.push(QuoteLine {
                code: item.code.clone(),
                label_ar: item.label_ar.clone(),
                label_en: item.label_en.clone(),
                qty: want.qty,
                amount,
            });
        }
        if lines.is_empty() {
            // Loading proved every category and grade priced; this is a schedule that prices a
            // service only through supplies, asked without any.
            return Err(FieldError::new(
                "service",
                "quote.no_fee",
                format!("لا رسوم لـ {} في جدول الرسوم {}", service.name_ar(), self.version),
                format!("fee schedule {} prices nothing for {}", self.version, service.name_en()),
            ));
        }
        let total = lines.iter().try_fold(0u64, |sum, l| sum.checked_add(l.amount)).ok_or_else(too_large)?;
        if total >= MAX_AMOUNT {
            return Err(too_large());
        }
        Ok(Quote { schedule_version: self.version, lines, total })
    }

    /// The expiry of a renewed document: `from` plus the validity years of its grade (driving
    /// licence renewal) or category (vehicle licence renewal). `Ok(None)` for services that
    /// issue no new validity (a replacement or update keeps the document's expiry).
    pub fn expiry(
        &self,
        service: ServiceKind,
        category: Option<VehicleCategory>,
        grade: Option<LicenceGrade>,
        from: Date,
    ) -> Result<Option<Date>, FieldError> {
        let years = match service {
            ServiceKind::DrivingLicenceRenewal => {
                let g = grade.ok_or_else(|| {
                    FieldError::new(
                        "grade",
                        "expiry.grade_required",
                        "درجة الرخصة مطلوبة",
                        "the licence grade is needed",
                    )
                })?;
                self.validity_years.grades[&g]
            }
            ServiceKind::VehicleLicenceRenewal => {
                let c = category.ok_or_else(|| {
                    FieldError::new(
                        "category",
                        "expiry.category_required",
                        "فئة المركبة مطلوبة",
                        "the vehicle category is needed",
                    )
                })?;
                self.validity_years.categories[&c]
            }
            _ => return Ok(None),
        };
        from.checked_add(jiff::Span::new().years(i64::from(years))).map(Some).map_err(|_| {
            FieldError::new(
                "expiry",
                "expiry.out_of_range",
                "تاريخ الانتهاء خارج النطاق",
                "the expiry date is out of range",
            )
        })
    }

    /// Every reason the service may not start for this citizen now, most serious first. An
    /// empty list means it may start; a refusal with `overridable` may be passed by a
    /// supervisor who gives a reason.
    pub fn check(&self, ctx: &PrereqContext<'_>) -> Vec<Refusal> {
        let mut out = Vec::new();
        let service = ctx.service;
        let rules = self.service(service);
        let vehicle = ctx.dossier.and_then(|d| d.vehicle.as_ref());
        let licence = ctx.dossier.and_then(|d| d.driving_licence.as_ref());
        let dim = dimension(service);

        if dim == Dimension::Category && vehicle.is_none() {
            out.push(Refusal::new(
                RefusalCode::NoVehicle,
                format!("{}: لا توجد مركبة في الملف", service.name_ar()),
                format!("{}: the dossier holds no vehicle", service.name_en()),
            ));
        }
        if service == ServiceKind::EStickerReplacement
            && vehicle.is_some()
            && ctx.dossier.is_none_or(|d| d.sticker_tid.as_deref().is_none_or(|t| t.trim().is_empty()))
        {
            out.push(Refusal::new(
                RefusalCode::NoSticker,
                "لا يوجد ملصق إلكتروني مسجل للمركبة لاستبداله",
                "the vehicle has no e-sticker on record to replace",
            ));
        }
        if is_driving_licence_service(service) && licence.is_none() {
            out.push(Refusal::new(
                RefusalCode::NoDrivingLicence,
                format!("{}: لا توجد رخصة قيادة في الملف", service.name_ar()),
                format!("{}: the dossier holds no driving licence", service.name_en()),
            ));
        }
        if let Some(v) = vehicle.filter(|v| rules.refused_categories.contains(&v.category)) {
            out.push(Refusal::new(
                RefusalCode::CategoryNotAllowed,
                format!("{} لا يُقدَّم لفئة {}", service.name_ar(), v.category.name_ar()),
                format!("{} is not given to the category `{}`", service.name_en(), v.category.name()),
            ));
        }
        if rules.requires.block_list {
            if let Some(v) = vehicle
                && let Some(hit) = ctx.blocklist.vehicle(&v.vin, &v.plate)
            {
                out.push(Refusal::new(
                    RefusalCode::VehicleBlocked,
                    format!(
                        "المركبة مدرجة في قائمة الحظر: {}",
                        hit.reason_ar.as_deref().unwrap_or(&hit.reason)
                    ),
                    format!("the vehicle is on the block list: {}", hit.reason),
                ));
            }
            if is_driving_licence_service(service)
                && let Some(hit) =
                    ctx.blocklist.licence(licence.map(|l| l.number.as_str()), ctx.citizen.as_str())
            {
                out.push(Refusal::new(
                    RefusalCode::LicenceSuspended,
                    format!(
                        "الرخصة موقوفة (قائمة الحظر): {}",
                        hit.reason_ar.as_deref().unwrap_or(&hit.reason)
                    ),
                    format!("the licence is suspended (block list): {}", hit.reason),
                ));
            }
        }
        if is_driving_licence_service(service)
            && licence.is_some_and(|l| l.suspended)
            && !out.iter().any(|r| r.code == RefusalCode::LicenceSuspended)
        {
            out.push(Refusal::new(
                RefusalCode::LicenceSuspended,
                "الرخصة موقوفة بحسب ملف المرور",
                "the licence is suspended according to the traffic record",
            ));
        }
        if is_driving_licence_service(service)
            && let Some(grade) = ctx.grade.or(licence.map(|l| l.grade))
        {
            let min = self.min_age[&grade];
            let age = ctx.citizen.age_on(ctx.today);
            if age < u32::from(min) {
                out.push(Refusal::new(
                    RefusalCode::UnderAge,
                    format!("السن {age} سنة أقل من الحد الأدنى {min} لرخصة {}", grade.name_ar()),
                    format!("age {age} is below the minimum of {min} for a `{}` licence", grade.name()),
                ));
            }
        }
        if let (Some(days), Some(_)) = (rules.requires.inspection_within_days, vehicle) {
            match ctx.dossier.and_then(|d| d.last_inspection.as_ref()) {
                None => out.push(Refusal::new(
                    RefusalCode::NoInspection,
                    "لا يوجد فحص فني مسجل للمركبة",
                    "the vehicle has no technical inspection on record",
                )),
                Some(i) if !i.passed => out.push(Refusal::new(
                    RefusalCode::InspectionFailed,
                    format!("آخر فحص فني ({}) لم ينجح", i.date),
                    format!("the last technical inspection ({}) failed", i.date),
                )),
                Some(i) => {
                    let age = i.date.until(ctx.today).map(|s| s.get_days()).unwrap_or(i32::MAX);
                    if age > i32::try_from(days).unwrap_or(i32::MAX) {
                        out.push(Refusal::new(
                            RefusalCode::InspectionTooOld,
                            format!("آخر فحص فني ({}) مضى عليه {age} يومًا؛ المسموح {days} يومًا", i.date),
                            format!(
                                "the last technical inspection ({}) is {age} days old; at most {days}",
                                i.date
                            ),
                        ));
                    }
                }
            }
        }
        if rules.requires.no_unpaid_fines
            && let Some(d) = ctx.dossier
            && !d.unpaid_fines.is_empty()
        {
            let n = d.unpaid_fines.len();
            let total = d.unpaid_fines.iter().fold(0u64, |s, f| s.saturating_add(f.amount));
            out.push(Refusal::new(
                RefusalCode::UnpaidFines,
                format!("مخالفات غير مسددة: {n} بإجمالي {} جنيه", egp(total)),
                format!("unpaid fines: {n}, {} EGP in all", egp(total)),
            ));
        }
        out.sort_by_key(|r| r.overridable);
        out
    }
}

fn too_large() -> FieldError {
    FieldError::new(
        "supplies",
        "quote.too_large",
        "الإجمالي أكبر من المسموح (مليون جنيه)",
        "the total is above the limit (1,000,000 EGP)",
    )
}

// ---------------------------------------------------------------------------------------------
// Quotes

/// One supply item asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyRequest {
    /// Supply code from the schedule.
    pub code: String,
    /// How many (1 to [`MAX_QTY`]).
    pub qty: u32,
}

/// What to price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The service.
    pub service: ServiceKind,
    /// Vehicle category (vehicle services).
    #[serde(default)]
    pub category: Option<VehicleCategory>,
    /// Licence grade (driving licence services).
    #[serde(default)]
    pub grade: Option<LicenceGrade>,
    /// Why the document is replaced (the two replacement services).
    #[serde(default)]
    pub replacement: Option<ReplacementReason>,
    /// Supply items, with any service.
    #[serde(default)]
    pub supplies: Vec<SupplyRequest>,
}

/// One priced line of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// Fee or supply code.
    pub code: String,
    /// Arabic label.
    pub label_ar: String,
    /// English label.
    pub label_en: String,
    /// Quantity (1 for fees).
    pub qty: u32,
    /// Line total in piastres (unit price × qty).
    pub amount: Piastres,
}

impl From<QuoteLine> for super::records::FeeLine {
    /// The `service.quote` record's line; a quantity above one is written into the labels
    /// (`… × 2`), the amount being the line's total.
    fn from(l: QuoteLine) -> Self {
        let (label_ar, label_en) = if l.qty > 1 {
            (format!("{} × {}", l.label_ar, l.qty), format!("{} × {}", l.label_en, l.qty))
        } else {
            (l.label_ar, l.label_en)
        };
        super::records::FeeLine { code: l.code, label_ar, label_en, amount: l.amount }
    }
}

impl QuoteLine {
    fn from_fee(l: &FeeLine) -> QuoteLine {
        QuoteLine {
            code: l.code.clone(),
            label_ar: l.label_ar.clone(),
            label_en: l.label_en.clone(),
            qty: 1,
            amount: l.amount,
        }
    }
}

/// A priced request: what the citizen pays, under which schedule version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The schedule's version.
    pub schedule_version: u64,
    /// Lines in order: service fees, replacement fees, supplies.
    pub lines: Vec<QuoteLine>,
    /// Sum of the lines, piastres.
    pub total: Piastres,
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

/// What [`Schedule::check`] judges.
#[derive(Debug, Clone, Copy)]
pub struct PrereqContext<'a> {
    /// The service asked for.
    pub service: ServiceKind,
    /// Today in the Cairo calendar.
    pub today: Date,
    /// The citizen's (checked) national ID.
    pub citizen: &'a NationalId,
    /// What HQ knows (from the booking), if anything.
    pub dossier: Option<&'a Dossier>,
    /// The grade asked for (driving licence services); else the licence record's grade.
    pub grade: Option<LicenceGrade>,
    /// The block list in force.
    pub blocklist: &'a BlockList,
}

/// Why a service may not start. The code is stable; the words are for the officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefusalCode {
    /// Younger than the grade's minimum age.
    #[serde(rename = "prereq.under_age")]
    UnderAge,
    /// No inspection on record (vehicle licence renewal).
    #[serde(rename = "prereq.no_inspection")]
    NoInspection,
    /// The last inspection failed.
    #[serde(rename = "prereq.inspection_failed")]
    InspectionFailed,
    /// The last inspection is older than the schedule allows.
    #[serde(rename = "prereq.inspection_too_old")]
    InspectionTooOld,
    /// Unpaid traffic fines.
    #[serde(rename = "prereq.unpaid_fines")]
    UnpaidFines,
    /// The vehicle is on the block list (stolen, …).
    #[serde(rename = "prereq.vehicle_blocked")]
    VehicleBlocked,
    /// The driving licence is suspended (record or block list).
    #[serde(rename = "prereq.licence_suspended")]
    LicenceSuspended,
    /// The service is not given to this vehicle category (e-sticker on a motorcycle).
    #[serde(rename = "prereq.category_not_allowed")]
    CategoryNotAllowed,
    /// A vehicle service without a vehicle in the dossier.
    #[serde(rename = "prereq.no_vehicle")]
    NoVehicle,
    /// A driving licence service without a driving licence in the dossier.
    #[serde(rename = "prereq.no_driving_licence")]
    NoDrivingLicence,
    /// An e-sticker replacement for a vehicle with no e-sticker (TID) on record.
    #[serde(rename = "prereq.no_sticker")]
    NoSticker,
}

impl RefusalCode {
    /// Every refusal.
    pub const ALL: [RefusalCode; 11] = [
        RefusalCode::UnderAge,
        RefusalCode::NoInspection,
        RefusalCode::InspectionFailed,
        RefusalCode::InspectionTooOld,
        RefusalCode::UnpaidFines,
        RefusalCode::VehicleBlocked,
        RefusalCode::LicenceSuspended,
        RefusalCode::CategoryNotAllowed,
        RefusalCode::NoVehicle,
        RefusalCode::NoDrivingLicence,
        RefusalCode::NoSticker,
    ];

    /// The stable code, e.g. `prereq.unpaid_fines`.
    pub fn code(self) -> &'static str {
        match self {
            RefusalCode::UnderAge => "prereq.under_age",
            RefusalCode::NoInspection => "prereq.no_inspection",
            RefusalCode::InspectionFailed => "prereq.inspection_failed",
            RefusalCode::InspectionTooOld => "prereq.inspection_too_old",
            RefusalCode::UnpaidFines => "prereq.unpaid_fines",
            RefusalCode::VehicleBlocked => "prereq.vehicle_blocked",
            RefusalCode::LicenceSuspended => "prereq.licence_suspended",
            RefusalCode::CategoryNotAllowed => "prereq.category_not_allowed",
            RefusalCode::NoVehicle => "prereq.no_vehicle",
            RefusalCode::NoDrivingLicence => "prereq.no_driving_licence",
            RefusalCode::NoSticker => "prereq.no_sticker",
        }
    }

    /// Whether a supervisor may let the service go ahead anyway (with a reason).
    pub fn overridable(self) -> bool {
        matches!(
            self,
            RefusalCode::NoInspection
                | RefusalCode::InspectionFailed
                | RefusalCode::InspectionTooOld
                | RefusalCode::UnpaidFines
        )
    }
}

/// One reason a service may not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code.
    pub code: RefusalCode,
    /// Arabic words.
    pub ar: String,
    /// English words.
    pub en: String,
    /// Whether a supervisor may override it.
    pub overridable: bool,
}

impl From<Refusal> for super::records::Refusal {
    /// The `service.refusal` record's entry.
    fn from(r: Refusal) -> Self {
        super::records::Refusal {
            code: r.code.code().to_owned(),
            ar: r.ar,
            en: r.en,
            overridable: r.overridable,
        }
    }
}

impl Refusal {
    fn new(code: RefusalCode, ar: impl Into<String>, en: impl Into<String>) -> Refusal {
        Refusal { code, ar: ar.into(), en: en.into(), overridable: code.overridable() }
    }

    /// The same refusal as a field error (field `prerequisites`), for callers that show one.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new("prerequisites", self.code.code(), self.ar.clone(), self.en.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Block list

/// A vehicle HQ says must not be served (stolen, …). At least one of `vin` and `plate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedVehicle {
    /// Chassis number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    /// Plate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<Plate>,
    /// Why, in English or as HQ's code (`stolen`).
    pub reason: String,
    /// Why, in Arabic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_ar: Option<String>,
}

/// A driving licence HQ says is suspended. At least one of `number` and `national_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedLicence {
    /// Licence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Holder's national ID (14 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_id: Option<String>,
    /// Why, in English or as HQ's code (`court_order`).
    pub reason: String,
    /// Why, in Arabic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_ar: Option<String>,
}

/// Vehicles and licences not to be served. [`BlockList::default`] is the empty list (version 0)
/// used before HQ sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockList {
    /// Version (HQ counts up). May be left out of the bundle's body: the bundle's own version
    /// then stands for it (0 here).
    #[serde(default)]
    pub version: u64,
    /// Blocked vehicles.
    #[serde(default)]
    pub vehicles: Vec<BlockedVehicle>,
    /// Suspended licences.
    #[serde(default)]
    pub licences: Vec<BlockedLicence>,
}

/// A plate reduced for comparison: letters without spaces, alef/ya/ha forms folded, ASCII digits.
fn plate_key(p: &Plate) -> (String, String) {
    let letters: String = normalise_name_ar(&p.letters).chars().filter(|c| !c.is_whitespace()).collect();
    let digits: String = ascii_digits(&p.digits).chars().filter(|c| !c.is_whitespace()).collect();
    (letters, digits.trim_start_matches('0').to_owned())
}

fn licence_key(n: &str) -> String {
    ascii_digits(n).chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

impl BlockList {
    /// Parses and checks a block list (the bundle's `blocklist` object): VINs valid, national IDs
    /// 14 digits, every entry identifies something.
    pub fn from_json(bytes: &[u8]) -> Result<BlockList, ScheduleError> {
        let mut list: BlockList = from_json_bytes(bytes, "block list")?;
        let rule = |path: String, message: String| ScheduleError::Rule { what: "block list", path, message };
        for (i, v) in list.vehicles.iter_mut().enumerate() {
            if v.vin.is_none() && v.plate.is_none() {
                return Err(rule(format!("vehicles[{i}]"), "needs a `vin` or a `plate`".into()));
            }
            if let Some(vin) = &v.vin {
                v.vin = Some(parse_vin(vin).map_err(|e| rule(format!("vehicles[{i}].vin"), e.en))?);
            }
            if let Some(p) = &v.plate
                && (plate_key(p).0.is_empty() || plate_key(p).1.is_empty())
            {
                return Err(rule(format!("vehicles[{i}].plate"), "needs letters and digits".into()));
            }
            if v.reason.trim().is_empty() {
                return Err(rule(format!("vehicles[{i}].reason"), "must not be empty".into()));
            }
        }
        for (i, l) in list.licences.iter_mut().enumerate() {
            if l.number.as_deref().is_none_or(|n| licence_key(n).is_empty()) && l.national_id.is_none() {
                return Err(rule(format!("licences[{i}]"), "needs a `number` or a `national_id`".into()));
            }
            if let Some(id) = &l.national_id {
                let id = ascii_digits(id.trim());
                if id.len() != 14 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(rule(format!("licences[{i}].national_id"), "must be 14 digits".into()));
                }
                l.national_id = Some(id);
            }
            if l.reason.trim().is_empty() {
                return Err(rule(format!("licences[{i}].reason"), "must not be empty".into()));
            }
        }
        Ok(list)
    }

    /// The entry blocking this vehicle (by VIN, or by plate), if any.
    pub fn vehicle(&self, vin: &str, plate: &Plate) -> Option<&BlockedVehicle> {
        let vin = vin.trim().to_uppercase();
        let key = plate_key(plate);
        self.vehicles.iter().find(|b| {
            b.vin.as_deref() == Some(vin.as_str()) || b.plate.as_ref().is_some_and(|p| plate_key(p) == key)
        })
    }

    /// The entry suspending this licence (by number, or by holder's national ID), if any.
    pub fn licence(&self, number: Option<&str>, national_id: &str) -> Option<&BlockedLicence> {
        let number = number.map(licence_key).filter(|n| !n.is_empty());
        self.licences.iter().find(|b| {
            b.national_id.as_deref() == Some(national_id)
                || (number.is_some() && b.number.as_deref().map(licence_key) == number)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office::model::{Citizen, DrivingLicenceRecord, Fine, InspectionRecord, Vehicle};
    use jiff::civil::date;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const SAMPLE: &[u8] = include_bytes!("../../config/sample/schedule.json");
    const TODAY: Date = date(2026, 12, 1);

    fn sample() -> Schedule {
        Schedule::from_json(SAMPLE).expect("the sample schedule loads")
    }

    fn sample_value() -> Value {
        serde_json::from_slice(SAMPLE).unwrap()
    }

    /// Loads the sample after `edit`, expecting a refusal at `path` whose message holds `words`.
    #[track_caller]
    fn refused(edit: impl FnOnce(&mut Value), path: &str, words: &str) {
        let mut v = sample_value();
        edit(&mut v);
        let e = Schedule::from_json(&serde_json::to_vec(&v).unwrap()).expect_err("should be refused");
        assert_eq!(e.path(), path, "{e}");
        assert!(e.to_string().contains(words), "{e}");
    }

    fn req(service: ServiceKind) -> QuoteRequest {
        QuoteRequest { service, category: None, grade: None, replacement: None, supplies: Vec::new() }
    }

    fn codes(q: &Quote) -> Vec<&str> {
        q.lines.iter().map(|l| l.code.as_str()).collect()
    }

    #[test]
    fn the_sample_loads_and_prices_every_service() {
        let s = sample();
        assert_eq!(s.version, 1);
        assert!(s.is_effective_on(date(2026, 1, 1)) && !s.is_effective_on(date(2025, 12, 31)));
        assert_eq!(s.services.len(), ServiceKind::ALL.len());
        assert_eq!(s.plate, PlateRules::default(), "the sample's plate rules are the built-in default");
        let checklist: Vec<&str> = s.inspection_checklist.iter().map(|c| c.code.as_str()).collect();
        for item in ["brakes", "lights", "tyres", "glass", "emissions", "safety_kit"] {
            assert!(checklist.contains(&item), "{item}");
        }
    }

    #[test]
    fn quotes_follow_grade_and_category() {
        let s = sample();
        let q = s
            .quote(&QuoteRequest {
                grade: Some(LicenceGrade::Private),
                ..req(ServiceKind::DrivingLicenceRenewal)
            })
            .unwrap();
        assert_eq!(codes(&q), ["dl_renewal", "dl_card", "dl_medical", "home_visit"]);
        assert_eq!(q.total, 30000 + 6000 + 5000 + 10000);
        assert_eq!(q.schedule_version, 1);
        let q = s
            .quote(&QuoteRequest {
                grade: Some(LicenceGrade::First),
                ..req(ServiceKind::DrivingLicenceRenewal)
            })
            .unwrap();
        assert_eq!(q.total, 20000 + 6000 + 5000 + 10000);
        let e = s.quote(&req(ServiceKind::DrivingLicenceRenewal)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("grade", "quote.grade_required"));

        let taxi = s
            .quote(&QuoteRequest {
                category: Some(VehicleCategory::Taxi),
                ..req(ServiceKind::VehicleLicenceRenewal)
            })
            .unwrap();
        assert_eq!(taxi.lines[0].amount, 35000);
        assert_eq!(taxi.total, 35000 + 6000 + 10000);
        // A grade means nothing to a vehicle service and is ignored.
        let with_grade = s
            .quote(&QuoteRequest {
                category: Some(VehicleCategory::Taxi),
                grade: Some(LicenceGrade::First),
                ..req(ServiceKind::VehicleLicenceRenewal)
            })
            .unwrap();
        assert_eq!(with_grade, taxi);
        assert_eq!(
            s.quote(&req(ServiceKind::VehicleLicenceRenewal)).unwrap_err().code,
            "quote.category_required"
        );
    }

    #[test]
    fn lost_costs_more_than_damaged() {
        let s = sample();
        let r = |reason| QuoteRequest { replacement: reason, ..req(ServiceKind::VehicleLicenceReplacement) };
        let lost = s.quote(&r(Some(ReplacementReason::Lost))).unwrap();
        let damaged = s.quote(&r(Some(ReplacementReason::Damaged))).unwrap();
        assert_eq!(codes(&lost), ["vl_replacement", "vl_card", "home_visit", "lost_surcharge"]);
        assert_eq!(codes(&damaged).last(), Some(&"damaged_surcharge"));
        assert!(lost.total > damaged.total);
        let e = s.quote(&r(None)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("replacement", "quote.reason_required"));
    }

    #[test]
    fn no_e_sticker_for_motorcycles() {
        let s = sample();
        let e = s
            .quote(&QuoteRequest {
                category: Some(VehicleCategory::Motorcycle),
                ..req(ServiceKind::EStickerIssue)
            })
            .unwrap_err();
        assert_eq!(e.code, "quote.category_not_allowed");
        assert!(
            s.quote(&QuoteRequest {
                category: Some(VehicleCategory::Private),
                ..req(ServiceKind::EStickerIssue)
            })
            .is_ok()
        );
    }

    #[test]
    fn supplies_are_priced_per_unit() {
        let s = sample();
        let item = |code: &str, qty| SupplyRequest { code: code.into(), qty };
        let q = s
            .quote(&QuoteRequest {
                supplies: vec![item("first_aid_kit", 2), item("warning_triangle", 1)],
                ..req(ServiceKind::Supplies)
            })
            .unwrap();
        assert_eq!(q.lines.len(), 2);
        assert_eq!((q.lines[0].qty, q.lines[0].amount), (2, 24000));
        assert_eq!(q.total, 24000 + 6500);
        // Supplies may ride along with another service.
        let q = s
            .quote(&QuoteRequest {
                category: Some(VehicleCategory::Private),
                supplies: vec![item("fire_extinguisher", 1)],
                ..req(ServiceKind::Inspection)
            })
            .unwrap();
        assert_eq!(codes(&q), ["inspection", "fire_extinguisher"]);
        assert_eq!(s.quote(&req(ServiceKind::Supplies)).unwrap_err().code, "quote.no_items");
        let e = s
            .quote(&QuoteRequest { supplies: vec![item("caviar", 1)], ..req(ServiceKind::Supplies) })
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("supplies[0].code", "quote.unknown_supply"));
        let e = s
            .quote(&QuoteRequest {
                supplies: vec![item("plate_frame", 1), item("plate_frame", 0)],
                ..req(ServiceKind::Supplies)
            })
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("supplies[1].code", "quote.supply_repeated"));
        let e = s
            .quote(&QuoteRequest { supplies: vec![item("plate_frame", 0)], ..req(ServiceKind::Supplies) })
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("supplies[0].qty", "quote.supply_qty"));
        let e = s
            .quote(&QuoteRequest { supplies: vec![item("plate_frame", 1000)], ..req(ServiceKind::Supplies) })
            .unwrap_err();
        assert_eq!(e.code, "quote.supply_qty");
    }

    #[test]
    fn totals_never_overflow() {
        let mut v = sample_value();
        v["supplies"][0]["amount"] = json!(MAX_AMOUNT - 1);
        v["supplies"][1]["amount"] = json!(MAX_AMOUNT - 1);
        let s = Schedule::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let many = |code: &str| SupplyRequest { code: code.into(), qty: MAX_QTY };
        let e = s
            .quote(&QuoteRequest {
                supplies: vec![many("first_aid_kit"), many("warning_triangle")],
                ..req(ServiceKind::Supplies)
            })
            .unwrap_err();
        assert_eq!(e.code, "quote.too_large");
        let one = SupplyRequest { code: "first_aid_kit".into(), qty: 1 };
        assert_eq!(
            s.quote(&QuoteRequest { supplies: vec![one], ..req(ServiceKind::Supplies) }).unwrap().total,
            MAX_AMOUNT - 1
        );
    }

    #[test]
    fn schedule_errors_name_the_path() {
        refused(
            |v| drop(v["services"].as_object_mut().unwrap().remove("inspection")),
            "services",
            "`inspection` is missing",
        );
        refused(
            |v| v["services"]["inspection"]["fees"][1]["amount"] = json!(0),
            "services.inspection.fees[1].amount",
            "out of range",
        );
        refused(
            |v| v["supplies"][2]["amount"] = json!(MAX_AMOUNT),
            "supplies[2].amount",
            "less than 1,000,000 EGP",
        );
        refused(|v| v["currency"] = json!("USD"), "currency", "must be \"EGP\"");
        refused(|v| v["version"] = json!(0), "version", "1 or more");
        // Shape errors come from serde with the path and position.
        refused(
            |v| v["services"]["inspection"]["fees"][0]["amount"] = json!(-5),
            "services.inspection.fees[0].amount",
            "invalid value",
        );
        refused(
            |v| v["services"]["inspection"]["fees"][0]["amount"] = json!(12.5),
            "services.inspection.fees[0].amount",
            "invalid type",
        );
        refused(
            |v| v["services"]["inspection"]["fee"] = json!([]),
            "services.inspection.fee",
            "unknown field",
        );
        refused(|v| v["services"]["parking"] = json!({"fees": []}), "services", "unknown variant");
        refused(|v| v["effective_from"] = json!("2026-02-30"), "effective_from", "");
        // Coverage: every grade and category the service is given to has a fee.
        refused(
            |v| drop(v["services"]["driving_licence_renewal"]["fees"].as_array_mut().unwrap().remove(2)),
            "services.driving_licence_renewal.fees",
            "no fee line names grade `motorcycle`",
        );
        refused(
            |v| v["services"]["e_sticker_issue"]["fees"] = json!([]),
            "services.e_sticker_issue.fees",
            "no fee line applies to category `private`",
        );
        refused(
            |v| {
                v["services"]["inspection"]["fees"][0]["categories"] = json!(["private", "taxi", "transport"])
            },
            "services.inspection.fees",
            "code 'inspection' applies twice to category `transport`",
        );
        refused(
            |v| v["services"]["inspection"]["fees"][0]["grades"] = json!(["private"]),
            "services.inspection.fees[0].grades",
            "does not vary by grade",
        );
        refused(
            |v| {
                drop(
                    v["services"]["vehicle_licence_replacement"]
                        .as_object_mut()
                        .unwrap()
                        .remove("replacement"),
                )
            },
            "services.vehicle_licence_replacement.replacement",
            "is required",
        );
        refused(
            |v| v["services"]["inspection"]["replacement"] = json!({"lost": [], "damaged": []}),
            "services.inspection.replacement",
            "no replacement reason",
        );
        refused(
            |v| v["services"]["driving_licence_update"]["requires"]["inspection_within_days"] = json!(60),
            "services.driving_licence_update.requires.inspection_within_days",
            "not a vehicle service",
        );
        refused(
            |v| v["supplies"][1]["code"] = json!("home_visit"),
            "supplies[1].code",
            "also a fee line's code",
        );
        refused(|v| v["supplies"][1]["code"] = json!("first_aid_kit"), "supplies[1].code", "listed twice");
        refused(|v| v["supplies"][1]["code"] = json!("First Aid"), "supplies[1].code", "may only hold");
        refused(|v| v["supplies"][1]["label_ar"] = json!(" "), "supplies[1].label_ar", "must not be empty");
        refused(|v| v["inspection_checklist"] = json!([]), "inspection_checklist", "at least one");
        refused(
            |v| drop(v["min_age"].as_object_mut().unwrap().remove("first")),
            "min_age",
            "`first` is missing",
        );
        refused(
            |v| v["validity_years"]["categories"]["taxi"] = json!(0),
            "validity_years.categories.taxi",
            "not 1 to 50",
        );
        refused(|v| v["plate"]["max_digits"] = json!(5), "plate.max_digits", "1 to 4");
        refused(
            |v| v["plate"]["aliases"]["ئ"] = json!("ز"),
            "plate.aliases.ئ",
            "not one of the plate letters",
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = Schedule::from_json(b"{\n  \"version\": 1,\n  oops\n}").unwrap_err();
        match e {
            ScheduleError::Json { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other}"),
        }
        let mut bytes = SAMPLE.to_vec();
        bytes.extend_from_slice(b" {}");
        assert!(matches!(Schedule::from_json(&bytes), Err(ScheduleError::Json { .. })));
        assert!(Schedule::from_json(b"").is_err());
    }

    #[test]
    fn expiry_adds_the_validity_years() {
        let s = sample();
        let dl = ServiceKind::DrivingLicenceRenewal;
        assert_eq!(s.expiry(dl, None, Some(LicenceGrade::Private), TODAY).unwrap(), Some(date(2036, 12, 1)));
        assert_eq!(s.expiry(dl, None, Some(LicenceGrade::Second), TODAY).unwrap(), Some(date(2029, 12, 1)));
        let vl = ServiceKind::VehicleLicenceRenewal;
        assert_eq!(s.expiry(vl, Some(VehicleCategory::Taxi), None, TODAY).unwrap(), Some(date(2027, 12, 1)));
        assert_eq!(
            s.expiry(vl, Some(VehicleCategory::Taxi), None, date(2028, 2, 29)).unwrap(),
            Some(date(2029, 2, 28))
        );
        assert_eq!(s.expiry(ServiceKind::DrivingLicenceReplacement, None, None, TODAY).unwrap(), None);
        assert_eq!(
            s.expiry(dl, Some(VehicleCategory::Taxi), None, TODAY).unwrap_err().code,
            "expiry.grade_required"
        );
        assert_eq!(s.expiry(vl, None, None, TODAY).unwrap_err().code, "expiry.category_required");
    }

    #[test]
    fn money_for_people() {
        assert_eq!(egp(0), "0.00");
        assert_eq!(egp(5), "0.05");
        assert_eq!(egp(125050), "1,250.50");
        assert_eq!(egp(99_999), "999.99");
        assert_eq!(egp(MAX_AMOUNT), "1,000,000.00");
    }

    // ----- prerequisites

    fn id(s: &str) -> NationalId {
        NationalId::parse(s, TODAY).unwrap()
    }

    fn plate(letters: &str, digits: &str) -> Plate {
        Plate { letters: letters.into(), digits: digits.into() }
    }

    fn vehicle(category: VehicleCategory) -> Vehicle {
        Vehicle {
            plate: plate("أ ب ج", "1234"),
            category,
            vin: "1HGCM82633A004352".into(),
            engine_no: "G4FC-AB1234".into(),
            make_model: "Hyundai Elantra".into(),
            year: Some(2018),
            colour_ar: "أبيض".into(),
            owner_national_id: "29001012101261".into(),
        }
    }

    fn dossier(nid: &str) -> Dossier {
        Dossier {
            citizen: Citizen {
                national_id: nid.into(),
                name_ar: "منى أحمد".into(),
                name_en: None,
                phone: None,
            },
            driving_licence: Some(DrivingLicenceRecord {
                number: "1234-567".into(),
                grade: LicenceGrade::Private,
                expires: date(2026, 11, 1),
                suspended: false,
            }),
            vehicle: Some(vehicle(VehicleCategory::Private)),
            vehicle_licence: None,
            last_inspection: Some(InspectionRecord { date: date(2026, 11, 20), passed: true }),
            sticker_tid: Some("E2801170200012345678ABCD".into()),
            unpaid_fines: Vec::new(),
            as_of: "2026-11-30T08:00:00Z".parse().unwrap(),
        }
    }

    const ADULT: &str = "29001012101261";

    fn check(
        s: &Schedule,
        service: ServiceKind,
        nid: &str,
        dossier: Option<&Dossier>,
        grade: Option<LicenceGrade>,
        blocklist: &BlockList,
    ) -> Vec<RefusalCode> {
        let citizen = id(nid);
        let ctx = PrereqContext { service, today: TODAY, citizen: &citizen, dossier, grade, blocklist };
        let out = s.check(&ctx);
        for r in &out {
            assert_eq!(r.overridable, r.code.overridable());
            assert!(!r.ar.is_empty() && !r.en.is_empty());
        }
        out.into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn a_clean_dossier_passes() {
        let s = sample();
        let d = dossier(ADULT);
        let none = BlockList::default();
        for service in ServiceKind::ALL {
            assert_eq!(check(&s, service, ADULT, Some(&d), None, &none), [], "{service:?}");
        }
    }

    #[test]
    fn under_age_is_not_overridable() {
        let s = sample();
        let none = BlockList::default();
        // Born 2006-06-15: 20 on 2026-12-01; old enough for private (18), not professional (21).
        let nid = "30606150112339";
        let d = dossier(nid);
        let dl = ServiceKind::DrivingLicenceRenewal;
        assert_eq!(check(&s, dl, nid, Some(&d), None, &none), []);
        assert_eq!(check(&s, dl, nid, Some(&d), Some(LicenceGrade::Third), &none), [RefusalCode::UnderAge]);
        let citizen = id(nid);
        let ctx = PrereqContext {
            service: dl,
            today: TODAY,
            citizen: &citizen,
            dossier: Some(&d),
            grade: Some(LicenceGrade::First),
            blocklist: &none,
        };
        let r = &s.check(&ctx)[0];
        assert!(!r.overridable);
        assert!(r.en.contains("age 20 is below the minimum of 21"), "{}", r.en);
        // Born 2009-01-01: 17.
        let nid = "30901010112339";
        assert_eq!(check(&s, dl, nid, Some(&dossier(nid)), None, &none), [RefusalCode::UnderAge]);
        // The day of the 18th birthday is old enough; the day before is not.
        let nid = "30812010112339";
        assert_eq!(check(&s, dl, nid, Some(&dossier(nid)), None, &none), []);
        let nid = "30812020112339";
        assert_eq!(check(&s, dl, nid, Some(&dossier(nid)), None, &none), [RefusalCode::UnderAge]);
    }

    #[test]
    fn vehicle_licence_renewal_needs_a_recent_passed_inspection() {
        let s = sample();
        let none = BlockList::default();
        let vl = ServiceKind::VehicleLicenceRenewal;
        let mut d = dossier(ADULT);
        d.last_inspection = None;
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &none), [RefusalCode::NoInspection]);
        d.last_inspection = Some(InspectionRecord { date: date(2026, 11, 30), passed: false });
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &none), [RefusalCode::InspectionFailed]);
        d.last_inspection = Some(InspectionRecord { date: date(2026, 10, 2), passed: true }); // 60 days
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &none), []);
        d.last_inspection = Some(InspectionRecord { date: date(2026, 10, 1), passed: true }); // 61 days
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &none), [RefusalCode::InspectionTooOld]);
        assert!(RefusalCode::InspectionTooOld.overridable());
        // Other services do not ask for one.
        assert_eq!(check(&s, ServiceKind::EStickerIssue, ADULT, Some(&d), None, &none), []);
    }

    #[test]
    fn unpaid_fines_are_listed_with_their_total() {
        let s = sample();
        let none = BlockList::default();
        let mut d = dossier(ADULT);
        let fine =
            |id: &str, amount| Fine {
                id: id.into(), amount, date: date(2026, 5, 1), what_ar: "سرعة".into()
            };
        d.unpaid_fines = vec![fine("F1", 50_000), fine("F2", 75_050)];
        let citizen = id(ADULT);
        let ctx = PrereqContext {
            service: ServiceKind::DrivingLicenceRenewal,
            today: TODAY,
            citizen: &citizen,
            dossier: Some(&d),
            grade: None,
            blocklist: &none,
        };
        let out = s.check(&ctx);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].code, RefusalCode::UnpaidFines);
        assert!(out[0].overridable);
        assert!(out[0].en.contains("2, 1,250.50 EGP"), "{}", out[0].en);
        assert!(out[0].ar.contains("1,250.50"), "{}", out[0].ar);
        // The update service does not ask for paid fines in the sample.
        assert_eq!(check(&s, ServiceKind::DrivingLicenceUpdate, ADULT, Some(&d), None, &none), []);
    }

    #[test]
    fn blocked_vehicles_and_suspended_licences_are_not_overridable() {
        let s = sample();
        let d = dossier(ADULT);
        let stolen = |vin: Option<&str>, p: Option<Plate>| BlockList {
            version: 3,
            vehicles: vec![BlockedVehicle {
                vin: vin.map(Into::into),
                plate: p,
                reason: "stolen".into(),
                reason_ar: Some("مسروقة".into()),
            }],
            licences: Vec::new(),
        };
        let vl = ServiceKind::VehicleLicenceRenewal;
        assert_eq!(
            check(&s, vl, ADULT, Some(&d), None, &stolen(Some("1HGCM82633A004352"), None)),
            [RefusalCode::VehicleBlocked]
        );
        // The same plate spelt differently (plain alef, no spaces, Eastern digits) still matches.
        let by_plate = stolen(None, Some(plate("ابج", "١٢٣٤")));
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &by_plate), [RefusalCode::VehicleBlocked]);
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &stolen(None, Some(plate("أ ب د", "1234")))), []);
        assert!(!RefusalCode::VehicleBlocked.overridable());
        // Blocked and with fines: the blocking refusal comes first.
        let mut with_fines = d.clone();
        with_fines.unpaid_fines.push(Fine {
            id: "F".into(),
            amount: 100,
            date: TODAY,
            what_ar: String::new(),
        });
        assert_eq!(
            check(&s, vl, ADULT, Some(&with_fines), None, &by_plate),
            [RefusalCode::VehicleBlocked, RefusalCode::UnpaidFines]
        );

        let dl = ServiceKind::DrivingLicenceRenewal;
        let suspended = |number: Option<&str>, nid: Option<&str>| BlockList {
            version: 3,
            vehicles: Vec::new(),
            licences: vec![BlockedLicence {
                number: number.map(Into::into),
                national_id: nid.map(Into::into),
                reason: "court_order".into(),
                reason_ar: None,
            }],
        };
        assert_eq!(
            check(&s, dl, ADULT, Some(&d), None, &suspended(Some("1234-567"), None)),
            [RefusalCode::LicenceSuspended]
        );
        assert_eq!(
            check(&s, dl, ADULT, Some(&d), None, &suspended(None, Some(ADULT))),
            [RefusalCode::LicenceSuspended]
        );
        assert_eq!(check(&s, dl, ADULT, Some(&d), None, &suspended(Some("9999-1"), None)), []);
        // A suspended licence does not stop a vehicle service.
        assert_eq!(check(&s, vl, ADULT, Some(&d), None, &suspended(None, Some(ADULT))), []);
        // The record's own flag counts too.
        let mut flagged = d.clone();
        flagged.driving_licence.as_mut().unwrap().suspended = true;
        assert_eq!(
            check(&s, dl, ADULT, Some(&flagged), None, &BlockList::default()),
            [RefusalCode::LicenceSuspended]
        );
        assert!(!RefusalCode::LicenceSuspended.overridable());
    }

    #[test]
    fn what_the_dossier_lacks() {
        let s = sample();
        let none = BlockList::default();
        let mut moto = dossier(ADULT);
        moto.vehicle = Some(vehicle(VehicleCategory::Motorcycle));
        assert_eq!(
            check(&s, ServiceKind::EStickerIssue, ADULT, Some(&moto), None, &none),
            [RefusalCode::CategoryNotAllowed]
        );
        assert_eq!(check(&s, ServiceKind::VehicleLicenceRenewal, ADULT, Some(&moto), None, &none), []);
        let mut no_vehicle = dossier(ADULT);
        no_vehicle.vehicle = None;
        assert_eq!(
            check(&s, ServiceKind::VehicleLicenceRenewal, ADULT, Some(&no_vehicle), None, &none),
            [RefusalCode::NoVehicle]
        );
        assert_eq!(check(&s, ServiceKind::Inspection, ADULT, None, None, &none), [RefusalCode::NoVehicle]);
        assert_eq!(check(&s, ServiceKind::Supplies, ADULT, None, None, &none), []);
        let mut no_sticker = dossier(ADULT);
        no_sticker.sticker_tid = None;
        assert_eq!(
            check(&s, ServiceKind::EStickerReplacement, ADULT, Some(&no_sticker), None, &none),
            [RefusalCode::NoSticker]
        );
        assert_eq!(check(&s, ServiceKind::EStickerIssue, ADULT, Some(&no_sticker), None, &none), []);
        let mut no_licence = dossier(ADULT);
        no_licence.driving_licence = None;
        assert_eq!(
            check(&s, ServiceKind::DrivingLicenceRenewal, ADULT, Some(&no_licence), None, &none),
            [RefusalCode::NoDrivingLicence]
        );
        assert_eq!(
            check(&s, ServiceKind::DrivingLicenceReplacement, ADULT, None, None, &none),
            [RefusalCode::NoDrivingLicence]
        );
    }

    #[test]
    fn refusal_codes_serialise_as_their_code_and_are_documented() {
        let docs = include_str!("../../docs/rules.md");
        for c in RefusalCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.code()));
            let overridable = if c.overridable() { "yes" } else { "no" };
            let row = docs.lines().find(|l| l.starts_with(&format!("| `{}` |", c.code())));
            let row = row.unwrap_or_else(|| panic!("docs/rules.md has no table row for `{}`", c.code()));
            assert!(
                row.trim_end().ends_with(&format!("| {overridable} |")),
                "docs/rules.md row for {}: {row}",
                c.code()
            );
        }
    }

    #[test]
    fn block_lists_load_and_name_bad_entries() {
        let list = BlockList::from_json(
            r#"{"version": 4,
                "vehicles": [{"vin": " 1hgcm82633a004352 ", "reason": "stolen"}, {"plate": {"letters": "أ ب", "digits": "12"}, "reason": "stolen"}],
                "licences": [{"national_id": "٢٩٠٠١٠١٢١٠١٢٦١", "reason": "court_order", "reason_ar": "حكم قضائي"}]}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(list.version, 4);
        assert_eq!(list.vehicles[0].vin.as_deref(), Some("1HGCM82633A004352"));
        assert_eq!(list.licences[0].national_id.as_deref(), Some(ADULT));
        let bad = |json: &str, path: &str| {
            let e = BlockList::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(e.path(), path, "{e}");
            assert!(e.to_string().starts_with("block list:"), "{e}");
        };
        bad(r#"{"version": 1, "vehicles": [{"reason": "stolen"}]}"#, "vehicles[0]");
        bad(r#"{"version": 1, "vehicles": [{"vin": "SHORT", "reason": "stolen"}]}"#, "vehicles[0].vin");
        bad(
            r#"{"version": 1, "vehicles": [{"vin": "1HGCM82633A004352", "reason": " "}]}"#,
            "vehicles[0].reason",
        );
        bad(
            r#"{"version": 1, "licences": [{"national_id": "123", "reason": "x"}]}"#,
            "licences[0].national_id",
        );
        bad(r#"{"version": 1, "licences": [{"number": " ", "reason": "x"}]}"#, "licences[0]");
        bad(r#"{"version": 1, "licences": [{"number": "1", "reason": "x", "why": 1}]}"#, "licences[0].why");
        bad(r#"{"vehicles": {}}"#, "vehicles");
        bad(r#"{"version": -1}"#, "version");
        assert_eq!(BlockList::from_json(b"{}").unwrap(), BlockList::default());
    }

    #[test]
    fn the_documented_examples_behave_as_documented() {
        let docs = include_str!("../../docs/rules.md");
        let blocks: Vec<&str> =
            docs.split("```json\n").skip(1).map(|b| b.split("```").next().unwrap_or_default()).collect();
        assert_eq!(blocks.len(), 2, "docs/rules.md should hold a schedule and a block list example");
        let e = Schedule::from_json(blocks[0].as_bytes()).unwrap_err();
        assert_eq!(e.path(), "services");
        assert!(docs.contains(&format!("```text\n{e}\n```")), "docs/rules.md should quote: {e}");
        let list = BlockList::from_json(blocks[1].as_bytes()).unwrap();
        assert_eq!((list.vehicles.len(), list.licences.len()), (2, 2));
    }

    #[test]
    fn every_error_code_in_the_code_is_documented() {
        let docs = include_str!("../../docs/rules.md");
        let prefixes = [
            "national_id",
            "plate",
            "vin",
            "engine_no",
            "phone",
            "name_ar",
            "make_model",
            "year",
            "quote",
            "expiry",
            "prereq",
        ];
        let mut seen = 0;
        for source in [include_str!("validate.rs"), include_str!("schedule.rs")] {
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for literal in code.split('"').skip(1).step_by(2) {
                let Some((head, tail)) = literal.split_once('.') else { continue };
                let is_code = prefixes.contains(&head)
                    && !tail.is_empty()
                    && tail.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                if is_code {
                    seen += 1;
                    assert!(
                        docs.contains(&format!("| `{literal}` |")),
                        "docs/rules.md does not list `{literal}`"
                    );
                }
            }
        }
        assert!(seen > 30, "only {seen} codes found: the scan is broken");
    }

    fn any_request() -> impl Strategy<Value = QuoteRequest> {
        let service = prop::sample::select(ServiceKind::ALL.to_vec());
        let category = prop::option::of(prop::sample::select(VehicleCategory::ALL.to_vec()));
        let grade = prop::option::of(prop::sample::select(LicenceGrade::ALL.to_vec()));
        let reason =
            prop::option::of(prop::sample::select(vec![ReplacementReason::Lost, ReplacementReason::Damaged]));
        let codes = vec![
            "first_aid_kit",
            "warning_triangle",
            "fire_extinguisher",
            "reflective_vest",
            "plate_frame",
            "x",
        ];
        let supply = (prop::sample::select(codes), 0u32..120)
            .prop_map(|(c, qty)| SupplyRequest { code: c.into(), qty });
        (service, category, grade, reason, prop::collection::vec(supply, 0..4)).prop_map(
            |(service, category, grade, replacement, supplies)| QuoteRequest {
                service,
                category,
                grade,
                replacement,
                supplies,
            },
        )
    }

    proptest! {
        #[test]
        fn any_bytes_give_an_answer_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Schedule::from_json(&bytes);
            let _ = BlockList::from_json(&bytes);
        }

        #[test]
        fn a_quote_adds_up(r in any_request()) {
            if let Ok(q) = sample().quote(&r) {
                prop_assert_eq!(q.total, q.lines.iter().map(|l| l.amount).sum::<u64>());
                prop_assert!(!q.lines.is_empty());
                prop_assert!(q.total < MAX_AMOUNT);
            }
        }
    }
}
