//! Starting the service desk inside vand: `office.db`, the workflow shell (with recovery of what a
//! crash left open), the office behind the API, and in simulation the training van's day.

use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;

use super::desk::{Desk, DeskConfig};
use super::front::{Office, OfficeParts};
use super::people::{LockoutPolicy, SessionPolicy};
use super::refdata::{AppliedSettings, BundleKind, RefData, ServiceHours};
use super::sample;
use crate::config::{Config, Mode};
use crate::devices::DeviceId;
use crate::devices::manager::Manager;
use crate::journal::Journal;
use crate::render::documents::{DocOptions, Issuer, RollPrinter};

/// The training van's fee schedule (also `config/sample/schedule.json` for `vanctl schedule import`).
pub const SAMPLE_SCHEDULE: &str = include_str!("../../config/sample/schedule.json");

/// Where the office keeps its reference data.
pub fn office_db(config: &Config) -> std::path::PathBuf {
    config.paths.state_dir.join("office.db")
}

/// The desk's view of the van from the configuration.
pub fn desk_config(config: &Config) -> DeskConfig {
    let rfid = config.devices.get(DeviceId::Rfid).map(|d| d.options.clone()).unwrap_or_default();
    let int = |k: &str, d: usize| {
        rfid.get(k).and_then(|v| v.as_integer()).and_then(|i| usize::try_from(i).ok()).unwrap_or(d)
    };
    DeskConfig {
        issuer: Issuer { unit_ar: config.van.unit_name_ar.clone(), van_id: config.van.id.clone() },
        doc: DocOptions {
            sticker_dpi: config.documents.sticker_dpi,
            roll: RollPrinter {
                dpi: config.documents.roll_dpi,
                width_dots: config.documents.roll_width_dots,
            },
            ..DocOptions::default()
        },
        epc_bytes: int("epc_bytes", 12),
        user_words: int("user_words", 32),
        card_colour: config.hq_settings.as_ref().and_then(|s| s.applied.settings.card_colour).unwrap_or(true),
        kill_after: None,
        kill_in_payment: None,
    }
}

/// The journal record written at start, right after `daemon.start`, when a settings bundle from
/// office.db is in effect: [`HqSettings::record`].
pub const SETTINGS_EFFECTIVE: &str = "settings.effective";

/// One setting of a settings bundle at start: the configuration key it replaces, HQ's value and
/// the configuration's (`None`: the key was not set, the default applied).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SettingChoice {
    /// The configuration key (`devices.rfid.options.epc_bytes`, `service.opens`, …; `card_colour`
    /// has no key: the desk prints in colour unless HQ says otherwise).
    pub key: &'static str,
    /// HQ's value, now in effect.
    pub hq: serde_json::Value,
    /// The configuration's value it replaced.
    pub config: Option<serde_json::Value>,
}

/// The applied settings bundle in effect for this run of vand, and what it replaced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HqSettings {
    /// The bundle (from office.db).
    pub applied: AppliedSettings,
    /// Each setting it gave.
    pub choices: Vec<SettingChoice>,
}

impl HqSettings {
    /// The `settings.effective` journal record's payload.
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({"version": self.applied.version, "sha256": self.applied.sha256,
                           "applied_at": self.applied.applied_at, "settings": self.choices})
    }
}

/// Puts an applied settings bundle over the configuration: the e-sticker profile into
/// `[devices.rfid.options]` (so the reader's driver and the desk use the same profile), the
/// service hours into `[service]`, the card colour for [`desk_config`]. HQ's values win; the
/// returned config keeps the bundle in [`Config::hq_settings`] with what each replaced.
/// Without an e-sticker reader configured, the profile has nothing to replace and is not listed.
pub fn apply_settings(mut config: Config, applied: AppliedSettings) -> Config {
    let s = &applied.settings;
    let mut choices = Vec::new();
    if let Some(rfid) = config.devices.rfid.as_mut() {
        for (key, name, v) in [
            ("devices.rfid.options.epc_bytes", "epc_bytes", s.epc_bytes),
            ("devices.rfid.options.user_words", "user_words", s.user_words),
        ] {
            if let Some(v) = v {
                let was = rfid.options.insert(name.to_owned(), toml::Value::Integer(v));
                choices.push(SettingChoice {
                    key,
                    hq: v.into(),
                    config: was.and_then(|w| w.as_integer()).map(Into::into),
                });
            }
        }
    }
    if let Some(c) = s.card_colour {
        choices.push(SettingChoice { key: "card_colour", hq: c.into(), config: None });
    }
    if let (Some(o), Some(c)) = (&s.opens, &s.closes) {
        let was_o = std::mem::replace(&mut config.service.opens, o.clone());
        let was_c = std::mem::replace(&mut config.service.closes, c.clone());
        choices.push(SettingChoice {
            key: "service.opens",
            hq: o.as_str().into(),
            config: Some(was_o.into()),
        });
        choices.push(SettingChoice {
            key: "service.closes",
            hq: c.as_str().into(),
            config: Some(was_c.into()),
        });
    }
    config.hq_settings = Some(HqSettings { applied, choices });
    config
}

/// Reads the settings bundle applied last from `office.db` and puts it over the configuration
/// ([`apply_settings`]), logging which source won for each setting. Call at the start of vand,
/// before the devices open: settings take effect only at a start, so a transaction in flight
/// keeps the profile its intent records were made with. If office.db cannot be read, the
/// configuration is used as it is (logged): the van goes on serving.
pub fn with_applied_settings(config: Config) -> Config {
    let read = || -> anyhow::Result<Option<AppliedSettings>> {
        let hours = ServiceHours::from_config(&config.service).map_err(anyhow::Error::msg)?;
        let path = office_db(&config);
        let refdata = RefData::open(&path, &config.van.id, hours)?;
        Ok(refdata.settings()?)
    };
    match read() {
        Ok(None) => config,
        Ok(Some(applied)) => {
            let config = apply_settings(config, applied);
            if let Some(h) = &config.hq_settings {
                for c in &h.choices {
                    let was = c.config.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "default".into());
                    tracing::info!(
                        version = h.applied.version,
                        "setting {} = {} from HQ's settings bundle (the configuration said {was})",
                        c.key,
                        c.hq
                    );
                }
            }
            config
        }
        Err(e) => {
            tracing::error!("applied settings not read, the configuration's values are used: {e:#}");
            config
        }
    }
}

/// The desk's login lockout and session limits from `[api]` (at start, and on a reload).
pub fn limits(a: &crate::config::ApiConfig) -> (LockoutPolicy, SessionPolicy) {
    (
        LockoutPolicy {
            max_failures: a.max_pin_failures,
            lock_for: jiff::SignedDuration::from_mins(i64::from(a.lockout_minutes)),
        },
        SessionPolicy {
            idle: jiff::SignedDuration::from_mins(i64::from(a.session_idle_minutes)),
            absolute: jiff::SignedDuration::from_hours(i64::from(a.session_max_hours)),
        },
    )
}

/// Whether HQ's settings bundle in effect for this run set the service hours (then they win
/// over the file's `[service] opens/closes`, at start and on a reload).
pub fn hq_sets_hours(config: &Config) -> bool {
    config.hq_settings.as_ref().is_some_and(|h| h.choices.iter().any(|c| c.key == "service.opens"))
}

/// Opens `office.db`, builds the shell and the office, resolves what a crash left open (in the
/// background: a payment recovery waits for the terminal), and in simulation seeds the day.
pub async fn start(config: &Config, journal: Journal, manager: Arc<Manager>) -> anyhow::Result<Arc<Office>> {
    let hours = ServiceHours::from_config(&config.service).map_err(anyhow::Error::msg)?;
    let tz = hours.tz.clone();
    let path = office_db(config);
    let refdata = Arc::new(
        RefData::open(&path, &config.van.id, hours).with_context(|| format!("opening {}", path.display()))?,
    );
    let mut cfg = desk_config(config);
    if config.mode == Mode::Simulation {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
        cfg.kill_after = env("MTU_TEST_KILL_AFTER");
        cfg.kill_in_payment = env("MTU_TEST_KILL_IN_PAYMENT");
    }
    let shell = Desk::new(journal, manager, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (lockout, sessions) = limits(&config.api);
    let office = Office::new(OfficeParts {
        shell: shell.clone(),
        refdata: refdata.clone(),
        lockout,
        sessions,
        tz: tz.clone(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if config.mode == Mode::Simulation {
        seed_training_day(&office, &refdata, &config.van.id, &tz).await?;
        office.mark_training();
        // PINs are never logged, not even the sample ones: the README lists them.
        let officers: Vec<String> =
            sample::OFFICERS.iter().map(|(id, _, role, ..)| format!("{id} ({role})")).collect();
        for addr in &config.api.listen {
            tracing::info!(
                "training van: officers' API on http://{addr}/api/v1 (docs/api.md); sample officers {} \
                 (PINs in the README)",
                officers.join(", ")
            );
        }
    }
    // Bookings first (before the API serves anyone), then what needs the devices.
    office.settle_bookings().await;
    let recovering = office.clone();
    tokio::spawn(async move { recovering.recover().await });
    Ok(office)
}

/// The training van's reference data: the sample roster, fee schedule and block list once, and
/// a day of sample bookings for today (Africa/Cairo) when today has none. Each is applied like
/// an import (journaled `refdata.applied`).
pub async fn seed_training_day(
    office: &Office,
    refdata: &RefData,
    van_id: &str,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let apply = |v: serde_json::Value| async move {
        office
            .apply_bundle(None, v.to_string().as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("sample data: {e}"))
    };
    if refdata.version(BundleKind::Roster)?.is_none() {
        apply(sample::roster(van_id, now)?).await?;
    }
    if refdata.version(BundleKind::Schedule)?.is_none() {
        let schedule: serde_json::Value = serde_json::from_str(SAMPLE_SCHEDULE)?;
        let version = schedule["version"].clone();
        apply(serde_json::json!({"bundle": "schedule", "version": version, "van_id": van_id,
                                 "issued_at": now, "schedule": schedule}))
        .await?;
    }
    if refdata.version(BundleKind::Blocklist)?.is_none() {
        apply(sample::blocklist(van_id, now)).await?;
    }
    let today = now.to_zoned_datetime(tz.clone()).date();
    if refdata.bookings_on(today)?.is_empty() {
        let mut b = sample::bookings(van_id, today, tz, now);
        // A new day's bundle must be newer than yesterday's.
        let day = i64::from(today.year()) * 10_000 + i64::from(today.month()) * 100 + i64::from(today.day());
        b["version"] = serde_json::json!(day);
        apply(b).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office::refdata::Settings;
    use serde_json::{Value, json};

    fn config(rfid: &str) -> Config {
        let text = format!(
            "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"/nonexistent\"\n\
             [service]\nopens = \"10:00\"\ncloses = \"22:00\"\n{rfid}"
        );
        Config::parse(&text, "t.toml").unwrap()
    }

    const RFID: &str = "[devices.rfid]\ndriver = \"mercury\"\npath = \"/dev/van/rfid\"\nbaud = 115200\n\
                        [devices.rfid.options]\npassword_file = \"/x\"\nepc_bytes = 12\n";

    fn applied(settings: Settings) -> AppliedSettings {
        AppliedSettings {
            version: 7,
            sha256: "ab".repeat(32),
            applied_at: "2026-12-01T06:00:00Z".into(),
            settings,
        }
    }

    #[test]
    fn applied_settings_win_over_the_configuration() {
        let before = config(RFID);
        let d = desk_config(&before);
        assert_eq!((d.epc_bytes, d.user_words, d.card_colour), (12, 32, true));
        let c = apply_settings(
            before,
            applied(Settings {
                epc_bytes: Some(16),
                user_words: Some(8),
                card_colour: Some(false),
                opens: Some("08:30".into()),
                closes: Some("16:00".into()),
            }),
        );
        // The desk and the reader's driver read the same options.
        let d = desk_config(&c);
        assert_eq!((d.epc_bytes, d.user_words, d.card_colour), (16, 8, false));
        let profile =
            crate::devices::options::MercuryOptions::from_table(&c.devices.rfid.as_ref().unwrap().options)
                .unwrap();
        assert_eq!((profile.epc_bytes.0, profile.user_words.0), (16, 8));
        assert_eq!((c.service.opens.as_str(), c.service.closes.as_str()), ("08:30", "16:00"));
        assert!(hq_sets_hours(&c), "a reload keeps HQ's hours");
        let h = ServiceHours::from_config(&c.service).unwrap();
        assert_eq!((h.opens_min, h.closes_min), (8 * 60 + 30, 16 * 60));
        // Which source won, and what it replaced.
        let r = c.hq_settings.as_ref().unwrap().record();
        assert_eq!(r["version"], 7);
        let keys: Vec<(&str, Value)> = r["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["key"].as_str().unwrap(), s["config"].clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("devices.rfid.options.epc_bytes", json!(12)),
                ("devices.rfid.options.user_words", Value::Null),
                ("card_colour", Value::Null),
                ("service.opens", json!("10:00")),
                ("service.closes", json!("22:00")),
            ]
        );
    }

    #[test]
    fn settings_absent_from_the_bundle_keep_the_configuration() {
        let c =
            apply_settings(config(RFID), applied(Settings { user_words: Some(4), ..Settings::default() }));
        let d = desk_config(&c);
        assert_eq!((d.epc_bytes, d.user_words, d.card_colour), (12, 4, true));
        assert_eq!((c.service.opens.as_str(), c.service.closes.as_str()), ("10:00", "22:00"));
        assert!(!hq_sets_hours(&c), "a reload may apply the file's hours");
        assert!(!hq_sets_hours(&config(RFID)));
        // Without a reader there is no profile to replace.
        let c = apply_settings(config(""), applied(Settings { epc_bytes: Some(16), ..Settings::default() }));
        assert!(c.hq_settings.unwrap().choices.is_empty());
    }

    #[test]
    fn a_van_reads_the_settings_applied_in_office_db_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(RFID);
        c.paths.state_dir = dir.path().to_owned();
        assert!(with_applied_settings(c.clone()).hq_settings.is_none());
        let db = RefData::open(&office_db(&c), "MTU-T", ServiceHours::cairo_default()).unwrap();
        let bundle = json!({"bundle": "settings", "version": 2, "van_id": "MTU-T",
                            "issued_at": "2026-12-01T05:00:00Z", "settings": {"epc_bytes": 8}});
        db.apply(bundle.to_string().as_bytes(), Timestamp::UNIX_EPOCH).unwrap();
        drop(db);
        let c = with_applied_settings(c);
        assert_eq!(c.hq_settings.as_ref().map(|h| h.applied.version), Some(2));
        assert_eq!(desk_config(&c).epc_bytes, 8);
    }
}
