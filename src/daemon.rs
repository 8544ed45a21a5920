//! The daemon: open the journal (verifying its tail), record the start, run until SIGTERM or
//! SIGINT, record the stop. Device and console tasks hang off this loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, Mode};
use crate::devices::gpio::Output;
use crate::journal::kinds::{self, DaemonStart, DaemonStop, PreviousStop, RunMode, StopReason};
use crate::journal::{FirstStart, Journal, JournalOptions, JournalOwner, OpenReport};

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
    // From the writer's status block: a `vanctl key rotate` between runs, or a stop record lost
    // to a full disk, is not an unclean stop.
    let previous = report.previous_stop;
    if previous == PreviousStop::Unclean {
        tracing::warn!("the previous run did not stop cleanly (power loss or kill); recorded in the journal");
    }
    let start = journal
        .append_async(
            kinds::DAEMON_START,
            &payload(&DaemonStart {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                mode: match config.mode {
                    Mode::Production => RunMode::Production,
                    Mode::Simulation => RunMode::Simulation,
                },
                config: config.source.clone(),
                previous_stop: previous,
                records_verified_at_open: report.verified,
                open_ms: report.elapsed.as_millis() as u64,
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

    // SIGHUP reads this file again (not HQ's settings put over it below).
    let mut reloader = crate::reload::Reloader::new(&config, (*journal).clone());

    // Settings HQ sent (a `settings` bundle in office.db) take effect here, at a start, before
    // the devices open: a transaction in flight keeps the profile its intents were made with.
    let config =
        tokio::task::spawn_blocking(move || crate::office::boot::with_applied_settings(config)).await?;
    if let Some(h) = &config.hq_settings {
        journal.append_async(crate::office::boot::SETTINGS_EFFECTIVE, &h.record()).await?;
    }

    let mut simulators = None;
    if config.mode == Mode::Simulation {
        ensure_sim_tag_secret(&config)?;
        if config.simulation.devices {
            simulators = start_simulators(&config)?;
        }
    }
    // The composition root: devices (one thread per port), their job outcomes and health
    // transitions into the journal, the control socket; all under one supervisor.
    // Ports reopen after every replug and the control socket takes clients: never run short of
    // descriptors because of a low soft limit.
    match crate::control::raise_fd_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the open-files limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("could not raise the open-files limit: {e}"),
    }
    let budget = config.daemon.shutdown_budget;
    let mut app = crate::app::App::start(config.clone(), (*journal).clone());
    app.start_office().await.context("starting the service desk")?;
    app.start_sync().await;
    // A reload hands its live keys to the desk and the uplink; HQ's hours keep winning.
    reloader.attach(crate::reload::Targets {
        office: app.office.clone(),
        uplink: app.sync.clone(),
        in_force: crate::reload::InForce { hq_sets_hours: crate::office::boot::hq_sets_hours(&config) },
    });
    let (power_tx, power_rx) = tokio::sync::mpsc::channel(1);
    // systemd's watchdog: the loops that matter beat within half its timeout; pings go out at
    // half of it, and only while none of them is stalled.
    let watchdog = sd_notify::watchdog_enabled().map(|timeout| (crate::watchdog::Liveness::new(), timeout));
    let services = app.run_services(power_tx, watchdog.as_ref().map(|(l, t)| (l, allowed_silence(*t))));
    app.manager.set_output(Output::ReadyLed, true);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("running")]);

    let reason = signals.wait_for_stop(power_rx, watchdog, reloader).await;
    let stop_started = std::time::Instant::now();
    // A power-fail stop must end while the UPS holds: its budget is what the hold-up time
    // leaves after the ride-through ([power], docs/hardware.md).
    let budget = match reason {
        StopReason::PowerFail => config.power.stop_budget(&config.daemon),
        _ => budget,
    };
    let status = match reason {
        StopReason::PowerFail => format!(
            "stopping: mains lost for {} s (UPS holds {} s); clean stop within {} ms",
            config.power.ride_through.as_secs(),
            config.power.hold_up.as_secs(),
            budget.as_millis()
        ),
        r => format!("stopping: {}", r.as_str()),
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status(&status)]);
    tracing::info!(reason = reason.as_str(), budget_ms = budget.as_millis() as u64, "stopping");
    app.manager.set_output(Output::ReadyLed, false);
    // No transaction starts another device step from here on; the step under way reaches its
    // end (its result journaled) or its device job is interrupted by the stop below.
    if let Some(o) = &app.office {
        o.shell().set_draining(true);
    }
    let interrupted = app.stop(services, budget).await;
    if let Some(o) = &app.office {
        // The workflow journals the result of the step it was in (done or interrupted).
        let left = budget.saturating_sub(stop_started.elapsed()).max(Duration::from_millis(200));
        if !o.shell().wait_idle(left).await {
            tracing::error!("a service step was still running at the end of the stop budget");
        }
        if reason == StopReason::PowerFail {
            let o = o.clone();
            match tokio::task::spawn_blocking(move || o.checkpoint_storage()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("office.db WAL checkpoint: {e}"),
                Err(e) => tracing::error!("office.db WAL checkpoint: {e}"),
            }
        }
    }
    if let Some(sim) = simulators {
        let _ = std::fs::remove_file(&config.simulation.control);
        tokio::task::spawn_blocking(move || sim.shutdown()).await?;
    }
    let stop = journal
        .append_async(
            kinds::DAEMON_STOP,
            &payload(&DaemonStop {
                reason,
                interrupted_jobs: interrupted as u64,
                stop_ms: stop_started.elapsed().as_millis() as u64,
            }),
        )
        .await;
    match stop {
        Ok(a) => tracing::info!(seq = a.seq, "stop recorded"),
        Err(e) => tracing::error!(error = %e, "could not record the stop"),
    }
    if let Some(hq) = app.training_hq.take() {
        hq.stop().await;
    }
    drop(app);
    tokio::task::spawn_blocking(move || journal.close()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT (stop) and SIGHUP (reload the configuration), caught from start-up on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Waits for SIGTERM, SIGINT or another stop reason (UPS power failure), sending watchdog
    /// pings meanwhile when systemd asks for them, only while every watched loop is alive, and
    /// reloading the configuration on SIGHUP.
    async fn wait_for_stop(
        self,
        mut other: tokio::sync::mpsc::Receiver<&'static str>,
        liveness: Option<(crate::watchdog::Liveness, Duration)>,
        mut reloader: crate::reload::Reloader,
    ) -> StopReason {
        let Signals { mut term, mut int, mut hup } = self;
        let watchdog = liveness.is_some();
        let period = liveness.as_ref().map_or(Duration::from_secs(2), |(_, t)| ping_period(*t));
        let mut tick = tokio::time::interval(period);
        let mut pinger = crate::watchdog::Pinger::default();
        loop {
            tokio::select! {
                _ = term.recv() => return StopReason::Sigterm,
                _ = int.recv() => return StopReason::Sigint,
                // The only other stop request is the UPS power-fail input's.
                Some(_) = other.recv() => return StopReason::PowerFail,
                _ = hup.recv() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    reloader.reload().await;
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
                _ = tick.tick(), if watchdog => {
                    if let Some((live, _)) = &liveness {
                        ping(&mut pinger, live);
                    }
                }
            }
        }
    }
}

/// How long a watched loop may stay silent under systemd's watchdog `timeout`.
fn allowed_silence(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_secs(1))
}

/// How often the watchdog is pinged: half its timeout, as systemd advises (a stalled loop
/// stops the pings within the allowed silence).
fn ping_period(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(100))
}

/// One watchdog tick: `WATCHDOG=1` if every loop is alive; a stall is logged once.
fn ping(pinger: &mut crate::watchdog::Pinger, live: &crate::watchdog::Liveness) {
    let tick = pinger.tick(&live.check());
    if let Some(line) = tick.log {
        if tick.ping { tracing::info!("{line}") } else { tracing::error!("{line}") }
    }
    if tick.ping {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
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
    // The ledger of what the simulated devices physically did, kept next to the journal so it
    // outlives vand (`van-sim ctl ledger`, and the tests compare it with the journal).
    let ledger_path = config.paths.state_dir.join("sim-ledger.jsonl");
    let ledger = std::sync::Arc::new(
        crate::sim::ledger::Ledger::open(&ledger_path)
            .with_context(|| format!("simulators' ledger {}", ledger_path.display()))?,
    );
    let mut host = SimHost::start_with_ledger(&scenario, &sim.device_dir, default_factory, ledger)
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

/// A typed payload from the journal's kinds catalogue, as the JSON value `append` takes.
fn payload<T: serde::Serialize>(p: &T) -> serde_json::Value {
    // Catalogue payloads are plain structs (strings, integers, enums, string-keyed maps).
    serde_json::to_value(p).unwrap_or(serde_json::Value::Null)
}
