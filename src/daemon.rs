//! The daemon: open the journal (verifying its tail), record the start, run until SIGTERM or
//! SIGINT, record the stop. Device and console tasks hang off this loop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, Mode};
use crate::devices::Health;
use crate::devices::gpio::{GpioEvent, Output};
use crate::devices::manager::Manager;
use crate::journal::{FirstStart, Journal, JournalOptions, JournalOwner, OpenReport, PreviousStop, kinds};

/// Opens the van's journal with its key file (see [`Journal::open_van`] for the rules: a first
/// start creates both only in simulation; a missing journal or key stops with what to restore; an
/// interrupted handover is finished).
pub fn open_journal(config: &Config) -> anyhow::Result<(JournalOwner, OpenReport)> {
    let opts = journal_options(config);
    let first_start = match config.mode {
        Mode::Production => FirstStart::Refuse,
        Mode::Simulation => FirstStart::Create,
    };
    Ok(Journal::open_van(&config.paths.journal_path(), &config.paths.key_path(), &opts, first_start)?)
}

/// The journal options a configuration gives.
pub fn journal_options(config: &Config) -> JournalOptions {
    JournalOptions {
        van_id: config.van.id.clone(),
        checkpoint_every: config.journal.checkpoint_every,
        max_pages: None,
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Journal, key and sockets hold citizen data and secrets: nothing for "others".
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o027) };
    crate::keys::create_private_dir(&config.paths.state_dir)
        .with_context(|| format!("creating state folder {}", config.paths.state_dir.display()))?;
    // Handlers first: a SIGTERM right after "ready" must reach the clean-stop path.
    let signals = Signals::install()?;
    let cfg = config.clone();
    let (journal, report) = tokio::task::spawn_blocking(move || open_journal(&cfg)).await??;
    let previous = report.previous_stop.as_str();
    if report.previous_stop == PreviousStop::Unclean {
        tracing::warn!("the previous run did not stop cleanly (power loss or kill); recorded in the journal");
    }
    let start = journal
        .append_async(
            kinds::DAEMON_START,
            &serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "mode": config.mode,
                "config": config.source,
                "previous_stop": previous,
                "records_verified_at_open": report.verified,
                "open_ms": report.elapsed.as_millis() as u64,
            }),
        )
        .await?;
    tracing::info!(
        van = %config.van.id,
        journal = %journal.path().display(),
        records = start.seq,
        verified_since_checkpoint = report.verified,
        open_ms = report.elapsed.as_secs_f64() * 1000.0,
        "ready"
    );

    let mut simulators = None;
    if config.mode == Mode::Simulation {
        ensure_sim_tag_secret(&config)?;
        if config.simulation.devices {
            simulators = start_simulators(&config)?;
        }
    }
    // Devices: one thread per port; health and GPIO events come back as events.
    let manager = Arc::new(Manager::start(&config));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let socket = crate::control::socket_path(&config.paths.state_dir);
    let control = tokio::spawn({
        let manager = manager.clone();
        async move {
            if let Err(e) = crate::control::serve(&socket, manager, stop_rx).await {
                tracing::error!("control socket: {e}");
            }
        }
    });
    let (power_tx, power_rx) = tokio::sync::mpsc::channel(1);
    let recorders = vec![
        tokio::spawn(record_health((*journal).clone(), manager.subscribe(), manager.health())),
        tokio::spawn(record_gpio((*journal).clone(), manager.gpio_events(), power_tx)),
    ];
    manager.set_output(Output::ReadyLed, true);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    let reason = signals.wait_for_stop(power_rx).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(%reason, "stopping");
    manager.set_output(Output::ReadyLed, false);
    let _ = stop_tx.send(true);
    let _ = control.await;
    for r in recorders {
        r.abort();
    }
    let m = manager.clone();
    tokio::task::spawn_blocking(move || m.shutdown()).await?;
    if let Some(sim) = simulators {
        let _ = std::fs::remove_file(&config.simulation.control);
        tokio::task::spawn_blocking(move || sim.shutdown()).await?;
    }
    let stop = journal.append_async(kinds::DAEMON_STOP, &serde_json::json!({ "reason": reason })).await;
    match stop {
        Ok(a) => tracing::info!(seq = a.seq, "stop recorded"),
        Err(e) => tracing::error!(error = %e, "could not record the stop"),
    }
    tokio::task::spawn_blocking(move || journal.close()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, caught from start-up on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Waits for SIGTERM, SIGINT or another stop reason (UPS power failure), sending watchdog
    /// pings meanwhile when systemd asks for them.
    async fn wait_for_stop(self, mut other: tokio::sync::mpsc::Receiver<&'static str>) -> &'static str {
        let Signals { mut term, mut int } = self;
        let watchdog_timeout = sd_notify::watchdog_enabled();
        let watchdog = watchdog_timeout.is_some();
        let period = watchdog_timeout.unwrap_or(Duration::from_secs(2)).max(Duration::from_millis(200)) / 2;
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
            Some(reason) = other.recv() => return reason,
                _ = tick.tick(), if watchdog => { let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]); }
            }
        }
    }
}

/// Serves the simulated devices inside vand (simulation mode), unless a van-sim already answers on
/// the control socket.
fn start_simulators(config: &Config) -> anyhow::Result<Option<Arc<crate::sim::host::SimHost>>> {
    use crate::sim::host::{Scenario, SimHost, claim_control, default_factory, serve_control};
    let sim = &config.simulation;
    let listener = match claim_control(&sim.control) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!("{e}: using its devices");
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("simulator control socket {}", sim.control.display()));
        }
    };
    let scenario = if sim.scenario.exists() {
        Scenario::load(&sim.scenario)?
    } else {
        tracing::warn!("scenario {} not found: realistic timing, no faults", sim.scenario.display());
        Scenario::default()
    };
    let mut host = SimHost::start(&scenario, &sim.device_dir, default_factory)
        .with_context(|| format!("serving simulated devices in {}", sim.device_dir.display()))?;
    host.set_gpio_file(&config.paths.state_dir.join("gpio-sim.json"));
    let host = Arc::new(host);
    serve_control(host.clone(), listener);
    tracing::info!(
        "simulated devices in {}; control: `van-sim --control {} ctl status|fault DEV NAME|unplug DEV|replug DEV`",
        sim.device_dir.display(),
        sim.control.display()
    );
    Ok(Some(host))
}

/// In simulation, creates the e-sticker tag secret named by `devices.rfid.options.password_file`
/// (32 random bytes as hex, mode 0600) if it does not exist yet, as the signing key is.
fn ensure_sim_tag_secret(config: &Config) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = config
        .devices
        .rfid
        .as_ref()
        .and_then(|d| d.options.get("password_file"))
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
    else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, secret.as_mut());
    let text = zeroize::Zeroizing::new(hex::encode(secret.as_ref()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating the simulation tag secret {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    tracing::info!(path = %path.display(), "created simulation e-sticker tag secret");
    Ok(())
}

/// The name of a health state, for recording transitions (not every detail change).
fn state_name(h: &Health) -> &'static str {
    match h {
        Health::Absent => "absent",
        Health::Connected => "connected",
        Health::Busy { .. } => "busy",
        Health::Fault { .. } => "fault",
        Health::Disconnected { .. } => "disconnected",
    }
}

/// Records device health transitions in the journal (`device.health`): faults, disconnects and
/// recoveries are on record. Busy/idle changes during jobs are not (the job's own records are).
async fn record_health(
    journal: Journal,
    mut events: tokio::sync::broadcast::Receiver<crate::devices::manager::HealthEvent>,
    initial: BTreeMap<String, Health>,
) {
    let mut last: BTreeMap<String, &'static str> =
        initial.iter().map(|(k, v)| (k.clone(), state_name(v))).collect();
    if let Err(e) = journal.append_async("devices.health", &serde_json::json!({ "devices": initial })).await {
        tracing::error!(error = %e, "could not record the devices' health");
    }
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} device health events were not recorded (too many at once)");
                continue;
            }
            Err(_) => return,
        };
        let name = state_name(&event.health);
        if name == "busy" || last.get(&event.device) == Some(&name) {
            continue;
        }
        // Connected after busy is the normal end of a job, not a recovery.
        let previous = last.insert(event.device.clone(), name);
        if name == "connected" && matches!(previous, Some("busy") | Some("connected")) {
            continue;
        }
        let payload = serde_json::json!({ "device": event.device, "health": event.health });
        if let Err(e) = journal.append_async("device.health", &payload).await {
            tracing::error!(error = %e, "could not record a device health change");
        }
    }
}

/// Records tamper and power-fail inputs (`gpio.tamper`, `power.fail`); a power failure asks the
/// daemon to stop cleanly while the UPS still holds.
async fn record_gpio(
    journal: Journal,
    events: Option<tokio::sync::broadcast::Receiver<GpioEvent>>,
    stop: tokio::sync::mpsc::Sender<&'static str>,
) {
    let Some(mut events) = events else { return };
    while let Ok(event) = events.recv().await {
        let (kind, active) = match event {
            GpioEvent::Tamper { active } => ("gpio.tamper", active),
            GpioEvent::PowerFail { active } => ("power.fail", active),
        };
        if active {
            tracing::warn!("{kind}: active");
        }
        if let Err(e) = journal.append_async(kind, &serde_json::json!({ "active": active })).await {
            tracing::error!(error = %e, "could not record {kind}");
        }
        if matches!(event, GpioEvent::PowerFail { active: true }) {
            let _ = stop.send("power-fail").await;
        }
    }
}
