//! The simulator host behind `van-sim`: one pseudo-terminal per device, a stable symlink to its
//! slave end (`var/dev/payment` …, the paths of `config/sim.toml`), and one thread per device that
//! feeds the bytes the daemon writes into the device's [`SimDevice`] and carries out its
//! [`SimOut`]s. Unplug closes the PTY master (the daemon's port hangs up) and removes the symlink,
//! like udev does when a USB adapter is pulled; replug makes a new PTY and re-points the symlink.
//!
//! Scenario files (`hw/sim/*.toml`) are documented at the top of `hw/sim/default.toml`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

use super::ledger::Ledger;
use super::{SimDevice, SimOut};

/// The device names van-sim serves, in order.
pub const DEVICES: [&str; 4] = ["payment", "card", "sticker", "rfid"];

/// A scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error or a wrong value; `key` names it.
    #[error("{file}: {key}: {message}")]
    Invalid { file: String, key: String, message: String },
}

/// One device's part of a scenario.
#[derive(Debug, Clone, Default)]
pub struct DeviceScenario {
    /// Served at all (`enabled = false` leaves it unplugged, like a van without the device).
    pub enabled: bool,
    /// `kind = "loopback"` serves an echo device instead of the protocol simulator (wiring checks).
    pub loopback: bool,
    /// Faults active from the start.
    pub faults: Vec<String>,
    /// The remaining keys, passed to the device's `simulator(options)`.
    pub options: toml::Table,
}

/// A parsed scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Multiplier for every simulated delay (`1.0` realistic, `0` instant).
    pub scale: f64,
    /// Delay before a dropped link comes back (before scaling).
    pub replug_after: Duration,
    /// Per device settings; devices not named in the file are served with empty options.
    pub devices: BTreeMap<String, DeviceScenario>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            scale: 1.0,
            replug_after: Duration::from_secs(1),
            devices: DEVICES
                .iter()
                .map(|d| ((*d).to_owned(), DeviceScenario { enabled: true, ..Default::default() }))
                .collect(),
        }
    }
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { file: file.clone(), source })?;
        Self::parse(&text, &file)
    }

    /// Parses scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let bad = |key: &str, message: String| ScenarioError::Invalid {
            file: file.into(),
            key: key.into(),
            message,
        };
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| bad("(document)", e.to_string()))?;
        let mut sc = Scenario::default();
        for (key, value) in table {
            if key == "timing" {
                let t = value.as_table().ok_or_else(|| bad("timing", "must be a table".into()))?;
                for (k, v) in t {
                    let secs = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
                    let secs =
                        secs.filter(|s| s.is_finite() && (0.0..=1000.0).contains(s)).ok_or_else(|| {
                            bad(&format!("timing.{k}"), "must be a number from 0 to 1000".into())
                        })?;
                    match k.as_str() {
                        "scale" => sc.scale = secs,
                        "replug_after_s" => sc.replug_after = Duration::from_secs_f64(secs.min(3600.0)),
                        _ => {
                            return Err(bad(
                                &format!("timing.{k}"),
                                "unknown key (known: scale, replug_after_s)".into(),
                            ));
                        }
                    }
                }
                continue;
            }
            if !DEVICES.contains(&key.as_str()) {
                return Err(bad(&key, format!("unknown section (known: timing, {})", DEVICES.join(", "))));
            }
            let mut options = match value {
                toml::Value::Table(t) => t,
                _ => return Err(bad(&key, "must be a table".into())),
            };
            let mut dev = DeviceScenario { enabled: true, ..Default::default() };
            if let Some(v) = options.remove("enabled") {
                dev.enabled = v
                    .as_bool()
                    .ok_or_else(|| bad(&format!("{key}.enabled"), "must be true or false".into()))?;
            }
            if let Some(v) = options.remove("kind") {
                dev.loopback = match v.as_str() {
                    Some("loopback") => true,
                    Some("simulator") => false,
                    _ => {
                        return Err(bad(
                            &format!("{key}.kind"),
                            "must be \"simulator\" or \"loopback\"".into(),
                        ));
                    }
                };
            }
            if let Some(v) = options.remove("faults") {
                let list = v
                    .as_array()
                    .ok_or_else(|| bad(&format!("{key}.faults"), "must be a list of names".into()))?;
                for f in list {
                    let f = f
                        .as_str()
                        .ok_or_else(|| bad(&format!("{key}.faults"), "must be a list of names".into()))?;
                    dev.faults.push(f.to_owned());
                }
            }
            dev.options = options;
            sc.devices.insert(key, dev);
        }
        Ok(sc)
    }
}

/// An echo device: sends back every byte it receives. Lets a technician check cabling, symlinks and
/// the transport without any protocol (`kind = "loopback"` in a scenario).
#[derive(Debug, Default)]
pub struct Loopback {
    name: &'static str,
    echoed: u64,
    mute: bool,
}

impl Loopback {
    /// An echo device serving under `name`.
    pub fn new(name: &str) -> Loopback {
        let name = DEVICES.iter().copied().find(|d| *d == name).unwrap_or("loopback");
        Loopback { name, echoed: 0, mute: false }
    }
}

impl SimDevice for Loopback {
    fn name(&self) -> &'static str {
        self.name
    }
    fn receive(&mut self, bytes: &[u8], _now: Instant) -> Vec<SimOut> {
        if self.mute {
            return Vec::new();
        }
        self.echoed += bytes.len() as u64;
        vec![SimOut::Send(bytes.to_vec())]
    }
    fn apply_fault(&mut self, fault: &str) -> Result<(), String> {
        match fault {
            "mute" => {
                self.mute = true;
                Ok(())
            }
            other => Err(format!("unknown fault {other:?} for the loopback device (known: mute)")),
        }
    }
    fn clear_faults(&mut self) {
        self.mute = false;
    }
    fn status(&self) -> Value {
        json!({"kind": "loopback", "echoed_bytes": self.echoed, "mute": self.mute})
    }
}

/// Builds a device's simulator from its scenario options; the default calls
/// `crate::sim::<device>::simulator`.
pub type SimFactory = fn(&str, &toml::Table) -> Result<Box<dyn SimDevice>, String>;

/// The simulators of this build.
pub fn default_factory(name: &str, options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    match name {
        "payment" => super::payment::simulator(options),
        "card" => super::card::simulator(options),
        "sticker" => super::sticker::simulator(options),
        "rfid" => super::rfid::simulator(options),
        other => Err(format!("no simulator named {other:?}")),
    }
}

enum Cmd {
    Fault(String, mpsc::Sender<Result<(), String>>),
    Clear,
    Unplug(mpsc::Sender<Result<(), String>>),
    Replug(mpsc::Sender<Result<(), String>>),
    Status(mpsc::Sender<Value>),
    Control(Vec<String>, mpsc::Sender<Result<Value, String>>),
    Stop,
}

/// A running set of simulated devices.
pub struct SimHost {
    devices: BTreeMap<String, mpsc::Sender<Cmd>>,
    errors: BTreeMap<String, String>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    scale: f64,
    gpio_file: Option<PathBuf>,
    ledger: Arc<Ledger>,
}

impl SimHost {
    /// Starts every enabled device of `scenario`, with symlinks in `dir` (created if missing),
    /// keeping the ledger in memory only. A simulator that cannot be built is logged and reported
    /// in `status`; the others still run.
    pub fn start(scenario: &Scenario, dir: &Path, factory: SimFactory) -> std::io::Result<SimHost> {
        Self::start_with_ledger(scenario, dir, factory, Arc::new(Ledger::in_memory()))
    }

    /// As [`SimHost::start`], recording what the devices physically do in `ledger` (e.g. one
    /// opened on a file with [`Ledger::open`], so it outlives this process).
    pub fn start_with_ledger(
        scenario: &Scenario,
        dir: &Path,
        factory: SimFactory,
        ledger: Arc<Ledger>,
    ) -> std::io::Result<SimHost> {
        std::fs::create_dir_all(dir)?;
        let mut host = SimHost {
            devices: BTreeMap::new(),
            errors: BTreeMap::new(),
            threads: std::sync::Mutex::default(),
            scale: scenario.scale,
            gpio_file: None,
            ledger: ledger.clone(),
        };
        for name in DEVICES {
            let link = dir.join(name);
            let dev = scenario.devices.get(name).cloned().unwrap_or_default();
            if !dev.enabled {
                remove_symlink(&link);
                host.errors.insert(name.into(), "disabled in the scenario".into());
                continue;
            }
            let (built, host_scales) = build(name, &dev, scenario.scale, factory);
            let mut device = match built {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("{name}: simulator not available: {e}");
                    remove_symlink(&link);
                    host.errors.insert(name.into(), e);
                    continue;
                }
            };
            let mut faults = Vec::new();
            for f in &dev.faults {
                match device.apply_fault(f) {
                    Ok(()) => faults.push(f.clone()),
                    Err(e) => tracing::error!("{name}: scenario fault {f:?}: {e}"),
                }
            }
            let pty = Pty::plug(&link)?;
            tracing::info!("{name}: serving on {} -> {}", link.display(), pty.slave);
            let (tx, rx) = mpsc::channel();
            let runner = Runner {
                name: name.into(),
                link,
                device,
                pty: Some(pty),
                rx,
                scale: scenario.scale,
                wait_scale: if host_scales { scenario.scale } else { 1.0 },
                replug_after: scenario.replug_after,
                replug_at: None,
                faults,
                stopping: false,
                ledger: ledger.clone(),
                host_open: false,
            };
            let t = std::thread::Builder::new().name(format!("sim-{name}")).spawn(move || runner.run())?;
            if let Ok(mut threads) = host.threads.lock() {
                threads.push(t);
            }
            host.devices.insert(name.into(), tx);
        }
        Ok(host)
    }

    /// The ledger of what the devices physically did.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Runs a device-specific control verb (see [`SimDevice::control`]).
    pub fn device_control(&self, name: &str, words: &[&str]) -> Result<Value, String> {
        let words = words.iter().map(|w| (*w).to_owned()).collect();
        self.ask(name, |tx| Cmd::Control(words, tx))?
    }

    /// The ledger as JSON (an array of entries, oldest first), of one device or of all.
    pub fn ledger_json(&self, device: Option<&str>) -> Result<Value, String> {
        if let Some(d) = device.filter(|d| !DEVICES.contains(d)) {
            return Err(format!("no device {d:?} (known: {})", DEVICES.join(", ")));
        }
        serde_json::to_value(self.ledger.entries(device)).map_err(|e| e.to_string())
    }

    /// Lets the control verb `gpio` write this GPIO simulation state file.
    pub fn set_gpio_file(&mut self, path: &Path) {
        self.gpio_file = Some(path.to_owned());
    }

    fn device(&self, name: &str) -> Result<&mpsc::Sender<Cmd>, String> {
        self.devices.get(name).ok_or_else(|| match self.errors.get(name) {
            Some(e) => format!("{name} is not served: {e}"),
            None => format!("no device {name:?} (known: {})", DEVICES.join(", ")),
        })
    }

    fn ask<T>(&self, name: &str, make: impl FnOnce(mpsc::Sender<T>) -> Cmd) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        self.device(name)?.send(make(tx)).map_err(|_| format!("{name}: simulator thread stopped"))?;
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| format!("{name}: simulator did not answer"))
    }

    /// Triggers a named fault on a device.
    pub fn fault(&self, name: &str, fault: &str) -> Result<(), String> {
        self.ask(name, |tx| Cmd::Fault(fault.to_owned(), tx))?
    }

    /// Clears a device's faults.
    pub fn clear(&self, name: &str) -> Result<(), String> {
        self.device(name)?.send(Cmd::Clear).map_err(|_| format!("{name}: simulator thread stopped"))
    }

    /// Pulls the device's cable: the PTY master closes and the symlink goes away.
    pub fn unplug(&self, name: &str) -> Result<(), String> {
        self.ask(name, Cmd::Unplug)?
    }

    /// Plugs the device back: a new PTY, the symlink re-pointed.
    pub fn replug(&self, name: &str) -> Result<(), String> {
        self.ask(name, Cmd::Replug)?
    }

    /// State of every device, as JSON.
    pub fn status(&self) -> Value {
        let mut devices = serde_json::Map::new();
        for name in DEVICES {
            let v = match self.devices.get(name) {
                Some(_) => self.ask(name, Cmd::Status).unwrap_or_else(|e| json!({"error": e})),
                None => json!({"served": false, "error": self.errors.get(name)}),
            };
            devices.insert(name.into(), v);
        }
        let gpio = self.gpio_file.as_deref().map(|f| {
            let inputs: Value =
                std::fs::read(f).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(json!({}));
            json!({"file": f.display().to_string(), "inputs": inputs})
        });
        json!({"scale": self.scale, "devices": devices, "gpio": gpio})
    }

    /// Answers one control line: `status`, `fault DEV NAME`, `clear DEV`, `unplug DEV`,
    /// `replug DEV`, `gpio LINE on|off`, `ledger [DEV]` (the entries, an array), `tag next` (a
    /// fresh blank tag in the RFID encoder's field). Always a JSON value: the result or
    /// `{"error": …}`.
    pub fn control(&self, line: &str) -> Value {
        let words: Vec<&str> = line.split_whitespace().collect();
        let done = |r: Result<(), String>| match r {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"error": e}),
        };
        match words.as_slice() {
            ["status"] => self.status(),
            ["fault", dev, name] => done(self.fault(dev, name)),
            ["clear", dev] => done(self.clear(dev)),
            ["unplug", dev] => done(self.unplug(dev)),
            ["replug", dev] => done(self.replug(dev)),
            ["gpio", line, state] => done(self.gpio(line, state)),
            ["ledger"] => self.ledger_json(None).unwrap_or_else(|e| json!({"error": e})),
            ["ledger", dev] => self.ledger_json(Some(dev)).unwrap_or_else(|e| json!({"error": e})),
            ["tag", rest @ ..] if !rest.is_empty() => {
                self.device_control("rfid", rest).unwrap_or_else(|e| json!({"error": e}))
            }
            [] => json!({"error": "empty command"}),
            _ => json!({"error": format!(
                "unknown command {line:?}; use: status | fault DEV NAME | clear DEV | unplug DEV | replug DEV | gpio tamper|power-fail on|off | ledger [DEV] | tag next"
            )}),
        }
    }

    fn gpio(&self, line: &str, state: &str) -> Result<(), String> {
        let file = self.gpio_file.as_deref().ok_or("no GPIO state file configured")?;
        set_gpio(file, line, state)
    }

    /// Stops the device threads and removes the symlinks (safe to call twice; also on drop).
    pub fn shutdown(&self) {
        for tx in self.devices.values() {
            let _ = tx.send(Cmd::Stop);
        }
        let threads: Vec<_> = self.threads.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Builds one device's simulator. The scenario scale is offered to the simulator as its
/// `timing_scale` option, so it also scales its own deadlines (print durations …); a simulator that
/// does not take that option is built without it and its waits are scaled by the host instead.
/// Returns whether the host scales the waits.
fn build(
    name: &str,
    dev: &DeviceScenario,
    scale: f64,
    factory: SimFactory,
) -> (Result<Box<dyn SimDevice>, String>, bool) {
    if dev.loopback {
        return (Ok(Box::new(Loopback::new(name))), true);
    }
    if dev.options.contains_key("timing_scale") {
        return (factory(name, &dev.options), false);
    }
    let mut with_scale = dev.options.clone();
    with_scale.insert("timing_scale".into(), toml::Value::Float(scale));
    match factory(name, &with_scale) {
        Ok(d) => (Ok(d), false),
        Err(_) => (factory(name, &dev.options), true),
    }
}

/// Sets a simulated GPIO input (`tamper`, `power-fail`) `on` or `off` in the state file that the
/// daemon's simulated GPIO backend watches.
pub fn set_gpio(file: &Path, line: &str, state: &str) -> Result<(), String> {
    let input = crate::devices::gpio::Input::from_name(line)
        .ok_or_else(|| format!("unknown GPIO input {line:?} (known: tamper, power-fail)"))?;
    let active = match state {
        "on" => true,
        "off" => false,
        other => return Err(format!("{other:?}: say on or off")),
    };
    crate::devices::gpio::write_sim_state(file, input, active).map_err(|e| format!("{}: {e}", file.display()))
}

/// `d × scale`, capped at an hour (a simulator asking for more is a bug, not a reason to hang).
fn scaled(d: Duration, scale: f64) -> Duration {
    let cap = Duration::from_secs(3600);
    Duration::try_from_secs_f64(d.as_secs_f64() * scale).map_or(cap, |d| d.min(cap))
}

fn remove_symlink(link: &Path) {
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
}

/// One plugged PTY: the master end we drive and the slave path the symlink points at.
struct Pty {
    master: TTYPort,
    slave: String,
}

impl Pty {
    /// A new PTY pair; the symlink at `link` is (re)pointed at the slave atomically.
    fn plug(link: &Path) -> std::io::Result<Pty> {
        let (master, slave) = TTYPort::pair().map_err(std::io::Error::other)?;
        let slave_path = slave.name().ok_or_else(|| std::io::Error::other("PTY slave has no name"))?;
        // The daemon opens the slave itself (exclusively), as it would a real port.
        drop(slave);
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&slave_path, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(Pty { master, slave: slave_path })
    }
}

struct Runner {
    name: String,
    link: PathBuf,
    device: Box<dyn SimDevice>,
    pty: Option<Pty>,
    rx: mpsc::Receiver<Cmd>,
    scale: f64,
    /// Applied to `SimOut::Wait`: the scenario scale, or 1 when the simulator scales its own timing.
    wait_scale: f64,
    replug_after: Duration,
    replug_at: Option<Instant>,
    faults: Vec<String>,
    /// A stop arrived during a simulated wait.
    stopping: bool,
    ledger: Arc<Ledger>,
    /// The host has the line open (its end of the PTY), as far as the last read could tell.
    host_open: bool,
}

impl Runner {
    fn run(mut self) {
        let mut buf = [0u8; 4096];
        loop {
            if self.stopping {
                self.pty = None;
                remove_symlink(&self.link);
                return;
            }
            // Commands first, so control stays responsive.
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.pty = None;
                        remove_symlink(&self.link);
                        return;
                    }
                    Ok(cmd) => self.command(cmd),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if self.replug_at.is_some_and(|t| now >= t) {
                self.replug_at = None;
                if let Err(e) = self.replug() {
                    tracing::error!("{}: replug failed: {e}", self.name);
                }
            }
            if self.device.next_deadline().is_some_and(|t| now >= t) {
                let outs = self.device.poll(now);
                self.record();
                self.outputs(outs);
            }
            let mut wait = Duration::from_millis(10);
            if let Some(t) = self.device.next_deadline() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            let Some(pty) = self.pty.as_mut() else {
                std::thread::sleep(wait);
                continue;
            };
            let _ = pty.master.set_timeout(wait.max(Duration::from_millis(1)));
            match pty.master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    self.host_open = true;
                    let outs = self.device.receive(&buf[..n], Instant::now());
                    self.record();
                    self.outputs(outs);
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => self.host_open = true,
                Ok(_) => std::thread::sleep(wait),
                // No slave open (the daemon is not connected): the master reports a hang-up.
                Err(_) => {
                    self.lost_host();
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Waits `d` (a device "working") while still taking control commands; `false` when told
    /// to stop meanwhile (the stop is left for the run loop, which then ends at once).
    fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.rx.recv_timeout(left) {
                Ok(Cmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.stopping = true;
                    return false;
                }
                Ok(cmd) => self.command(cmd),
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    fn outputs(&mut self, outs: Vec<SimOut>) {
        for out in outs {
            match out {
                SimOut::Send(bytes) => {
                    if let Some(pty) = self.pty.as_mut() {
                        if let Err(e) = pty.master.write_all(&bytes) {
                            tracing::debug!("{}: write to host failed: {e}", self.name);
                        }
                    }
                }
                SimOut::Wait(d) => {
                    let d = scaled(d, self.wait_scale);
                    if !d.is_zero() && !self.pause(d) {
                        return;
                    }
                }
                SimOut::DropLink => {
                    self.unplug();
                    self.replug_at = Some(Instant::now() + scaled(self.replug_after, self.scale));
                }
            }
        }
    }

    /// Moves what the device physically did into the ledger, before its answer goes out.
    fn record(&mut self) {
        for event in self.device.take_ledger() {
            self.ledger.record(self.device.name(), event);
        }
    }

    /// The host's end of the line closed: the device finishes or drops what was in progress.
    fn lost_host(&mut self) {
        if std::mem::take(&mut self.host_open) {
            tracing::info!("{}: the host closed the line", self.name);
            self.device.host_closed();
            self.record();
        }
    }

    fn unplug(&mut self) {
        self.lost_host();
        self.pty = None;
        remove_symlink(&self.link);
        tracing::info!("{}: unplugged", self.name);
    }

    fn replug(&mut self) -> std::io::Result<()> {
        self.lost_host();
        self.pty = None;
        let pty = Pty::plug(&self.link)?;
        tracing::info!("{}: plugged in on {} -> {}", self.name, self.link.display(), pty.slave);
        self.pty = Some(pty);
        Ok(())
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Fault(name, reply) => {
                let r = self.device.apply_fault(&name);
                if r.is_ok() && !self.faults.contains(&name) {
                    self.faults.push(name);
                }
                let _ = reply.send(r);
            }
            Cmd::Clear => {
                self.device.clear_faults();
                self.faults.clear();
            }
            Cmd::Unplug(reply) => {
                let r = if self.pty.is_some() {
                    self.unplug();
                    self.replug_at = None;
                    Ok(())
                } else {
                    Err(format!("{} is already unplugged", self.name))
                };
                let _ = reply.send(r);
            }
            Cmd::Replug(reply) => {
                self.replug_at = None;
                let _ = reply.send(self.replug().map_err(|e| format!("{}: cannot replug: {e}", self.name)));
            }
            Cmd::Status(reply) => {
                let _ = reply.send(json!({
                    "served": true,
                    "plugged": self.pty.is_some(),
                    "link": self.link.display().to_string(),
                    "tty": self.pty.as_ref().map(|p| p.slave.clone()),
                    "faults": self.faults,
                    "device": self.device.status(),
                }));
            }
            Cmd::Control(words, reply) => {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                let r = self.device.control(&words);
                self.record();
                let _ = reply.send(r);
                return;
            }
            Cmd::Stop => {}
        }
        self.record();
    }
}

/// Claims the control socket at `path`: refuses if a running van-sim answers on it, replaces a stale
/// socket file, creates the folder. Claim it before [`SimHost::start`] so a second host never
/// re-points the first one's device names.
pub fn claim_control(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{}: another van-sim is running", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    UnixListener::bind(path)
}

/// Answers control connections (one text line in, one JSON line out) on a background thread.
pub fn serve_control(host: Arc<SimHost>, listener: UnixListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let host = host.clone();
            std::thread::spawn(move || control_connection(stream, &host));
        }
    });
}

fn control_connection(stream: UnixStream, host: &SimHost) {
    let Ok(mut writer) = stream.try_clone() else { return };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if writeln!(writer, "{}", host.control(line.trim())).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Link;
    use crate::devices::transport::SerialLink;

    #[test]
    fn scenario_parses_sections_faults_and_options() {
        let sc = Scenario::parse(
            "[timing]\nscale = 0\n[payment]\nfaults = [\"decline\"]\nterminal_id = \"1234\"\n[card]\nenabled = false\n[rfid]\nkind = \"loopback\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(sc.scale, 0.0);
        let p = &sc.devices["payment"];
        assert!(p.enabled && !p.loopback);
        assert_eq!(p.faults, ["decline"]);
        assert_eq!(p.options.get("terminal_id").and_then(|v| v.as_str()), Some("1234"));
        assert!(!p.options.contains_key("faults"));
        assert!(!sc.devices["card"].enabled);
        assert!(sc.devices["rfid"].loopback);
        assert!(sc.devices["sticker"].enabled, "unnamed devices are served");
    }

    #[test]
    fn scenario_errors_name_the_key() {
        let e = Scenario::parse("[timing]\nscale = -1\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml: timing.scale"), "{e}");
        let e = Scenario::parse("[printer]\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("printer") && e.contains("unknown section"), "{e}");
        let e = Scenario::parse("[card]\nfaults = \"jam\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("card.faults"), "{e}");
        let e = Scenario::parse("[card\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_scenario_text_never_panics(text in "\\PC{0,200}") {
            let _ = Scenario::parse(&text, "p.toml");
        }

        #[test]
        fn arbitrary_toml_shapes_never_panic(scale in proptest::num::f64::ANY, key in "[a-z_]{1,12}", v in proptest::num::i64::ANY) {
            let text = format!("[timing]\nscale = {scale:?}\n[card]\n{key} = {v}\nfaults = [{v}]\n");
            let _ = Scenario::parse(&text, "p.toml");
        }
    }

    #[test]
    fn shipped_scenarios_parse() {
        for (name, text) in [
            ("default", include_str!("../../hw/sim/default.toml")),
            ("fast", include_str!("../../hw/sim/fast.toml")),
            ("faults", include_str!("../../hw/sim/faults.toml")),
        ] {
            Scenario::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(Scenario::parse(include_str!("../../hw/sim/fast.toml"), "fast").unwrap().scale, 0.0);
    }

    #[test]
    fn shipped_fault_names_exist_in_the_simulators_of_this_build() {
        let sc = Scenario::parse(include_str!("../../hw/sim/faults.toml"), "hw/sim/faults.toml").unwrap();
        for (name, dev) in &sc.devices {
            let Ok(mut sim) = default_factory(name, &toml::Table::new()) else { continue };
            for f in &dev.faults {
                sim.apply_fault(f).unwrap_or_else(|e| panic!("hw/sim/faults.toml [{name}] fault {f:?}: {e}"));
            }
        }
    }

    fn no_sims(name: &str, _o: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
        if name == "payment" {
            Ok(Box::new(Loopback::new("payment")))
        } else {
            Err(format!("{name}: not built"))
        }
    }

    fn open(link: &Path) -> SerialLink {
        let cfg = crate::config::SerialConfig {
            path: link.to_owned(),
            baud: 9600,
            data_bits: 8,
            parity: crate::config::Parity::None,
            stop_bits: 1,
            timeout_ms: 1000,
        };
        SerialLink::open("payment", &cfg).unwrap()
    }

    fn echo(link: &mut SerialLink, bytes: &[u8]) -> Vec<u8> {
        link.write_all(bytes).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < bytes.len() {
            let n = link.read_some(&mut buf, deadline).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    fn strict(_name: &str, o: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
        match o.keys().next() {
            Some(k) => Err(format!("unknown option {k}")),
            None => Ok(Box::new(Loopback::new("card"))),
        }
    }

    fn self_timed(_name: &str, o: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
        match o.get("timing_scale").and_then(|v| v.as_float()) {
            Some(0.25) => Ok(Box::new(Loopback::new("card"))),
            other => Err(format!("timing_scale {other:?}")),
        }
    }

    #[test]
    fn scaling_is_capped_and_never_overflows() {
        assert_eq!(scaled(Duration::from_secs(2), 0.5), Duration::from_secs(1));
        assert_eq!(scaled(Duration::MAX, 1000.0), Duration::from_secs(3600));
        assert_eq!(scaled(Duration::from_secs(5), 0.0), Duration::ZERO);
        assert!(Scenario::parse("[timing]\nscale = 1e300\n", "t").is_err());
    }

    #[test]
    fn scale_goes_to_the_simulator_or_to_the_host() {
        let dev = DeviceScenario { enabled: true, ..Default::default() };
        let (built, host_scales) = build("card", &dev, 0.25, self_timed);
        assert!(built.is_ok() && !host_scales, "simulator takes timing_scale itself");
        let (built, host_scales) = build("card", &dev, 0.25, strict);
        assert!(built.is_ok() && host_scales, "simulator without the option: host scales waits");
        let mut own = dev.clone();
        own.options.insert("timing_scale".into(), toml::Value::Float(0.25));
        let (built, host_scales) = build("card", &own, 0.0, self_timed);
        assert!(built.is_ok() && !host_scales, "the scenario's own timing_scale wins");
    }

    #[test]
    fn host_serves_working_devices_and_reports_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut sc = Scenario { scale: 0.0, ..Default::default() };
        sc.devices.get_mut("card").unwrap().loopback = true;
        let host = SimHost::start(&sc, dir.path(), no_sims).unwrap();
        assert!(dir.path().join("payment").exists());
        assert!(dir.path().join("card").exists());
        assert!(!dir.path().join("sticker").exists());
        let status = host.status();
        assert_eq!(status["devices"]["sticker"]["served"], false);
        assert_eq!(status["devices"]["sticker"]["error"], "sticker: not built");
        assert_eq!(status["devices"]["payment"]["plugged"], true);

        let mut link = open(&dir.path().join("payment"));
        assert_eq!(echo(&mut link, b"\x10\x02hello\x10\x03"), b"\x10\x02hello\x10\x03");

        // Faults go to the device; unknown ones are refused with the device's message.
        assert_eq!(host.control("fault payment mute"), json!({"ok": true}));
        assert!(host.control("fault payment jam")["error"].as_str().unwrap().contains("known: mute"));
        assert_eq!(host.status()["devices"]["payment"]["faults"], json!(["mute"]));
        assert_eq!(host.control("clear payment"), json!({"ok": true}));
        assert!(host.control("fault sticker x")["error"].as_str().unwrap().contains("not served"));
        assert!(host.control("explode")["error"].as_str().unwrap().contains("unknown command"));

        // Unplug: the host side sees the hang-up; replug: a new tty behind the same name.
        let before = host.status()["devices"]["payment"]["tty"].clone();
        assert_eq!(host.control("unplug payment"), json!({"ok": true}));
        let mut buf = [0u8; 4];
        let e = link.read_some(&mut buf, Instant::now() + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, crate::devices::LinkError::Unplugged { .. }), "{e}");
        assert!(!dir.path().join("payment").exists());
        assert_eq!(host.control("replug payment"), json!({"ok": true}));
        let after = host.status()["devices"]["payment"]["tty"].clone();
        assert_ne!(before, after);
        let mut link = open(&dir.path().join("payment"));
        assert_eq!(echo(&mut link, b"again"), b"again");
        assert_eq!(host.status()["devices"]["payment"]["device"]["echoed_bytes"], 14);
    }

    /// A device that drops its link on request, to check the automatic replug. It follows the
    /// `timing_scale` convention: its hour-long wait is scaled by the option.
    struct Dropper {
        scale: f64,
    }
    impl SimDevice for Dropper {
        fn name(&self) -> &'static str {
            "card"
        }
        fn receive(&mut self, bytes: &[u8], _now: Instant) -> Vec<SimOut> {
            if bytes.contains(&b'!') {
                vec![SimOut::Wait(Duration::from_secs(3600).mul_f64(self.scale)), SimOut::DropLink]
            } else {
                Vec::new()
            }
        }
        fn apply_fault(&mut self, _f: &str) -> Result<(), String> {
            Err("none".into())
        }
        fn clear_faults(&mut self) {}
        fn status(&self) -> Value {
            Value::Null
        }
    }

    fn dropper(name: &str, o: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
        let scale = o.get("timing_scale").and_then(|v| v.as_float()).ok_or("timing_scale required")?;
        if name == "card" { Ok(Box::new(Dropper { scale })) } else { Err("off".into()) }
    }

    #[test]
    fn drop_link_unplugs_then_replugs_with_scaled_timing() {
        let dir = tempfile::tempdir().unwrap();
        // scale 0: the hour-long wait and the replug delay both vanish.
        let sc = Scenario { scale: 0.0, ..Default::default() };
        let host = SimHost::start(&sc, dir.path(), dropper).unwrap();
        let before = host.status()["devices"]["card"]["tty"].clone();
        let mut link = open(&dir.path().join("card"));
        link.write_all(b"!").unwrap();
        let mut buf = [0u8; 4];
        let e = link.read_some(&mut buf, Instant::now() + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, crate::devices::LinkError::Unplugged { .. }), "{e}");
        let mut status = host.status();
        for _ in 0..1000 {
            if status["devices"]["card"]["plugged"] == true && status["devices"]["card"]["tty"] != before {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            status = host.status();
        }
        assert_eq!(status["devices"]["card"]["plugged"], true, "{status}");
        assert_ne!(status["devices"]["card"]["tty"], before);
        open(&dir.path().join("card"));
    }

    #[test]
    fn gpio_verb_writes_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gpio-sim.json");
        let sc = Scenario { scale: 0.0, ..Default::default() };
        let mut host = SimHost::start(&sc, &dir.path().join("dev"), dropper).unwrap();
        assert!(host.control("gpio tamper on")["error"].is_string(), "no file configured yet");
        host.set_gpio_file(&file);
        assert_eq!(host.control("gpio power-fail on"), json!({"ok": true}));
        assert_eq!(host.control("gpio tamper off"), json!({"ok": true}));
        assert!(host.control("gpio door on")["error"].as_str().unwrap().contains("unknown GPIO input"));
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v, json!({"power_fail": true, "tamper": false}));
        assert_eq!(host.status()["gpio"]["inputs"], v);
    }
}
