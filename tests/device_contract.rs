//! The device contract the service workflow is written against: jobs never lose their outcome,
//! health follows the device without a job, shutdown is bounded, self-test runs in parallel.
//! Each test reproduces a finding of the contract's audit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtu::config::Config;
use mtu::devices::manager::{Driver, GenericDevice, JobRecord, Manager, ManagerOptions, Outcome};
use mtu::devices::transport::Backoff;
use mtu::devices::{DeviceError, DeviceId, Fault, Health, SelfTestReport};
use serialport::{SerialPort, TTYPort};

fn pty_at(dir: &Path, name: &str) -> (TTYPort, PathBuf) {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = PathBuf::from(slave.name().expect("slave name"));
    drop(slave);
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&slave_path, &link).expect("symlink");
    (master, link)
}

fn config(dir: &Path, poll_ms: u64) -> Config {
    let d = dir.display();
    let mut text = format!(
        "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{d}\"\n[gpio]\nbackend = \"none\"\n"
    );
    for (name, driver) in [("payment", "zvt"), ("card", "evolis"), ("sticker", "zpl"), ("rfid", "mercury")] {
        text.push_str(&format!(
            "[devices.{name}]\ndriver = \"{driver}\"\npath = \"{d}/{name}\"\nbaud = 9600\nhealth_poll_ms = {poll_ms}\n"
        ));
    }
    Config::parse(&text, "test.toml").unwrap()
}

/// A device double: each self-test (a job or a status poll) takes `work`, notes when it ran, and
/// answers what the shared `state` says.
#[derive(Clone, Default)]
struct Bench {
    work: Duration,
    runs: Arc<Mutex<Vec<(DeviceId, Instant, Instant)>>>,
    fault: Arc<Mutex<Option<Fault>>>,
}

struct Double {
    id: DeviceId,
    bench: Bench,
}

impl GenericDevice for Double {
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        let start = Instant::now();
        std::thread::sleep(self.bench.work);
        self.bench.runs.lock().unwrap().push((self.id, start, Instant::now()));
        if let Some(f) = *self.bench.fault.lock().unwrap() {
            return Err(DeviceError::fault(self.id.name(), f, "double says so"));
        }
        Ok(SelfTestReport { device: self.id.name().into(), ok: true, lines: vec!["fine".into()] })
    }
}

struct Van {
    manager: Manager,
    jobs: tokio::sync::mpsc::UnboundedReceiver<JobRecord>,
    bench: Bench,
    _ptys: Vec<TTYPort>,
    _dir: tempfile::TempDir,
}

fn van(work: Duration, poll_ms: u64) -> Van {
    let dir = tempfile::tempdir().unwrap();
    let ptys = ["payment", "card", "sticker", "rfid"].iter().map(|n| pty_at(dir.path(), n).0).collect();
    let bench = Bench { work, ..Bench::default() };
    let b = bench.clone();
    let factory: mtu::devices::manager::DriverFactory =
        Arc::new(move |id, _cfg, _link| Ok(Driver::Generic(Box::new(Double { id, bench: b.clone() }))));
    let (sink, jobs) = tokio::sync::mpsc::unbounded_channel();
    let options = ManagerOptions {
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        idle_check: Duration::from_millis(5),
        self_test_timeout: Duration::from_secs(30),
        sink: Some(sink),
    };
    let manager = Manager::start_with(&config(dir.path(), poll_ms), factory, options);
    Van { manager, jobs, bench, _ptys: ptys, _dir: dir }
}

async fn connected(m: &Manager) {
    let mut rx = m.watch_health();
    let all = |b: &mtu::devices::manager::HealthBoard| {
        DeviceId::SERIAL.iter().all(|d| b.devices.get(d) == Some(&Health::Connected))
    };
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(all)).await.unwrap().unwrap();
}

/// Finding 1: a caller's timeout dropped the result while the job ran on. Now the caller's
/// timeout ends only the wait: the late outcome reaches the handle and the journal sink.
#[tokio::test]
async fn a_late_outcome_after_the_callers_timeout_is_delivered_and_journaled() {
    let mut v = van(Duration::from_millis(400), 0);
    connected(&v.manager).await;
    let card = v.manager.device(DeviceId::Card).unwrap();
    let mut job = card.submit("slow job", |d, _ctx| d.self_test());
    let id = job.id();
    let e = job.wait(Duration::from_millis(50)).await.unwrap_err();
    assert!(e.to_string().contains("still running") && e.to_string().contains(&id.to_string()), "{e}");
    match job.wait(Duration::from_secs(10)).await.unwrap() {
        Outcome::Done(r) => assert!(r.ok),
        other => panic!("{other:?}"),
    }
    let rec = tokio::time::timeout(Duration::from_secs(5), v.jobs.recv()).await.unwrap().unwrap();
    assert_eq!((rec.job, rec.device, rec.outcome, rec.may_have_acted), (id, DeviceId::Card, "done", false));
    assert_eq!(rec.data.unwrap()["lines"][0], "fine");

    // A caller that gave up and went away entirely: the outcome is still journaled.
    let job = card.submit("abandoned job", |d, _ctx| d.self_test());
    let id = job.id();
    drop(job);
    let rec = tokio::time::timeout(Duration::from_secs(5), v.jobs.recv()).await.unwrap().unwrap();
    assert_eq!((rec.job, rec.outcome), (id, "done"));
    v.manager.shutdown();
}

/// Typed outcomes: a fault the device reports before acting is `failed`; an error after the
/// driver's point of no return is `unknown` (it may have acted).
#[tokio::test]
async fn outcomes_are_typed_failed_versus_unknown() {
    let mut v = van(Duration::from_millis(1), 0);
    connected(&v.manager).await;
    let card = v.manager.device(DeviceId::Card).unwrap();
    let ribbon = Fault::Card(mtu::devices::card::CardFault::RibbonEnded);
    let job = card.submit("refused", move |_d, _ctx| -> Result<(), DeviceError> {
        Err(DeviceError::fault("card", ribbon, "before feeding"))
    });
    match job.outcome().await {
        Outcome::Failed(e) => assert_eq!(e.fault(), Some(ribbon)),
        other => panic!("{other:?}"),
    }
    let job = card.submit("cut off", |_d, _ctx| -> Result<(), DeviceError> {
        Err(DeviceError::Link(mtu::devices::LinkError::Timeout {
            device: "card".into(),
            path: "x".into(),
            waited_ms: 1,
        })
        .after_acting())
    });
    assert!(matches!(job.outcome().await, Outcome::Unknown(_)));
    let a = v.jobs.recv().await.unwrap();
    let b = v.jobs.recv().await.unwrap();
    assert_eq!((a.outcome, a.fault, a.may_have_acted), ("failed", Some(ribbon), false));
    assert_eq!((b.outcome, b.may_have_acted), ("unknown", true));
    assert_eq!(serde_json::to_value(&a).unwrap()["fault"], "card.ribbon_ended");
    // The fault shows in health until the next good exchange.
    assert_eq!(v.manager.health()[&DeviceId::Card].state_name(), "fault");
    v.manager.shutdown();
}

/// A job cancelled before it starts never touches the device.
#[tokio::test]
async fn a_job_cancelled_before_it_starts_is_cancelled_and_never_runs() {
    let mut v = van(Duration::from_millis(300), 0);
    connected(&v.manager).await;
    let card = v.manager.device(DeviceId::Card).unwrap();
    let first = card.submit("first", |d, _ctx| d.self_test());
    let second = card.submit("second", |d, _ctx| d.self_test());
    second.cancel();
    assert!(matches!(second.outcome().await, Outcome::Cancelled));
    assert!(matches!(first.outcome().await, Outcome::Done(_)));
    assert_eq!(v.bench.runs.lock().unwrap().len(), 1, "the cancelled job never ran");
    let outcomes: Vec<&str> = [v.jobs.recv().await.unwrap(), v.jobs.recv().await.unwrap()]
        .iter()
        .map(|r| r.outcome)
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert!(outcomes.contains(&"cancelled") && outcomes.contains(&"done"), "{outcomes:?}");
    v.manager.shutdown();
}

/// Finding 7: self-test was sequential (21 s with every device silent). The four device jobs now
/// overlap: every one starts before any ends.
#[tokio::test]
async fn self_test_runs_the_devices_in_parallel() {
    let v = van(Duration::from_millis(500), 0);
    connected(&v.manager).await;
    let reports = v.manager.self_test().await;
    assert_eq!(reports.iter().filter(|r| r.ok).count(), 5, "{reports:?}");
    let runs = v.bench.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 4);
    let last_start = runs.iter().map(|r| r.1).max().unwrap();
    let first_end = runs.iter().map(|r| r.2).min().unwrap();
    assert!(last_start < first_end, "the device jobs did not overlap: {runs:?}");
    v.manager.shutdown();
}

/// Finding 3: health only changed when a job ran. Idle status polls now bring a fault and its
/// recovery to the board, and the board counts every stable change.
#[tokio::test]
async fn idle_polls_bring_a_fault_and_its_recovery_without_a_job() {
    let v = van(Duration::from_millis(1), 50);
    connected(&v.manager).await;
    let before = v.manager.watch_health().borrow().changes[&DeviceId::Card];
    *v.bench.fault.lock().unwrap() = Some(Fault::Card(mtu::devices::card::CardFault::CoverOpen));
    let mut rx = v.manager.watch_health();
    let fault = |b: &mtu::devices::manager::HealthBoard| {
        matches!(b.devices.get(&DeviceId::Card), Some(Health::Fault { fault: Fault::Card(_), .. }))
    };
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(fault)).await.unwrap().unwrap();
    *v.bench.fault.lock().unwrap() = None;
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|b| b.devices.get(&DeviceId::Card) == Some(&Health::Connected)),
    )
    .await
    .unwrap()
    .unwrap();
    let after = v.manager.watch_health().borrow().changes[&DeviceId::Card];
    assert!(after >= before + 2, "fault and recovery are two changes: {before} → {after}");
    v.manager.shutdown();
}

/// Finding 5: shutdown waited for a 120 s print. Now it ends within its budget and names the
/// job it interrupted; queued jobs are cancelled, never started.
#[tokio::test]
async fn shutdown_is_bounded_and_names_the_interrupted_job() {
    let mut v = van(Duration::from_secs(5), 0);
    connected(&v.manager).await;
    let card = v.manager.device(DeviceId::Card).unwrap();
    let long = card.submit("long print", |d, _ctx| d.self_test());
    let queued = card.submit("queued print", |d, _ctx| d.self_test());
    let mut rx = v.manager.watch_health();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|b| matches!(b.devices.get(&DeviceId::Card), Some(Health::Busy { .. }))),
    )
    .await
    .unwrap()
    .unwrap();
    let interrupted = v.manager.shutdown_within(Duration::from_millis(300));
    assert_eq!(interrupted.len(), 1, "{interrupted:?}");
    assert_eq!((interrupted[0].job, interrupted[0].outcome), (long.id(), "interrupted"));
    assert!(interrupted[0].may_have_acted);
    assert!(matches!(queued.outcome().await, Outcome::Cancelled));
    let rec = v.jobs.recv().await.unwrap();
    assert_eq!(rec.outcome, "cancelled");
}

/// Finding 10: the kind modules (traits and plain data) import no driver; only the registry
/// knows which protocols exist.
#[test]
fn kind_modules_import_no_driver() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/devices");
    for kind in ["card", "payment", "sticker", "rfid"] {
        let text = std::fs::read_to_string(root.join(format!("{kind}.rs"))).unwrap();
        for driver in ["evolis", "zvt", "zpl", "mercury", "registry"] {
            assert!(!text.contains(&format!("super::{driver}")), "{kind}.rs imports {driver}");
            assert!(!text.contains(&format!("devices::{driver}")), "{kind}.rs imports {driver}");
        }
    }
}

/// Cancellation where the protocol allows it: a purchase cancelled while the terminal waits for
/// the card is aborted at the terminal (`06 B0`), and the outcome is `cancelled`, not `failed`.
#[tokio::test]
async fn a_purchase_cancelled_before_the_card_is_presented_is_cancelled() {
    use mtu::sim::host::{Scenario, SimHost, default_factory};
    let dir = tempfile::tempdir().unwrap();
    let host = SimHost::start(&Scenario::default(), dir.path(), default_factory).unwrap();
    let d = dir.path().display();
    let text = format!(
        "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{d}\"\n[gpio]\nbackend = \"none\"\n\
         [devices.payment]\ndriver = \"zvt\"\npath = \"{d}/payment\"\nbaud = 9600\nstop_bits = 2\nhealth_poll_ms = 0\n"
    );
    let (sink, mut jobs) = tokio::sync::mpsc::unbounded_channel();
    let options = ManagerOptions { sink: Some(sink), ..ManagerOptions::default() };
    let m = Manager::start_with(
        &Config::parse(&text, "t.toml").unwrap(),
        mtu::devices::manager::default_factory(),
        options,
    );
    let mut rx = m.watch_health();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|b| b.devices.get(&DeviceId::Payment) == Some(&Health::Connected)),
    )
    .await
    .unwrap()
    .unwrap();
    let (texts_tx, texts_rx) = std::sync::mpsc::channel::<String>();
    let job = m.device(DeviceId::Payment).unwrap().purchase(1990, move |t| {
        let _ = texts_tx.send(t.to_owned());
    });
    // The terminal's first prompt ("insert card"): the citizen has not presented a card yet.
    let first =
        tokio::task::spawn_blocking(move || texts_rx.recv_timeout(Duration::from_secs(20))).await.unwrap();
    assert!(first.is_ok(), "no terminal prompt");
    job.cancel();
    assert!(matches!(job.outcome().await, Outcome::Cancelled));
    let rec = jobs.recv().await.unwrap();
    assert_eq!((rec.what.as_str(), rec.outcome, rec.may_have_acted), ("purchase", "cancelled", false));
    m.shutdown();
    host.shutdown();
}
