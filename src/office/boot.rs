//! Starting the service desk inside vand: `office.db`, the workflow shell (with recovery of what a
//! crash left open), the office behind the API, and in simulation the training van's day.

use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;

use super::desk::{Desk, DeskConfig};
use super::front::{Office, OfficeParts};
use super::people::{LockoutPolicy, SessionPolicy};
use super::refdata::{BundleKind, RefData, ServiceHours};
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
        card_colour: true,
        kill_after: None,
        kill_in_payment: None,
    }
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
    let a = &config.api;
    let office = Office::new(OfficeParts {
        shell: shell.clone(),
        refdata: refdata.clone(),
        lockout: LockoutPolicy {
            max_failures: a.max_pin_failures,
            lock_for: jiff::SignedDuration::from_mins(i64::from(a.lockout_minutes)),
        },
        sessions: SessionPolicy {
            idle: jiff::SignedDuration::from_mins(i64::from(a.session_idle_minutes)),
            absolute: jiff::SignedDuration::from_hours(i64::from(a.session_max_hours)),
        },
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
