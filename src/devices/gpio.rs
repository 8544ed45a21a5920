//! GPIO lines of the van: status LEDs and buzzer (outputs), enclosure tamper switch and UPS
//! power-fail signal (inputs), named in `[gpio.lines]` of the configuration.
//!
//! Backends implement [`Gpio`]: [`RppalGpio`] on a Raspberry Pi, [`SimGpio`] in simulation (inputs set
//! by tests, or by `van-sim gpio …` through a small JSON state file, see [`SimGpio::with_state_file`]).
//! One thread ([`GpioService`]) owns the backend, samples the inputs, debounces them with the pure
//! [`Debouncer`] and publishes [`GpioEvent`]s on a broadcast channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{GpioBackend, GpioConfig};

/// An output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Green LED: the van is ready to issue documents.
    ReadyLed,
    /// Amber LED: no uplink to HQ (records queue locally).
    OfflineLed,
    /// Red LED: a device needs attention.
    FaultLed,
    /// Buzzer for alerts.
    Buzzer,
}

/// An input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Enclosure tamper switch.
    Tamper,
    /// UPS power-fail signal.
    PowerFail,
}

impl Output {
    /// All outputs, in a fixed order.
    pub const ALL: [Output; 4] = [Output::ReadyLed, Output::OfflineLed, Output::FaultLed, Output::Buzzer];
    /// The line's name in `[gpio.lines]`.
    pub fn name(self) -> &'static str {
        match self {
            Output::ReadyLed => "ready_led",
            Output::OfflineLed => "offline_led",
            Output::FaultLed => "fault_led",
            Output::Buzzer => "buzzer",
        }
    }
}

impl Input {
    /// All inputs, in a fixed order.
    pub const ALL: [Input; 2] = [Input::Tamper, Input::PowerFail];
    /// The line's name in `[gpio.lines]` and in the simulation state file.
    pub fn name(self) -> &'static str {
        match self {
            Input::Tamper => "tamper",
            Input::PowerFail => "power_fail",
        }
    }
    /// Parses a line name (`tamper`, `power_fail`; `power-fail` accepted).
    pub fn from_name(name: &str) -> Option<Input> {
        match name {
            "tamper" => Some(Input::Tamper),
            "power_fail" | "power-fail" => Some(Input::PowerFail),
            _ => None,
        }
    }
}

/// A debounced change of an input, delivered to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum GpioEvent {
    /// The enclosure tamper switch became active or inactive.
    Tamper { active: bool },
    /// The UPS reports mains power lost (`active`) or restored.
    PowerFail { active: bool },
}

impl GpioEvent {
    /// The event of `input` at level `active`.
    pub fn new(input: Input, active: bool) -> GpioEvent {
        match input {
            Input::Tamper => GpioEvent::Tamper { active },
            Input::PowerFail => GpioEvent::PowerFail { active },
        }
    }
}

/// A GPIO failure with the line and what to do.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// The rppal backend could not start (not a Raspberry Pi, no /dev/gpiomem access …).
    #[error(
        "GPIO: cannot use the Raspberry Pi GPIO ({0}); on a non-Pi machine set [gpio] backend = \"sim\" or \"none\""
    )]
    Unavailable(String),
    /// One configured line could not be claimed.
    #[error("GPIO line {line} (BCM {pin}): {reason}")]
    Line { line: String, pin: u8, reason: String },
    /// The line is not configured in `[gpio.lines]`.
    #[error("GPIO line {0} is not configured in [gpio.lines]")]
    NotConfigured(String),
}

/// A GPIO backend: logical on/off for outputs, logical active/inactive for inputs (polarity from
/// `active_high` is applied by the backend).
pub trait Gpio: Send {
    /// Backend name for reports (`rppal`, `sim`).
    fn backend(&self) -> &'static str;
    /// Switches an output on or off. Unconfigured outputs are an error.
    fn set_output(&mut self, line: Output, on: bool) -> Result<(), GpioError>;
    /// Reads an input's raw (not debounced) logical state; `None` if the line is not configured.
    fn read_input(&mut self, line: Input) -> Option<bool>;
}

/// Debounce of one input as a pure function of samples and time: a new level is accepted once
/// every sample for `window` agrees with it. Starts inactive, so a line already active at start
/// is reported once it has been stable for the window.
#[derive(Debug, Clone)]
pub struct Debouncer {
    window: Duration,
    stable: bool,
    candidate: Option<(bool, Instant)>,
}

impl Debouncer {
    /// A debouncer with the given stability window (config `debounce_ms`).
    pub fn new(window: Duration) -> Debouncer {
        Debouncer { window, stable: false, candidate: None }
    }

    /// The accepted (debounced) level.
    pub fn stable(&self) -> bool {
        self.stable
    }

    /// Feeds one sample taken at `now`; returns the new level when it changes.
    pub fn sample(&mut self, level: bool, now: Instant) -> Option<bool> {
        if level == self.stable {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((l, since)) if l == level => {
                if now.saturating_duration_since(since) >= self.window {
                    self.stable = level;
                    self.candidate = None;
                    Some(level)
                } else {
                    None
                }
            }
            _ => {
                self.candidate = Some((level, now));
                if self.window.is_zero() {
                    self.stable = level;
                    self.candidate = None;
                    Some(level)
                } else {
                    None
                }
            }
        }
    }
}

/// Shared state of the simulated lines: raw levels of inputs as set by tests or `van-sim`,
/// logical states of outputs as last set by the daemon.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct SimLines {
    /// Logical input states (`true` = active).
    #[serde(default)]
    pub inputs: BTreeMap<String, bool>,
    /// Logical output states (`true` = on).
    #[serde(default)]
    pub outputs: BTreeMap<String, bool>,
}

/// The simulated backend. Clones share the same lines, so a test keeps one clone to set inputs and
/// read outputs while the service owns another.
#[derive(Debug, Clone)]
pub struct SimGpio {
    lines: Arc<Mutex<SimLines>>,
    configured: Vec<String>,
    state_file: Option<PathBuf>,
    seen_mtime: Arc<Mutex<Option<SystemTime>>>,
}

impl SimGpio {
    /// A simulated backend with the lines named in `cfg`.
    pub fn new(cfg: &GpioConfig) -> SimGpio {
        SimGpio {
            lines: Arc::default(),
            configured: cfg.lines.keys().cloned().collect(),
            state_file: None,
            seen_mtime: Arc::default(),
        }
    }

    /// Also takes input states from a JSON file `{"tamper": true, "power_fail": false}` (written by
    /// `van-sim gpio …`), re-read whenever its modification time changes. A missing file means
    /// every input inactive.
    pub fn with_state_file(mut self, path: &Path) -> SimGpio {
        self.state_file = Some(path.to_owned());
        self
    }

    /// Sets an input's logical state (as a person flipping the switch would).
    pub fn set_input(&self, line: Input, active: bool) {
        if let Ok(mut l) = self.lines.lock() {
            l.inputs.insert(line.name().to_owned(), active);
        }
    }

    /// An output's current logical state (`None`: never set).
    pub fn output(&self, line: Output) -> Option<bool> {
        self.lines.lock().ok().and_then(|l| l.outputs.get(line.name()).copied())
    }

    fn refresh_from_file(&self) {
        let Some(path) = &self.state_file else { return };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let Ok(mut seen) = self.seen_mtime.lock() else { return };
        if *seen == mtime {
            return;
        }
        *seen = mtime;
        let inputs: BTreeMap<String, bool> = match mtime {
            None => BTreeMap::new(),
            Some(_) => match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    tracing::warn!("GPIO sim state file {}: not valid JSON: {e}", path.display());
                    return;
                }
                Err(_) => return,
            },
        };
        if let Ok(mut l) = self.lines.lock() {
            l.inputs = inputs;
        }
    }
}

/// Writes one input's state into a simulation state file (used by `van-sim gpio`), keeping the
/// others; the file is replaced atomically.
pub fn write_sim_state(path: &Path, line: Input, active: bool) -> std::io::Result<()> {
    let mut inputs: BTreeMap<String, bool> =
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    inputs.insert(line.name().to_owned(), active);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&inputs).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

impl Gpio for SimGpio {
    fn backend(&self) -> &'static str {
        "sim"
    }

    fn set_output(&mut self, line: Output, on: bool) -> Result<(), GpioError> {
        if !self.configured.iter().any(|n| n == line.name()) {
            return Err(GpioError::NotConfigured(line.name().into()));
        }
        if let Ok(mut l) = self.lines.lock() {
            l.outputs.insert(line.name().to_owned(), on);
        }
        Ok(())
    }

    fn read_input(&mut self, line: Input) -> Option<bool> {
        if !self.configured.iter().any(|n| n == line.name()) {
            return None;
        }
        self.refresh_from_file();
        Some(self.lines.lock().ok()?.inputs.get(line.name()).copied().unwrap_or(false))
    }
}

/// The Raspberry Pi backend (rppal). Every input gets the internal pull-up: switches and
/// open-collector outputs (UPS power-fail) pull the line to ground; `active_high` only says which
/// level means "active" (see docs/hardware.md for the fail-safe tamper loop).
pub struct RppalGpio {
    outputs: BTreeMap<Output, (rppal::gpio::OutputPin, bool)>,
    inputs: BTreeMap<Input, (rppal::gpio::InputPin, bool)>,
}

impl RppalGpio {
    /// Claims every configured line. Fails with a clear error off a Pi.
    pub fn open(cfg: &GpioConfig) -> Result<RppalGpio, GpioError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| GpioError::Unavailable(e.to_string()))?;
        let claim = |name: &str, pin: u8| {
            gpio.get(pin).map_err(|e| GpioError::Line { line: name.into(), pin, reason: e.to_string() })
        };
        let mut outputs = BTreeMap::new();
        for line in Output::ALL {
            if let Some(l) = cfg.lines.get(line.name()) {
                let pin = claim(line.name(), l.pin)?;
                let pin = if l.active_high { pin.into_output_low() } else { pin.into_output_high() };
                outputs.insert(line, (pin, l.active_high));
            }
        }
        let mut inputs = BTreeMap::new();
        for line in Input::ALL {
            if let Some(l) = cfg.lines.get(line.name()) {
                let pin = claim(line.name(), l.pin)?;
                let pin = pin.into_input_pullup();
                inputs.insert(line, (pin, l.active_high));
            }
        }
        Ok(RppalGpio { outputs, inputs })
    }
}

impl Gpio for RppalGpio {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn set_output(&mut self, line: Output, on: bool) -> Result<(), GpioError> {
        let (pin, active_high) =
            self.outputs.get_mut(&line).ok_or_else(|| GpioError::NotConfigured(line.name().into()))?;
        if on == *active_high {
            pin.set_high();
        } else {
            pin.set_low();
        }
        Ok(())
    }

    fn read_input(&mut self, line: Input) -> Option<bool> {
        let (pin, active_high) = self.inputs.get(&line)?;
        Some(pin.is_high() == *active_high)
    }
}

/// Builds the configured backend: `Ok(None)` for `backend = "none"`. `state_file` is used by the
/// simulated backend (normally `<state_dir>/gpio-sim.json`).
pub fn backend_from_config(cfg: &GpioConfig, state_file: &Path) -> Result<Option<Box<dyn Gpio>>, GpioError> {
    Ok(match cfg.backend {
        GpioBackend::None => None,
        GpioBackend::Sim => Some(Box::new(SimGpio::new(cfg).with_state_file(state_file))),
        GpioBackend::Rppal => Some(Box::new(RppalGpio::open(cfg)?)),
    })
}

enum Command {
    Set(Output, bool, tokio::sync::oneshot::Sender<Result<(), GpioError>>),
    Stop,
}

/// Switches outputs of a [`GpioService`] from any thread; does nothing once the service stopped.
#[derive(Clone)]
pub struct OutputHandle(std::sync::mpsc::Sender<Command>);

impl OutputHandle {
    /// Switches an output without waiting.
    pub fn set(&self, line: Output, on: bool) {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let _ = self.0.send(Command::Set(line, on, tx));
    }
}

/// Snapshot of the debounced inputs, for status and self-test.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GpioState {
    /// Backend in use.
    pub backend: String,
    /// Debounced input states by line name.
    pub inputs: BTreeMap<String, bool>,
    /// Outputs as last set successfully, by line name.
    pub outputs: BTreeMap<String, bool>,
}

/// The thread that owns a GPIO backend: samples inputs every `poll` interval, debounces them and
/// publishes events; executes output changes sent through its handle.
pub struct GpioService {
    commands: std::sync::mpsc::Sender<Command>,
    events: tokio::sync::broadcast::Sender<GpioEvent>,
    state: Arc<Mutex<GpioState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GpioService {
    /// Starts the owner thread for `backend` with the given debounce window.
    pub fn start(mut backend: Box<dyn Gpio>, debounce: Duration) -> GpioService {
        let (tx, rx) = std::sync::mpsc::channel();
        let (events, _) = tokio::sync::broadcast::channel(64);
        let state =
            Arc::new(Mutex::new(GpioState { backend: backend.backend().into(), ..Default::default() }));
        let poll = (debounce / 4).clamp(Duration::from_millis(1), Duration::from_millis(10));
        let ev = events.clone();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("gpio".into())
            .spawn(move || {
                let mut debouncers: Vec<(Input, Debouncer)> =
                    Input::ALL.iter().map(|&i| (i, Debouncer::new(debounce))).collect();
                loop {
                    match rx.recv_timeout(poll) {
                        Ok(Command::Set(line, on, reply)) => {
                            let r = backend.set_output(line, on);
                            if r.is_ok() {
                                if let Ok(mut s) = st.lock() {
                                    s.outputs.insert(line.name().into(), on);
                                }
                            }
                            let _ = reply.send(r);
                        }
                        Ok(Command::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    let now = Instant::now();
                    for (input, deb) in debouncers.iter_mut() {
                        let Some(level) = backend.read_input(*input) else { continue };
                        if let Some(active) = deb.sample(level, now) {
                            tracing::info!(
                                "GPIO {}: {}",
                                input.name(),
                                if active { "active" } else { "inactive" }
                            );
                            if let Ok(mut s) = st.lock() {
                                s.inputs.insert(input.name().into(), active);
                            }
                            let _ = ev.send(GpioEvent::new(*input, active));
                        } else if let Ok(mut s) = st.lock() {
                            s.inputs.entry(input.name().into()).or_insert(deb.stable());
                        }
                    }
                }
            })
            .ok();
        GpioService { commands: tx, events, state, thread }
    }

    /// Receives debounced input changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<GpioEvent> {
        self.events.subscribe()
    }

    /// Debounced input states.
    pub fn state(&self) -> GpioState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Switches an output (waits for the owner thread to do it).
    pub fn set_output_blocking(&self, line: Output, on: bool) -> Result<(), GpioError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Set(line, on, tx)).is_err() {
            return Err(GpioError::Unavailable("GPIO thread stopped".into()));
        }
        rx.blocking_recv().unwrap_or_else(|_| Err(GpioError::Unavailable("GPIO thread stopped".into())))
    }

    /// Switches an output without waiting (used from async code and the device manager).
    pub fn set_output(&self, line: Output, on: bool) {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let _ = self.commands.send(Command::Set(line, on, tx));
    }

    /// A cloneable handle that switches outputs from other threads (fire and forget).
    pub fn outputs(&self) -> OutputHandle {
        OutputHandle(self.commands.clone())
    }

    /// Stops the owner thread.
    pub fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GpioService {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GpioLine;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn debounce_ignores_bounces_shorter_than_the_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(30));
        assert_eq!(d.sample(true, t0), None);
        assert_eq!(d.sample(false, t0 + ms(10)), None); // bounce back
        assert_eq!(d.sample(true, t0 + ms(20)), None); // new candidate from 20 ms
        assert_eq!(d.sample(true, t0 + ms(45)), None); // only 25 ms stable
        assert_eq!(d.sample(true, t0 + ms(50)), Some(true));
        assert!(d.stable());
        assert_eq!(d.sample(true, t0 + ms(90)), None); // no repeated event
        assert_eq!(d.sample(false, t0 + ms(100)), None);
        assert_eq!(d.sample(false, t0 + ms(129)), None);
        assert_eq!(d.sample(false, t0 + ms(130)), Some(false));
    }

    #[test]
    fn debounce_zero_window_follows_immediately() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO);
        assert_eq!(d.sample(true, t0), Some(true));
        assert_eq!(d.sample(false, t0), Some(false));
    }

    fn cfg() -> GpioConfig {
        let mut lines = BTreeMap::new();
        lines.insert("fault_led".into(), GpioLine { pin: 22, active_high: true });
        lines.insert("tamper".into(), GpioLine { pin: 5, active_high: false });
        GpioConfig { backend: GpioBackend::Sim, debounce_ms: 0, lines }
    }

    #[test]
    fn sim_backend_outputs_readable_and_unconfigured_lines_refused() {
        let mut g = SimGpio::new(&cfg());
        let probe = g.clone();
        g.set_output(Output::FaultLed, true).unwrap();
        assert_eq!(probe.output(Output::FaultLed), Some(true));
        assert!(matches!(g.set_output(Output::Buzzer, true), Err(GpioError::NotConfigured(_))));
        assert_eq!(g.read_input(Input::PowerFail), None);
        assert_eq!(g.read_input(Input::Tamper), Some(false));
        probe.set_input(Input::Tamper, true);
        assert_eq!(g.read_input(Input::Tamper), Some(true));
    }

    #[test]
    fn sim_state_file_drives_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gpio-sim.json");
        let mut g = SimGpio::new(&cfg()).with_state_file(&file);
        assert_eq!(g.read_input(Input::Tamper), Some(false));
        write_sim_state(&file, Input::Tamper, true).unwrap();
        // Force a visible mtime change even on coarse-timestamp filesystems.
        *g.seen_mtime.lock().unwrap() = None;
        assert_eq!(g.read_input(Input::Tamper), Some(true));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, r#"{"tamper":true}"#);
    }

    #[test]
    fn service_delivers_debounced_events_and_sets_outputs() {
        let sim = SimGpio::new(&cfg());
        let probe = sim.clone();
        let svc = GpioService::start(Box::new(sim), Duration::ZERO);
        let mut rx = svc.subscribe();
        probe.set_input(Input::Tamper, true);
        assert_eq!(rx.blocking_recv().unwrap(), GpioEvent::Tamper { active: true });
        probe.set_input(Input::Tamper, false);
        assert_eq!(rx.blocking_recv().unwrap(), GpioEvent::Tamper { active: false });
        svc.set_output_blocking(Output::FaultLed, true).unwrap();
        assert_eq!(probe.output(Output::FaultLed), Some(true));
        assert_eq!(svc.state().backend, "sim");
    }

    #[test]
    fn rppal_off_a_pi_is_a_clear_error() {
        // This machine is not a Pi (the test would need hardware otherwise): the error must say what to do.
        if std::path::Path::new("/proc/device-tree/model").exists() {
            return;
        }
        let e = RppalGpio::open(&cfg()).err().expect("rppal must fail off a Pi");
        assert!(e.to_string().contains("backend = \"sim\""), "{e}");
    }
}
