//! The device manager: one thread owns each configured device's port and driver (one owner per
//! resource); the daemon talks to it through async [`DeviceHandle`]s and watches [`Health`].
//!
//! Each device thread loops: open the port (resolving the udev symlink), build the driver (through
//! the [`registry`](super::registry)), then run jobs sent over a channel and, between jobs, poll
//! the device's status at its configured interval (so a fault and its recovery show without a
//! job) and watch the port for a hang-up. After an unplug it closes everything and reopens with
//! exponential backoff ([`Backoff`]). Health is published on every change. A device that is not
//! configured or `enabled = false` is [`Health::Absent`], never an error. The GPIO backend is
//! owned by its own [`GpioService`] thread, started here too.
//!
//! **The job contract.** Every job has a [`JobId`]. Its [`Outcome`] is always delivered to
//! whoever holds its [`JobHandle`] and sent as a [`JobRecord`] to the journal sink, even when the
//! caller stopped waiting: a caller's timeout ends the wait, not the job. An outcome is
//! [`Outcome::Done`], [`Outcome::Failed`] (the device certainly did nothing),
//! [`Outcome::Unknown`] (it may have acted: a charge, a printed card, a written tag) or
//! [`Outcome::Cancelled`] (cancelled before the device acted).
//!
//! How the daemon uses it:
//!
//! ```no_run
//! # async fn demo(config: &mtu::config::Config) -> Result<(), mtu::devices::manager::JobError> {
//! use std::time::Duration;
//! use mtu::devices::DeviceId;
//! let manager = mtu::devices::manager::Manager::start(config);
//! let mut health = manager.watch_health(); // the whole health board, for the officer's screen
//! if let Some(card) = manager.device(DeviceId::Card) {
//!     // Runs on the card printer's own thread; the outcome comes back over a oneshot channel
//!     // and is journaled whether or not anybody still waits for it.
//!     let mut job = card.submit("status", |d, _ctx| d.self_test());
//!     match job.wait(Duration::from_secs(10)).await {
//!         Ok(outcome) => println!("{outcome:?}"),
//!         Err(still_running) => println!("{still_running}"), // wait again, or read the journal
//!     }
//! }
//! let _ = health.borrow_and_update();
//! manager.shutdown();
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::card::{CardPrinterStatus, PrintReceipt};
use super::gpio::{GpioEvent, GpioService, Output};
use super::payment::{Approval, DayTotals, PaymentOutcome, PaymentTerminal, TerminalStatus};
use super::rfid::{EncodedTag, TagEncoder};
use super::sticker::{StickerPrinter, StickerStatus};
use super::transport::{Backoff, HangupProbe, Reopener};
use super::{DeviceError, DeviceId, Fault, Health, Link, LinkError, PaymentFault, RfidFault, SelfTestReport};
use crate::config::{Config, DeviceConfig};

use super::card::CardPrinter;
pub use super::registry::{Driver, GenericDevice};

/// Builds a driver for a device over an open link. The default is the
/// [`registry`](super::registry); tests pass doubles.
pub type DriverFactory =
    Arc<dyn Fn(DeviceId, &DeviceConfig, Box<dyn Link>) -> Result<Driver, DeviceError> + Send + Sync>;

/// The factory used by the daemon: the configured driver of each kind.
pub fn default_factory() -> DriverFactory {
    Arc::new(super::registry::build)
}

/// A job's identity: unique within the van (seeded from the UTC clock at start, then counted),
/// shown in records and to the officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job-{:x}", self.0)
    }
}

fn next_job_id() -> JobId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        crate::clock::now_utc_us().max(1) as u64,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    JobId(NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Why a job could not run, or how it failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The device is not configured in this van.
    #[error("{device}: not configured in this van")]
    Absent { device: String },
    /// The port is not open (unplugged, not found, or the driver failed to start).
    #[error("{device}: not connected: {why}")]
    NotConnected { device: String, why: String },
    /// The caller stopped waiting; the job goes on and its outcome is journaled.
    #[error("{device}: {what} still running after {waited_ms} ms ({job}); its outcome will be journaled")]
    StillRunning { device: String, what: String, job: JobId, waited_ms: u64 },
    /// The manager was shut down before the job started.
    #[error("{device}: device manager stopped")]
    Stopped { device: String },
    /// The driver failed internally mid-job (see the log); it may have acted.
    #[error("{device}: {what} aborted by an internal driver error (see the log)")]
    Aborted { device: String, what: String },
    /// The job was cancelled before the device acted.
    #[error("{device}: {what} cancelled")]
    Cancelled { device: String, what: String },
    /// The driver reported an error.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl JobError {
    /// The typed condition, if the device reported one.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            JobError::Device(e) => Some(e.kind()),
            JobError::Aborted { .. } => Some(Fault::Internal),
            _ => None,
        }
    }
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The device did it; here is what it reported.
    Done(T),
    /// It did not happen, and the device certainly did nothing.
    Failed(JobError),
    /// It may have happened (a charge, a printed card, a written tag): find out before retrying.
    Unknown(JobError),
    /// Cancelled before the device acted.
    Cancelled,
}

impl<T> Outcome<T> {
    /// The outcome's name as recorded: `done`, `failed`, `unknown`, `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// As a `Result` for callers that treat anything but `Done` as an error.
    pub fn into_result(self, device: DeviceId, what: &str) -> Result<T, JobError> {
        match self {
            Outcome::Done(v) => Ok(v),
            Outcome::Failed(e) | Outcome::Unknown(e) => Err(e),
            Outcome::Cancelled => {
                Err(JobError::Cancelled { device: device.name().into(), what: what.into() })
            }
        }
    }
}

/// What a job's result says about the device having acted, beyond errors. A payment driver
/// reports an unknown outcome as data ([`PaymentOutcome::Unknown`]), not as an error.
pub trait JobData: serde::Serialize + Send + 'static {
    /// `Some(reason)` if this result means the device may have acted but the result is lost.
    fn unknown(&self) -> Option<String> {
        None
    }
    /// Whether this result means the operation was cancelled before anything was done.
    fn cancelled(&self) -> bool {
        false
    }
}

macro_rules! plain_job_data {
    ($($t:ty),* $(,)?) => { $(impl JobData for $t {})* };
}
plain_job_data!(
    (),
    bool,
    String,
    SelfTestReport,
    PrintReceipt,
    CardPrinterStatus,
    StickerStatus,
    EncodedTag,
    TerminalStatus,
    DayTotals,
    Option<Approval>,
    serde_json::Value,
);

impl JobData for PaymentOutcome {
    fn unknown(&self) -> Option<String> {
        match self {
            PaymentOutcome::Unknown { reason } => Some(reason.clone()),
            _ => None,
        }
    }
    fn cancelled(&self) -> bool {
        matches!(self, PaymentOutcome::Aborted)
    }
}

/// What the journal gets for every job (kind `device.job`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRecord {
    /// The job.
    pub job: JobId,
    /// The device.
    pub device: DeviceId,
    /// What the job did (`print card`, `purchase`, `self-test`).
    pub what: String,
    /// `done`, `failed`, `unknown`, `cancelled`, or `interrupted` (the daemon stopped mid-job).
    pub outcome: &'static str,
    /// The typed fault, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Whether the device may have acted without the result being known.
    pub may_have_acted: bool,
    /// The error, for a technician.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the device reported (for `done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// How long the job ran, in milliseconds.
    pub ms: u64,
}

/// Where job records go (the daemon journals them). Unbounded so a device thread never blocks
/// and no record is dropped; the daemon drains it before `daemon.stop`.
pub type JobSink = tokio::sync::mpsc::UnboundedSender<JobRecord>;

/// What a running job may consult.
#[derive(Clone, Debug, Default)]
pub struct JobCtx {
    cancel: Arc<AtomicBool>,
}

impl JobCtx {
    /// Whether cancellation was asked for (by the caller or by a daemon shutdown). A job checks
    /// it where its protocol allows stopping safely (ZVT: abort before the card is presented).
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// The caller's side of a submitted job.
#[derive(Debug)]
pub struct JobHandle<T> {
    id: JobId,
    device: DeviceId,
    what: String,
    ctx: JobCtx,
    rx: Option<oneshot::Receiver<Outcome<T>>>,
}

impl<T> JobHandle<T> {
    /// The job's id (as in its journal record).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Asks the job to stop where its protocol allows; a job not yet started is never started.
    /// The outcome says what happened ([`Outcome::Cancelled`] only if nothing was done).
    pub fn cancel(&self) {
        self.ctx.cancel.store(true, Ordering::SeqCst);
    }

    /// Waits up to `timeout` for the outcome. On timeout the job goes on: wait again, or find
    /// its outcome in the journal ([`JobError::StillRunning`] names the job).
    pub async fn wait(&mut self, timeout: Duration) -> Result<Outcome<T>, JobError> {
        let still = |waited: Duration, s: &Self| JobError::StillRunning {
            device: s.device.name().into(),
            what: s.what.clone(),
            job: s.id,
            waited_ms: waited.as_millis() as u64,
        };
        let Some(rx) = self.rx.as_mut() else {
            return Err(JobError::Stopped { device: self.device.name().into() });
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => {
                self.rx = None;
                Ok(outcome)
            }
            // The device thread is gone without an answer (only when the process is stopping).
            Ok(Err(_)) => {
                self.rx = None;
                Ok(Outcome::Unknown(JobError::Aborted {
                    device: self.device.name().into(),
                    what: self.what.clone(),
                }))
            }
            Err(_) => Err(still(timeout, self)),
        }
    }

    /// Waits for the outcome, however long the job takes.
    pub async fn outcome(mut self) -> Outcome<T> {
        loop {
            match self.wait(Duration::from_secs(3600)).await {
                Ok(o) => return o,
                Err(JobError::StillRunning { .. }) => continue,
                Err(e) => return Outcome::Failed(e),
            }
        }
    }
}

/// A job erased of its result type, run on the device thread. It returns the health the device
/// should show afterwards when the job revealed a fault, and a thunk that delivers the outcome
/// (run after the health is published so a caller never sees a result before its health).
type Job = Box<dyn FnOnce(Result<&mut Driver, JobError>) -> (Option<Health>, Reply) + Send>;
type Reply = Box<dyn FnOnce() + Send>;

/// A queued job, taken exactly once: by its device thread to run it, or by a shutdown to
/// cancel it (so a job still queued when the daemon stops gets its `cancelled` record).
type Slot = Arc<Mutex<Option<Job>>>;
/// The jobs of one device not yet taken by its thread.
type Queue = Arc<Mutex<BTreeMap<JobId, Slot>>>;

fn take(slot: &Slot) -> Option<Job> {
    slot.lock().ok().and_then(|mut j| j.take())
}

enum Msg {
    Job { id: JobId, what: String, ctx: JobCtx, slot: Slot },
    Stop,
}

/// Every device's health, for screens and for the journal recorder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthBoard {
    /// Current health per device, `busy` included.
    pub devices: BTreeMap<DeviceId, Health>,
    /// The last state per device that is not `busy` (what the journal records).
    pub stable: BTreeMap<DeviceId, Health>,
    /// How many times each device's stable state changed since start, so a reader of the watch
    /// knows when two changes happened between two looks.
    pub changes: BTreeMap<DeviceId, u64>,
}

#[derive(Clone)]
struct Publisher {
    board: watch::Sender<HealthBoard>,
}

impl Publisher {
    fn set(&self, device: DeviceId, health: Health) {
        let mut changed = false;
        self.board.send_if_modified(|b| {
            let mut modified = false;
            if b.devices.get(&device) != Some(&health) {
                b.devices.insert(device, health.clone());
                modified = true;
            }
            if !matches!(health, Health::Busy { .. }) && b.stable.get(&device) != Some(&health) {
                b.stable.insert(device, health.clone());
                *b.changes.entry(device).or_default() += 1;
                changed = true;
                modified = true;
            }
            modified
        });
        if changed {
            match &health {
                Health::Fault { fault, detail } => tracing::warn!("{device}: {} ({detail})", fault.code()),
                // The first state of every device while its port opens: not a problem.
                Health::Disconnected { why } if why == "opening" => tracing::debug!("{device}: opening"),
                Health::Disconnected { why } => tracing::warn!("{device}: {why}"),
                Health::Connected => tracing::info!("{device}: connected"),
                _ => {}
            }
        }
    }
}

/// The async face of one device thread.
#[derive(Clone)]
pub struct DeviceHandle {
    id: DeviceId,
    tx: mpsc::Sender<Msg>,
    sink: Option<JobSink>,
    queue: Queue,
}

impl DeviceHandle {
    /// The device.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// Queues `f` to run on the device thread with the driver. The outcome reaches the returned
    /// handle and the journal sink, whether or not anybody waits for it.
    pub fn submit<R, F>(&self, what: &str, f: F) -> JobHandle<R>
    where
        R: JobData,
        F: FnOnce(&mut Driver, &JobCtx) -> Result<R, DeviceError> + Send + 'static,
    {
        let id = next_job_id();
        let ctx = JobCtx::default();
        let (tx, rx) = oneshot::channel::<Outcome<R>>();
        let device = self.id;
        let sink = self.sink.clone();
        let what_owned = what.to_owned();
        let job_ctx = ctx.clone();
        let job: Job = Box::new(move |driver| {
            let started = Instant::now();
            let outcome = match driver {
                Err(JobError::Cancelled { .. }) => Outcome::Cancelled,
                Err(e) => Outcome::Failed(e),
                Ok(_) if job_ctx.cancelled() => Outcome::Cancelled,
                Ok(d) => match f(d, &job_ctx) {
                    Ok(v) if v.cancelled() && job_ctx.cancelled() => Outcome::Cancelled,
                    // A payment whose result was lost stays `Done(PaymentOutcome::Unknown)`: the
                    // caller needs its data for recovery; the record says `unknown`.
                    Ok(v) => Outcome::Done(v),
                    Err(e) if e.may_have_acted() => Outcome::Unknown(JobError::Device(e)),
                    Err(e) => Outcome::Failed(JobError::Device(e)),
                },
            };
            let health = match &outcome {
                Outcome::Failed(JobError::Device(e)) | Outcome::Unknown(JobError::Device(e)) => e.health(),
                _ => None,
            };
            let record = job_record(id, device, &what_owned, &outcome, started.elapsed());
            let reply: Reply = Box::new(move || {
                if let Some(sink) = sink {
                    if sink.send(record).is_err() {
                        tracing::error!(%id, "job outcome could not reach the journal (recorder gone)");
                    }
                }
                let _ = tx.send(outcome);
            });
            (health, reply)
        });
        let handle = JobHandle { id, device, what: what.to_owned(), ctx: ctx.clone(), rx: Some(rx) };
        let slot: Slot = Arc::new(Mutex::new(Some(job)));
        if let Ok(mut q) = self.queue.lock() {
            q.insert(id, slot.clone());
        }
        if self.tx.send(Msg::Job { id, what: what.to_owned(), ctx, slot: slot.clone() }).is_err() {
            // The device thread is gone: answer here, so the outcome still reaches everyone.
            if let Some(job) = take(&slot) {
                let (_, reply) = job(Err(JobError::Stopped { device: self.id.name().into() }));
                reply();
            }
        }
        handle
    }

    /// Runs `f` and waits up to `timeout` for its result. On timeout the job goes on and its
    /// outcome is journaled ([`JobError::StillRunning`]). `what` is shown as [`Health::Busy`].
    pub async fn run<R, F>(&self, what: &str, timeout: Duration, f: F) -> Result<R, JobError>
    where
        R: JobData,
        F: FnOnce(&mut Driver) -> Result<R, DeviceError> + Send + 'static,
    {
        let mut job = self.submit(what, move |d, _ctx| f(d));
        job.wait(timeout).await?.into_result(self.id, what)
    }

    /// Charges `amount` piastres: progress texts go to `progress`; [`JobHandle::cancel`] asks the
    /// terminal to abort (possible until the card is presented). A lost result is
    /// [`Outcome::Done`]`(`[`PaymentOutcome::Unknown`]`)`: recover with repeat receipt.
    pub fn purchase(
        &self,
        amount: u64,
        progress: impl FnMut(&str) + Send + 'static,
    ) -> JobHandle<PaymentOutcome> {
        let mut progress = progress;
        self.submit("purchase", move |d, ctx| match d {
            Driver::Payment(t) => {
                let ctx = ctx.clone();
                t.purchase(amount, &mut |text: &str| {
                    progress(text);
                    !ctx.cancelled()
                })
            }
            _ => Err(not_kind(DeviceId::Payment)),
        })
    }
}

fn not_kind(kind: DeviceId) -> DeviceError {
    DeviceError::Unsupported { device: kind.name().into(), what: format!("not a {} device", kind.name()) }
}

fn job_record<T: JobData>(
    id: JobId,
    device: DeviceId,
    what: &str,
    o: &Outcome<T>,
    took: Duration,
) -> JobRecord {
    let (fault, may_have_acted, detail, data) = match o {
        Outcome::Done(v) => {
            let unknown = v.unknown();
            (
                unknown.as_ref().map(|_| Fault::Link(super::LinkFault::NoAnswer)),
                unknown.is_some(),
                unknown,
                serde_json::to_value(v).ok(),
            )
        }
        Outcome::Failed(e) => (e.fault(), false, Some(e.to_string()), None),
        Outcome::Unknown(e) => (e.fault(), true, Some(e.to_string()), None),
        Outcome::Cancelled => (None, false, None, None),
    };
    let outcome = match o {
        Outcome::Done(v) if v.unknown().is_some() => "unknown",
        other => other.name(),
    };
    JobRecord {
        job: id,
        device,
        what: what.into(),
        outcome,
        fault,
        may_have_acted,
        detail,
        data,
        ms: took.as_millis() as u64,
    }
}

macro_rules! kind_runner {
    ($(#[$doc:meta])* $fn:ident, $variant:ident, $tr:path, $id:expr) => {
        $(#[$doc])*
        pub async fn $fn<R, F>(&self, what: &str, timeout: Duration, f: F) -> Result<R, JobError>
        where
            R: JobData,
            F: FnOnce(&mut dyn $tr) -> Result<R, DeviceError> + Send + 'static,
        {
            self.run(what, timeout, move |d| match d {
                Driver::$variant(x) => f(x.as_mut()),
                _ => Err(not_kind($id)),
            })
            .await
        }
    };
}

impl DeviceHandle {
    kind_runner!(
        /// Runs `f` with the payment terminal driver (see [`DeviceHandle::run`]).
        payment, Payment, PaymentTerminal, DeviceId::Payment
    );
    kind_runner!(
        /// Runs `f` with the card printer driver (see [`DeviceHandle::run`]).
        card, Card, CardPrinter, DeviceId::Card
    );
    kind_runner!(
        /// Runs `f` with the sticker printer driver (see [`DeviceHandle::run`]).
        sticker, Sticker, StickerPrinter, DeviceId::Sticker
    );
    kind_runner!(
        /// Runs `f` with the e-sticker encoder driver (see [`DeviceHandle::run`]).
        rfid, Rfid, TagEncoder, DeviceId::Rfid
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
    /// Where job outcomes go (the daemon's journal recorder); `None` in one-shot tools.
    pub sink: Option<JobSink>,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            backoff: Backoff::default(),
            idle_check: Duration::from_millis(250),
            self_test_timeout: Duration::from_secs(15),
            sink: None,
        }
    }
}

/// The job a device thread is running, for a bounded shutdown's report.
#[derive(Debug, Clone)]
struct Running {
    id: JobId,
    what: String,
    since: Instant,
    ctx: JobCtx,
}

/// Owner of all device threads and the GPIO service.
pub struct Manager {
    handles: BTreeMap<DeviceId, DeviceHandle>,
    threads: Mutex<Vec<(DeviceId, std::thread::JoinHandle<()>)>>,
    exited: Mutex<mpsc::Receiver<DeviceId>>,
    running: Arc<Mutex<BTreeMap<DeviceId, Running>>>,
    stopping: Arc<AtomicBool>,
    publisher: Publisher,
    gpio: Mutex<Option<GpioService>>,
    gpio_health: Health,
    gpio_debounce: Duration,
    /// An alarm (the tamper latch) that keeps the fault LED on whatever the devices' health.
    alarm: watch::Sender<bool>,
    options: ManagerOptions,
    van_id: String,
}

/// The default idle status-poll interval of each kind: the cheapest safe status query
/// (Evolis `Rfs`-style status, ZPL `~HS`, Mercury version) every few seconds; the ZVT status
/// enquiry `05 01` far less often, since terminals show it and some log it.
pub fn default_poll(id: DeviceId) -> Duration {
    match id {
        DeviceId::Payment => Duration::from_secs(60),
        DeviceId::Card | DeviceId::Sticker => Duration::from_secs(5),
        DeviceId::Rfid | DeviceId::Gpio => Duration::from_secs(10),
    }
}

impl Manager {
    /// Starts a thread per configured, enabled device (with the real drivers) and the GPIO service.
    pub fn start(config: &Config) -> Manager {
        Self::start_with(config, default_factory(), ManagerOptions::default())
    }

    /// As [`Manager::start`], with another driver factory and tuning (tests, `vanctl` without daemon).
    pub fn start_with(config: &Config, factory: DriverFactory, options: ManagerOptions) -> Manager {
        let (board, _) = watch::channel(HealthBoard::default());
        let publisher = Publisher { board };
        let running: Arc<Mutex<BTreeMap<DeviceId, Running>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (exit_tx, exit_rx) = mpsc::channel();
        let mut handles = BTreeMap::new();
        let mut threads = Vec::new();
        for id in DeviceId::SERIAL {
            let Some(dev) = config.devices.get(id).filter(|d| d.enabled) else {
                publisher.set(id, Health::Absent);
                continue;
            };
            publisher.set(id, Health::Disconnected { why: "opening".into() });
            let (tx, rx) = mpsc::channel();
            let queue: Queue = Arc::default();
            let poll = dev.health_poll.unwrap_or_else(|| default_poll(id));
            let worker = Worker {
                id,
                cfg: dev.clone(),
                factory: factory.clone(),
                publisher: publisher.clone(),
                options: options.clone(),
                poll,
                running: running.clone(),
                stopping: stopping.clone(),
                queue: queue.clone(),
                rx,
            };
            let exit = exit_tx.clone();
            let spawned = std::thread::Builder::new().name(format!("dev-{id}")).spawn(move || {
                worker.run();
                let _ = exit.send(id);
            });
            match spawned {
                Ok(t) => {
                    threads.push((id, t));
                    handles.insert(id, DeviceHandle { id, tx, sink: options.sink.clone(), queue });
                }
                Err(e) => publisher.set(
                    id,
                    Health::Fault {
                        fault: Fault::Internal,
                        detail: format!("cannot start device thread: {e}"),
                    },
                ),
            }
        }
        let state_file = config.paths.state_dir.join("gpio-sim.json");
        let (gpio, gpio_health) = start_gpio(config, &state_file);
        publisher.set(DeviceId::Gpio, gpio_health.clone());
        let (alarm, alarm_rx) = watch::channel(false);
        if let Some(g) = &gpio {
            if config.gpio.lines.contains_key(Output::FaultLed.name()) {
                fault_led_follower(g.outputs(), publisher.board.subscribe(), alarm_rx);
            }
        }
        Manager {
            handles,
            threads: Mutex::new(threads),
            exited: Mutex::new(exit_rx),
            running,
            stopping,
            publisher,
            gpio: Mutex::new(gpio),
            gpio_health,
            gpio_debounce: Duration::from_millis(config.gpio.debounce_ms),
            alarm,
            options,
            van_id: config.van.id.clone(),
        }
    }

    /// The van these devices belong to (stamped on test output).
    pub fn van_id(&self) -> &str {
        &self.van_id
    }

    /// Current health of every device.
    pub fn health(&self) -> BTreeMap<DeviceId, Health> {
        self.publisher.board.borrow().devices.clone()
    }

    /// A watch of the whole health board (for screens, the journal recorder, waiting on a state).
    pub fn watch_health(&self) -> watch::Receiver<HealthBoard> {
        self.publisher.board.subscribe()
    }

    /// Waits until no device is still in its first `opening` state (or `timeout` passes) and the
    /// GPIO inputs have had time to pass their debounce (for one-shot checks such as `vanctl`).
    pub async fn settled(&self, timeout: Duration) {
        if self.gpio_health != Health::Absent {
            tokio::time::sleep(self.gpio_debounce.min(timeout) + Duration::from_millis(25)).await;
        }
        let mut rx = self.watch_health();
        let opening = |b: &HealthBoard| {
            b.devices.values().any(|h| matches!(h, Health::Disconnected { why } if why == "opening"))
        };
        let _ = tokio::time::timeout(timeout, rx.wait_for(|b| !opening(b))).await;
    }

    /// The handle of a configured device.
    pub fn device(&self, id: DeviceId) -> Option<&DeviceHandle> {
        self.handles.get(&id)
    }

    /// Debounced GPIO input changes (tamper, power fail); `None` without GPIO.
    pub fn gpio_events(&self) -> Option<tokio::sync::broadcast::Receiver<GpioEvent>> {
        self.gpio.lock().ok()?.as_ref().map(|g| g.subscribe())
    }

    /// Debounced GPIO inputs and last-set outputs; `None` without GPIO.
    pub fn gpio_state(&self) -> Option<super::gpio::GpioState> {
        self.gpio.lock().ok()?.as_ref().map(|g| g.state())
    }

    /// Holds the fault LED on (`true`, a latched alarm such as tamper) whatever the devices'
    /// health, or lets it follow their health again.
    pub fn set_alarm(&self, on: bool) {
        self.alarm.send_replace(on);
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
    /// The devices are tested in parallel: the whole test takes the slowest device's time.
    pub async fn self_test(&self) -> Vec<SelfTestReport> {
        let timeout = self.options.self_test_timeout;
        let tests: Vec<_> = DeviceId::SERIAL
            .into_iter()
            .map(|id| {
                let job = self.handles.get(&id).map(|h| h.submit("self-test", |d, _ctx| d.self_test()));
                (id, job)
            })
            .collect();
        let mut reports = Vec::new();
        let started = Instant::now();
        for (id, job) in tests {
            let Some(mut job) = job else {
                reports.push(SelfTestReport {
                    device: id.name().into(),
                    ok: true,
                    lines: vec!["not configured in this van (absent)".into()],
                });
                continue;
            };
            let left = timeout.saturating_sub(started.elapsed());
            let r = match job.wait(left).await {
                Ok(o) => o.into_result(id, "self-test"),
                Err(e) => Err(e),
            };
            reports.push(match r {
                Ok(report) => SelfTestReport { device: id.name().into(), ..report },
                Err(e) => SelfTestReport { device: id.name().into(), ok: false, lines: vec![e.to_string()] },
            });
        }
        let gpio_state = self.gpio.lock().ok().and_then(|g| g.as_ref().map(|g| g.state()));
        reports.push(match (gpio_state, &self.gpio_health) {
            (Some(s), _) => {
                let mut lines = vec![format!("backend {}", s.backend)];
                lines.extend(
                    s.inputs.iter().map(|(k, v)| format!("{k}: {}", if *v { "ACTIVE" } else { "inactive" })),
                );
                lines
                    .extend(s.outputs.iter().map(|(k, v)| format!("{k}: {}", if *v { "on" } else { "off" })));
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

    /// Stops every device thread (closing the ports) and the GPIO service, waiting as long as
    /// running jobs take. Safe to call more than once; also done on drop.
    pub fn shutdown(&self) {
        let _ = self.shutdown_within(Duration::from_secs(24 * 3600));
    }

    /// Stops within `budget`: jobs not yet started are cancelled, running jobs are asked to
    /// cancel (where the protocol allows) and given until the budget ends to reach a safe point.
    /// Returns a record (`outcome: "interrupted"`, `may_have_acted: true`) for each job still
    /// running at the end; its device thread is left behind (the process is ending).
    pub fn shutdown_within(&self, budget: Duration) -> Vec<JobRecord> {
        let deadline = Instant::now() + budget;
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(running) = self.running.lock() {
            for r in running.values() {
                r.ctx.cancel.store(true, Ordering::SeqCst);
            }
        }
        for h in self.handles.values() {
            let _ = h.tx.send(Msg::Stop);
        }
        // Jobs still queued are never started: cancel them now, so their outcome (cancelled)
        // reaches their callers and the journal even while a long job holds the device.
        for h in self.handles.values() {
            let queued: Vec<Slot> = h
                .queue
                .lock()
                .map(|mut q| std::mem::take(&mut *q).into_values().collect())
                .unwrap_or_default();
            for slot in queued {
                if let Some(job) = take(&slot) {
                    let (_, reply) = job(Err(JobError::Cancelled {
                        device: h.id.name().into(),
                        what: "queued job".into(),
                    }));
                    reply();
                }
            }
        }
        let mut threads: Vec<_> = self.threads.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        if let Ok(exited) = self.exited.lock() {
            while !threads.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                match exited.recv_timeout(left) {
                    Ok(id) => {
                        if let Some(i) = threads.iter().position(|(t, _)| *t == id) {
                            let (_, t) = threads.swap_remove(i);
                            let _ = t.join();
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        let mut interrupted = Vec::new();
        for (id, _thread) in threads {
            let running = self.running.lock().ok().and_then(|r| r.get(&id).cloned());
            if let Some(r) = running {
                tracing::error!(device = %id, job = %r.id, what = %r.what, "shutdown budget ended during a job");
                interrupted.push(JobRecord {
                    job: r.id,
                    device: id,
                    what: r.what,
                    outcome: "interrupted",
                    fault: None,
                    may_have_acted: true,
                    detail: Some(format!("vand stopped after {} ms of shutdown budget", budget.as_millis())),
                    data: None,
                    ms: r.since.elapsed().as_millis() as u64,
                });
            }
        }
        if let Some(mut g) = self.gpio.lock().ok().and_then(|mut g| g.take()) {
            g.stop();
        }
        interrupted
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown_within(Duration::from_secs(30));
    }
}

/// One-line description of a health state for tables and logs.
pub fn health_line(h: &Health) -> String {
    match h {
        Health::Absent => "absent (not configured)".into(),
        Health::Connected => "connected".into(),
        Health::Busy { what } => format!("busy: {what}"),
        Health::Fault { fault, detail } if detail.is_empty() => {
            format!("FAULT {}: {fault} — {}", fault.code(), fault.action(super::Lang::En))
        }
        Health::Fault { fault, detail } => {
            format!("FAULT {}: {fault} ({detail}) — {}", fault.code(), fault.action(super::Lang::En))
        }
        Health::Disconnected { why } => format!("disconnected: {why}"),
    }
}

/// Whether any device needs attention (the fault LED's meaning).
pub fn any_fault(map: &BTreeMap<DeviceId, Health>) -> bool {
    map.values().any(|h| matches!(h, Health::Fault { .. } | Health::Disconnected { .. }))
}

/// Keeps the fault LED in step with device health, on a small thread that ends with the manager.
fn fault_led_follower(
    leds: super::gpio::OutputHandle,
    mut board: watch::Receiver<HealthBoard>,
    mut alarm: watch::Receiver<bool>,
) {
    let spawned = std::thread::Builder::new().name("fault-led".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
        rt.block_on(async move {
            loop {
                let fault = any_fault(&board.borrow_and_update().devices) || *alarm.borrow_and_update();
                leds.set(Output::FaultLed, fault);
                tokio::select! {
                    changed = board.changed() => if changed.is_err() { break },
                    changed = alarm.changed() => if changed.is_err() { break },
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
        Err(e) => (None, Health::Fault { fault: Fault::Config, detail: e.to_string() }),
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
    next_poll: Instant,
}

/// The idle status query of each kind; `Ok(None)` means ready.
fn poll_status(driver: &mut Driver) -> Result<Option<Fault>, DeviceError> {
    Ok(match driver {
        Driver::Card(d) => d.status()?.faults.first().map(|f| Fault::Card(*f)),
        Driver::Sticker(d) => d.host_status()?.faults.first().map(|f| Fault::Sticker(*f)),
        Driver::Payment(d) => (!d.status()?.ready).then_some(Fault::Payment(PaymentFault::NotReady)),
        Driver::Rfid(d) => (!d.self_test()?.ok).then_some(Fault::Rfid(RfidFault::ModuleError)),
        Driver::Generic(d) => (!d.self_test()?.ok).then_some(Fault::Internal),
    })
}

struct Worker {
    id: DeviceId,
    cfg: DeviceConfig,
    factory: DriverFactory,
    publisher: Publisher,
    options: ManagerOptions,
    /// Idle status-poll interval; zero turns polling off.
    poll: Duration,
    running: Arc<Mutex<BTreeMap<DeviceId, Running>>>,
    stopping: Arc<AtomicBool>,
    queue: Queue,
    rx: mpsc::Receiver<Msg>,
}

impl Worker {
    fn run(self) {
        let mut reopener =
            Reopener::new(self.id.name(), self.cfg.serial.clone(), self.options.backoff.clone());
        let mut open: Option<Open> = None;
        // A permanent driver error (bad option, no such driver): retrying cannot help.
        let mut permanent: Option<String> = None;
        loop {
            if open.is_none() && permanent.is_none() && !self.stopping.load(Ordering::SeqCst) {
                open = self.try_open(&mut reopener, &mut permanent);
            }
            let wait = match (&open, reopener.next_attempt()) {
                (Some(o), _) if !self.poll.is_zero() => {
                    o.next_poll.saturating_duration_since(Instant::now()).min(self.options.idle_check)
                }
                (Some(_), _) | (None, None) => self.options.idle_check,
                (None, Some(t)) => t.saturating_duration_since(Instant::now()).min(self.options.idle_check),
            };
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Msg::Job { id, what, ctx, slot }) => {
                    if let Ok(mut q) = self.queue.lock() {
                        q.remove(&id);
                    }
                    // Already cancelled and answered by a shutdown.
                    let Some(job) = take(&slot) else { continue };
                    if self.stopping.load(Ordering::SeqCst) {
                        // Never start a job once the daemon is stopping: it is cancelled.
                        ctx.cancel.store(true, Ordering::SeqCst);
                    }
                    match &mut open {
                        Some(o) if !ctx.cancelled() => {
                            self.publisher.set(self.id, Health::Busy { what: what.clone() });
                            if let Ok(mut r) = self.running.lock() {
                                r.insert(
                                    self.id,
                                    Running { id, what: what.clone(), since: Instant::now(), ctx },
                                );
                            }
                            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                job(Ok(&mut o.driver))
                            }));
                            if let Ok(mut r) = self.running.lock() {
                                r.remove(&self.id);
                            }
                            let Ok((after, reply)) = ran else {
                                // A driver bug must not take the device thread down: drop the
                                // driver (and the port), report it, and start again from a fresh
                                // open. The caller's oneshot is dropped: its handle reports an
                                // unknown outcome (the driver may have acted before panicking).
                                self.driver_failed(&mut reopener, &format!("driver failed during {what}"));
                                open = None;
                                // Its reply went down with the job: the journal still hears of it.
                                if let Some(sink) = &self.options.sink {
                                    let _ = sink.send(JobRecord {
                                        job: id,
                                        device: self.id,
                                        what: what.clone(),
                                        outcome: "unknown",
                                        fault: Some(Fault::Internal),
                                        may_have_acted: true,
                                        detail: Some("the driver failed internally during the job".into()),
                                        data: None,
                                        ms: 0,
                                    });
                                }
                                continue;
                            };
                            if o.unplugged.load(Ordering::SeqCst) {
                                open = None;
                                self.unplugged(&mut reopener);
                            } else {
                                self.publisher.set(self.id, after.unwrap_or(Health::Connected));
                                o.next_poll = Instant::now() + self.poll;
                            }
                            reply();
                        }
                        _ => {
                            let why = match (&permanent, reopener.last_error()) {
                                (Some(why), _) => why.clone(),
                                (None, Some(e)) => e.to_owned(),
                                (None, None) => "port not open".into(),
                            };
                            let err = if ctx.cancelled() {
                                JobError::Cancelled { device: self.id.name().into(), what }
                            } else {
                                JobError::NotConnected { device: self.id.name().into(), why }
                            };
                            let (_, reply) = job(Err(err));
                            reply();
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let Some(o) = &mut open else { continue };
                    let gone =
                        o.unplugged.load(Ordering::SeqCst) || o.probe.as_ref().is_some_and(|p| p.hung_up());
                    if gone {
                        open = None;
                        self.unplugged(&mut reopener);
                        continue;
                    }
                    if !self.poll.is_zero() && Instant::now() >= o.next_poll {
                        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            poll_status(&mut o.driver)
                        }));
                        o.next_poll = Instant::now() + self.poll;
                        match polled {
                            _ if o.unplugged.load(Ordering::SeqCst) => {
                                open = None;
                                self.unplugged(&mut reopener);
                            }
                            Ok(Ok(None)) => self.publisher.set(self.id, Health::Connected),
                            Ok(Ok(Some(fault))) => self.publisher.set(self.id, Health::fault(fault)),
                            Ok(Err(e)) => {
                                if let Some(h) = e.health() {
                                    self.publisher.set(self.id, h);
                                }
                            }
                            Err(_) => {
                                self.driver_failed(&mut reopener, "status poll failed");
                                open = None;
                            }
                        }
                    }
                }
            }
        }
        drop(open);
    }

    /// A driver bug must not take the device thread down: the caller drops the driver (and the
    /// port); this reports it and schedules a fresh open.
    fn driver_failed(&self, reopener: &mut Reopener, detail: &str) {
        tracing::error!(device = %self.id, "{detail} (driver panicked)");
        reopener.after_unplug(Instant::now());
        self.publisher.set(self.id, Health::Fault { fault: Fault::Internal, detail: detail.to_owned() });
    }

    fn unplugged(&self, reopener: &mut Reopener) {
        reopener.after_unplug(Instant::now());
        self.publisher.set(
            self.id,
            Health::Disconnected {
                why: format!("unplugged from {}; reconnecting", self.cfg.serial.path.display()),
            },
        );
    }

    fn try_open(&self, reopener: &mut Reopener, permanent: &mut Option<String>) -> Option<Open> {
        let link = match reopener.try_open(Instant::now()) {
            Ok(Some(link)) => link,
            Ok(None) => return None,
            Err(e) => {
                self.publisher.set(self.id, Health::Disconnected { why: e.to_string() });
                return None;
            }
        };
        let probe = link.hangup_probe();
        let unplugged = Arc::new(AtomicBool::new(false));
        let watched = WatchedLink { inner: Box::new(link), unplugged: unplugged.clone() };
        match (self.factory)(self.id, &self.cfg, Box::new(watched)) {
            Ok(driver) => {
                self.publisher.set(self.id, Health::Connected);
                // First status poll right away: a device that is plugged in with its cover open
                // shows the fault at once.
                Some(Open { driver, probe, unplugged, next_poll: Instant::now() })
            }
            Err(e) => {
                let why = e.to_string();
                match &e {
                    DeviceError::Config { .. } | DeviceError::Unsupported { .. } => {
                        self.publisher
                            .set(self.id, Health::Fault { fault: Fault::Config, detail: why.clone() });
                        *permanent = Some(why);
                    }
                    DeviceError::Fault { .. } | DeviceError::AfterActing(_) => {
                        if let Some(h) = e.health() {
                            self.publisher.set(self.id, h);
                        }
                        reopener.after_unplug(Instant::now());
                    }
                    DeviceError::Link(_) | DeviceError::Protocol { .. } => {
                        self.publisher.set(self.id, Health::Disconnected { why });
                        reopener.after_unplug(Instant::now());
                    }
                }
                None
            }
        }
    }
}
