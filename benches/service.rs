//! The service desk's own cost: what the daemon adds to a service beyond the devices' time.
//!
//! Runs vehicle licence renewals (payment → card → complete) and e-sticker issues (payment → tag →
//! label → complete) end to end against the simulators with zero latency (`scale = 0`), on real
//! PTYs, and prints:
//! 1. the daemon's time per completed service beyond the devices' own jobs (wall time minus the
//!    device jobs' time; target < 20 ms), against the floor measured in the same run: the same
//!    number of durable journal appends, alone (ratio = desk overhead / appends alone);
//! 2. completed services per second, one after another and four at once.
//!
//! Run: `cargo bench --bench service` (`BENCH_SERVICES=50` by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mtu::config::Config;
use mtu::devices::Health;
use mtu::devices::manager::{Manager, ManagerOptions};
use mtu::journal::{FirstStart, Journal, JournalOwner};
use mtu::office::desk::{Desk, DeskConfig, OpenPlan};
use mtu::office::model::*;
use mtu::office::records::{FeeLine, ServiceRequest};
use mtu::office::workflow::State;
use mtu::render::documents::{DocOptions, Issuer};
use mtu::sim::host::{Scenario, SimHost, default_factory};

const FAST: &str = "[timing]\nscale = 0\nreplug_after_s = 0\n[payment]\n[card]\n[sticker]\n[rfid]\n";

fn config_text(d: &std::path::Path) -> String {
    let d = d.display();
    format!(
        "mode = \"simulation\"\n[van]\nid = \"MTU-BENCH\"\n[paths]\nstate_dir = \"{d}\"\n[gpio]\nbackend = \"none\"\n\
         [devices.payment]\ndriver = \"zvt\"\npath = \"{d}/dev/payment\"\nbaud = 9600\nstop_bits = 2\nhealth_poll_ms = 0\n\
         [devices.card]\ndriver = \"evolis\"\npath = \"{d}/dev/card\"\nbaud = 115200\nhealth_poll_ms = 0\n\
         [devices.sticker]\ndriver = \"zpl\"\npath = \"{d}/dev/sticker\"\nbaud = 9600\nhealth_poll_ms = 0\n\
         [devices.rfid]\ndriver = \"mercury\"\npath = \"{d}/dev/rfid\"\nbaud = 115200\nhealth_poll_ms = 0\n\
         [devices.rfid.options]\npassword_file = \"{d}/tag-secret.hex\"\n"
    )
}

fn plan(service: ServiceKind) -> OpenPlan {
    OpenPlan {
        request: ServiceRequest {
            service,
            booking_id: None,
            citizen: Citizen {
                national_id: "29001150101234".into(),
                name_ar: "أحمد محمد عبد الرحمن".into(),
                name_en: Some("Ahmed Mohamed".into()),
                phone: None,
            },
            vehicle: Some(Vehicle {
                plate: Plate { letters: "أ ب ج".into(), digits: "1234".into() },
                category: VehicleCategory::Private,
                vin: "JTDBR32E720123456".into(),
                engine_no: "1ZR4567890".into(),
                make_model: "Toyota Corolla".into(),
                year: Some(2020),
                colour_ar: "فضي".into(),
                owner_national_id: "29001150101234".into(),
            }),
            grade: None,
            replacement: None,
            supplies: Vec::new(),
            changes: Default::default(),
        },
        dossier: None,
        dossier_source: "none".into(),
        refusals: Vec::new(),
        schedule_version: 1,
        lines: vec![FeeLine {
            code: "fee".into(),
            label_ar: "رسم".into(),
            label_en: "fee".into(),
            amount: 45_000,
        }],
        expires: Some(jiff::civil::date(2029, 12, 1)),
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    host: SimHost,
    journal: JournalOwner,
    manager: Arc<Manager>,
    desk: Arc<Desk>,
    device_ms: Arc<std::sync::atomic::AtomicU64>,
}

async fn start() -> Bench {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    std::fs::create_dir_all(dir.path().join("dev")).unwrap();
    let secret = dir.path().join("tag-secret.hex");
    std::fs::write(&secret, "22".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let host =
        SimHost::start(&Scenario::parse(FAST, "fast").unwrap(), &dir.path().join("dev"), default_factory)
            .unwrap();
    let config = Config::parse(&config_text(dir.path()), "bench.toml").unwrap();
    let (journal, _) = Journal::open_van(
        &config.paths.journal_path(),
        &config.paths.key_path(),
        &mtu::daemon::journal_options(&config),
        FirstStart::Create,
    )
    .unwrap();
    let (sink, mut jobs) = tokio::sync::mpsc::unbounded_channel();
    let manager = Arc::new(Manager::start_with(
        &config,
        mtu::devices::manager::default_factory(),
        ManagerOptions { sink: Some(sink), ..ManagerOptions::default() },
    ));
    let device_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = device_ms.clone();
    tokio::spawn(async move {
        while let Some(r) = jobs.recv().await {
            counter.fetch_add(r.ms, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut rx = manager.watch_health();
    rx.wait_for(|b| b.devices.values().all(|h| matches!(h, Health::Connected | Health::Absent)))
        .await
        .unwrap();
    let cfg = DeskConfig {
        issuer: Issuer { unit_ar: "وحدة قياس".into(), van_id: "MTU-BENCH".into() },
        doc: DocOptions::default(),
        epc_bytes: 12,
        user_words: 32,
        card_colour: false,
        kill_after: None,
        kill_in_payment: None,
    };
    let desk = Desk::new((*journal).clone(), manager.clone(), cfg).unwrap();
    Bench { _dir: dir, host, journal, manager, desk, device_ms }
}

async fn serve(desk: &Arc<Desk>, service: ServiceKind) -> usize {
    let officer = Actor { id: "1001".into(), role: Role::Officer };
    let t = desk.open(plan(service), &officer).await.unwrap();
    let t = desk.proceed(t.id(), &officer).await.unwrap();
    assert_eq!(t.state(), State::Completed);
    desk.journal().txn_records(t.id()).unwrap().len()
}

fn main() {
    let n: u32 = std::env::var("BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let b = start().await;
        for service in [ServiceKind::VehicleLicenceRenewal, ServiceKind::EStickerIssue] {
            // Warm up (fonts, first jobs).
            serve(&b.desk, service).await;
            b.device_ms.store(0, std::sync::atomic::Ordering::SeqCst);
            let t = Instant::now();
            let mut records = 0;
            for _ in 0..n {
                records = serve(&b.desk, service).await;
            }
            let wall = t.elapsed();
            // Let the job records of the last service arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let device = Duration::from_millis(b.device_ms.load(std::sync::atomic::Ordering::SeqCst));
            let overhead = wall.saturating_sub(device) / n;
            // The floor: the same number of durable appends, alone.
            let payload =
                serde_json::json!({"txn": "floor", "officer": "1001", "amount": 45_000, "attempt": 1});
            let t = Instant::now();
            for _ in 0..(records as u32 * n) {
                b.journal.append_async("bench.floor", &payload).await.unwrap();
            }
            let floor = t.elapsed() / n;
            println!(
                "{:<24} {n} services: {:.1} ms each ({:.1} ms devices, {:.1} ms desk; target < 20 ms); \
                 {records} records = {:.1} ms of appends alone; desk/appends = {:.2}; {:.1} services/s",
                service.name(),
                wall.as_secs_f64() * 1e3 / f64::from(n),
                device.as_secs_f64() * 1e3 / f64::from(n),
                overhead.as_secs_f64() * 1e3,
                floor.as_secs_f64() * 1e3,
                overhead.as_secs_f64() / floor.as_secs_f64().max(1e-9),
                f64::from(n) / wall.as_secs_f64(),
            );
        }
        // Four services at once (one officer each): the devices serialise, the desk must not.
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let desk = b.desk.clone();
            set.spawn(async move {
                for _ in 0..n / 4 {
                    serve(&desk, ServiceKind::EStickerIssue).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
        println!(
            "e_sticker_issue ×4 at once: {:.1} services/s",
            f64::from(n / 4 * 4) / t.elapsed().as_secs_f64()
        );
        b.manager.shutdown();
        b.host.shutdown();
    });
}
