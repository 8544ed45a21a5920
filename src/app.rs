//! The composition root: what `vand` runs, wired in one place.
//!
//! [`App`] holds the shared pieces (configuration, journal handle, device manager); modules get
//! what they need from it and never reach for globals or reload secrets. A [`Supervisor`] runs the
//! daemon's services (control socket, health recorder, job recorder, and next the local API and
//! the sync task) as siblings under one cancellation, and [`App::stop`] brings everything down
//! within a bounded budget: running device steps reach a safe point or are recorded as
//! interrupted, every job outcome is journaled, and only then is `daemon.stop` written.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::devices::gpio::GpioEvent;
use crate::devices::manager::{HealthBoard, JobRecord, Manager, ManagerOptions, default_factory};
use crate::devices::{DeviceId, Health};
use crate::journal::Journal;

use crate::journal::kinds::{
    self, DeviceHealth, DeviceJob, DevicesHealth, HealthState, InputChange, JobOutcome,
};

/// The journal's typed form of a job record (the catalogue lives in the shared journal crate,
/// which knows nothing of devices).
pub fn job_payload(r: &JobRecord) -> DeviceJob {
    let outcome = match r.outcome {
        "done" => JobOutcome::Done,
        "failed" => JobOutcome::Failed,
        "cancelled" => JobOutcome::Cancelled,
        "interrupted" => JobOutcome::Interrupted,
        _ => JobOutcome::Unknown,
    };
    DeviceJob {
        job: r.job.0,
        device: r.device.name().into(),
        what: r.what.clone(),
        outcome,
        fault: r.fault.map(|f| f.code()),
        may_have_acted: r.may_have_acted,
        detail: r.detail.clone(),
        data: r.data.clone(),
        ms: r.ms,
    }
}

/// The journal's typed form of a device's health.
pub fn health_payload(h: &Health) -> HealthState {
    match h {
        Health::Absent => HealthState::Absent,
        Health::Connected => HealthState::Connected,
        Health::Busy { what } => HealthState::Busy { what: what.clone() },
        Health::Fault { fault, detail } => HealthState::Fault { fault: fault.code(), detail: detail.clone() },
        Health::Disconnected { why } => HealthState::Disconnected { why: why.clone() },
    }
}

/// The daemon's shared pieces.
pub struct App {
    /// The configuration it runs with.
    pub config: Config,
    /// The journal (one writer thread behind it; this is a handle).
    pub journal: Journal,
    /// The device threads.
    pub manager: Arc<Manager>,
    /// The service desk behind the local API (after [`App::start_office`]).
    pub office: Option<Arc<crate::office::front::Office>>,
    /// The uplink to HQ (after [`App::start_sync`], when `[sync]` enables it).
    pub sync: Option<crate::sync::UplinkHandle>,
    sync_task: Option<crate::sync::UplinkTask>,
    sync_why_not: String,
    /// The training van's local HQ, stopped with the daemon.
    pub training_hq: Option<crate::sync::training::TrainingHq>,
    jobs: Option<mpsc::UnboundedReceiver<JobRecord>>,
}

impl App {
    /// Starts the device manager with its job outcomes going to the journal.
    pub fn start(config: Config, journal: Journal) -> App {
        let (sink, jobs) = mpsc::unbounded_channel();
        let options = ManagerOptions { sink: Some(sink), ..ManagerOptions::default() };
        let manager = Arc::new(Manager::start_with(&config, default_factory(), options));
        App {
            config,
            journal,
            manager,
            office: None,
            sync: None,
            sync_task: None,
            sync_why_not: "sync.enabled is false".into(),
            training_hq: None,
            jobs: Some(jobs),
        }
    }

    /// Builds the uplink to HQ from `[sync]` (and the training HQ in simulation). A failure is
    /// logged and shown by `vanctl sync status`; the van goes on serving offline.
    pub async fn start_sync(&mut self) {
        match crate::sync::start(&self.config, &self.journal).await {
            Ok(Some(s)) => {
                let mut task = s.task;
                if let Some(office) = &self.office {
                    // Down-sync and live dossier lookups ride on the uplink's client and pinned key.
                    let link = crate::sync::downlink::Downlink::new(
                        Arc::new(s.client),
                        s.hq_key,
                        self.config.van.id.clone(),
                    );
                    office.set_live_dossiers(Arc::new(link.dossiers()));
                    task = task.on_session(crate::sync::downlink::session_hook(link, office.clone()));
                }
                self.sync = Some(s.handle);
                self.sync_task = Some(task);
                self.training_hq = s.training;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("sync with HQ not started: {e:#}");
                self.sync_why_not = format!("not started: {e:#}");
            }
        }
    }

    /// Starts the service desk (office.db, the workflow shell with its crash recovery, and in
    /// simulation the training day). Its API is served by [`App::run_services`].
    pub async fn start_office(&mut self) -> anyhow::Result<()> {
        let office =
            crate::office::boot::start(&self.config, self.journal.clone(), self.manager.clone()).await?;
        self.office = Some(office);
        Ok(())
    }

    /// Starts the daemon's services under one cancellation. `power_fail` gets `"power-fail"` when
    /// the daemon must stop for a power failure; loops that matter beat `liveness` (when given,
    /// each must beat within `max_silence`).
    pub fn run_services(
        &mut self,
        power_fail: mpsc::Sender<&'static str>,
        liveness: Option<(&crate::watchdog::Liveness, Duration)>,
    ) -> Supervisor {
        let mut sup = Supervisor::new();
        let socket = crate::control::socket_path(&self.config.paths.state_dir);
        let manager = self.manager.clone();
        let limits = crate::control::Limits::from(&self.config.control);
        let mut extras: Vec<crate::control::Extra> = Vec::new();
        if let Some(o) = self.office.clone() {
            let in_effect = self.config.hq_settings.as_ref().map(|h| h.record());
            extras
                .push(Arc::new(crate::office::front::OfficeExtra::new(o).with_settings_in_effect(in_effect)));
        }
        let sync = Arc::new(crate::sync::SyncControl::new(self.sync.clone(), self.sync_why_not.clone()));
        if let Some(o) = &self.office {
            o.set_sync_status(sync.clone());
        }
        extras.push(sync);
        let extra = Some(Arc::new(crate::control::Extras::new(extras)) as crate::control::Extra);
        if let Some(task) = self.sync_task.take() {
            sup.spawn("uplink", move |cancel| task.run(cancel));
        }
        sup.spawn("control socket", move |cancel| async move {
            if let Err(e) = crate::control::serve_with_extra(&socket, manager, limits, extra, cancel).await {
                tracing::error!("control socket: {e}");
            }
        });
        if let Some(office) = self.office.clone() {
            let addrs = self.config.api.listen.clone();
            sup.spawn("local API", move |mut cancel| async move {
                let stop = async move {
                    let _ = cancel.wait_for(|c| *c).await;
                };
                if let Err(e) = crate::api::serve(office, addrs, stop).await {
                    tracing::error!("local API: {e}");
                }
            });
        }
        let jobs = self.jobs.take();
        let journal = self.journal.clone();
        sup.spawn("job recorder", move |cancel| record_jobs(journal, jobs, cancel));
        let (journal, board) = (self.journal.clone(), self.manager.watch_health());
        sup.spawn("health recorder", move |cancel| record_health(journal, board, cancel));
        let (journal, events, manager) =
            (self.journal.clone(), self.manager.gpio_events(), self.manager.clone());
        let state = move || manager.gpio_state();
        let duties = GpioDuties {
            office: self.office.clone(),
            power: crate::power::PowerMonitor::new(self.config.power.ride_through),
            manager: self.manager.clone(),
            heartbeat: liveness.map(|(l, max)| l.heartbeat("gpio recorder", max)),
        };
        sup.spawn("gpio recorder", move |cancel| {
            record_gpio(journal, events, state, duties, power_fail, cancel)
        });
        if let Some((live, max)) = liveness {
            let every = (max / 4).max(Duration::from_millis(100));
            let journal = self.journal.clone();
            let beat = live.heartbeat("journal writer", max);
            sup.spawn("journal probe", move |cancel| {
                probe_loop(
                    beat,
                    every,
                    move || {
                        let j = journal.clone();
                        async move {
                            let _ = tokio::task::spawn_blocking(move || j.probe_writer()).await;
                        }
                    },
                    cancel,
                )
            });
            if let Some(office) = self.office.clone() {
                let beat = live.heartbeat("service desk", max);
                sup.spawn("desk probe", move |cancel| {
                    probe_loop(
                        beat,
                        every,
                        move || {
                            let o = office.clone();
                            async move { o.probe().await }
                        },
                        cancel,
                    )
                });
            }
        }
        sup
    }

    /// Stops the services and the devices within `budget`, journaling every outcome; returns
    /// how many jobs were interrupted (their records say `interrupted`).
    pub async fn stop(&self, sup: Supervisor, budget: Duration) -> usize {
        let started = Instant::now();
        // Keep a margin for the journal records that follow.
        let devices_budget =
            budget.saturating_sub(Duration::from_millis(1500)).max(Duration::from_millis(500));
        let journal_jobs = sup.stop_all_but("job recorder").await;
        let m = self.manager.clone();
        let interrupted =
            tokio::task::spawn_blocking(move || m.shutdown_within(devices_budget)).await.unwrap_or_default();
        // Every outcome delivered before the threads ended is in the channel: let the job
        // recorder drain it, then record the interrupted ones.
        let n = interrupted.len();
        if let Some(jobs) = journal_jobs {
            let _ = jobs.cancel.send(true);
            let left = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(200));
            if tokio::time::timeout(left, jobs.task).await.is_err() {
                tracing::error!("job recorder did not finish within the shutdown budget");
            }
        }
        for r in interrupted {
            append(&self.journal, kinds::DEVICE_JOB, &job_payload(&r)).await;
        }
        n
    }
}

/// Resolves when the cancellation turns true (or its sender is gone).
async fn until(cancel: &mut watch::Receiver<bool>) {
    let done = cancel.wait_for(|c| *c).await.is_ok();
    let _ = done;
}

async fn append<T: serde::Serialize>(journal: &Journal, kind: &str, payload: &T) {
    append_seq(journal, kind, payload).await;
}

/// Like [`append`], returning the record's sequence number (0 when it could not be written).
async fn append_seq<T: serde::Serialize>(journal: &Journal, kind: &str, payload: &T) -> u64 {
    let value = match serde_json::to_value(payload) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(%kind, "cannot serialise a record payload: {e}");
            return 0;
        }
    };
    match journal.append_async(kind, &value).await {
        Ok(a) => a.seq,
        Err(e) => {
            tracing::error!(error = %e, %kind, "could not journal");
            0
        }
    }
}

/// Sibling tasks, each with its own cancellation, all stopped together.
#[derive(Default)]
pub struct Supervisor {
    tasks: Vec<(&'static str, watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// A task taken out of the supervisor to be stopped last.
pub struct Held {
    /// Its own cancellation.
    pub cancel: watch::Sender<bool>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// An empty supervisor.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Runs the task `f` makes as a named sibling; it must end soon after its cancellation
    /// turns true.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (cancel, rx) = watch::channel(false);
        self.tasks.push((name, cancel, tokio::spawn(f(rx))));
    }

    /// Cancels every task but `keep` and waits for them; returns `keep` to stop later.
    pub async fn stop_all_but(self, keep: &str) -> Option<Held> {
        let mut held = None;
        let mut waiting = Vec::new();
        for (name, cancel, task) in self.tasks {
            if name == keep {
                held = Some(Held { cancel, task });
            } else {
                let _ = cancel.send(true);
                waiting.push((name, task));
            }
        }
        for (name, task) in waiting {
            if let Err(e) = task.await {
                tracing::error!("{name} ended abnormally: {e}");
            }
        }
        held
    }

    /// Cancels every task and waits for them.
    pub async fn stop(self) {
        if let Some(h) = self.stop_all_but("").await {
            let _ = h.cancel.send(true);
            let _ = h.task.await;
        }
    }
}

/// Journals every job outcome (`device.job`). After cancellation it drains what is queued and
/// ends: the channel is unbounded, so no outcome is ever dropped for lack of room.
async fn record_jobs(
    journal: Journal,
    jobs: Option<mpsc::UnboundedReceiver<JobRecord>>,
    mut cancel: watch::Receiver<bool>,
) {
    let Some(mut jobs) = jobs else { return };
    loop {
        tokio::select! {
            biased;
            r = jobs.recv() => match r {
                Some(r) => append(&journal, kinds::DEVICE_JOB, &job_payload(&r)).await,
                None => return,
            },
            _ = until(&mut cancel) => break,
        }
    }
    while let Ok(r) = jobs.try_recv() {
        append(&journal, kinds::DEVICE_JOB, &job_payload(&r)).await;
    }
}

/// Records device health transitions (`device.health`) from the health board: the recorder
/// compares the board's stable states and change counters with what it last recorded, so no
/// transition is lost even if it falls behind (a missed intermediate state shows as
/// `changes > 1`). Busy/idle during jobs is not recorded (the jobs' own records are).
async fn record_health(
    journal: Journal,
    mut board: watch::Receiver<HealthBoard>,
    mut cancel: watch::Receiver<bool>,
) {
    let first = board.borrow_and_update().clone();
    let devices = first.stable.iter().map(|(d, h)| (d.name().to_owned(), health_payload(h))).collect();
    append(&journal, kinds::DEVICES_HEALTH, &DevicesHealth { devices }).await;
    let mut recorded: BTreeMap<DeviceId, u64> = first.changes.clone();
    loop {
        let now = board.borrow_and_update().clone();
        for (device, count) in &now.changes {
            let before = recorded.get(device).copied().unwrap_or(0);
            if *count == before {
                continue;
            }
            if let Some(health) = now.stable.get(device) {
                let payload = DeviceHealth {
                    device: device.name().into(),
                    health: health_payload(health),
                    changes: count - before,
                };
                append(&journal, kinds::DEVICE_HEALTH, &payload).await;
            }
            recorded.insert(*device, *count);
        }
        tokio::select! {
            changed = board.changed() => if changed.is_err() { return },
            _ = until(&mut cancel) => return,
        }
    }
}

/// What the GPIO recorder acts on besides the journal.
pub struct GpioDuties {
    /// The service desk (drained on a power failure; holds the tamper latch).
    pub office: Option<Arc<crate::office::front::Office>>,
    /// The power-fail decisions (`[power] ride_through_s`).
    pub power: crate::power::PowerMonitor,
    /// The LEDs and buzzer.
    pub manager: Arc<Manager>,
    /// Beaten each time round the loop (the watchdog's "gpio recorder").
    pub heartbeat: Option<crate::watchdog::Heartbeat>,
}

/// How often the GPIO recorder goes round its loop when nothing happens (its heartbeat).
const GPIO_TICK: Duration = Duration::from_millis(500);

/// Records tamper and power-fail inputs (`gpio.tamper`, `power.fail`) and acts on them: a
/// power failure drains the desk at once and asks the daemon to stop once it outlasts the
/// ride-through time (`power.restored` when mains is back in time); an opened case latches the
/// tamper alarm (fault LED and buzzer on). Inputs are levels: if the recorder ever falls behind
/// the event queue, it records the inputs' current levels instead of the missed edges.
async fn record_gpio(
    journal: Journal,
    events: Option<tokio::sync::broadcast::Receiver<GpioEvent>>,
    state: impl Fn() -> Option<crate::devices::gpio::GpioState> + Send,
    mut duties: GpioDuties,
    stop: mpsc::Sender<&'static str>,
    mut cancel: watch::Receiver<bool>,
) {
    let Some(mut events) = events else { return };
    // A latch from before a restart lights the alarm again.
    if duties.office.as_ref().is_some_and(|o| o.tamper_latched().is_some()) {
        tamper_outputs(&duties.manager, true);
    }
    // An input already active before this recorder subscribed (mains lost or the box open at
    // start) is acted on now; its event, if it comes as well, changes nothing more.
    let mut first: Option<Vec<GpioEvent>> = Some(levels(&state, true));
    loop {
        if let Some(h) = &duties.heartbeat {
            h.beat();
        }
        let wake = duties.power.deadline().map(tokio::time::Instant::from_std);
        let batch: Vec<GpioEvent> = if let Some(b) = first.take() {
            b
        } else {
            tokio::select! {
                e = events.recv() => match e {
                    Ok(e) => vec![e],
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::error!("{n} GPIO events were skipped (the recorder fell behind): recording current levels");
                        levels(&state, false)
                    }
                    Err(_) => return,
                },
                _ = sleep_until_some(wake) => Vec::new(),
                _ = tokio::time::sleep(GPIO_TICK) => Vec::new(),
                _ = until(&mut cancel) => return,
            }
        };
        for event in batch {
            let (kind, active) = match event {
                GpioEvent::Tamper { active } => (kinds::GPIO_TAMPER, active),
                GpioEvent::PowerFail { active } => (kinds::POWER_FAIL, active),
            };
            if active {
                tracing::warn!("{kind}: active");
            }
            let seq = append_seq(&journal, kind, &InputChange { active }).await;
            match event {
                GpioEvent::Tamper { active } => {
                    if let Some(o) = &duties.office {
                        o.tamper_switch(active, seq).await;
                    }
                    if active {
                        tamper_outputs(&duties.manager, true);
                    }
                }
                GpioEvent::PowerFail { active } => {
                    let action = duties.power.input(active, std::time::Instant::now());
                    power_action(&journal, &duties, action).await;
                }
            }
        }
        let action = duties.power.poll(std::time::Instant::now());
        if action == crate::power::PowerAction::Stop {
            power_action(&journal, &duties, action).await;
            let _ = stop.send("power-fail").await;
        }
    }
}

/// The inputs' current levels as events (only the active ones with `active_only`).
fn levels(state: &impl Fn() -> Option<crate::devices::gpio::GpioState>, active_only: bool) -> Vec<GpioEvent> {
    let inputs = state().map(|s| s.inputs).unwrap_or_default();
    inputs
        .iter()
        .filter(|(_, active)| **active || !active_only)
        .filter_map(|(name, active)| {
            crate::devices::gpio::Input::from_name(name).map(|i| GpioEvent::new(i, *active))
        })
        .collect()
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The tamper alarm's outputs: fault LED and buzzer, steady until a supervisor clears the alarm
/// (an active buzzer module sounds on its own; a steady line needs no timing from vand).
pub fn tamper_outputs(manager: &Manager, on: bool) {
    use crate::devices::gpio::Output;
    manager.set_output(Output::Buzzer, on);
    // The fault LED follows device health; the alarm holds it on.
    manager.set_alarm(on);
}

async fn power_action(journal: &Journal, duties: &GpioDuties, action: crate::power::PowerAction) {
    use crate::power::PowerAction;
    match action {
        PowerAction::None => {}
        PowerAction::Drain => {
            if let Some(o) = &duties.office {
                o.set_power_failing(true);
            }
            tracing::warn!("mains lost: running on the UPS; no new service starts");
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(
                "mains lost: on UPS, taking no new services",
            )]);
        }
        PowerAction::Restore { away } => {
            let away_ms = away.as_millis() as u64;
            append(journal, kinds::POWER_RESTORED, &kinds::PowerRestored { away_ms }).await;
            if let Some(o) = &duties.office {
                o.set_power_failing(false);
            }
            tracing::warn!(away_ms, "mains restored within the ride-through time: taking services again");
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status("running")]);
        }
        PowerAction::Stop => {
            tracing::warn!("mains did not return within the ride-through time: stopping while the UPS holds");
        }
    }
}

/// Probes a shared resource every `every`, beating `heartbeat` after each probe that returns.
async fn probe_loop<F, Fut>(
    heartbeat: crate::watchdog::Heartbeat,
    every: Duration,
    probe: F,
    mut cancel: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        probe().await;
        heartbeat.beat();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = until(&mut cancel) => return,
        }
    }
}
