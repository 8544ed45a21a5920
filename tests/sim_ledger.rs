//! The simulators' ledger (what the devices physically did) through the real `van-sim` binary:
//! each device driven over its PTY by the van's real driver, the ledger read back with
//! `van-sim ctl ledger` and from its JSON Lines file, and kept across a van-sim that is killed
//! and started again.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mtu::bitmap::Bitmap1;
use mtu::config::DeviceConfig;
use mtu::devices::Link;
use mtu::devices::card::{CardJob, CardSide};
use mtu::devices::payment::{PaymentOutcome, PaymentTerminal};
use mtu::devices::registry;
use mtu::devices::rfid::TagData;
use mtu::devices::sticker::{LabelElement, StickerLabel, TagLock, TagPassword, TagWrite};
use mtu::devices::transport::SerialLink;
use mtu::sim::ledger::{Entry, Event, Ledger, parse};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A van-sim process serving the fast scenario (no waits, RFID sticker stock) in a temporary
/// folder, with its ledger file there.
struct VanSim {
    child: Option<Child>,
    dir: PathBuf,
}

impl VanSim {
    fn start(dir: &Path) -> VanSim {
        let scenario = dir.join("scenario.toml");
        std::fs::write(&scenario, "[timing]\nscale = 0\nreplug_after_s = 0\n[sticker]\nrfid = true\n")
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args(["--scenario", scenario.to_str().unwrap()])
            .args(Self::paths(dir))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "van-sim ready");
        VanSim { child: Some(child), dir: dir.to_owned() }
    }

    fn paths(dir: &Path) -> Vec<String> {
        let p = |name: &str| dir.join(name).display().to_string();
        vec![
            "--dir".into(),
            p("dev"),
            "--control".into(),
            p("sim.sock"),
            "--ledger".into(),
            p("ledger.jsonl"),
        ]
    }

    /// `van-sim ctl WORDS…`.
    fn ctl(&self, words: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args(Self::paths(&self.dir))
            .arg("ctl")
            .args(words)
            .output()
            .unwrap()
    }

    /// `van-sim ctl WORDS…` that must succeed; its output as JSON.
    fn ctl_json(&self, words: &[&str]) -> Value {
        let out = self.ctl(words);
        assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `van-sim ctl ledger [DEVICE] --json`, as entries.
    fn ledger(&self, device: Option<&str>) -> Vec<Entry> {
        let mut words = vec!["ledger"];
        words.extend(device);
        words.push("--json");
        serde_json::from_value(self.ctl_json(&words)).unwrap()
    }

    fn device(&self, name: &str) -> PathBuf {
        self.dir.join("dev").join(name)
    }

    /// SIGKILL, as the crash harness does.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for VanSim {
    fn drop(&mut self) {
        self.kill();
    }
}

fn device_cfg(driver: &str, path: &Path, serial: &str, options: &str) -> DeviceConfig {
    let text = format!(
        "driver = {driver:?}\npath = {:?}\n{serial}\n[options]\n{options}",
        path.display().to_string()
    );
    toml::from_str(&text).unwrap()
}

fn link(cfg: &DeviceConfig, name: &str) -> Box<SerialLink> {
    Box::new(SerialLink::open(name, &cfg.serial).unwrap())
}

fn payment(sim: &VanSim) -> Box<dyn PaymentTerminal> {
    let cfg = device_cfg("zvt", &sim.device("payment"), "baud = 9600\nstop_bits = 2\ntimeout_ms = 5000", "");
    let mut p = registry::payment(&cfg, link(&cfg, "payment")).unwrap();
    p.register().unwrap();
    p
}

fn approved(outcome: PaymentOutcome) -> mtu::devices::payment::Approval {
    match outcome {
        PaymentOutcome::Approved(a) => a,
        other => panic!("not approved: {other:?}"),
    }
}

fn events(entries: &[Entry]) -> Vec<Event> {
    entries.iter().map(|e| e.event.clone()).collect()
}

#[test]
fn payments_as_the_terminal_booked_them_even_when_the_answer_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let sim = VanSim::start(dir.path());
    let mut pay = payment(&sim);
    let sale = approved(pay.purchase(15_000, &mut |_| true).unwrap());
    let r1 = sale.receipt_no.unwrap();
    let reversal = approved(pay.reversal(r1).unwrap());
    let refund = approved(pay.refund(500).unwrap());
    sim.ctl_json(&["fault", "payment", "decline"]);
    assert!(matches!(pay.purchase(700, &mut |_| true).unwrap(), PaymentOutcome::Declined { .. }));
    sim.ctl_json(&["clear", "payment"]);
    pay.end_of_day().unwrap();
    // The link drops after the card is read: the van never hears the approval.
    sim.ctl_json(&["fault", "payment", "drop_mid_purchase"]);
    let lost = pay.purchase(2_000, &mut |_| true);
    assert!(!matches!(lost, Ok(PaymentOutcome::Approved(_))), "{lost:?}");

    let ledger = sim.ledger(Some("payment"));
    assert!(ledger.iter().all(|e| e.device == "payment"));
    let got = events(&ledger);
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_eq!(
        got[0],
        Event::Charge {
            amount: 15_000,
            receipt_no: r1,
            trace: sale.trace.unwrap(),
            masked_pan: Some("411111******1010".into()),
        }
    );
    assert_eq!(
        got[1],
        Event::Reversal {
            reversed_receipt_no: r1,
            amount: 15_000,
            receipt_no: reversal.receipt_no.unwrap(),
            trace: reversal.trace.unwrap(),
        }
    );
    assert_eq!(
        got[2],
        Event::Refund { amount: 500, receipt_no: refund.receipt_no.unwrap(), trace: refund.trace.unwrap() }
    );
    assert!(
        matches!(&got[3], Event::Declined { kind, amount: 700, result_code: 5, .. } if kind == "purchase")
    );
    assert_eq!(
        got[4],
        Event::EndOfDay { total: 0, count: 0, first_receipt: r1, last_receipt: refund.receipt_no.unwrap() }
    );
    assert!(matches!(got[5], Event::Charge { amount: 2_000, .. }), "the lost answer is still a charge");
    // Sequence numbers follow each other; times are UTC and in order.
    for pair in ledger.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert!(pair[1].time >= pair[0].time);
    }

    // The text table: a header and one line per entry, exit 0.
    let out = sim.ctl(&["ledger", "payment"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("charge") && text.contains("amount=15000"), "{text}");
    // An unknown device is refused, naming the known ones.
    let out = sim.ctl(&["ledger", "printer"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("payment, card, sticker, rfid"));
}

#[test]
fn the_ledger_file_survives_a_killed_van_sim() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = VanSim::start(dir.path());
    let first = approved(payment(&sim).purchase(1_000, &mut |_| true).unwrap());
    let before = sim.ledger(None);
    assert_eq!(before.len(), 1);
    sim.kill();

    // The file holds what the live ledger showed, line for line.
    let bytes = std::fs::read(dir.path().join("ledger.jsonl")).unwrap();
    assert_eq!(parse(&bytes).unwrap().entries, before);
    assert_eq!(Ledger::read(&dir.path().join("ledger.jsonl")).unwrap(), before);

    let sim = VanSim::start(dir.path());
    assert_eq!(sim.ledger(None), before, "a restarted van-sim shows the earlier entries");
    // The terminal itself starts afresh (receipt 1 again); the ledger's sequence goes on.
    let second = approved(payment(&sim).purchase(2_500, &mut |_| true).unwrap());
    let after = sim.ledger(None);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].seq, before[0].seq + 1);
    assert!(
        matches!(after[1].event, Event::Charge { amount: 2_500, receipt_no, .. } if Some(receipt_no) == second.receipt_no)
    );
    assert_eq!(first.receipt_no, second.receipt_no);
    let bytes = std::fs::read(dir.path().join("ledger.jsonl")).unwrap();
    assert_eq!(parse(&bytes).unwrap().entries, after);
}

/// Reads from `link` until `want` bytes came or 10 s passed.
fn read_some_bytes(link: &mut SerialLink, want: usize) -> Vec<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want && std::time::Instant::now() < deadline {
        if let Ok(n) = link.read_some(&mut buf, deadline) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    got
}

/// Polls the ledger of `device` until `done` holds (10 s at most).
fn ledger_until(sim: &VanSim, device: &str, done: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    for _ in 0..500 {
        let l = sim.ledger(Some(device));
        if done(&l) {
            return l;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sim.ledger(Some(device))
}

#[test]
fn a_purchase_under_way_when_the_van_goes_is_booked_and_the_terminal_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let sim = VanSim::start(dir.path());
    let cfg = device_cfg("zvt", &sim.device("payment"), "baud = 9600\nstop_bits = 2\ntimeout_ms = 5000", "");
    {
        // The purchase of 1.90 from the ZVT specification (docs/devices.md's verified vector),
        // then the van vanishes after the terminal's ACK and command acknowledgement.
        let mut raw = SerialLink::open("payment", &cfg.serial).unwrap();
        raw.write_all(&hex::decode("1002060107040000000001901003 7657".replace(' ', "")).unwrap()).unwrap();
        let got = read_some_bytes(&mut raw, 1 + 9);
        assert_eq!(got[0], 0x06, "{got:02X?}");
    }
    // The customer goes on at the terminal: the card is charged although nobody hears of it.
    let ledger = ledger_until(&sim, "payment", |l| !l.is_empty());
    assert!(matches!(ledger[..], [Entry { event: Event::Charge { amount: 190, .. }, .. }]), "{ledger:#?}");
    // And the terminal is free for the van when it comes back.
    let next = approved(payment(&sim).purchase(300, &mut |_| true).unwrap());
    assert_eq!(next.amount, 300);
    assert_eq!(sim.ledger(Some("payment")).len(), 2);
}

#[test]
fn a_card_job_cut_off_takes_no_card_and_the_next_job_prints() {
    let dir = tempfile::tempdir().unwrap();
    let sim = VanSim::start(dir.path());
    let cfg = device_cfg("evolis", &sim.device("card"), "baud = 115200\ntimeout_ms = 5000", "ribbon = \"k\"");
    {
        // A sequence opened and a K panel half sent, then the van vanishes.
        let mut raw = SerialLink::open("card", &cfg.serial).unwrap();
        raw.write_all(b"\x1bSs\r").unwrap();
        assert_eq!(read_some_bytes(&mut raw, 3), b"OK\r");
        raw.write_all(b"\x1bDb;k;2;").unwrap();
        raw.write_all(&[0x55; 10_000]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut card = registry::card(&cfg, link(&cfg, "card")).unwrap();
    let job = CardJob { front: CardSide { k: Some(pattern()), ..Default::default() }, back: None };
    card.print(&job).expect("the next job prints");
    let cards = events(&sim.ledger(Some("card")));
    assert!(matches!(cards[..], [Event::CardPrinted { card: 1, .. }]), "{cards:#?}");
}

/// A K panel with a frame and a block.
fn pattern() -> Bitmap1 {
    let mut b = Bitmap1::blank(648, 1016);
    for x in 0..648 {
        b.set(x, 0, true);
        b.set(x, 1015, true);
    }
    for y in 300..340 {
        for x in 50..400 {
            b.set(x, y, true);
        }
    }
    b
}

#[test]
fn cards_labels_and_tags_as_they_came_out() {
    let dir = tempfile::tempdir().unwrap();
    let sim = VanSim::start(dir.path());

    // Card printer: one printed card, then a jam (a card left the hopper and stuck inside).
    let cfg = device_cfg("evolis", &sim.device("card"), "baud = 115200\ntimeout_ms = 5000", "ribbon = \"k\"");
    let mut card = registry::card(&cfg, link(&cfg, "card")).unwrap();
    let job = CardJob { front: CardSide { k: Some(pattern()), ..Default::default() }, back: None };
    card.print(&job).unwrap();
    sim.ctl_json(&["fault", "card", "card_jam"]);
    assert!(card.print(&job).is_err());
    // What the printer was given, in its line order (the portrait image turned half a turn).
    let b = pattern();
    let mut levels: Vec<u8> =
        (0..1016).flat_map(|y| (0..648).map(move |x| (x, y))).map(|(x, y)| u8::from(b.get(x, y))).collect();
    levels.reverse();
    let want = hex::encode(Sha256::digest(&levels));
    let cards = events(&sim.ledger(Some("card")));
    match &cards[..] {
        [
            Event::CardPrinted { card: 1, sides: 1, panels, bytes, sha256, ejected: true },
            Event::CardSpoiled { reason, ejected: false },
        ] => {
            assert_eq!(panels.len(), 1);
            assert_eq!((panels[0].side.as_str(), panels[0].panel.as_str()), ("front", "k"));
            assert_eq!(panels[0].sha256, want);
            assert_eq!(*sha256, want, "one panel: the card's digest is the panel's");
            assert_eq!(*bytes, 648 * 1016 / 8, "one uncompressed K panel");
            assert_eq!(reason, "card_jam");
        }
        other => panic!("{other:#?}"),
    }

    // Sticker printer on RFID stock: the inlay's tag, then the label; then a plain label.
    let cfg = device_cfg("zpl", &sim.device("sticker"), "baud = 9600\ntimeout_ms = 2000", "rfid = true");
    let mut printer = registry::sticker(&cfg, link(&cfg, "sticker")).unwrap();
    let mut label = StickerLabel::new_mm(203, 50.0, 30.0);
    label.elements.push(LabelElement::Text { x: 10, y: 10, height: 30, text: "MTU 1234".into() });
    let tag = TagWrite {
        epc: hex::decode("3034257BF400B7800004CB2F").unwrap(),
        user: vec![],
        access_password: Some(TagPassword::new([0x12, 0x34, 0x56, 0x78])),
        kill_password: Some(TagPassword::new([0x88, 0x88, 0x77, 0x77])),
        lock: TagLock::Lock,
    };
    let tid = printer.print_rfid_label(&label, &tag).unwrap();
    printer.print_label(&label).unwrap();
    let labels = events(&sim.ledger(Some("sticker")));
    match &labels[..] {
        [
            Event::TagWritten { tid: t, epc, locked: true, op, .. },
            Event::LabelPrinted { label: 1, width, height, copies: 1, sha256: first, voided: false },
            Event::LabelPrinted { label: 2, sha256: second, voided: false, .. },
        ] => {
            assert_eq!(*t, hex::encode_upper(&tid.0));
            assert_eq!(epc, "3034257BF400B7800004CB2F");
            assert_eq!(op, "label");
            assert_eq!((*width, *height), (label.width, label.height));
            assert_ne!(first, second, "the RFID label's format differs from the plain one");
        }
        other => panic!("{other:#?}"),
    }
    let ledger_text = std::fs::read_to_string(dir.path().join("ledger.jsonl")).unwrap();
    assert!(!ledger_text.contains("12345678") && !ledger_text.contains("88887777"), "no tag password");

    // RFID encoder: each encode finds a fresh blank (the finished sticker is taken off), `tag next`
    // places one by hand, a voided tag is killed.
    let secret = dir.path().join("tag-secret");
    std::fs::write(&secret, "11".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = device_cfg(
        "mercury",
        &sim.device("rfid"),
        "baud = 115200\ntimeout_ms = 2000",
        &format!("password_file = {:?}", secret.display().to_string()),
    );
    let mut enc = registry::rfid(&cfg, link(&cfg, "rfid")).unwrap();
    let data = |last: u8| TagData {
        epc: vec![0x30, 0x34, 0x25, 0x7B, 0xF4, 0x00, 0xB7, 0x80, 0x00, 0x04, 0xCB, last],
        user: b"EG-CAIRO 1234".to_vec(),
    };
    let a = enc.encode(&data(1)).unwrap();
    let b = enc.encode(&data(2)).unwrap();
    assert_ne!(a.tid, b.tid, "a fresh blank for the second encode");
    let placed = sim.ctl_json(&["tag", "next"]);
    let c = enc.encode(&data(3)).unwrap();
    assert_eq!(placed["tid"], hex::encode_upper(&c.tid), "the tag placed by hand is encoded");
    enc.void(&c.tid).unwrap();
    let tags = sim.ledger(Some("rfid"));
    for (t, epc) in [(&a, data(1).epc), (&b, data(2).epc), (&c, data(3).epc)] {
        let tid = hex::encode_upper(&t.tid);
        assert!(tid.starts_with("E2"), "{tid}");
        let last = tags
            .iter()
            .rev()
            .filter_map(|e| match &e.event {
                Event::TagWritten { tid: x, epc, locked, user_bytes, op } if *x == tid => {
                    Some((epc.clone(), *locked, *user_bytes, op.clone()))
                }
                _ => None,
            })
            .next()
            .unwrap_or_else(|| panic!("{tid} not written: {tags:#?}"));
        assert_eq!(last, (hex::encode_upper(&epc), true, 14, "lock".to_string()), "{tid}");
    }
    assert_eq!(tags.last().unwrap().event, Event::TagKilled { tid: hex::encode_upper(&c.tid) });

    // The whole ledger: every device, one sequence.
    let all = sim.ledger(None);
    assert_eq!(all.len(), cards.len() + labels.len() + tags.len());
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}
