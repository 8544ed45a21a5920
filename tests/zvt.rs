//! The ZVT driver against the payment simulator over real pseudo-terminals.
//!
//! The simulator runs on a thread holding the PTY master; the driver holds the slave through the
//! real serial transport ([`SerialLink`]). Timing is zero and protocol timers are short, so the
//! suite is fast.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtu::config::DeviceConfig;
use mtu::devices::DeviceError;
use mtu::devices::payment::{PaymentOutcome, PaymentTerminal};
use mtu::devices::registry::payment as driver_from_config;
use mtu::devices::transport::SerialLink;
use mtu::sim::{SimDevice, SimOut, payment};
use serialport::{SerialPort, TTYPort};

/// How the harness tampers with the line.
#[derive(Clone, Copy, Default)]
struct Tamper {
    /// Write junk bytes before every frame the terminal sends.
    garbage: bool,
    /// Flip a byte in the first frame the ECR sends (the terminal must NAK it).
    corrupt_first_from_ecr: bool,
}

type SharedSim = Arc<Mutex<Box<dyn SimDevice>>>;

struct Host {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    from_ecr: Arc<Mutex<Vec<u8>>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `sim` on a fresh PTY pair; returns the ECR-side link and the host.
fn serve(sim: SharedSim, tamper: Tamper) -> (SerialLink, Host) {
    let (mut master, slave) = TTYPort::pair().expect("pty pair");
    let stop = Arc::new(AtomicBool::new(false));
    let from_ecr = Arc::new(Mutex::new(Vec::new()));
    let (stop2, rec) = (stop.clone(), from_ecr.clone());
    let thread = std::thread::spawn(move || {
        let mut corrupt = tamper.corrupt_first_from_ecr;
        let mut buf = [0u8; 1024];
        let _ = master.set_timeout(Duration::from_millis(10));
        while !stop2.load(Ordering::SeqCst) {
            let n = match master.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return,
            };
            let mut bytes = buf[..n].to_vec();
            rec.lock().unwrap().extend_from_slice(&bytes);
            if corrupt && bytes.len() > 4 {
                corrupt = false;
                bytes[4] ^= 0x01;
            }
            let outs = sim.lock().unwrap().receive(&bytes, Instant::now());
            for o in outs {
                match o {
                    SimOut::Send(b) => {
                        if tamper.garbage && b.len() > 1 {
                            let _ = master.write_all(&[0x00, 0xFF, 0x10, 0x41, 0x03, 0x55]);
                        }
                        let _ = master.write_all(&b);
                    }
                    SimOut::Wait(d) => std::thread::sleep(d),
                    SimOut::DropLink => return,
                }
            }
        }
    });
    (SerialLink::from_tty(slave, "payment"), Host { stop, thread: Some(thread), from_ecr })
}

fn new_sim() -> SharedSim {
    let opts: toml::Table = "timing_scale = 0\npassword = \"246810\"".parse().unwrap();
    Arc::new(Mutex::new(payment::simulator(&opts).unwrap()))
}

fn config(extra: &str) -> DeviceConfig {
    let src = format!(
        "driver = \"zvt\"\npath = \"var/dev/payment\"\nbaud = 9600\nstop_bits = 2\n[options]\npassword = \"246810\"\nack_timeout_ms = 300\nt3_ms = 2000\nt4_ms = 5000\n{extra}"
    );
    toml::from_str(&src).unwrap()
}

fn driver(link: SerialLink, extra: &str) -> Box<dyn PaymentTerminal> {
    driver_from_config(&config(extra), Box::new(link)).unwrap()
}

fn setup(tamper: Tamper) -> (SharedSim, Box<dyn PaymentTerminal>, Host) {
    let sim = new_sim();
    let (link, host) = serve(sim.clone(), tamper);
    (sim, driver(link, ""), host)
}

fn purchase(t: &mut dyn PaymentTerminal, amount: u64) -> (PaymentOutcome, Vec<String>) {
    let mut texts = Vec::new();
    let out = t
        .purchase(amount, &mut |s: &str| {
            texts.push(s.to_string());
            true
        })
        .unwrap();
    (out, texts)
}

fn status(sim: &SharedSim) -> serde_json::Value {
    sim.lock().unwrap().status()
}

#[test]
fn approve_with_progress_and_receipt() {
    let (sim, mut t, _host) = setup(Tamper::default());
    t.register().unwrap();
    let (out, texts) = purchase(t.as_mut(), 190);
    let PaymentOutcome::Approved(a) = out else { panic!("{out:?}") };
    assert_eq!(a.amount, 190);
    assert_eq!(a.result_code, 0);
    assert_eq!(a.receipt_no, Some(1));
    assert_eq!(a.terminal_id, Some(52_523_535));
    assert_eq!(a.masked_pan.as_deref(), Some("411111******1010"));
    assert_eq!(a.card_name.as_deref(), Some("Visa"));
    assert_eq!(a.aid.as_deref(), Some("S1M0K7"));
    assert!(a.receipt_lines.iter().any(|l| l == "EGP 1.90"), "{:?}", a.receipt_lines);
    assert_eq!(texts, ["Insert card", "Please watch PIN pad", "Waiting for response from host"]);
    let s = status(&sim);
    assert_eq!(s["registered"], true);
    assert_eq!(s["last_transaction"]["amount"], 190);
}

#[test]
fn purchase_bytes_on_the_wire_with_and_without_currency() {
    // Without currency: exactly the verified vector of devices.md.
    let sim = new_sim();
    let (link, host) = serve(sim.clone(), Tamper::default());
    let mut t = driver(link, "currency = false");
    let (out, _) = purchase(t.as_mut(), 190);
    assert!(matches!(out, PaymentOutcome::Approved(_)));
    let wire = host.from_ecr.lock().unwrap().clone();
    let vector =
        [0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57];
    assert_eq!(&wire[..16], vector);
    drop(t);
    drop(host);
    // With currency (default): BMP 49 08 18 follows the amount.
    let (link, host) = serve(sim, Tamper::default());
    let mut t = driver(link, "");
    let (out, _) = purchase(t.as_mut(), 190);
    assert!(matches!(out, PaymentOutcome::Approved(_)));
    let wire = host.from_ecr.lock().unwrap().clone();
    assert_eq!(&wire[2..15], [0x06, 0x01, 0x0A, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x49, 0x08, 0x18]);
}

#[test]
fn decline() {
    let (sim, mut t, _host) = setup(Tamper::default());
    sim.lock().unwrap().apply_fault("decline").unwrap();
    let (out, _) = purchase(t.as_mut(), 5000);
    assert_eq!(
        out,
        PaymentOutcome::Declined { result_code: 0x05, text: "Declined by the card issuer".into() }
    );
}

#[test]
fn silent_terminal_gets_the_purchase_exactly_once_and_the_outcome_is_unknown() {
    let (sim, mut t, host) = setup(Tamper::default());
    sim.lock().unwrap().apply_fault("timeout").unwrap();
    let (out, _) = purchase(t.as_mut(), 190);
    assert!(matches!(out, PaymentOutcome::Unknown { .. }), "{out:?}");
    // Over a real PTY: silence may mean the terminal took it and its ACK was lost, so the
    // purchase frame goes out exactly once; recovery is by status enquiry / repeat receipt.
    let wire = host.from_ecr.lock().unwrap().clone();
    let starts = wire.windows(4).filter(|w| *w == [0x10, 0x02, 0x06, 0x01]).count();
    assert_eq!(starts, 1);
}

#[test]
fn dropped_link_mid_purchase_is_recovered_by_repeat_receipt() {
    let sim = new_sim();
    let (link, host) = serve(sim.clone(), Tamper::default());
    let mut t = driver(link, "");
    sim.lock().unwrap().apply_fault("drop_mid_purchase").unwrap();
    let (out, texts) = purchase(t.as_mut(), 1010);
    assert!(matches!(out, PaymentOutcome::Unknown { .. }), "{out:?}");
    assert!(!texts.is_empty());
    drop(t);
    drop(host);
    // Reconnect (new port) and ask the terminal what happened: never re-send the purchase.
    let (link, _host) = serve(sim.clone(), Tamper::default());
    let mut t = driver(link, "");
    let last = t.repeat_last().unwrap().expect("terminal has a last transaction");
    assert_eq!(last.amount, 1010);
    assert_eq!(last.result_code, 0);
    assert_eq!(last.receipt_no, Some(1));
    assert!(last.matches_unknown_purchase(1010, None));
    assert_eq!(status(&sim)["commands"]["purchase"], 1);
    assert_eq!(status(&sim)["commands"]["repeat_receipt"], 1);
}

#[test]
fn corrupted_terminal_frame_is_naked_and_repeated() {
    let (sim, mut t, _host) = setup(Tamper::default());
    sim.lock().unwrap().apply_fault("nak_once").unwrap();
    let (out, _) = purchase(t.as_mut(), 190);
    assert!(matches!(out, PaymentOutcome::Approved(_)), "{out:?}");
    assert_eq!(status(&sim)["naks_received"], 1);
}

#[test]
fn corrupted_ecr_frame_is_naked_by_terminal_and_retransmitted() {
    let (sim, mut t, _host) = setup(Tamper { corrupt_first_from_ecr: true, ..Default::default() });
    let (out, _) = purchase(t.as_mut(), 190);
    assert!(matches!(out, PaymentOutcome::Approved(_)), "{out:?}");
    assert_eq!(status(&sim)["bad_frames"], 1);
    assert_eq!(status(&sim)["commands"]["purchase"], 1);
}

#[test]
fn garbage_between_frames_is_skipped() {
    let (_sim, mut t, _host) = setup(Tamper { garbage: true, ..Default::default() });
    let (out, _) = purchase(t.as_mut(), 190);
    let PaymentOutcome::Approved(a) = out else { panic!("{out:?}") };
    assert_eq!(a.amount, 190);
}

#[test]
fn reversal_then_second_reversal_is_refused() {
    let (_sim, mut t, _host) = setup(Tamper::default());
    let (out, _) = purchase(t.as_mut(), 2500);
    let PaymentOutcome::Approved(a) = out else { panic!("{out:?}") };
    let r = t.reversal(a.receipt_no.unwrap()).unwrap();
    let PaymentOutcome::Approved(rev) = r else { panic!("{r:?}") };
    assert_eq!(rev.amount, 2500);
    let again = t.reversal(a.receipt_no.unwrap()).unwrap();
    assert!(matches!(again, PaymentOutcome::Declined { result_code: 0xB4, .. }), "{again:?}");
}

#[test]
fn end_of_day_totals_with_dle_amounts() {
    let (sim, mut t, _host) = setup(Tamper::default());
    // 10.10 EGP is BCD 00 00 00 00 10 10: both bytes are DLE and must be doubled on the line.
    for amount in [1010, 190] {
        assert!(matches!(purchase(t.as_mut(), amount).0, PaymentOutcome::Approved(_)));
    }
    let totals = t.end_of_day().unwrap();
    assert_eq!(totals.total, 1200);
    assert_eq!(totals.count, 2);
    assert_eq!(totals.receipts, Some((1, 2)));
    assert_eq!(totals.schemes, vec![("Visa".to_string(), 2, 1200)]);
    assert_eq!(status(&sim)["totals"]["amount"], 0);
    let again = t.end_of_day().unwrap();
    assert_eq!(again.total, 0);
}

#[test]
fn refund_status_self_test_and_abort() {
    let (_sim, mut t, _host) = setup(Tamper::default());
    assert!(matches!(t.refund(700).unwrap(), PaymentOutcome::Approved(a) if a.amount == 700));
    let s = t.status().unwrap();
    assert!(s.ready);
    assert_eq!(s.software, "MTU-SIM ZVT 1.0");
    let r = t.self_test().unwrap();
    assert!(r.ok, "{r:?}");
    t.abort().unwrap();
}

#[test]
fn officer_cancel_aborts_purchase() {
    let (sim, mut t, _host) = setup(Tamper::default());
    let out = t.purchase(190, &mut |_s: &str| false).unwrap();
    assert_eq!(out, PaymentOutcome::Aborted);
    assert_eq!(status(&sim)["last_transaction"], serde_json::Value::Null);
}

#[test]
fn wrong_password_is_a_fault_without_the_password() {
    let sim = new_sim();
    let (link, _host) = serve(sim, Tamper::default());
    let cfg: DeviceConfig = toml::from_str(
        "driver = \"zvt\"\npath = \"p\"\nbaud = 9600\n[options]\npassword = \"111111\"\nack_timeout_ms = 300",
    )
    .unwrap();
    let mut t = driver_from_config(&cfg, Box::new(link)).unwrap();
    let e = t.end_of_day().unwrap_err();
    assert!(matches!(e, DeviceError::Fault { .. }), "{e:?}");
    assert!(!e.to_string().contains("111111"));
}

#[test]
fn repeat_receipt_without_transactions_is_none() {
    let (_sim, mut t, _host) = setup(Tamper::default());
    assert_eq!(t.repeat_last().unwrap(), None);
}

#[test]
fn bad_option_names_the_key() {
    let (link, _host) = serve(new_sim(), Tamper::default());
    let e = driver_from_config(&config("currency = 3"), Box::new(link)).err().unwrap();
    assert!(e.to_string().contains("options.currency"), "{e}");
}
