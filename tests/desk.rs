//! The service desk end to end against the simulators on real PTYs: each service's records, the
//! devices' faults at each step, and recovery of what a crash leaves open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mtu::config::Config;
use mtu::devices::manager::{Manager, ManagerOptions};
use mtu::devices::{DeviceId, Health};
use mtu::journal::{FirstStart, Journal, JournalOptions, JournalOwner};
use mtu::office::desk::{Desk, DeskConfig, OpenPlan};
use mtu::office::model::*;
use mtu::office::records::{FeeLine, ServiceRequest, kind};
use mtu::office::shift::{Shifts, StockCounts};
use mtu::office::workflow::State;
use mtu::render::documents::{DocOptions, Issuer};
use mtu::sim::host::{Scenario, SimHost, default_factory};

struct Van {
    dir: Option<tempfile::TempDir>,
    host: Option<SimHost>,
    journal: Option<JournalOwner>,
    manager: Arc<Manager>,
    desk: Arc<Desk>,
}

const FAST: &str = "[timing]\nscale = 0\nreplug_after_s = 0\n[payment]\n[card]\n[sticker]\n[rfid]\n";

fn config_text(d: &std::path::Path) -> String {
    let d = d.display();
    format!(
        "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{d}\"\n[gpio]\nbackend = \"none\"\n\
         [devices.payment]\ndriver = \"zvt\"\npath = \"{d}/dev/payment\"\nbaud = 9600\nstop_bits = 2\n\
         [devices.card]\ndriver = \"evolis\"\npath = \"{d}/dev/card\"\nbaud = 115200\n\
         [devices.sticker]\ndriver = \"zpl\"\npath = \"{d}/dev/sticker\"\nbaud = 9600\n\
         [devices.rfid]\ndriver = \"mercury\"\npath = \"{d}/dev/rfid\"\nbaud = 115200\n\
         [devices.rfid.options]\npassword_file = \"{d}/tag-secret.hex\"\n"
    )
}

impl Van {
    async fn start() -> Van {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        let secret = dir.path().join("tag-secret.hex");
        std::fs::write(&secret, "11".repeat(32)).unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let host =
            SimHost::start(&Scenario::parse(FAST, "fast").unwrap(), &dir.path().join("dev"), default_factory)
                .unwrap();
        Van::boot(dir, host).await
    }

    async fn boot(dir: tempfile::TempDir, host: SimHost) -> Van {
        let config = Config::parse(&config_text(dir.path()), "t.toml").unwrap();
        let opts = JournalOptions { van_id: "MTU-T".into(), ..mtu::daemon::journal_options(&config) };
        let (journal, _) = Journal::open_van(
            &config.paths.journal_path(),
            &config.paths.key_path(),
            &opts,
            FirstStart::Create,
        )
        .unwrap();
        let manager = Arc::new(Manager::start_with(
            &config,
            mtu::devices::manager::default_factory(),
            ManagerOptions::default(),
        ));
        let mut rx = manager.watch_health();
        let up = tokio::time::timeout(
            Duration::from_secs(30),
            rx.wait_for(|b| b.devices.values().all(|h| matches!(h, Health::Connected | Health::Absent))),
        )
        .await;
        assert!(up.is_ok(), "devices connect: {:?}", manager.health());
        let cfg = DeskConfig {
            issuer: Issuer { unit_ar: "وحدة اختبار".into(), van_id: "MTU-T".into() },
            doc: DocOptions::default(),
            epc_bytes: 12,
            user_words: 32,
            card_colour: false,
        };
        let desk = Desk::new((*journal).clone(), manager.clone(), cfg).unwrap();
        Van { dir: Some(dir), host: Some(host), journal: Some(journal), manager, desk }
    }

    /// Stops the daemon side as a crash would leave it (no clean records), keeps the devices.
    async fn restart(mut self) -> Van {
        self.manager.shutdown();
        self.journal.take().unwrap().close();
        let (dir, host) = (self.dir.take().unwrap(), self.host.take().unwrap());
        drop(self);
        Van::boot(dir, host).await
    }

    fn sim(&self) -> &SimHost {
        self.host.as_ref().unwrap()
    }

    fn kinds(&self, txn: &str) -> Vec<String> {
        self.journal.as_ref().unwrap().txn_records(txn).unwrap().into_iter().map(|r| r.kind).collect()
    }
}

impl Drop for Van {
    fn drop(&mut self) {
        self.manager.shutdown();
        if let Some(h) = &self.host {
            h.shutdown();
        }
    }
}

fn officer() -> Actor {
    Actor { id: "1001".into(), role: Role::Officer }
}

fn supervisor() -> Actor {
    Actor { id: "9001".into(), role: Role::Supervisor }
}

fn vehicle() -> Vehicle {
    Vehicle {
        plate: Plate { letters: "أ ب ج".into(), digits: "1234".into() },
        category: VehicleCategory::Private,
        vin: "JTDBR32E720123456".into(),
        engine_no: "1ZR4567890".into(),
        make_model: "Toyota Corolla".into(),
        year: Some(2020),
        colour_ar: "فضي".into(),
        owner_national_id: "29001150101234".into(),
    }
}

fn plan(service: ServiceKind, amount: u64) -> OpenPlan {
    OpenPlan {
        request: ServiceRequest {
            service,
            booking_id: None,
            citizen: Citizen {
                national_id: "29001150101234".into(),
                name_ar: "أحمد محمد".into(),
                name_en: Some("Ahmed Mohamed".into()),
                phone: None,
            },
            vehicle: service.is_vehicle().then(vehicle),
            grade: (!service.is_vehicle()).then_some(LicenceGrade::Private),
            replacement: None,
            supplies: Vec::new(),
            changes: Default::default(),
        },
        dossier: None,
        dossier_source: "none".into(),
        refusals: Vec::new(),
        schedule_version: 1,
        lines: vec![FeeLine {
            code: "fee".into(), label_ar: "رسم".into(), label_en: "fee".into(), amount
        }],
        expires: Some(jiff::civil::date(2029, 12, 1)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicle_licence_renewal_end_to_end() {
    let v = Van::start().await;
    let t = v.desk.open(plan(ServiceKind::VehicleLicenceRenewal, 45_000), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Quoted);
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed, "{t:#?}");
    assert_eq!(
        v.kinds(t.id()),
        [
            kind::SERVICE_OPEN,
            kind::SERVICE_QUOTE,
            kind::PAYMENT_INTENT,
            kind::PAYMENT_RESULT,
            kind::CARD_INTENT,
            kind::CARD_RESULT,
            kind::SERVICE_COMPLETE
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_sticker_binds_the_tag_tid_and_prints_the_label() {
    let v = Van::start().await;
    let t = v.desk.open(plan(ServiceKind::EStickerIssue, 18_500), &officer()).await.unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed, "{t:#?}");
    let tag = &t.steps[&mtu::office::records::Step::Tag];
    assert!(tag.tid.as_ref().is_some_and(|tid| tid.len() >= 16), "{tag:?}");
    assert_eq!((tag.issued, tag.spoiled), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_changes_nothing_and_a_second_card_pays() {
    let v = Van::start().await;
    v.sim().fault("payment", "decline").unwrap();
    let t = v.desk.open(plan(ServiceKind::Inspection, 12_500), &officer()).await.unwrap();
    let t = v
        .desk
        .inspect(t.id(), &officer(), true, true, [("brakes".to_owned(), true)].into(), String::new())
        .await
        .unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Quoted);
    v.sim().clear("payment").unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed);
    let intents = v.kinds(t.id()).iter().filter(|k| *k == kind::PAYMENT_INTENT).count();
    assert_eq!(intents, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_fault_after_payment_is_retried_without_a_second_charge() {
    let v = Van::start().await;
    v.sim().fault("card", "ribbon_ended").unwrap();
    let t = v.desk.open(plan(ServiceKind::DrivingLicenceRenewal, 30_000), &officer()).await.unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Printing, "{t:#?}");
    let card = &t.steps[&mtu::office::records::Step::Card];
    assert!(card.fault.is_some(), "{card:?}");
    v.sim().clear("card").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed, "{t:#?}");
    let kinds = v.kinds(t.id());
    assert_eq!(kinds.iter().filter(|k| *k == kind::PAYMENT_INTENT).count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == kind::CARD_INTENT).count(), 2, "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_payment_answer_is_recovered_by_repeat_receipt() {
    let v = Van::start().await;
    v.sim().fault("payment", "drop_mid_purchase").unwrap();
    let t = v.desk.open(plan(ServiceKind::VehicleLicenceReplacement, 20_000), &officer()).await.unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    let kinds = v.kinds(t.id());
    assert!(kinds.contains(&kind::PAYMENT_RECOVERY.to_owned()), "{kinds:?}");
    // The terminal kept the approval: recovered as approved, and the card printed; one purchase.
    assert_eq!(t.state(), State::Completed, "{t:#?}");
    assert_eq!(kinds.iter().filter(|k| *k == kind::PAYMENT_INTENT).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_intent_and_result_is_resolved_at_restart() {
    let v = Van::start().await;
    let t = v.desk.open(plan(ServiceKind::VehicleLicenceRenewal, 45_000), &officer()).await.unwrap();
    let id = t.id().to_owned();
    // As if the daemon died right after journaling the purchase intent (nothing sent).
    v.journal
        .as_ref()
        .unwrap()
        .append(
            kind::PAYMENT_INTENT,
            &serde_json::json!({"txn": id, "officer": "1001", "amount": 45_000, "receipt_before": null, "attempt": 1}),
        )
        .unwrap();
    let v = v.restart().await;
    assert_eq!(v.desk.txn(&id).unwrap().state(), State::Paying);
    let resolved = v.desk.recover().await;
    assert_eq!(resolved.len(), 1);
    let t = v.desk.txn(&id).unwrap();
    assert_eq!(t.state(), State::Quoted, "not charged: may pay again");
    let t = v.desk.proceed(&id, &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_voids_a_paid_service_and_the_payment_is_reversed() {
    let v = Van::start().await;
    let t = v.desk.open(plan(ServiceKind::VehicleLicenceRenewal, 45_000), &officer()).await.unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert!(v.desk.void(t.id(), &officer(), "wrong plate").await.is_err(), "officers cannot void");
    let t = v.desk.void(t.id(), &supervisor(), "wrong plate").await.unwrap();
    assert_eq!(t.state(), State::Voided, "{t:#?}");
    assert!(matches!(t.payment, mtu::office::workflow::Payment::Reversed { .. }));
    assert_eq!(t.stock(), vec![(mtu::office::records::Step::Card, 0, 1)]);
    let _ = DeviceId::Payment;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_is_made_from_the_journal_and_extracts_in_poppler() {
    let v = Van::start().await;
    let t = v.desk.open(plan(ServiceKind::Supplies, 7_550), &officer()).await.unwrap();
    let t = v.desk.proceed(t.id(), &officer()).await.unwrap();
    assert_eq!(t.state(), State::Completed);
    let a4 = v.desk.receipt(t.id(), &officer(), mtu::render::documents::ReceiptFormat::A4).await.unwrap();
    let roll =
        v.desk.receipt(t.id(), &officer(), mtu::render::documents::ReceiptFormat::Roll80).await.unwrap();
    // A third copy needs a supervisor; every copy is journaled.
    assert!(v.desk.receipt(t.id(), &officer(), mtu::render::documents::ReceiptFormat::A4).await.is_err());
    assert_eq!(v.kinds(t.id()).iter().filter(|k| *k == kind::RECEIPT_PRINT).count(), 2);
    for pdf in [a4, roll] {
        let f = v.dir.as_ref().unwrap().path().join("r.pdf");
        std::fs::write(&f, pdf).unwrap();
        let text = common::pdftotext(&f);
        assert!(text.contains(t.id()), "receipt number missing:\n{text}");
        assert!(text.contains("75.50"), "amount missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_close_reconciles_terminal_totals_and_stock_with_the_journal() {
    let v = Van::start().await;
    let shifts = Shifts::new(v.desk.clone()).unwrap();
    let s = shifts.open(&officer(), StockCounts { cards: 50, labels: 20, tags: 20 }).await.unwrap();
    assert!(s.open.self_test.iter().all(|t| t.ok), "{:?}", s.open.self_test);
    assert!(shifts.open(&officer(), StockCounts::default()).await.is_err(), "one shift at a time");
    // A card printed, a card spoiled by a jam, a tag and a label.
    let a = v.desk.open(plan(ServiceKind::VehicleLicenceRenewal, 45_000), &officer()).await.unwrap();
    v.desk.proceed(a.id(), &officer()).await.unwrap();
    let b = v.desk.open(plan(ServiceKind::EStickerIssue, 18_500), &officer()).await.unwrap();
    v.desk.proceed(b.id(), &officer()).await.unwrap();
    v.desk.reprint(a.id(), &officer(), "card", "smudged").await.unwrap();
    assert!(shifts.close(&officer(), StockCounts::default()).await.is_err(), "officers cannot close");
    let close = shifts.close(&supervisor(), StockCounts { cards: 48, labels: 19, tags: 19 }).await.unwrap();
    assert_eq!(close.mismatches, Vec::<String>::new(), "{close:#?}");
    let tt = close.terminal.as_ref().unwrap();
    assert_eq!((tt.total, tt.count), (63_500, 2));
    assert_eq!((close.journal.amount, close.journal.count), (63_500, 2));
    assert_eq!((close.stock[0].issued, close.stock[0].spoiled), (1, 1));
    assert!(shifts.report_pdf(&|id| id.to_owned()).unwrap().starts_with(b"%PDF"));

    // The next shift: a count that does not balance is shown, not hidden.
    shifts.open(&officer(), StockCounts { cards: 48, labels: 19, tags: 19 }).await.unwrap();
    let close = shifts.close(&supervisor(), StockCounts { cards: 47, labels: 19, tags: 19 }).await.unwrap();
    assert_eq!(close.mismatches, ["stock.card"]);
}
