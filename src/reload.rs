//! Reloading the configuration on SIGHUP (`systemctl reload vand`).
//!
//! vand reads the file it started with again. A file that does not parse or validate changes
//! nothing: the old configuration stays, the error (file, line, key) is logged once and a
//! `config.refused` record is journaled. A valid file applies the keys that can change while
//! the van runs ([`LIVE_KEYS`]); the other changed keys keep their old values until a restart,
//! and one log line names them. A `config.reloaded` record names the keys either way (never a
//! value). `docs/config.md`, "Reloading", is the reference.

use std::path::PathBuf;

use serde_json::json;

use crate::config::{Config, ConfigError, EMBEDDED_SIM_NAME};
use crate::journal::Journal;

/// Journal kind of an applied reload: `{"file", "applied": [keys], "restart_needed": [keys]}`.
pub const CONFIG_RELOADED: &str = "config.reloaded";
/// Journal kind of a refused reload: `{"file", "line", "key"}` (where the file is wrong).
pub const CONFIG_REFUSED: &str = "config.refused";

/// The keys a reload applies while vand runs. Every other key needs a restart.
pub const LIVE_KEYS: &[&str] = &["log.level"];

/// The keys that differ between two configurations, split by whether a reload applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Changed keys in [`LIVE_KEYS`].
    pub applied: Vec<&'static str>,
    /// Changed keys that take effect only at the next start.
    pub restart: Vec<&'static str>,
}

impl ConfigDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.restart.is_empty()
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

/// Splits the changed keys between `old` and `new` into applied now and needing a restart.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let (applied, restart) = changed_keys(old, new).into_iter().partition(|k| LIVE_KEYS.contains(k));
    ConfigDiff { applied, restart }
}

/// `in_force` with the `applied` keys of `new` put over it: what runs after a reload.
fn take_applied(in_force: &Config, new: &Config, applied: &[&str]) -> Config {
    let mut c = in_force.clone();
    if applied.contains(&"log.level") {
        c.log.level = new.log.level.clone();
    }
    c
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
}

impl Reloader {
    /// A reloader for `config` as read from its file (before HQ's settings are put over it).
    pub fn new(config: &Config, journal: Journal) -> Reloader {
        let path = (config.source != EMBEDDED_SIM_NAME).then(|| PathBuf::from(&config.source));
        Reloader { path, in_force: config.clone(), journal }
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
        let mut d = diff(&self.in_force, &new);
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
            json!({"file": file, "applied": d.applied, "restart_needed": d.restart}),
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

    #[test]
    fn same_configuration_changes_nothing() {
        assert!(diff(&base(), &base()).is_empty());
    }

    #[test]
    fn log_level_applies_now_and_ports_paths_and_ids_wait_for_a_restart() {
        let old = base();
        let mut new = base();
        new.log.level = "debug".into();
        new.van.id = "MTU-OTHER-9".into();
        new.paths.state_dir = "/elsewhere".into();
        new.api.listen = vec!["127.0.0.1:9999".parse().unwrap()];
        new.api.session_idle_minutes += 1;
        new.sync.poll_interval_ms += 1;
        if let Some(card) = new.devices.card.as_mut() {
            card.serial.baud = 9600;
        }
        let d = diff(&old, &new);
        assert_eq!(d.applied, vec!["log.level"]);
        let mut expected = vec![
            "van.id",
            "paths.state_dir",
            "api.listen",
            "api.session_idle_minutes",
            "sync.poll_interval_ms",
        ];
        if old.devices.card.is_some() {
            expected.insert(2, "devices.card");
        }
        assert_eq!(d.restart, expected);
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
        let live = take_applied(&old, &new, &diff(&old, &new).applied);
        assert_eq!(live.log.level, "warn");
        assert_eq!(live.van.id, old.van.id);
        // A second reload of the same file names the restart key again and applies nothing.
        let d = diff(&live, &new);
        assert_eq!((d.applied, d.restart), (vec![], vec!["van.id"]));
    }
}
