//! Device identities and typed faults: what the workflow and the console branch on.
//!
//! A fault is data (`card.ribbon_ended`), never prose. Its words for a person, in Arabic and
//! English, are rendered at the edge from [`Fault::text`] and [`Fault::action`], as
//! `std::io::ErrorKind` is to its message. Codes are stable: they are journaled and shown in
//! `docs/devices.md`, and the console's message catalogue is keyed on them.

use std::fmt;

pub use super::card::CardFault;
pub use super::sticker::StickerFault;

/// The van's devices. The serial ones are in [`DeviceId::SERIAL`], in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceId {
    /// The payment terminal (ZVT).
    Payment,
    /// The card printer (Evolis).
    Card,
    /// The sticker printer (ZPL II).
    Sticker,
    /// The e-sticker UHF encoder (Mercury).
    Rfid,
    /// GPIO lines (LEDs, buzzer, tamper, UPS power-fail).
    Gpio,
}

impl DeviceId {
    /// The serial devices, in display order.
    pub const SERIAL: [DeviceId; 4] = [DeviceId::Payment, DeviceId::Card, DeviceId::Sticker, DeviceId::Rfid];
    /// Every device, in display order.
    pub const ALL: [DeviceId; 5] =
        [DeviceId::Payment, DeviceId::Card, DeviceId::Sticker, DeviceId::Rfid, DeviceId::Gpio];

    /// The name used in configuration (`[devices.card]`), records and the control socket.
    pub fn name(self) -> &'static str {
        match self {
            DeviceId::Payment => "payment",
            DeviceId::Card => "card",
            DeviceId::Sticker => "sticker",
            DeviceId::Rfid => "rfid",
            DeviceId::Gpio => "gpio",
        }
    }

    /// The device named `name`, if any.
    pub fn parse(name: &str) -> Option<DeviceId> {
        DeviceId::ALL.into_iter().find(|d| d.name() == name)
    }

    /// What the device is, for a person.
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (DeviceId::Payment, Lang::En) => "payment terminal",
            (DeviceId::Payment, Lang::Ar) => "جهاز الدفع",
            (DeviceId::Card, Lang::En) => "card printer",
            (DeviceId::Card, Lang::Ar) => "طابعة الكروت",
            (DeviceId::Sticker, Lang::En) => "sticker printer",
            (DeviceId::Sticker, Lang::Ar) => "طابعة الملصقات",
            (DeviceId::Rfid, Lang::En) => "e-sticker encoder",
            (DeviceId::Rfid, Lang::Ar) => "مُرمِّز الملصق الإلكتروني",
            (DeviceId::Gpio, Lang::En) => "van I/O lines",
            (DeviceId::Gpio, Lang::Ar) => "خطوط التحكم بالعربة",
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The language of a message for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Arabic (the console's default).
    Ar,
    /// English.
    En,
}

/// Payment terminal conditions (declines are outcomes, not faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFault {
    /// The terminal refused the command (`84 xx`): not registered, wrong password, busy.
    CommandRefused,
    /// The terminal rejected our frame (NAK) every time: it never took the command.
    FrameRejected,
    /// The terminal reports it is not ready for payments.
    NotReady,
    /// End-of-day failed at the terminal (host unreachable or refused).
    EndOfDayFailed,
}

/// E-sticker encoder conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfidFault {
    /// No tag in the field.
    NoTag,
    /// More than one tag in the field.
    MultipleTags,
    /// A write to the tag failed.
    WriteFailed,
    /// The read-back differs from what was written.
    VerifyFailed,
    /// The Gen2 lock was refused.
    LockFailed,
    /// The tag is locked with an access password we do not have (encoded elsewhere).
    WrongPassword,
    /// The tag is permanently locked (already encoded).
    PermanentlyLocked,
    /// The module refuses the configured region.
    WrongRegion,
    /// The module refused an operation for another reason.
    ModuleError,
    /// The data does not fit the tag profile (a software or configuration error).
    BadRequest,
}

/// Conditions of the link to any device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkFault {
    /// The device answered nothing in time.
    NoAnswer,
    /// The device answered, but not the protocol (line settings, wrong device).
    Garbled,
    /// The port went away (USB unplugged).
    Unplugged,
    /// The port cannot be opened.
    CannotOpen,
}

/// A condition of a device that a caller may branch on. Serialised as its code
/// (`card.ribbon_ended`, `link.no_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Card printer.
    Card(CardFault),
    /// Sticker printer.
    Sticker(StickerFault),
    /// Payment terminal.
    Payment(PaymentFault),
    /// E-sticker encoder.
    Rfid(RfidFault),
    /// The link to the device.
    Link(LinkFault),
    /// The device's configuration is invalid (or names an unknown driver).
    Config,
    /// The driver failed internally (a bug; the device is reopened).
    Internal,
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Fault {
    /// The stable code, e.g. `card.ribbon_ended`.
    pub fn code(self) -> String {
        match self {
            Fault::Card(f) => format!("card.{}", snake(&f)),
            Fault::Sticker(f) => format!("sticker.{}", snake(&f)),
            Fault::Payment(f) => format!("payment.{}", snake(&f)),
            Fault::Rfid(f) => format!("rfid.{}", snake(&f)),
            Fault::Link(f) => format!("link.{}", snake(&f)),
            Fault::Config => "config".into(),
            Fault::Internal => "internal".into(),
        }
    }

    /// The fault with this code.
    pub fn from_code(code: &str) -> Option<Fault> {
        fn de<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
            serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
        }
        let (kind, rest) = code.split_once('.').unwrap_or((code, ""));
        match kind {
            "card" => de(rest).map(Fault::Card),
            "sticker" => de(rest).map(Fault::Sticker),
            "payment" => de(rest).map(Fault::Payment),
            "rfid" => de(rest).map(Fault::Rfid),
            "link" => de(rest).map(Fault::Link),
            "config" if rest.is_empty() => Some(Fault::Config),
            "internal" if rest.is_empty() => Some(Fault::Internal),
            _ => None,
        }
    }

    /// Every fault, for catalogues and tests.
    pub fn all() -> Vec<Fault> {
        let mut v: Vec<Fault> = CardFault::ALL.into_iter().map(Fault::Card).collect();
        v.extend(StickerFault::ALL.into_iter().map(Fault::Sticker));
        v.extend(
            [
                PaymentFault::CommandRefused,
                PaymentFault::FrameRejected,
                PaymentFault::NotReady,
                PaymentFault::EndOfDayFailed,
            ]
            .map(Fault::Payment),
        );
        v.extend(
            [
                RfidFault::NoTag,
                RfidFault::MultipleTags,
                RfidFault::WriteFailed,
                RfidFault::VerifyFailed,
                RfidFault::LockFailed,
                RfidFault::WrongPassword,
                RfidFault::PermanentlyLocked,
                RfidFault::WrongRegion,
                RfidFault::ModuleError,
                RfidFault::BadRequest,
            ]
            .map(Fault::Rfid),
        );
        v.extend(
            [LinkFault::NoAnswer, LinkFault::Garbled, LinkFault::Unplugged, LinkFault::CannotOpen]
                .map(Fault::Link),
        );
        v.extend([Fault::Config, Fault::Internal]);
        v
    }

    /// What is wrong, for an officer or technician.
    pub fn text(self, lang: Lang) -> &'static str {
        let (en, ar) = self.words();
        match lang {
            Lang::En => en.0,
            Lang::Ar => ar.0,
        }
    }

    /// What a person should do about it.
    pub fn action(self, lang: Lang) -> &'static str {
        let (en, ar) = self.words();
        match lang {
            Lang::En => en.1,
            Lang::Ar => ar.1,
        }
    }

    /// ((English text, action), (Arabic text, action)).
    fn words(self) -> ((&'static str, &'static str), (&'static str, &'static str)) {
        use CardFault as C;
        use LinkFault as L;
        use PaymentFault as P;
        use RfidFault as R;
        use StickerFault as S;
        match self {
            Fault::Card(f) => (
                (f.what(), f.action()),
                match f {
                    C::FeederEmpty => ("درج الكروت فارغ", "ضع كروتًا فارغة في الدرج"),
                    C::RibbonEnded => ("انتهى شريط الطباعة", "استبدل شريط الطباعة"),
                    C::NoRibbon => ("لا يوجد شريط طباعة", "ركّب شريطًا من النوع المضبوط"),
                    C::CoverOpen => ("غطاء الطابعة مفتوح", "أغلق غطاء الطابعة"),
                    C::CardJam => ("كارت عالق في الطابعة", "افتح الغطاء وأخرج الكارت العالق ثم أغلقه"),
                    C::RibbonJam => ("الشريط عالق أو مقطوع", "افتح الغطاء وحرّر الشريط أو استبدله ثم أغلقه"),
                    C::FeederError => ("عطل في درج الكروت", "تأكد من تثبيت الدرج وأن الكروت غير ملتصقة"),
                    C::CardRejected => ("رفضت الطابعة الكارت", "أخرج الكارت المرفوض وافحص مخزون الكروت"),
                },
            ),
            Fault::Sticker(f) => (
                (f.describe(), f.action()),
                match f {
                    S::PaperOut => ("نفدت الملصقات", "ركّب لفة ملصقات جديدة"),
                    S::HeadOpen => ("رأس الطباعة مفتوح", "أغلق رأس الطباعة"),
                    S::RibbonOut => ("انتهى شريط الطباعة", "استبدل شريط الطباعة"),
                    S::Paused => ("الطابعة متوقفة مؤقتًا", "اضغط زر الإيقاف المؤقت لاستئناف الطباعة"),
                    S::OverTemperature => ("رأس الطباعة ساخن جدًا", "اترك الطابعة حتى تبرد"),
                    S::UnderTemperature => ("رأس الطباعة بارد جدًا", "اترك الطابعة حتى تسخن"),
                    S::BufferFull => ("ذاكرة الاستقبال ممتلئة", "انتظر ثم أعد المحاولة"),
                    S::CorruptRam => ("ضاعت إعدادات الطابعة", "أعد ضبط الطابعة (اتصل بالفني)"),
                    S::NoAnswer => {
                        ("الطابعة لا ترد على الاستعلام", "افحص الملصقات والشريط والرأس ثم الكابل والكهرباء")
                    }
                    S::RfidVoid => (
                        "تعذّر ترميز الملصق الإلكتروني وأُلغي الملصق",
                        "افحص لفة الملصقات وموضعها ثم أعد الطباعة",
                    ),
                    S::NotFinished => {
                        ("لم تكتمل طباعة الملصق", "افحص الطابعة بحثًا عن انحشار ثم أعد المحاولة")
                    }
                },
            ),
            Fault::Payment(f) => match f {
                P::CommandRefused => (
                    (
                        "the terminal refused the command",
                        "check the terminal display and the configured password",
                    ),
                    ("رفض جهاز الدفع الأمر", "راجع شاشة الجهاز وكلمة المرور المضبوطة"),
                ),
                P::FrameRejected => (
                    (
                        "the terminal rejected every try of the command; nothing was charged",
                        "check the cable and the line settings, then retry",
                    ),
                    (
                        "رفض جهاز الدفع الأمر في كل محاولة ولم يُخصم شيء",
                        "افحص الكابل وإعدادات الخط ثم أعد المحاولة",
                    ),
                ),
                P::NotReady => (
                    (
                        "the terminal is not ready for payments",
                        "check the terminal display; log it on if needed",
                    ),
                    ("جهاز الدفع غير جاهز", "راجع شاشة الجهاز وسجّل الدخول عليه إذا لزم"),
                ),
                P::EndOfDayFailed => (
                    (
                        "end-of-day failed at the terminal",
                        "check the terminal's host connection and repeat the end-of-day",
                    ),
                    ("فشل إقفال اليوم على جهاز الدفع", "افحص اتصال الجهاز بالبنك وأعد إقفال اليوم"),
                ),
            },
            Fault::Rfid(f) => match f {
                R::NoTag => (
                    (
                        "no e-sticker on the encoder",
                        "place one e-sticker flat on the encoder antenna and retry",
                    ),
                    ("لا يوجد ملصق على المُرمِّز", "ضع ملصقًا واحدًا مسطحًا على هوائي المُرمِّز وأعد المحاولة"),
                ),
                R::MultipleTags => (
                    (
                        "more than one tag on the encoder",
                        "remove every other tag; keep only the sticker to encode",
                    ),
                    ("أكثر من ملصق على المُرمِّز", "أبعد كل الملصقات الأخرى واترك الملصق المطلوب فقط"),
                ),
                R::WriteFailed => (
                    (
                        "writing the e-sticker failed",
                        "hold the sticker still and retry; if it fails again, void it and use a new one",
                    ),
                    (
                        "فشلت الكتابة على الملصق",
                        "ثبّت الملصق وأعد المحاولة؛ وإن تكرر فألغه واستخدم ملصقًا جديدًا",
                    ),
                ),
                R::VerifyFailed => (
                    (
                        "the e-sticker read back differently from what was written",
                        "void this sticker and use a new one",
                    ),
                    ("قراءة الملصق لا تطابق ما كُتب", "ألغِ هذا الملصق واستخدم ملصقًا جديدًا"),
                ),
                R::LockFailed => (
                    (
                        "locking the e-sticker failed",
                        "retry; if it fails again, void this sticker and use a new one",
                    ),
                    ("فشل قفل الملصق", "أعد المحاولة؛ وإن تكرر فألغِ الملصق واستخدم ملصقًا جديدًا"),
                ),
                R::WrongPassword => (
                    (
                        "the e-sticker is locked with another password",
                        "this sticker was encoded elsewhere: use a blank sticker",
                    ),
                    ("الملصق مقفول بكلمة مرور أخرى", "هذا الملصق رُمِّز في مكان آخر: استخدم ملصقًا فارغًا"),
                ),
                R::PermanentlyLocked => (
                    (
                        "the e-sticker is permanently locked",
                        "it was already encoded: void it and use a blank one",
                    ),
                    ("الملصق مقفول نهائيًا", "سبق ترميزه: ألغه واستخدم ملصقًا فارغًا"),
                ),
                R::WrongRegion => (
                    (
                        "the encoder refuses the configured radio region",
                        "set devices.rfid.options.region to a region this module supports",
                    ),
                    ("المُرمِّز يرفض نطاق الترددات المضبوط", "اضبط النطاق في الإعدادات على نطاق يدعمه الجهاز"),
                ),
                R::ModuleError => (
                    (
                        "the encoder refused the operation",
                        "check the encoder cable and power; restart it if it persists",
                    ),
                    ("رفض المُرمِّز العملية", "افحص كابل المُرمِّز والكهرباء وأعد تشغيله إن تكرر"),
                ),
                R::BadRequest => (
                    ("the data does not fit the e-sticker profile", "report this to the software maintainer"),
                    ("البيانات لا تناسب نوع الملصق", "أبلغ مسؤول البرنامج"),
                ),
            },
            Fault::Link(f) => match f {
                L::NoAnswer => (
                    (
                        "the device does not answer",
                        "check that it is switched on and its cable is plugged in",
                    ),
                    ("الجهاز لا يرد", "تأكد أنه يعمل وأن الكابل موصول"),
                ),
                L::Garbled => (
                    (
                        "the device answers, but not in its protocol",
                        "check the line settings (baud, parity) and that the right device is on this port",
                    ),
                    ("الجهاز يرد بكلام غير مفهوم", "راجع إعدادات الخط وأن الجهاز الصحيح على هذا المنفذ"),
                ),
                L::Unplugged => (
                    ("the device was unplugged", "plug the cable back in; it reconnects by itself"),
                    ("فُصل الجهاز", "أعد توصيل الكابل وسيتصل تلقائيًا"),
                ),
                L::CannotOpen => (
                    (
                        "the device's port cannot be opened",
                        "check the cable and the port named in the configuration",
                    ),
                    ("تعذّر فتح منفذ الجهاز", "افحص الكابل والمنفذ المذكور في الإعدادات"),
                ),
            },
            Fault::Config => (
                (
                    "the device's configuration is invalid",
                    "fix the device section of the configuration and restart vand",
                ),
                ("إعدادات الجهاز غير صحيحة", "صحّح قسم الجهاز في الإعدادات وأعد تشغيل الخدمة"),
            ),
            Fault::Internal => (
                ("the driver failed internally", "retrying; if it repeats, restart vand and report the log"),
                (
                    "خطأ داخلي في برنامج الجهاز",
                    "تجري إعادة المحاولة؛ وإن تكرر فأعد تشغيل الخدمة وأبلغ بالسجل",
                ),
            ),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(Lang::En))
    }
}

impl serde::Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Fault::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown fault code {code:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_has_a_unique_code_that_round_trips_and_words_in_both_languages() {
        let all = Fault::all();
        let mut codes = std::collections::BTreeSet::new();
        for f in &all {
            let code = f.code();
            assert!(codes.insert(code.clone()), "duplicate code {code}");
            assert_eq!(Fault::from_code(&code), Some(*f), "{code}");
            let json = serde_json::to_string(f).unwrap();
            assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), *f);
            for lang in [Lang::Ar, Lang::En] {
                assert!(!f.text(lang).is_empty() && !f.action(lang).is_empty(), "{code}");
            }
            assert!(f.text(Lang::Ar).chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)), "{code}");
        }
        assert_eq!(Fault::Card(CardFault::RibbonEnded).code(), "card.ribbon_ended");
        assert_eq!(Fault::from_code("card.nonsense"), None);
        assert_eq!(Fault::from_code("config.x"), None);
    }

    /// `docs/devices.md` lists every fault code with its words; on a mismatch the message holds
    /// the table as the code has it.
    #[test]
    fn docs_list_every_fault_with_its_words() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/devices.md")).unwrap();
        let mut table = String::from(
            "| code | what (en) | action (en) | ما المشكلة | ما العمل |\n|---|---|---|---|---|\n",
        );
        for f in Fault::all() {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                f.code(),
                f.text(Lang::En),
                f.action(Lang::En),
                f.text(Lang::Ar),
                f.action(Lang::Ar)
            ));
        }
        assert!(doc.contains(&table), "docs/devices.md must contain this table:\n{table}");
    }

    #[test]
    fn device_ids_parse_their_names() {
        for d in DeviceId::ALL {
            assert_eq!(DeviceId::parse(d.name()), Some(d));
        }
        assert_eq!(DeviceId::parse("printer"), None);
    }
}
