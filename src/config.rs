//! Configuration: TOML, validated at start. Every error names the file, the line and the key.
//!
//! `config/sim.toml` is compiled in as the default (`vand` with no `--config`), so a fresh clone
//! runs in simulation with state under `./var`. `config/vand.toml` is the documented production
//! template. Relative paths are taken relative to the working directory of the process (the
//! systemd unit sets `WorkingDirectory=/var/lib/mtu`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::devices::options;

/// The simulation configuration compiled into the binaries.
pub const EMBEDDED_SIM: &str = include_str!("../config/sim.toml");
/// Name shown in messages for the embedded configuration.
pub const EMBEDDED_SIM_NAME: &str = "<embedded config/sim.toml>";

/// A configuration error with its place.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or type error, or an invalid value: `key` is the dotted path (`devices.card.baud`).
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid { file: String, line: usize, column: usize, key: String, message: String },
}

/// Whether the van runs on real hardware or in simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Real devices; the signing key must already exist (`vanctl keygen`).
    Production,
    /// Simulated devices; a missing signing key is created on first start.
    Simulation,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub van: VanConfig,
    pub paths: PathsConfig,
    #[serde(default)]
    pub journal: JournalConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// What the UPS gives on a power failure (docs/hardware.md, "Power failure").
    #[serde(default)]
    pub power: PowerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub devices: DevicesConfig,
    #[serde(default)]
    pub gpio: GpioConfig,
    #[serde(default)]
    pub documents: DocumentsConfig,
    #[serde(default)]
    pub simulation: SimulationConfig,
    #[serde(default)]
    pub control: ControlConfig,
    /// The officers' local HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The uplink to HQ (docs/sync.md, "The van's uplink").
    #[serde(default)]
    pub sync: SyncConfig,
    /// Where this configuration came from (file path or [`EMBEDDED_SIM_NAME`]); not a TOML key.
    #[serde(skip)]
    pub source: String,
    /// The settings bundle from office.db put over this configuration at start
    /// (`office::boot::with_applied_settings`); not a TOML key.
    #[serde(skip)]
    pub hq_settings: Option<crate::office::boot::HqSettings>,
}

/// Identity of the van.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VanConfig {
    /// Van id as enrolled at HQ: 1–32 characters of `A–Z a–z 0–9 - _ .`.
    pub id: String,
    /// Issuing unit's name in Arabic, printed on documents.
    #[serde(default)]
    pub unit_name_ar: String,
    /// Issuing unit's name in Latin script.
    #[serde(default)]
    pub unit_name_en: String,
}

/// Where state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Folder for the journal, key and runtime files; created if missing.
    pub state_dir: PathBuf,
    /// The journal database. Default: `<state_dir>/journal.db`.
    pub journal: Option<PathBuf>,
    /// The Ed25519 signing key (PKCS#8 PEM, mode 0600). Default: `<state_dir>/van.key`.
    pub key_file: Option<PathBuf>,
}

impl PathsConfig {
    /// The journal database path.
    pub fn journal_path(&self) -> PathBuf {
        self.journal.clone().unwrap_or_else(|| self.state_dir.join("journal.db"))
    }
    /// The signing key path.
    pub fn key_path(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.state_dir.join("van.key"))
    }
}

/// Journal tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Records between verified checkpoints (start-up verifies only the records after the last one).
    pub checkpoint_every: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { checkpoint_every: 1000 }
    }
}

/// The daemon's own tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, from = "RawDaemonConfig")]
pub struct DaemonConfig {
    /// How long a stop may take (`shutdown_budget_ms`, default 15000): running device steps
    /// reach a safe point or are recorded as interrupted, then `daemon.stop` is written. Keep it
    /// below the unit's `TimeoutStopSec` (20 s).
    pub shutdown_budget: std::time::Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig { shutdown_budget: std::time::Duration::from_secs(15) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemonConfig {
    shutdown_budget_ms: u64,
}

impl Default for RawDaemonConfig {
    fn default() -> Self {
        RawDaemonConfig { shutdown_budget_ms: 15_000 }
    }
}

impl From<RawDaemonConfig> for DaemonConfig {
    fn from(r: RawDaemonConfig) -> Self {
        DaemonConfig { shutdown_budget: std::time::Duration::from_millis(r.shutdown_budget_ms) }
    }
}

/// The UPS behind the van's box: how long it holds after mains is lost, and how long a
/// mains glitch may last without stopping the van.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, from = "RawPowerConfig")]
pub struct PowerConfig {
    /// The UPS's rated hold-up time (`hold_up_s`, default 60): vand must have stopped before it
    /// ends.
    pub hold_up: std::time::Duration,
    /// A mains loss shorter than this (`ride_through_s`, default 10) is a glitch: services are
    /// refused meanwhile and taken again when mains returns; a longer one stops the van.
    pub ride_through: std::time::Duration,
}

impl PowerConfig {
    /// The budget of a power-fail stop: `[daemon] shutdown_budget_ms`, but never more than what
    /// is left of the hold-up time once the ride-through has passed.
    pub fn stop_budget(&self, daemon: &DaemonConfig) -> std::time::Duration {
        daemon.shutdown_budget.min(self.hold_up.saturating_sub(self.ride_through))
    }
}

impl Default for PowerConfig {
    fn default() -> Self {
        RawPowerConfig::default().into()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPowerConfig {
    hold_up_s: u64,
    ride_through_s: u64,
}

impl Default for RawPowerConfig {
    fn default() -> Self {
        RawPowerConfig { hold_up_s: 60, ride_through_s: 10 }
    }
}

impl From<RawPowerConfig> for PowerConfig {
    fn from(r: RawPowerConfig) -> Self {
        PowerConfig {
            hold_up: std::time::Duration::from_secs(r.hold_up_s),
            ride_through: std::time::Duration::from_secs(r.ride_through_s),
        }
    }
}

/// The least time a power-fail stop gets (the stop records, the WAL checkpoints).
pub const MIN_POWER_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `mtu=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
    /// `auto` (journald when started by systemd, text otherwise), `journald` or `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Auto }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Auto,
    Journald,
    Text,
}

/// Service hours and time zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// tz database zone used for display and service hours.
    pub timezone: String,
    /// Opening time, local `HH:MM`.
    pub opens: String,
    /// Closing time, local `HH:MM`.
    pub closes: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { timezone: "Africa/Cairo".into(), opens: "10:00".into(), closes: "22:00".into() }
    }
}

/// Serial line parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Serial line settings shared by all devices.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialConfig {
    /// Device path: a udev symlink (`/dev/van/payment`) or `/dev/serial/by-id/…`.
    pub path: PathBuf,
    /// Line speed.
    pub baud: u32,
    /// Data bits, 5–8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
    /// Per-request answer timeout in milliseconds (protocol timeouts are in the drivers).
    pub timeout_ms: u64,
}

fn default_data_bits() -> u8 {
    8
}
fn default_parity() -> Parity {
    Parity::None
}
fn default_stop_bits() -> u8 {
    1
}
fn default_timeout_ms() -> u64 {
    2000
}

/// One device section: its driver name, serial settings and driver-specific options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(from = "RawDeviceConfig")]
pub struct DeviceConfig {
    /// Driver name: `zvt` (payment), `evolis` (card), `zpl` (sticker), `mercury` (rfid).
    pub driver: String,
    /// When false the device is reported absent and never opened.
    pub enabled: bool,
    /// Serial line settings.
    pub serial: SerialConfig,
    /// Driver-specific options (documented in `docs/config.md`). Checked when the configuration
    /// is loaded (typed in [`crate::devices::options`]) and read again by the driver at open.
    pub options: toml::Table,
    /// Idle status-poll interval (`health_poll_ms`; 0 = off; absent = the kind's default, see
    /// `devices::manager::default_poll`).
    pub health_poll: Option<std::time::Duration>,
}

/// The TOML shape of a device section: flat keys (`path`, `baud`, …) so that errors keep their
/// line numbers (serde's `flatten` would lose them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviceConfig {
    driver: String,
    #[serde(default = "default_true")]
    enabled: bool,
    path: PathBuf,
    baud: u32,
    #[serde(default = "default_data_bits")]
    data_bits: u8,
    #[serde(default = "default_parity")]
    parity: Parity,
    #[serde(default = "default_stop_bits")]
    stop_bits: u8,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    health_poll_ms: Option<u64>,
    #[serde(default)]
    options: toml::Table,
}

impl From<RawDeviceConfig> for DeviceConfig {
    fn from(r: RawDeviceConfig) -> Self {
        DeviceConfig {
            driver: r.driver,
            enabled: r.enabled,
            serial: SerialConfig {
                path: r.path,
                baud: r.baud,
                data_bits: r.data_bits,
                parity: r.parity,
                stop_bits: r.stop_bits,
                timeout_ms: r.timeout_ms,
            },
            options: r.options,
            health_poll: r.health_poll_ms.map(std::time::Duration::from_millis),
        }
    }
}

fn default_true() -> bool {
    true
}

/// The four serial devices; each optional (a missing device is reported, not fatal).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    pub payment: Option<DeviceConfig>,
    pub card: Option<DeviceConfig>,
    pub sticker: Option<DeviceConfig>,
    pub rfid: Option<DeviceConfig>,
}

impl DevicesConfig {
    /// The section of a serial device, if configured.
    pub fn get(&self, id: crate::devices::DeviceId) -> Option<&DeviceConfig> {
        use crate::devices::DeviceId;
        match id {
            DeviceId::Payment => self.payment.as_ref(),
            DeviceId::Card => self.card.as_ref(),
            DeviceId::Sticker => self.sticker.as_ref(),
            DeviceId::Rfid => self.rfid.as_ref(),
            DeviceId::Gpio => None,
        }
    }
}

/// GPIO backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GpioBackend {
    /// rppal on a Raspberry Pi.
    Rppal,
    /// In-process simulation (driven by `van-sim` or tests).
    #[default]
    Sim,
    /// No GPIO at all.
    None,
}

/// GPIO lines by name (BCM numbers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    #[serde(default)]
    pub backend: GpioBackend,
    /// Debounce for inputs, milliseconds.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
    /// Named lines: `ready_led`, `offline_led`, `fault_led`, `buzzer`, `tamper`, `power_fail`.
    #[serde(default)]
    pub lines: BTreeMap<String, GpioLine>,
}

fn default_debounce_ms() -> u64 {
    30
}

/// One GPIO line.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// BCM pin number.
    pub pin: u8,
    /// Logic level that means "on"/"active".
    #[serde(default = "default_true")]
    pub active_high: bool,
}

/// Simulation mode only: the simulated devices served inside vand, so one command runs the van.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Serve the simulated devices inside vand (ignored in production). Set false when you run
    /// `van-sim` yourself; vand also leaves them to a van-sim already answering on `control`.
    pub devices: bool,
    /// Scenario file (`hw/sim/*.toml`); if it does not exist, realistic timing and no faults.
    pub scenario: PathBuf,
    /// Folder of the devices' stable names (the `devices.*.path` symlinks point into it).
    pub device_dir: PathBuf,
    /// The simulators' control socket (`van-sim ctl …`).
    pub control: PathBuf,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            devices: false,
            scenario: PathBuf::from("hw/sim/default.toml"),
            device_dir: PathBuf::from("var/dev"),
            control: PathBuf::from("var/sim.sock"),
        }
    }
}

/// The local control socket (`vanctl`): how many clients it serves and how long an idle one may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Clients served at once (1 … 1024); one more is answered with an error and closed.
    pub max_clients: usize,
    /// Seconds a client may stay connected without sending a request (1 … 3600).
    pub idle_timeout_s: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { max_clients: 16, idle_timeout_s: 30 }
    }
}

/// The officers' local HTTP API (docs/api.md) and the service desk's policies.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Addresses the API listens on, and only those (the van's LAN interface, or loopback).
    pub listen: Vec<std::net::SocketAddr>,
    /// Wrong PINs in a row before an officer id is locked (1 … 20).
    pub max_pin_failures: u32,
    /// Minutes an officer id stays locked (1 … 1440).
    pub lockout_minutes: u32,
    /// Minutes a session may stay unused (1 … 720).
    pub session_idle_minutes: u32,
    /// Hours a session lasts at most (1 … 24).
    pub session_max_hours: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 8080))],
            max_pin_failures: 5,
            lockout_minutes: 15,
            session_idle_minutes: 30,
            session_max_hours: 12,
        }
    }
}

/// The uplink to HQ: where HQ is, what the van trusts (HQ's signing key and CA, both pinned), and
/// how it uploads. With `enabled = false` (the default) vand does not sync.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run the uplink.
    pub enabled: bool,
    /// HQ's base URL, `https://host[:port]`.
    pub url: String,
    /// HQ's Ed25519 public key (64 hex digits, `van-hq pubkey`): only acknowledgements it signs count.
    pub hq_public_key: String,
    /// PEM file of the CA that signed HQ's TLS certificate; no other CA (and no system root) is trusted.
    pub ca_file: PathBuf,
    /// Records per upload, 1 … 1000.
    pub max_records: usize,
    /// Uncompressed bytes per upload, 4096 … 1048576.
    pub max_bytes: usize,
    /// Seconds a request may take before it counts as failed, 1 … 600.
    pub request_timeout_s: u64,
    /// First retry delay in seconds after a failure (doubling up to `backoff_max_s`), 1 … 3600.
    pub backoff_base_s: u64,
    /// Longest retry delay in seconds, `backoff_base_s` … 86400.
    pub backoff_max_s: u64,
    /// Seconds between checkpoints (one also opens every session), 10 … 86400.
    pub checkpoint_every_s: u64,
    /// Milliseconds between looks for newly committed records while idle, 100 … 60000.
    pub poll_interval_ms: u64,
    /// Simulation only: run a local HQ inside vand for the training van (see `[sync.training_hq]`).
    pub training_hq: Option<TrainingHqConfig>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            enabled: false,
            url: String::new(),
            hq_public_key: String::new(),
            ca_file: PathBuf::new(),
            max_records: 1000,
            max_bytes: 1 << 20,
            request_timeout_s: 60,
            backoff_base_s: 2,
            backoff_max_s: 600,
            checkpoint_every_s: 900,
            poll_interval_ms: 2000,
            training_hq: None,
        }
    }
}

/// The training van's local HQ: vand starts `van-hq`'s receiver in-process over TLS with a
/// throwaway CA, enrols the van and pins HQ's key and CA into its own effective `[sync]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingHqConfig {
    /// Folder of HQ's database (`hq.db`), key (`hq.key`) and TLS files (`tls/`).
    pub dir: PathBuf,
    /// Address it listens on (port 0: any free port, printed at start).
    pub listen: std::net::SocketAddr,
}

/// Document rendering settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// Sticker printer resolution: 203 or 300 dpi.
    pub sticker_dpi: u32,
    /// Receipt roll printer resolution, dpi.
    pub roll_dpi: u32,
    /// Dots across the receipt printer's head (576 for a 72 mm head at 203 dpi).
    pub roll_width_dots: u32,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig { sticker_dpi: 203, roll_dpi: 203, roll_width_dots: 576 }
    }
}

impl Config {
    /// Loads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Self::parse(&text, &file)
    }

    /// The embedded simulation configuration.
    pub fn embedded_sim() -> Config {
        Self::parse(EMBEDDED_SIM, EMBEDDED_SIM_NAME).expect("embedded config/sim.toml is valid (tested)")
    }

    /// Loads `path`, or the embedded simulation configuration when `None`.
    pub fn load_or_embedded(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            // Not `embedded_sim()`: a build without the training HQ (the van's package) has no
            // embedded van to run, and says so as a config error rather than a panic.
            None => Self::parse(EMBEDDED_SIM, EMBEDDED_SIM_NAME),
        }
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, file, "", &e))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            toml_error(text, file, &key, e.inner())
        })?;
        config.source = file.to_owned();
        let placed = |(key, message): (String, String)| {
            let (line, column) = locate_key(text, &key).unwrap_or((1, 1));
            ConfigError::Invalid { file: file.to_owned(), line, column, key, message }
        };
        config.validate().map_err(placed)?;
        config.check_driver_options(text, file)?;
        Ok(config)
    }

    /// Reads every device's `options` table into its driver's typed options, from the text so an
    /// error names the line and the full key (`devices.rfid.options.region`).
    fn check_driver_options(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, file, "", &e))?;
        let doc: OptionsDoc = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let (key, _) = options::error_key("", &path, &e.inner().to_string());
            toml_error(text, file, key.trim_start_matches('.'), e.inner())
        })?;
        let placed = |key: String, message: String| {
            let (line, column) = locate_key(text, &key).unwrap_or((1, 1));
            ConfigError::Invalid { file: file.to_owned(), line, column, key, message }
        };
        // Keys a driver cannot work without (the tag secret) are required of an enabled device in
        // production; in simulation (test rigs, partial set-ups) the driver reports a missing one
        // when its port opens.
        fn check<T: options::DriverOptions>(
            section: &Option<OptionsSection<T>>,
            device: &Option<DeviceConfig>,
            production: bool,
        ) -> Result<(), (String, String)> {
            match (section, device) {
                (Some(s), Some(d)) if d.enabled && production => {
                    s.options.check().map_err(|(key, message)| {
                        (format!("{}.{key}", options::options_prefix(T::DEVICE)), message)
                    })
                }
                _ => Ok(()),
            }
        }
        let d = &doc.devices;
        let production = self.mode == Mode::Production;
        check(&d.payment, &self.devices.payment, production)
            .and(check(&d.card, &self.devices.card, production))
            .and(check(&d.sticker, &self.devices.sticker, production))
            .and(check(&d.rfid, &self.devices.rfid, production))
            .map_err(|(key, message)| placed(key, message))?;
        if let (Some(sticker), Some(dev)) = (&d.sticker, &self.devices.sticker)
            && dev.enabled
            && sticker.options.dpi.0 != self.documents.sticker_dpi
        {
            let key = if dev.options.contains_key("dpi") {
                "devices.sticker.options.dpi"
            } else {
                "documents.sticker_dpi"
            };
            return Err(placed(
                key.into(),
                format!(
                    "the sticker printer is set to {} dpi (devices.sticker.options.dpi) but labels \
                     are rendered at {} dpi (documents.sticker_dpi): make them equal",
                    sticker.options.dpi.0, self.documents.sticker_dpi
                ),
            ));
        }
        Ok(())
    }

    /// Semantic checks; returns the dotted key and what is wrong with it.
    fn validate(&self) -> Result<(), (String, String)> {
        let id = &self.van.id;
        if id.is_empty()
            || id.len() > 32
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err((
                "van.id".into(),
                format!("{id:?} is not a van id: use 1–32 characters of A–Z a–z 0–9 - _ ."),
            ));
        }
        if self.journal.checkpoint_every == 0 {
            return Err(("journal.checkpoint_every".into(), "must be at least 1".into()));
        }
        self.validate_power()?;
        if jiff::tz::TimeZone::get(&self.service.timezone).is_err() {
            return Err((
                "service.timezone".into(),
                format!("{:?} is not in the tz database (e.g. \"Africa/Cairo\")", self.service.timezone),
            ));
        }
        let opens = parse_hhmm(&self.service.opens).ok_or_else(|| {
            ("service.opens".to_string(), format!("{:?} is not a time HH:MM", self.service.opens))
        })?;
        let closes = parse_hhmm(&self.service.closes).ok_or_else(|| {
            ("service.closes".to_string(), format!("{:?} is not a time HH:MM", self.service.closes))
        })?;
        if closes <= opens {
            return Err(("service.closes".into(), "must be later than service.opens".into()));
        }
        let devices = [
            ("payment", &self.devices.payment, "zvt"),
            ("card", &self.devices.card, "evolis"),
            ("sticker", &self.devices.sticker, "zpl"),
            ("rfid", &self.devices.rfid, "mercury"),
        ];
        for (name, dev, known) in devices {
            let Some(dev) = dev else { continue };
            if dev.driver != known {
                return Err((
                    format!("devices.{name}.driver"),
                    format!("unknown driver {:?}; this build has {known:?}", dev.driver),
                ));
            }
            let s = &dev.serial;
            if !matches!(
                s.baud,
                1200 | 2400 | 4800 | 9600 | 19200 | 38400 | 57600 | 115200 | 230400 | 460800 | 921600
            ) {
                return Err((
                    format!("devices.{name}.baud"),
                    format!("{} is not a standard baud rate", s.baud),
                ));
            }
            if !(5..=8).contains(&s.data_bits) {
                return Err((format!("devices.{name}.data_bits"), "must be 5, 6, 7 or 8".into()));
            }
            if !(1..=2).contains(&s.stop_bits) {
                return Err((format!("devices.{name}.stop_bits"), "must be 1 or 2".into()));
            }
            if s.timeout_ms == 0 || s.timeout_ms > 600_000 {
                return Err((format!("devices.{name}.timeout_ms"), "must be 1 … 600000".into()));
            }
            if s.path.as_os_str().is_empty() {
                return Err((format!("devices.{name}.path"), "must not be empty".into()));
            }
        }
        if !(1..=1024).contains(&self.control.max_clients) {
            return Err(("control.max_clients".into(), "must be 1 … 1024".into()));
        }
        if !(1..=3600).contains(&self.control.idle_timeout_s) {
            return Err(("control.idle_timeout_s".into(), "must be 1 … 3600 seconds".into()));
        }
        if self.api.listen.is_empty() {
            return Err((
                "api.listen".into(),
                "must name at least one address, e.g. \"127.0.0.1:8080\"".into(),
            ));
        }
        for (key, v, max) in [
            ("api.max_pin_failures", self.api.max_pin_failures, 20),
            ("api.lockout_minutes", self.api.lockout_minutes, 1440),
            ("api.session_idle_minutes", self.api.session_idle_minutes, 720),
            ("api.session_max_hours", self.api.session_max_hours, 24),
        ] {
            if !(1..=max).contains(&v) {
                return Err((key.into(), format!("must be 1 … {max}")));
            }
        }
        self.validate_sync()?;
        if !matches!(self.documents.sticker_dpi, 203 | 300) {
            return Err(("documents.sticker_dpi".into(), "must be 203 or 300".into()));
        }
        if !(100..=600).contains(&self.documents.roll_dpi) {
            return Err(("documents.roll_dpi".into(), "must be 100 … 600".into()));
        }
        if !(64..=4096).contains(&self.documents.roll_width_dots) {
            return Err(("documents.roll_width_dots".into(), "must be 64 … 4096".into()));
        }
        for (name, line) in &self.gpio.lines {
            const KNOWN: [&str; 6] =
                ["ready_led", "offline_led", "fault_led", "buzzer", "tamper", "power_fail"];
            if !KNOWN.contains(&name.as_str()) {
                return Err((
                    format!("gpio.lines.{name}"),
                    format!("unknown line; known: {}", KNOWN.join(", ")),
                ));
            }
            if line.pin > 53 {
                return Err((
                    format!("gpio.lines.{name}.pin"),
                    format!("BCM pin {} does not exist", line.pin),
                ));
            }
        }
        Ok(())
    }

    fn validate_power(&self) -> Result<(), (String, String)> {
        let p = &self.power;
        if p.hold_up.is_zero() || p.hold_up > std::time::Duration::from_secs(3600) {
            return Err((
                "power.hold_up_s".into(),
                "must be 1 … 3600 seconds (the UPS's rated hold-up time)".into(),
            ));
        }
        if p.hold_up.saturating_sub(p.ride_through) < MIN_POWER_STOP {
            return Err((
                "power.ride_through_s".into(),
                format!(
                    "{} s leaves less than {} s of the {} s hold-up time for a clean stop; make it at most {} s",
                    p.ride_through.as_secs(),
                    MIN_POWER_STOP.as_secs(),
                    p.hold_up.as_secs(),
                    p.hold_up.saturating_sub(MIN_POWER_STOP).as_secs()
                ),
            ));
        }
        Ok(())
    }

    fn validate_sync(&self) -> Result<(), (String, String)> {
        let s = &self.sync;
        for (key, v, lo, hi) in [
            ("sync.max_records", s.max_records as u64, 1, 1000),
            ("sync.max_bytes", s.max_bytes as u64, 4096, 1 << 20),
            ("sync.request_timeout_s", s.request_timeout_s, 1, 600),
            ("sync.backoff_base_s", s.backoff_base_s, 1, 3600),
            ("sync.backoff_max_s", s.backoff_max_s, s.backoff_base_s.max(1), 86_400),
            ("sync.checkpoint_every_s", s.checkpoint_every_s, 10, 86_400),
            ("sync.poll_interval_ms", s.poll_interval_ms, 100, 60_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err((key.into(), format!("must be {lo} … {hi}, not {v}")));
            }
        }
        if s.training_hq.is_some() && !cfg!(feature = "training-hq") {
            // The van's package is built without it (docs/install.md): refuse at start, and in
            // `vand check-config`, rather than run a van that can never sync.
            return Err((
                "sync.training_hq".into(),
                "this build of vand has no training HQ (the van's package is built without the \
                 `training-hq` feature): remove [sync.training_hq] and set sync.url, \
                 sync.hq_public_key and sync.ca_file to the real HQ"
                    .into(),
            ));
        }
        if s.training_hq.is_some() && self.mode != Mode::Simulation {
            return Err((
                "sync.training_hq".into(),
                "only in simulation: a production van syncs with the real HQ (sync.url)".into(),
            ));
        }
        if !s.enabled || s.training_hq.is_some() {
            return Ok(());
        }
        let url_ok = s.url.strip_prefix("https://").is_some_and(|r| !r.is_empty() && !r.contains('/'));
        if !url_ok {
            return Err((
                "sync.url".into(),
                format!("{:?} is not an HQ address: use https://host[:port] with no path", s.url),
            ));
        }
        if mtu_sync::lower_hex::<32>(&s.hq_public_key).is_none() {
            return Err((
                "sync.hq_public_key".into(),
                "must be HQ's Ed25519 public key as 64 lowercase hex digits (`van-hq pubkey`)".into(),
            ));
        }
        if s.ca_file.as_os_str().is_empty() {
            return Err((
                "sync.ca_file".into(),
                "must name the PEM file of the CA that signed HQ's TLS certificate".into(),
            ));
        }
        Ok(())
    }
}

/// The configuration seen only through the devices' typed driver options (everything else is
/// read, and checked, by [`Config`]); each slot has its one driver, checked before this is read.
#[derive(Deserialize)]
struct OptionsDoc {
    #[serde(default)]
    devices: OptionsDevices,
}

#[derive(Default, Deserialize)]
struct OptionsDevices {
    payment: Option<OptionsSection<options::ZvtOptions>>,
    card: Option<OptionsSection<options::EvolisOptions>>,
    sticker: Option<OptionsSection<options::ZplOptions>>,
    rfid: Option<OptionsSection<options::MercuryOptions>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: options::DriverOptions"))]
struct OptionsSection<T> {
    #[serde(default)]
    options: T,
}

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn toml_error(text: &str, file: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    // Prefer where the key is written: spans are lost for flattened sections (device settings).
    let exact = locate_key_exact(text, key);
    let (line, column) = match (exact, e.span()) {
        (Some(at), _) => at,
        (None, Some(span)) => line_col(text, span.start),
        (None, None) => locate_key(text, key).unwrap_or((1, 1)),
    };
    let key = if key.is_empty() { "(document)".to_owned() } else { key.to_owned() };
    ConfigError::Invalid { file: file.to_owned(), line, column, key, message: e.message().trim().to_owned() }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where a dotted key is written, only if every part of it exists.
fn locate_key_exact(text: &str, key: &str) -> Option<(usize, usize)> {
    let parts = key.split('.').filter(|p| !p.is_empty()).count();
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for (i, part) in key.split('.').filter(|p| !p.is_empty()).enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        found = Some(k.span().start);
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ if i + 1 < parts => return None,
            _ => {}
        }
    }
    found.map(|off| line_col(text, off))
}

/// Finds where a dotted key is written (the deepest part of it that exists).
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        found = Some(k.span().start);
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found.map(|off| line_col(text, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sim_config_is_valid() {
        let c = Config::embedded_sim();
        assert_eq!(c.mode, Mode::Simulation);
    }

    #[test]
    fn production_template_is_valid() {
        let text = include_str!("../config/vand.toml");
        let c = Config::parse(text, "config/vand.toml").unwrap();
        assert_eq!(c.mode, Mode::Production);
    }

    #[test]
    fn production_template_journal_and_key_follow_state_dir() {
        let text = include_str!("../config/vand.toml")
            .replace("state_dir = \"/var/lib/mtu\"", "state_dir = \"/srv/van\"");
        let c = Config::parse(&text, "config/vand.toml").unwrap();
        assert_eq!(c.paths.journal_path(), PathBuf::from("/srv/van/journal.db"));
        assert_eq!(c.paths.key_path(), PathBuf::from("/srv/van/van.key"));
    }

    fn err(text: &str) -> (usize, String, String) {
        match Config::parse(text, "t.toml").unwrap_err() {
            ConfigError::Invalid { line, key, message, file, .. } => {
                assert_eq!(file, "t.toml");
                (line, key, message)
            }
            e => panic!("{e}"),
        }
    }

    const BASE: &str = "mode = \"simulation\"\n[van]\nid = \"MTU-1\"\n[paths]\nstate_dir = \"var\"\n";

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = format!("{BASE}[devices.card]\ndriver = \"evolis\"\npath = \"/dev/x\"\nbaud = \"fast\"\n");
        let (line, key, msg) = err(&text);
        assert_eq!(line, 9, "{msg}");
        assert_eq!(key, "devices.card.baud");
    }

    #[test]
    fn invalid_value_names_line_and_key() {
        let text = format!("{BASE}[devices.card]\ndriver = \"evolis\"\npath = \"/dev/x\"\nbaud = 1234\n");
        let (line, key, msg) = err(&text);
        assert_eq!((line, key.as_str()), (9, "devices.card.baud"), "{msg}");
        let text = BASE.replace("MTU-1", "bad id!");
        let (line, key, _) = err(&text);
        assert_eq!((line, key.as_str()), (3, "van.id"));
    }

    #[test]
    fn unknown_key_and_syntax_errors_are_placed() {
        let (line, _, msg) = err(&format!("{BASE}colour = 3\n"));
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("colour"), "{msg}");
        let (line, _, _) = err("mode = \"simulation\"\n[van\n");
        assert_eq!(line, 2);
        let (_, key, msg) = err("mode = \"simulation\"\n[paths]\nstate_dir=\"v\"\n");
        assert!(msg.contains("van"), "{key}: {msg}");
    }

    #[test]
    fn power_section_is_checked_and_its_stop_budget_fits_the_hold_up_time() {
        let c = Config::parse(BASE, "t.toml").unwrap();
        assert_eq!((c.power.hold_up.as_secs(), c.power.ride_through.as_secs()), (60, 10));
        // 15 s of [daemon] budget fits in the 50 s left after the ride-through.
        assert_eq!(c.power.stop_budget(&c.daemon).as_secs(), 15);
        let c =
            Config::parse(&format!("{BASE}[power]\nhold_up_s = 20\nride_through_s = 8\n"), "t.toml").unwrap();
        assert_eq!(c.power.stop_budget(&c.daemon).as_secs(), 12);
        let (line, key, msg) = err(&format!("{BASE}[power]\nhold_up_s = 20\nride_through_s = 16\n"));
        assert_eq!((line, key.as_str()), (8, "power.ride_through_s"), "{msg}");
        assert!(msg.contains("at most 15 s"), "{msg}");
        let (line, key, _) = err(&format!("{BASE}[power]\nhold_up_s = 0\n"));
        assert_eq!((line, key.as_str()), (7, "power.hold_up_s"));
        let (line, key, _) = err(&format!("{BASE}[power]\nhold_up = 30\n"));
        assert_eq!(line, 7, "{key}");
    }

    #[test]
    fn sync_errors_name_their_key_and_line() {
        let c = Config::parse(BASE, "t.toml").unwrap();
        assert!(!c.sync.enabled, "off unless configured");
        let good = "[sync]\nenabled = true\nurl = \"https://hq.example:8443\"\nhq_public_key = \"";
        let key = "ab".repeat(32);
        let ok = format!("{BASE}{good}{key}\"\nca_file = \"/etc/mtu/hq-ca.pem\"\n");
        let c = Config::parse(&ok, "t.toml").unwrap();
        assert_eq!(c.sync.url, "https://hq.example:8443");
        assert_eq!((c.sync.max_records, c.sync.backoff_max_s), (1000, 600));
        let (line, k, msg) = err(&ok.replace("https://hq.example:8443", "http://hq.example"));
        assert_eq!((line, k.as_str()), (8, "sync.url"));
        assert!(msg.contains("https://"), "{msg}");
        let (line, k, _) = err(&ok.replace(&key, &"AB".repeat(32)));
        assert_eq!((line, k.as_str()), (9, "sync.hq_public_key"));
        let (_, k, msg) = err(&ok.replace("ca_file = \"/etc/mtu/hq-ca.pem\"\n", ""));
        assert_eq!(k, "sync.ca_file", "{msg}");
        let (line, k, _) = err(&format!("{ok}max_records = 1001\n"));
        assert_eq!((line, k.as_str()), (11, "sync.max_records"));
        let (_, k, _) = err(&format!("{ok}backoff_base_s = 60\nbackoff_max_s = 30\n"));
        assert_eq!(k, "sync.backoff_max_s");
        let (_, k, msg) = err(&format!("{ok}poll_interval = 5\n"));
        assert!(k.contains("sync") || msg.contains("poll_interval"), "{k}: {msg}");
        let training = format!(
            "{BASE}[sync]\nenabled = true\n[sync.training_hq]\ndir = \"var/hq\"\nlisten = \"127.0.0.1:0\"\n"
        );
        if cfg!(feature = "training-hq") {
            assert!(Config::parse(&training, "t.toml").is_ok(), "simulation may run a training HQ");
        } else {
            let (_, k, msg) = err(&training);
            assert_eq!(k, "sync.training_hq", "{msg}");
            assert!(msg.contains("no training HQ"), "{msg}");
        }
        let (_, k, msg) = err(&training.replace("mode = \"simulation\"", "mode = \"production\""));
        assert_eq!(k, "sync.training_hq", "{msg}");
    }

    #[test]
    fn control_limits_have_defaults_and_bounds() {
        let c = Config::parse(BASE, "t.toml").unwrap();
        assert_eq!(c.control, ControlConfig { max_clients: 16, idle_timeout_s: 30 });
        let (line, key, _) = err(&format!("{BASE}[control]\nmax_clients = 0\n"));
        assert_eq!((line, key.as_str()), (7, "control.max_clients"));
        let (line, key, _) = err(&format!("{BASE}[control]\nidle_timeout_s = 0\n"));
        assert_eq!((line, key.as_str()), (7, "control.idle_timeout_s"));
        let (_, _, msg) = err(&format!("{BASE}[control]\nmax_client = 3\n"));
        assert!(msg.contains("max_client"), "{msg}");
    }

    #[test]
    fn service_hours_checked() {
        let text = format!("{BASE}[service]\nopens = \"22:00\"\ncloses = \"10:00\"\n");
        let (line, key, _) = err(&text);
        assert_eq!((line, key.as_str()), (8, "service.closes"));
        assert_eq!(parse_hhmm("10:00"), Some(600));
        assert_eq!(parse_hhmm("24:00"), None);
    }
}
