//! Reloading the configuration on SIGHUP (`systemctl reload vand`).
//!
//! vand reads the file it started with again. A file that does not parse or validate changes
//! nothing: the old configuration stays, the error (file, line, key) is logged once and a
//! `config.refused` record is journaled. A valid file applies the keys that can change while
//! the van runs ([`LIVE_KEYS`], decided by [`diff`]: the one place that says what is live); the
//! other changed keys keep their old values until a restart, and one log line names them. The
//! file's service hours give way to those of HQ's settings bundle in effect. A
//! `config.reloaded` record names the keys either way (never a value). `docs/config.md`,
//! "Reloading", is the reference and says why each key is live or not.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::config::{Config, ConfigError, EMBEDDED_SIM_NAME};
use crate::journal::Journal;
use crate::office::front::Office;
use crate::sync::UplinkHandle;

/// Journal kind of an applied reload: `{"file", "applied": [keys], "restart_needed": [keys]}`.
pub const CONFIG_RELOADED: &str = "config.reloaded";
/// Journal kind of a refused reload: `{"file", "line", "key"}` (where the file is wrong).
pub const CONFIG_REFUSED: &str = "config.refused";

/// The keys a reload applies while vand runs (each read where it is used, so the next use
/// takes the new value). Every other key needs a restart. Why each is safe: docs/config.md,
/// "Reloading".
pub const LIVE_KEYS: &[&str] = &[
    "log.level",
    // Service hours: only imports of bookings from now on are checked against them.
    "service.opens",
    "service.closes",
    // The desk's login lockout and session limits: the next login attempt or request.
    "api.max_pin_failures",
    "api.lockout_minutes",
    "api.session_idle_minutes",
    "api.session_max_hours",
    // The uplink's pacing: the next batch, wait or checkpoint (not the request timeout, which
    // the HTTP client shared with the down-sync holds).
    "sync.max_records",
    "sync.max_bytes",
    "sync.backoff_base_s",
    "sync.backoff_max_s",
    "sync.checkpoint_every_s",
    "sync.poll_interval_ms",
];

/// The service hours keys (applied together, with the time zone they are read in).
const HOURS: [&str; 2] = ["service.opens", "service.closes"];

/// What else, besides the two files, decides whether a live key applies now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InForce {
    /// HQ's settings bundle in effect for this run set the service hours: they win over the
    /// file's, on a reload as at start.
    pub hq_sets_hours: bool,
}

/// The keys that differ between two configurations, split by whether a reload applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Changed keys applied now (in [`LIVE_KEYS`]).
    pub applied: Vec<&'static str>,
    /// Changed keys that take effect only at the next start.
    pub restart: Vec<&'static str>,
    /// Changed keys whose value from HQ's settings bundle stays in force (the service hours).
    pub kept_by_hq: Vec<&'static str>,
}

impl ConfigDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.restart.is_empty() && self.kept_by_hq.is_empty()
    }
}

/// The keys (`section.key`, or a whole device section) whose values differ between `old` and
/// `new`, in file order.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    // Every section is named here: a new one does not compile until its keys are compared below.
    let Config {
        mode: _,
        van: _,
        paths: _,
        journal: _,
        daemon: _,
        power: crate::config::PowerConfig { hold_up: _, ride_through: _ },
        log: _,
        service: _,
        devices: _,
        gpio: _,
        documents: _,
        simulation: _,
        control: _,
        api: _,
        sync: _,
        source: _,
        hq_settings: _,
    } = old;
    let mut out = Vec::new();
    macro_rules! keys {
        ($($name:literal => $($field:ident).+;)*) => {
            $(if old.$($field).+ != new.$($field).+ { out.push($name); })*
        };
    }
    keys! {
        "mode" => mode;
        "van.id" => van.id;
        "van.unit_name_ar" => van.unit_name_ar;
        "van.unit_name_en" => van.unit_name_en;
        "paths.state_dir" => paths.state_dir;
        "paths.journal" => paths.journal;
        "paths.key_file" => paths.key_file;
        "journal.checkpoint_every" => journal.checkpoint_every;
        "daemon.shutdown_budget_ms" => daemon.shutdown_budget;
        "power.hold_up_s" => power.hold_up;
        "power.ride_through_s" => power.ride_through;
        "log.level" => log.level;
        "log.format" => log.format;
        "service.timezone" => service.timezone;
        "service.opens" => service.opens;
        "service.closes" => service.closes;
        "devices.payment" => devices.payment;
        "devices.card" => devices.card;
        "devices.sticker" => devices.sticker;
        "devices.rfid" => devices.rfid;
        "gpio.backend" => gpio.backend;
        "gpio.debounce_ms" => gpio.debounce_ms;
        "gpio.lines" => gpio.lines;
        "documents.sticker_dpi" => documents.sticker_dpi;
        "documents.roll_dpi" => documents.roll_dpi;
        "documents.roll_width_dots" => documents.roll_width_dots;
        "simulation.devices" => simulation.devices;
        "simulation.scenario" => simulation.scenario;
        "simulation.device_dir" => simulation.device_dir;
        "simulation.control" => simulation.control;
        "control.max_clients" => control.max_clients;
        "control.idle_timeout_s" => control.idle_timeout_s;
        "api.listen" => api.listen;
        "api.max_pin_failures" => api.max_pin_failures;
        "api.lockout_minutes" => api.lockout_minutes;
        "api.session_idle_minutes" => api.session_idle_minutes;
        "api.session_max_hours" => api.session_max_hours;
        "sync.enabled" => sync.enabled;
        "sync.url" => sync.url;
        "sync.hq_public_key" => sync.hq_public_key;
        "sync.ca_file" => sync.ca_file;
        "sync.max_records" => sync.max_records;
        "sync.max_bytes" => sync.max_bytes;
        "sync.request_timeout_s" => sync.request_timeout_s;
        "sync.backoff_base_s" => sync.backoff_base_s;
        "sync.backoff_max_s" => sync.backoff_max_s;
        "sync.checkpoint_every_s" => sync.checkpoint_every_s;
        "sync.poll_interval_ms" => sync.poll_interval_ms;
        "sync.training_hq" => sync.training_hq;
    }
    out
}

/// Splits the changed keys between `old` (in force) and `new` into applied now, needing a
/// restart, and kept by HQ's settings. The service hours apply only if HQ's settings do not set
/// them, and not in a reload that also changes `service.timezone` (hours are read in their time
/// zone: the new hours wait for the restart that brings the new zone).
pub fn diff(old: &Config, new: &Config, ctx: InForce) -> ConfigDiff {
    let changed = changed_keys(old, new);
    let tz_changed = changed.contains(&"service.timezone");
    let mut d = ConfigDiff::default();
    for k in changed {
        if HOURS.contains(&k) && ctx.hq_sets_hours {
            d.kept_by_hq.push(k);
        } else if HOURS.contains(&k) && tz_changed {
            d.restart.push(k);
        } else if LIVE_KEYS.contains(&k) {
            d.applied.push(k);
        } else {
            d.restart.push(k);
        }
    }
    d
}

/// `in_force` with the `applied` keys of `new` put over it: what runs after a reload.
fn take_applied(in_force: &Config, new: &Config, applied: &[&str]) -> Config {
    let mut c = in_force.clone();
    for k in applied {
        match *k {
            "log.level" => c.log.level = new.log.level.clone(),
            "service.opens" => c.service.opens = new.service.opens.clone(),
            "service.closes" => c.service.closes = new.service.closes.clone(),
            "api.max_pin_failures" => c.api.max_pin_failures = new.api.max_pin_failures,
            "api.lockout_minutes" => c.api.lockout_minutes = new.api.lockout_minutes,
            "api.session_idle_minutes" => c.api.session_idle_minutes = new.api.session_idle_minutes,
            "api.session_max_hours" => c.api.session_max_hours = new.api.session_max_hours,
            "sync.max_records" => c.sync.max_records = new.sync.max_records,
            "sync.max_bytes" => c.sync.max_bytes = new.sync.max_bytes,
            "sync.backoff_base_s" => c.sync.backoff_base_s = new.sync.backoff_base_s,
            "sync.backoff_max_s" => c.sync.backoff_max_s = new.sync.backoff_max_s,
            "sync.checkpoint_every_s" => c.sync.checkpoint_every_s = new.sync.checkpoint_every_s,
            "sync.poll_interval_ms" => c.sync.poll_interval_ms = new.sync.poll_interval_ms,
            // A unit test keeps LIVE_KEYS and this list equal.
            other => tracing::error!("{other} is live but not taken: it keeps its old value"),
        }
    }
    c
}

/// The running parts a reload hands the live keys to (attached once they run).
#[derive(Default, Clone)]
pub struct Targets {
    /// The service desk: lockout and session limits, service hours.
    pub office: Option<Arc<Office>>,
    /// The uplink to HQ: its pacing (none when `[sync]` is off or did not start).
    pub uplink: Option<UplinkHandle>,
    /// See [`InForce`].
    pub in_force: InForce,
}

/// Hands the `applied` keys' values in `c` (the configuration now in force) to the running parts.
fn hand_over(targets: &Targets, c: &Config, applied: &[&str]) {
    let any = |prefix: &str| applied.iter().any(|k| k.starts_with(prefix));
    if let Some(office) = &targets.office {
        if any("api.") {
            let (lockout, sessions) = crate::office::boot::limits(&c.api);
            office.set_limits(lockout, sessions);
        }
        if any("service.") {
            match crate::office::refdata::ServiceHours::from_config(&c.service) {
                Ok(h) => office.refdata().set_hours(h.opens_min, h.closes_min),
                // Validated at load: not reached.
                Err(e) => tracing::error!("service hours not applied: {e}"),
            }
        }
    }
    if let Some(uplink) = &targets.uplink {
        if any("sync.") {
            uplink.set_pacing(&crate::sync::shell_config(&c.sync));
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file is wrong: nothing changed.
    Refused(String),
    /// The file is valid: these keys changed.
    Reloaded(ConfigDiff),
}

/// Reloads the configuration file vand started with (see the module's documentation).
pub struct Reloader {
    /// The file; `None` for the embedded simulation configuration.
    path: Option<PathBuf>,
    /// The file's configuration in force (without HQ's settings put over it at start).
    in_force: Config,
    journal: Journal,
    targets: Targets,
}

impl Reloader {
    /// A reloader for `config` as read from its file (before HQ's settings are put over it).
    pub fn new(config: &Config, journal: Journal) -> Reloader {
        let path = (config.source != EMBEDDED_SIM_NAME).then(|| PathBuf::from(&config.source));
        Reloader { path, in_force: config.clone(), journal, targets: Targets::default() }
    }

    /// The running parts live keys go to (until attached, a reload only records them).
    pub fn attach(&mut self, targets: Targets) {
        self.targets = targets;
    }

    /// Reads the file again and applies what can change now; logs and journals the outcome.
    pub async fn reload(&mut self) -> Outcome {
        let Some(path) = self.path.clone() else {
            tracing::warn!("reload: vand runs the embedded configuration; there is no file to read again");
            return Outcome::Reloaded(ConfigDiff::default());
        };
        let file = path.display().to_string();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await.unwrap_or_else(|e| {
            Err(ConfigError::Read { file: file.clone(), source: std::io::Error::other(e) })
        });
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("configuration not reloaded, the old one stays: {e}");
                let (line, key) = match &e {
                    ConfigError::Invalid { line, key, .. } => (Some(*line), Some(key.clone())),
                    ConfigError::Read { .. } => (None, None),
                };
                self.record(CONFIG_REFUSED, json!({"file": file, "line": line, "key": key})).await;
                return Outcome::Refused(e.to_string());
            }
        };
        let mut d = diff(&self.in_force, &new, self.targets.in_force);
        if d.applied.contains(&"log.level") {
            match crate::logging::set_level(&new.log.level) {
                Ok(crate::logging::LevelChange::OverriddenByEnv) => {
                    d.applied.retain(|k| *k != "log.level");
                    d.restart.push("log.level");
                    tracing::info!("log.level changed, but RUST_LOG set the level at start and stays");
                }
                Ok(_) => {}
                Err(e) => {
                    // Validation parsed it already; keep the old level if the filter refuses.
                    d.applied.retain(|k| *k != "log.level");
                    tracing::error!("log.level not applied: {e}");
                }
            }
        }
        self.in_force = take_applied(&self.in_force, &new, &d.applied);
        hand_over(&self.targets, &self.in_force, &d.applied);
        if !d.kept_by_hq.is_empty() {
            tracing::warn!(
                "configuration reloaded; HQ's settings bundle sets these and stays in force over the file: {}",
                d.kept_by_hq.join(", ")
            );
        }
        if !d.restart.is_empty() {
            tracing::warn!(
                "configuration reloaded; these changes need a restart and keep their old values until then: {}",
                d.restart.join(", ")
            );
        }
        tracing::info!(
            applied = %d.applied.join(","),
            restart_needed = %d.restart.join(","),
            "configuration reloaded from {file}"
        );
        self.record(
            CONFIG_RELOADED,
            json!({"file": file, "applied": d.applied, "restart_needed": d.restart,
                   "kept_by_hq": d.kept_by_hq}),
        )
        .await;
        Outcome::Reloaded(d)
    }

    async fn record(&self, kind: &str, payload: serde_json::Value) {
        if let Err(e) = self.journal.append_async(kind, &payload).await {
            tracing::error!(error = %e, "could not journal {kind}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config::embedded_sim()
    }

    const NO_HQ: InForce = InForce { hq_sets_hours: false };

    #[test]
    fn same_configuration_changes_nothing() {
        assert!(diff(&base(), &base(), NO_HQ).is_empty());
        assert!(diff(&base(), &base(), InForce { hq_sets_hours: true }).is_empty());
    }

    #[test]
    fn operational_knobs_apply_now_and_ports_paths_ids_and_the_request_timeout_wait_for_a_restart() {
        let old = base();
        let mut new = base();
        new.log.level = "debug".into();
        new.van.id = "MTU-OTHER-9".into();
        new.paths.state_dir = "/elsewhere".into();
        new.api.listen = vec!["127.0.0.1:9999".parse().unwrap()];
        new.api.max_pin_failures = 2;
        new.api.session_idle_minutes += 1;
        new.service.opens = "08:00".into();
        new.sync.poll_interval_ms += 1;
        new.sync.backoff_max_s += 1;
        new.sync.request_timeout_s += 1;
        new.sync.url = "https://elsewhere.example".into();
        if let Some(card) = new.devices.card.as_mut() {
            card.serial.baud = 9600;
        }
        let d = diff(&old, &new, NO_HQ);
        assert_eq!(
            d.applied,
            vec![
                "log.level",
                "service.opens",
                "api.max_pin_failures",
                "api.session_idle_minutes",
                "sync.backoff_max_s",
                "sync.poll_interval_ms"
            ]
        );
        let mut expected =
            vec!["van.id", "paths.state_dir", "api.listen", "sync.url", "sync.request_timeout_s"];
        if old.devices.card.is_some() {
            expected.insert(2, "devices.card");
        }
        assert_eq!(d.restart, expected);
        assert!(d.kept_by_hq.is_empty());
    }

    #[test]
    fn hq_settings_that_set_the_hours_keep_winning_over_the_file() {
        let old = base();
        let mut new = base();
        new.service.opens = "08:00".into();
        new.service.closes = "23:00".into();
        new.api.lockout_minutes = 5;
        let d = diff(&old, &new, InForce { hq_sets_hours: true });
        assert_eq!(d.applied, vec!["api.lockout_minutes"]);
        assert_eq!(d.kept_by_hq, vec!["service.opens", "service.closes"]);
        assert!(d.restart.is_empty());
        // What runs keeps the old hours: the next reload of the same file says so again.
        let live = take_applied(&old, &new, &d.applied);
        assert_eq!((live.service.opens.as_str(), live.api.lockout_minutes), (old.service.opens.as_str(), 5));
        assert_eq!(diff(&live, &new, InForce { hq_sets_hours: true }).kept_by_hq, d.kept_by_hq);
    }

    #[test]
    fn new_hours_wait_for_the_restart_that_brings_a_new_time_zone() {
        let old = base();
        let mut new = base();
        new.service.timezone = "UTC".into();
        new.service.closes = "23:00".into();
        let d = diff(&old, &new, NO_HQ);
        assert!(d.applied.is_empty(), "{d:?}");
        assert_eq!(d.restart, vec!["service.timezone", "service.closes"]);
    }

    #[test]
    fn every_live_key_is_taken_over_and_every_other_key_is_not() {
        // A key changed alone: after take_applied nothing is left to apply, and only a restart
        // key is still different.
        type Change = fn(&mut Config);
        let changes: &[(&str, Change)] = &[
            ("log.level", |c| c.log.level = "trace".into()),
            ("service.opens", |c| c.service.opens = "07:00".into()),
            ("service.closes", |c| c.service.closes = "23:30".into()),
            ("api.max_pin_failures", |c| c.api.max_pin_failures = 9),
            ("api.lockout_minutes", |c| c.api.lockout_minutes = 99),
            ("api.session_idle_minutes", |c| c.api.session_idle_minutes = 7),
            ("api.session_max_hours", |c| c.api.session_max_hours = 3),
            ("sync.max_records", |c| c.sync.max_records = 17),
            ("sync.max_bytes", |c| c.sync.max_bytes = 4096),
            ("sync.backoff_base_s", |c| c.sync.backoff_base_s = 9),
            ("sync.backoff_max_s", |c| c.sync.backoff_max_s = 99),
            ("sync.checkpoint_every_s", |c| c.sync.checkpoint_every_s = 33),
            ("sync.poll_interval_ms", |c| c.sync.poll_interval_ms = 77),
        ];
        let named: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
        assert_eq!(named, LIVE_KEYS, "one change per live key, in order");
        for (key, change) in changes {
            let old = base();
            let mut new = base();
            change(&mut new);
            let d = diff(&old, &new, NO_HQ);
            assert_eq!(d.applied, vec![*key]);
            let live = take_applied(&old, &new, &d.applied);
            assert!(changed_keys(&live, &new).is_empty(), "{key} not taken over");
        }
        let old = base();
        let mut new = base();
        new.van.id = "MTU-OTHER-9".into();
        new.sync.request_timeout_s = 5;
        let live = take_applied(&old, &new, &diff(&old, &new, NO_HQ).applied);
        assert_eq!(changed_keys(&live, &new), vec!["van.id", "sync.request_timeout_s"]);
    }

    #[test]
    fn every_key_of_a_section_is_compared() {
        // A change anywhere in a section is seen: an unlisted key would be missed silently.
        let old = base();
        let mut new = base();
        new.service.closes = "23:00".into();
        new.documents.roll_dpi = 300;
        new.control.max_clients = 3;
        new.gpio.debounce_ms = 99;
        new.daemon.shutdown_budget = std::time::Duration::from_millis(1);
        new.journal.checkpoint_every = 7;
        assert_eq!(
            changed_keys(&old, &new),
            vec![
                "journal.checkpoint_every",
                "daemon.shutdown_budget_ms",
                "service.closes",
                "gpio.debounce_ms",
                "documents.roll_dpi",
                "control.max_clients"
            ]
        );
    }

    #[test]
    fn after_a_reload_restart_keys_keep_their_old_values() {
        let old = base();
        let mut new = base();
        new.log.level = "warn".into();
        new.van.id = "MTU-OTHER-9".into();
        let live = take_applied(&old, &new, &diff(&old, &new, NO_HQ).applied);
        assert_eq!(live.log.level, "warn");
        assert_eq!(live.van.id, old.van.id);
        // A second reload of the same file names the restart key again and applies nothing.
        let d = diff(&live, &new, NO_HQ);
        assert_eq!((d.applied, d.restart), (vec![], vec!["van.id"]));
    }
}
