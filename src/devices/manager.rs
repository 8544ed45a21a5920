//! The device manager: one thread owns each configured device's port and driver (one owner per
//! resource); the daemon talks to it through async [`DeviceHandle`]s and watches [`Health`].
//!
//! Each device thread loops: open the port (resolving the udev symlink), build the driver, then
//! run jobs sent over a channel and, between jobs, watch the port for a hang-up. After an unplug it
//! closes everything and reopens with exponential backoff ([`Backoff`]). Health is published on
//! every change. A device that is not configured or `enabled = false` is [`Health::Absent`], never
//! an error. The GPIO backend is owned by its own [`GpioService`] thread, started here too.
//!
//! How the daemon uses it:
//!
//! ```no_run
//! # async fn demo(config: &mtu::config::Config) -> Result<(), mtu::devices::manager::JobError> {
//! use std::time::Duration;
//! let manager = mtu::devices::manager::Manager::start(config);
//! let mut health = manager.subscribe(); // (device, Health) changes for the officer's screen
//! if let Some(card) = manager.device("card") {
//!     // Runs on the card printer's own thread; the answer comes back over a oneshot channel.
//!     let report = card.card("status", Duration::from_secs(10), |printer| printer.self_test()).await?;
//!     println!("{:?}", report.lines);
//! }
//! let _ = health.try_recv();
//! manager.shutdown();
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot, watch};

use super::card::CardPrinter;
use super::gpio::{GpioEvent, GpioService, Output};
use super::payment::PaymentTerminal;
use super::rfid::TagEncoder;
use super::sticker::StickerPrinter;
use super::transport::{Backoff, HangupProbe, Reopener};
use super::{DeviceError, Health, Link, LinkError, SelfTestReport};
use crate::config::{Config, DeviceConfig};

/// The serial device names, in display order.
pub const DEVICE_NAMES: [&str; 4] = ["payment", "card", "sticker", "rfid"];

/// A device without one of the four kind traits (test doubles, future auxiliary devices).
pub trait GenericDevice: Send {
    /// Safe checks only.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// A built driver, by kind. Jobs receive `&mut Driver` and match on their kind.
pub enum Driver {
    /// The payment terminal (ZVT).
    Payment(Box<dyn PaymentTerminal>),
    /// The card printer (Evolis).
    Card(Box<dyn CardPrinter>),
    /// The sticker printer (ZPL).
    Sticker(Box<dyn StickerPrinter>),
    /// The e-sticker encoder (Mercury).
    Rfid(Box<dyn TagEncoder>),
    /// Anything else (see [`GenericDevice`]).
    Generic(Box<dyn GenericDevice>),
}

impl Driver {
    /// Runs the driver's safe self-test.
    pub fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        match self {
            Driver::Payment(d) => d.self_test(),
            Driver::Card(d) => d.self_test(),
            Driver::Sticker(d) => d.self_test(),
            Driver::Rfid(d) => d.self_test(),
            Driver::Generic(d) => d.self_test(),
        }
    }
}

/// Builds a driver for a device over an open link. The default calls each kind's
/// `driver_from_config`; tests pass doubles.
pub type DriverFactory =
    Arc<dyn Fn(&str, &DeviceConfig, Box<dyn Link>) -> Result<Driver, DeviceError> + Send + Sync>;

/// The factory used by the daemon: the configured driver of each kind.
pub fn default_factory() -> DriverFactory {
    Arc::new(|name: &str, cfg: &DeviceConfig, link: Box<dyn Link>| -> Result<Driver, DeviceError> {
        Ok(match name {
            "payment" => Driver::Payment(super::payment::driver_from_config(cfg, link)?),
            "card" => Driver::Card(super::card::driver_from_config(cfg, link)?),
            "sticker" => Driver::Sticker(super::sticker::driver_from_config(cfg, link)?),
            "rfid" => Driver::Rfid(super::rfid::driver_from_config(cfg, link)?),
            other => {
                return Err(DeviceError::Unsupported {
                    device: other.into(),
                    what: "unknown device name".into(),
                });
            }
        })
    })
}

/// Why a job could not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The device is not configured in this van.
    #[error("{device}: not configured in this van")]
    Absent { device: String },
    /// The port is not open (unplugged, not found, or the driver failed to start).
    #[error("{device}: not connected: {why}")]
    NotConnected { device: String, why: String },
    /// No answer from the device thread in time (the job may still finish; its result is dropped).
    #[error("{device}: {what} did not finish within {ms} ms")]
    Timeout { device: String, what: String, ms: u64 },
    /// The manager was shut down.
    #[error("{device}: device manager stopped")]
    Stopped { device: String },
    /// The job ended without an answer (the driver failed internally; see the log).
    #[error("{device}: {what} aborted by an internal driver error (see the log)")]
    Aborted { device: String, what: String },
    /// The driver reported an error.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// A health change of one device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthEvent {
    /// Device name.
    pub device: String,
    /// Its new health.
    pub health: Health,
}

/// A job erased of its result type. It returns the health the device should show afterwards when
/// the job revealed a fault (ribbon ended, …) and a thunk that delivers the reply, run after the
/// health is published so a caller never sees a result before the matching health.
type Job = Box<dyn FnOnce(Result<&mut Driver, JobError>) -> (Option<Health>, Reply) + Send>;
type Reply = Box<dyn FnOnce() + Send>;

enum Msg {
    Job { what: String, job: Job },
    Stop,
}

#[derive(Clone)]
struct Publisher {
    map: watch::Sender<BTreeMap<String, Health>>,
    events: broadcast::Sender<HealthEvent>,
}

impl Publisher {
    fn set(&self, device: &str, health: Health) {
        let mut changed = false;
        self.map.send_if_modified(|m| {
            if m.get(device) == Some(&health) {
                return false;
            }
            m.insert(device.to_owned(), health.clone());
            changed = true;
            true
        });
        if changed {
            match &health {
                Health::Fault { why, .. } | Health::Disconnected { why } => tracing::warn!("{device}: {why}"),
                Health::Connected => tracing::info!("{device}: connected"),
                _ => {}
            }
            let _ = self.events.send(HealthEvent { device: device.to_owned(), health });
        }
    }
}

/// The async face of one device thread.
#[derive(Clone)]
pub struct DeviceHandle {
    name: String,
    tx: mpsc::Sender<Msg>,
}

impl DeviceHandle {
    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the device thread with the driver and waits up to `timeout` for its result.
    /// `what` is shown as [`Health::Busy`] while the job runs.
    pub async fn run<R, F>(&self, what: &str, timeout: Duration, f: F) -> Result<R, JobError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Driver) -> Result<R, DeviceError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, JobError>>();
        let job: Job = Box::new(move |driver| {
            let r = match driver {
                Ok(d) => f(d).map_err(JobError::from),
                Err(e) => Err(e),
            };
            let health = match &r {
                Err(JobError::Device(e)) => fault_health(e),
                _ => None,
            };
            let reply: Reply = Box::new(move || {
                let _ = tx.send(r);
            });
            (health, reply)
        });
        let stopped = || JobError::Stopped { device: self.name.clone() };
        self.tx.send(Msg::Job { what: what.to_owned(), job }).map_err(|_| stopped())?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(JobError::Aborted { device: self.name.clone(), what: what.to_owned() }),
            Err(_) => Err(JobError::Timeout {
                device: self.name.clone(),
                what: what.to_owned(),
                ms: timeout.as_millis() as u64,
            }),
        }
    }
}

macro_rules! kind_runner {
    ($(#[$doc:meta])* $fn:ident, $variant:ident, $tr:path) => {
        $(#[$doc])*
        pub async fn $fn<R, F>(&self, what: &str, timeout: Duration, f: F) -> Result<R, JobError>
        where
            R: Send + 'static,
            F: FnOnce(&mut dyn $tr) -> Result<R, DeviceError> + Send + 'static,
        {
            let device = self.name.clone();
            self.run(what, timeout, move |d| match d {
                Driver::$variant(x) => f(x.as_mut()),
                _ => Err(DeviceError::Unsupported { device, what: concat!("not a ", stringify!($fn), " device").into() }),
            })
            .await
        }
    };
}

impl DeviceHandle {
    kind_runner!(
        /// Runs `f` with the payment terminal driver (see [`DeviceHandle::run`]).
        payment, Payment, PaymentTerminal
    );
    kind_runner!(
        /// Runs `f` with the card printer driver (see [`DeviceHandle::run`]).
        card, Card, CardPrinter
    );
    kind_runner!(
        /// Runs `f` with the sticker printer driver (see [`DeviceHandle::run`]).
        sticker, Sticker, StickerPrinter
    );
    kind_runner!(
        /// Runs `f` with the e-sticker encoder driver (see [`DeviceHandle::run`]).
        rfid, Rfid, TagEncoder
    );
}

/// Tuning of the device threads (defaults are for production; tests shorten them).
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Reopen backoff after an unplug or a failed open.
    pub backoff: Backoff,
    /// How often an idle open port is checked for a hang-up.
    pub idle_check: Duration,
    /// Answer timeout of a self-test job.
    pub self_test_timeout: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            backoff: Backoff::default(),
            idle_check: Duration::from_millis(250),
            self_test_timeout: Duration::from_secs(15),
        }
    }
}

/// Owner of all device threads and the GPIO service.
pub struct Manager {
    handles: BTreeMap<String, DeviceHandle>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    publisher: Publisher,
    gpio: Mutex<Option<GpioService>>,
    gpio_health: Health,
    gpio_debounce: Duration,
    options: ManagerOptions,
}

impl Manager {
    /// Starts a thread per configured, enabled device (with the real drivers) and the GPIO service.
    pub fn start(config: &Config) -> Manager {
        Self::start_with(config, default_factory(), ManagerOptions::default())
    }

    /// As [`Manager::start`], with another driver factory and tuning (tests, `vanctl` without daemon).
    pub fn start_with(config: &Config, factory: DriverFactory, options: ManagerOptions) -> Manager {
        let (map, _) = watch::channel(BTreeMap::new());
        let (events, _) = broadcast::channel(64);
        let publisher = Publisher { map, events };
        let devices = [
            ("payment", &config.devices.payment),
            ("card", &config.devices.card),
            ("sticker", &config.devices.sticker),
            ("rfid", &config.devices.rfid),
        ];
        let mut handles = BTreeMap::new();
        let mut threads = Vec::new();
        for (name, dev) in devices {
            let Some(dev) = dev.as_ref().filter(|d| d.enabled) else {
                publisher.set(name, Health::Absent);
                continue;
            };
            publisher.set(name, Health::Disconnected { why: "opening".into() });
            let (tx, rx) = mpsc::channel();
            let worker = Worker {
                name: name.to_owned(),
                cfg: dev.clone(),
                factory: factory.clone(),
                publisher: publisher.clone(),
                options: options.clone(),
                rx,
            };
            match std::thread::Builder::new().name(format!("dev-{name}")).spawn(move || worker.run()) {
                Ok(t) => {
                    threads.push(t);
                    handles.insert(name.to_owned(), DeviceHandle { name: name.to_owned(), tx });
                }
                Err(e) => publisher.set(
                    name,
                    Health::Fault {
                        why: format!("cannot start device thread: {e}"),
                        action: "restart vand".into(),
                    },
                ),
            }
        }
        let state_file = config.paths.state_dir.join("gpio-sim.json");
        let (gpio, gpio_health) = start_gpio(config, &state_file);
        publisher.set("gpio", gpio_health.clone());
        if let Some(g) = &gpio {
            if config.gpio.lines.contains_key(Output::FaultLed.name()) {
                fault_led_follower(g.outputs(), publisher.map.subscribe());
            }
        }
        Manager {
            handles,
            threads: Mutex::new(threads),
            publisher,
            gpio: Mutex::new(gpio),
            gpio_health,
            gpio_debounce: Duration::from_millis(config.gpio.debounce_ms),
            options,
        }
    }

    /// Current health of every device (`payment`, `card`, `sticker`, `rfid`, `gpio`).
    pub fn health(&self) -> BTreeMap<String, Health> {
        self.publisher.map.borrow().clone()
    }

    /// Health changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.publisher.events.subscribe()
    }

    /// A watch of the whole health map (for waiting on a state).
    pub fn watch_health(&self) -> watch::Receiver<BTreeMap<String, Health>> {
        self.publisher.map.subscribe()
    }

    /// Waits until no device is still in its first `opening` state (or `timeout` passes) and the
    /// GPIO inputs have had time to pass their debounce (for one-shot checks such as `vanctl`).
    pub async fn settled(&self, timeout: Duration) {
        if self.gpio_health != Health::Absent {
            tokio::time::sleep(self.gpio_debounce.min(timeout) + Duration::from_millis(25)).await;
        }
        let mut rx = self.watch_health();
        let opening = |m: &BTreeMap<String, Health>| {
            m.values().any(|h| matches!(h, Health::Disconnected { why } if why == "opening"))
        };
        let _ = tokio::time::timeout(timeout, rx.wait_for(|m| !opening(m))).await;
    }

    /// The handle of a configured device.
    pub fn device(&self, name: &str) -> Option<&DeviceHandle> {
        self.handles.get(name)
    }

    /// Debounced GPIO input changes (tamper, power fail); `None` without GPIO.
    pub fn gpio_events(&self) -> Option<broadcast::Receiver<GpioEvent>> {
        self.gpio.lock().ok()?.as_ref().map(|g| g.subscribe())
    }

    /// Debounced GPIO inputs and last-set outputs; `None` without GPIO.
    pub fn gpio_state(&self) -> Option<super::gpio::GpioState> {
        self.gpio.lock().ok()?.as_ref().map(|g| g.state())
    }

    /// Switches a GPIO output (LED, buzzer); ignored without GPIO.
    pub fn set_output(&self, line: Output, on: bool) {
        if let Ok(g) = self.gpio.lock() {
            if let Some(g) = g.as_ref() {
                g.set_output(line, on);
            }
        }
    }

    /// Safe self-test of every device: version/status queries only, nothing printed or charged.
    pub async fn self_test(&self) -> Vec<SelfTestReport> {
        let mut reports = Vec::new();
        for name in DEVICE_NAMES {
            let Some(handle) = self.handles.get(name) else {
                reports.push(SelfTestReport {
                    device: name.into(),
                    ok: true,
                    lines: vec!["not configured in this van (absent)".into()],
                });
                continue;
            };
            let r = handle.run("self-test", self.options.self_test_timeout, |d| d.self_test()).await;
            reports.push(match r {
                Ok(report) => SelfTestReport { device: name.into(), ..report },
                Err(e) => SelfTestReport { device: name.into(), ok: false, lines: vec![e.to_string()] },
            });
        }
        let gpio_state = self.gpio.lock().ok().and_then(|g| g.as_ref().map(|g| g.state()));
        reports.push(match (gpio_state, &self.gpio_health) {
            (Some(s), _) => {
                let mut lines = vec![format!("backend {}", s.backend)];
                lines.extend(
                    s.inputs.iter().map(|(k, v)| format!("{k}: {}", if *v { "ACTIVE" } else { "inactive" })),
                );
                SelfTestReport { device: "gpio".into(), ok: true, lines }
            }
            (None, Health::Absent) => SelfTestReport {
                device: "gpio".into(),
                ok: true,
                lines: vec!["no GPIO (backend = \"none\")".into()],
            },
            (None, h) => SelfTestReport { device: "gpio".into(), ok: false, lines: vec![health_line(h)] },
        });
        reports
    }

    /// Stops every device thread (closing the ports) and the GPIO service.
    /// Safe to call more than once; also done on drop.
    pub fn shutdown(&self) {
        for h in self.handles.values() {
            let _ = h.tx.send(Msg::Stop);
        }
        let threads: Vec<_> = self.threads.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
        if let Some(mut g) = self.gpio.lock().ok().and_then(|mut g| g.take()) {
            g.stop();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The health a failed job leaves behind: device-reported faults, silence and garbage need a
/// person; unplugs are handled by the owner thread; other errors leave the device connected.
fn fault_health(e: &DeviceError) -> Option<Health> {
    match e {
        DeviceError::Fault { fault, action, .. } => {
            Some(Health::Fault { why: fault.clone(), action: action.clone() })
        }
        DeviceError::Link(LinkError::Timeout { .. }) => Some(Health::Fault {
            why: e.to_string(),
            action: "check that the device is switched on and its cable is plugged in".into(),
        }),
        DeviceError::Protocol { .. } => Some(Health::Fault {
            why: e.to_string(),
            action: "check that the line settings (baud, parity, stop bits) match the device".into(),
        }),
        _ => None,
    }
}

/// One-line description of a health state for tables and logs.
pub fn health_line(h: &Health) -> String {
    match h {
        Health::Absent => "absent (not configured)".into(),
        Health::Connected => "connected".into(),
        Health::Busy { what } => format!("busy: {what}"),
        Health::Fault { why, action } => format!("FAULT: {why} — {action}"),
        Health::Disconnected { why } => format!("disconnected: {why}"),
    }
}

/// Whether any device needs attention (the fault LED's meaning).
pub fn any_fault(map: &BTreeMap<String, Health>) -> bool {
    map.values().any(|h| matches!(h, Health::Fault { .. } | Health::Disconnected { .. }))
}

/// Keeps the fault LED in step with device health, on a small thread that ends with the manager.
fn fault_led_follower(leds: super::gpio::OutputHandle, mut map: watch::Receiver<BTreeMap<String, Health>>) {
    let spawned = std::thread::Builder::new().name("fault-led".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
        rt.block_on(async move {
            loop {
                let fault = any_fault(&map.borrow_and_update());
                leds.set(Output::FaultLed, fault);
                if map.changed().await.is_err() {
                    break;
                }
            }
        });
    });
    if let Err(e) = spawned {
        tracing::warn!("fault LED will not follow device health: {e}");
    }
}

fn start_gpio(config: &Config, state_file: &Path) -> (Option<GpioService>, Health) {
    match super::gpio::backend_from_config(&config.gpio, state_file) {
        Ok(None) => (None, Health::Absent),
        Ok(Some(backend)) => {
            let svc = GpioService::start(backend, Duration::from_millis(config.gpio.debounce_ms));
            (Some(svc), Health::Connected)
        }
        Err(e) => (
            None,
            Health::Fault {
                why: e.to_string(),
                action: "check [gpio] in the configuration and the wiring (docs/hardware.md)".into(),
            },
        ),
    }
}

/// A link that remembers when it saw an unplug, so the owner thread closes and reopens.
struct WatchedLink {
    inner: Box<dyn Link>,
    unplugged: Arc<AtomicBool>,
}

impl WatchedLink {
    fn note<T>(&self, r: Result<T, LinkError>) -> Result<T, LinkError> {
        if let Err(LinkError::Unplugged { .. }) = &r {
            self.unplugged.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl Link for WatchedLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let r = self.inner.write_all(bytes);
        self.note(r)
    }
    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LinkError> {
        let r = self.inner.read_some(buf, deadline);
        self.note(r)
    }
    fn discard_input(&mut self) -> Result<(), LinkError> {
        let r = self.inner.discard_input();
        self.note(r)
    }
    fn path(&self) -> &str {
        self.inner.path()
    }
}

struct Open {
    driver: Driver,
    probe: Option<HangupProbe>,
    unplugged: Arc<AtomicBool>,
}

struct Worker {
    name: String,
    cfg: DeviceConfig,
    factory: DriverFactory,
    publisher: Publisher,
    options: ManagerOptions,
    rx: mpsc::Receiver<Msg>,
}

impl Worker {
    fn run(self) {
        let mut reopener = Reopener::new(&self.name, self.cfg.serial.clone(), self.options.backoff.clone());
        let mut open: Option<Open> = None;
        // A permanent driver error (bad option, no such driver): retrying cannot help.
        let mut permanent: Option<(String, String)> = None;
        loop {
            if open.is_none() && permanent.is_none() {
                open = self.try_open(&mut reopener, &mut permanent);
            }
            let wait = match (&open, reopener.next_attempt()) {
                (Some(_), _) | (None, None) => self.options.idle_check,
                (None, Some(t)) => t.saturating_duration_since(Instant::now()).min(self.options.idle_check),
            };
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Msg::Job { what, job }) => match &mut open {
                    Some(o) => {
                        self.publisher.set(&self.name, Health::Busy { what: what.clone() });
                        let ran =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&mut o.driver))));
                        let Ok((after, reply)) = ran else {
                            // A driver bug must not take the device thread down: drop the driver
                            // (and the port), report it, and start again from a fresh open.
                            tracing::error!("{}: driver panicked during {what}", self.name);
                            open = None;
                            reopener.after_unplug(Instant::now());
                            self.publisher.set(
                                &self.name,
                                Health::Fault {
                                    why: format!("driver failed during {what} (internal error)"),
                                    action: "retrying; if it repeats, restart vand and report the log".into(),
                                },
                            );
                            continue;
                        };
                        if o.unplugged.load(Ordering::SeqCst) {
                            open = None;
                            self.unplugged(&mut reopener);
                        } else {
                            self.publisher.set(&self.name, after.unwrap_or(Health::Connected));
                        }
                        reply();
                    }
                    None => {
                        let why = match (&permanent, reopener.last_error()) {
                            (Some((why, _)), _) => why.clone(),
                            (None, Some(e)) => e.to_owned(),
                            (None, None) => "port not open".into(),
                        };
                        let (_, reply) = job(Err(JobError::NotConnected { device: self.name.clone(), why }));
                        reply();
                    }
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(o) = &open {
                        let gone = o.unplugged.load(Ordering::SeqCst)
                            || o.probe.as_ref().is_some_and(|p| p.hung_up());
                        if gone {
                            open = None;
                            self.unplugged(&mut reopener);
                        }
                    }
                }
            }
        }
        drop(open);
    }

    fn unplugged(&self, reopener: &mut Reopener) {
        reopener.after_unplug(Instant::now());
        self.publisher.set(
            &self.name,
            Health::Disconnected {
                why: format!("unplugged from {}; reconnecting", self.cfg.serial.path.display()),
            },
        );
    }

    fn try_open(&self, reopener: &mut Reopener, permanent: &mut Option<(String, String)>) -> Option<Open> {
        let link = match reopener.try_open(Instant::now()) {
            Ok(Some(link)) => link,
            Ok(None) => return None,
            Err(e) => {
                self.publisher.set(&self.name, Health::Disconnected { why: e.to_string() });
                return None;
            }
        };
        let probe = link.hangup_probe();
        let unplugged = Arc::new(AtomicBool::new(false));
        let watched = WatchedLink { inner: Box::new(link), unplugged: unplugged.clone() };
        match (self.factory)(&self.name, &self.cfg, Box::new(watched)) {
            Ok(driver) => {
                self.publisher.set(&self.name, Health::Connected);
                Some(Open { driver, probe, unplugged })
            }
            Err(e) => {
                let why = e.to_string();
                match e {
                    DeviceError::Config { .. } | DeviceError::Unsupported { .. } => {
                        let action =
                            "fix the device section of the configuration and restart vand".to_owned();
                        self.publisher
                            .set(&self.name, Health::Fault { why: why.clone(), action: action.clone() });
                        *permanent = Some((why, action));
                    }
                    DeviceError::Fault { fault, action, .. } => {
                        self.publisher.set(&self.name, Health::Fault { why: fault, action });
                        reopener.after_unplug(Instant::now());
                    }
                    DeviceError::Link(_) | DeviceError::Protocol { .. } => {
                        self.publisher.set(&self.name, Health::Disconnected { why });
                        reopener.after_unplug(Instant::now());
                    }
                }
                None
            }
        }
    }
}
