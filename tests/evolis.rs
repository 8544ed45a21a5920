//! Evolis card printer: driver against the simulator over a real pseudo-terminal, every fault,
//! garbage replies, and a property round trip of panels through the driver's encoder and the
//! simulator's independent decoder.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtu::config::DeviceConfig;
use mtu::devices::card::{Bitmap1, CardFault, CardJob, CardSide, ColourPlanes, Plane8};
use mtu::devices::evolis::job::{JobSettings, Ribbon, build_job};
use mtu::devices::registry::card as driver_from_config;
use mtu::devices::transport::SerialLink;
use mtu::devices::{DeviceError, LinkError};
use mtu::sim::card::EvolisSim;
use mtu::sim::{SimDevice, SimOut};
use proptest::prelude::*;
use serialport::{SerialPort, TTYPort};

/// Serves a simulator on the other end of the PTY from a thread.
struct Served<S: SimDevice + 'static> {
    sim: Arc<Mutex<S>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<S: SimDevice + 'static> Served<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.sim.lock().unwrap()
    }
}

impl<S: SimDevice + 'static> Drop for Served<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<S: SimDevice + 'static>(sim: S) -> (SerialLink, Served<S>) {
    let (host, mut dev) = TTYPort::pair().expect("pty pair");
    let sim = Arc::new(Mutex::new(sim));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, stop2) = (sim.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        dev.set_timeout(Duration::from_millis(10)).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while !stop2.load(Ordering::SeqCst) {
            match dev.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let outs = s2.lock().unwrap().receive(&buf[..n], Instant::now());
                    for o in outs {
                        match o {
                            SimOut::Send(b) => {
                                let _ = dev.write_all(&b);
                            }
                            SimOut::Wait(d) => std::thread::sleep(d),
                            SimOut::DropLink => {}
                        }
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {}
                Err(_) => break,
            }
        }
    });
    (SerialLink::from_tty(host, "card"), Served { sim, stop, thread: Some(thread) })
}

fn device_cfg(options: &str, timeout_ms: u64) -> DeviceConfig {
    let text = format!(
        "driver = \"evolis\"\npath = \"var/dev/card\"\nbaud = 115200\ntimeout_ms = {timeout_ms}\n[options]\n{options}"
    );
    toml::from_str(&text).expect("device config")
}

fn fast_sim() -> EvolisSim {
    EvolisSim::from_options(&toml::from_str("timing_scale = 0").unwrap()).unwrap()
}

/// A K bitmap with a frame, a diagonal and a filled block: known, easy-to-check pixels.
fn pattern_k() -> Bitmap1 {
    let mut b = Bitmap1::blank(648, 1016);
    for x in 0..648 {
        b.set(x, 0, true);
        b.set(x, 1015, true);
    }
    for y in 0..1016 {
        b.set(0, y, true);
        b.set(647, y, true);
        b.set(y * 647 / 1015, y, true);
    }
    for y in 400..420 {
        for x in 100..300 {
            b.set(x, y, true);
        }
    }
    b
}

fn gradient(seed: u32) -> Plane8 {
    let mut p = Plane8::filled(648, 1016, 0);
    for y in 0..1016u32 {
        for x in 0..648u32 {
            p.data[(y * 648 + x) as usize] = ((x + y + seed) % 256) as u8;
        }
    }
    p
}

/// A K bitmap as row-major levels (0/1), computed here pixel by pixel.
fn k_levels(b: &Bitmap1) -> Vec<u8> {
    let mut v = Vec::with_capacity(648 * 1016);
    for y in 0..1016 {
        for x in 0..648 {
            v.push(u8::from(b.get(x, y)));
        }
    }
    v
}

fn two_sided_job() -> CardJob {
    CardJob {
        front: CardSide {
            k: Some(pattern_k()),
            ymc: Some(ColourPlanes { y: gradient(0), m: gradient(85), c: gradient(170) }),
            overlay: true,
        },
        back: Some(CardSide { k: Some(pattern_k()), ymc: None, overlay: false }),
    }
}

#[test]
fn two_sided_print_over_a_pty() {
    let (link, served) = serve(fast_sim());
    let cfg = device_cfg("ribbon = \"ymcko\"", 5000);
    let mut printer = driver_from_config(&cfg, Box::new(link)).expect("driver");
    let job = two_sided_job();
    let receipt = printer.print(&job).expect("print");
    assert_eq!(receipt.panels, ["front:y", "front:m", "front:c", "front:k", "front:o", "back:k"]);
    // Job header (10), per side `Sr`/`Sv` + 7 contrast/luminosity + `Pida` + panels, `Se`,
    // `Pcla;0`.
    assert_eq!(receipt.round_trips, 10 + (9 + 5) + (9 + 1) + 2);

    let sim = served.lock();
    let card = &sim.printed()[0];
    let names: Vec<char> = card.front.iter().map(|p| p.panel).collect();
    assert_eq!(names, ['y', 'm', 'c', 'k', 'o']);
    let front = job.front.ymc.as_ref().unwrap();
    // Decoded back into the portrait images the job was given (256 levels: exact).
    assert_eq!(card.front[0].portrait(), front.y.data);
    assert_eq!(card.front[1].portrait(), front.m.data);
    assert_eq!(card.front[2].portrait(), front.c.data);
    assert_eq!(card.front[3].portrait(), k_levels(&pattern_k()));
    assert!(card.front[4].levels.iter().all(|&v| v == 1), "full overlay");
    assert_eq!(card.back[0].portrait(), k_levels(&pattern_k()));
    let st = sim.status();
    assert_eq!(st["cards_printed"], 1);
    assert_eq!(st["ribbon_remaining"], 198);
    assert_eq!(st["files"].as_array().unwrap().len(), 6);
    assert_eq!(st["malformed"], 0);
}

#[test]
fn pngs_go_to_the_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let opts = format!("timing_scale = 0\noutput_dir = {:?}", dir.path().display().to_string());
    let (link, _served) = serve(EvolisSim::from_options(&toml::from_str(&opts).unwrap()).unwrap());
    let mut printer = driver_from_config(&device_cfg("ribbon = \"k\"", 5000), Box::new(link)).unwrap();
    let job = CardJob { front: CardSide { k: Some(pattern_k()), ..Default::default() }, back: None };
    printer.print(&job).unwrap();
    let png = std::fs::read(dir.path().join("card-0001-front-k.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn status_and_self_test_never_print() {
    let (link, served) = serve(fast_sim());
    let mut printer = driver_from_config(&device_cfg("", 2000), Box::new(link)).unwrap();
    let st = printer.status().unwrap();
    assert_eq!(st.firmware, "SIM-EVOLIS 1.0");
    assert_eq!(st.serial, "SIM0000001");
    assert_eq!(st.ribbon_remaining, Some(200));
    assert_eq!(st.feeder_loaded, Some(true));
    assert!(st.faults.is_empty());
    let report = printer.self_test().unwrap();
    assert!(report.ok, "{:?}", report.lines);
    served.lock().apply_fault("cover_open").unwrap();
    assert_eq!(
        printer.status().unwrap().health(),
        mtu::devices::Health::fault(mtu::devices::Fault::Card(CardFault::CoverOpen))
    );
    let report = printer.self_test().unwrap();
    assert!(!report.ok);
    assert!(report.lines.iter().any(|l| l.contains("close the printer cover")), "{:?}", report.lines);
    let sim = served.lock();
    assert_eq!(sim.status()["cards_printed"], 0);
    assert_eq!(sim.status()["ribbon_remaining"], 200);
}

#[test]
fn every_fault_stops_the_job_with_an_action() {
    let cases = [
        ("feeder_empty", CardFault::FeederEmpty),
        ("ribbon_ended", CardFault::RibbonEnded),
        ("no_ribbon", CardFault::NoRibbon),
        ("cover_open", CardFault::CoverOpen),
        ("card_jam", CardFault::CardJam),
        ("card_rejected", CardFault::CardRejected),
        ("ribbon_jam", CardFault::RibbonJam),
        ("feeder_error", CardFault::FeederError),
    ];
    let (link, served) = serve(fast_sim());
    let mut printer = driver_from_config(&device_cfg("ribbon = \"k\"", 3000), Box::new(link)).unwrap();
    let job = CardJob { front: CardSide { k: Some(pattern_k()), ..Default::default() }, back: None };
    for (name, fault) in cases {
        served.lock().apply_fault(name).unwrap();
        match printer.print(&job) {
            Err(e) => {
                // Typed, whether it came before the card was fed or during the sequence.
                assert_eq!(e.kind(), mtu::devices::Fault::Card(fault), "{name}: {e}");
                assert!(e.to_string().contains(fault.action()), "{name}: {e}");
                assert!(e.to_string().starts_with("card printer on ") || e.may_have_acted(), "{e}");
            }
            Ok(r) => panic!("{name}: expected a fault, got {r:?}"),
        }
        // Status reports the persistent ones too (rejected and state faults detected before
        // printing leave nothing behind).
        let st = printer.status().unwrap();
        if !matches!(fault, CardFault::CardRejected) {
            assert!(st.faults.contains(&fault), "{name}: {:?}", st.faults);
        }
        served.lock().clear_faults();
        assert!(printer.status().unwrap().faults.is_empty(), "{name} cleared");
    }
    assert_eq!(served.lock().status()["cards_printed"], 0);
    // After all that, a card prints.
    printer.print(&job).unwrap();
    assert_eq!(served.lock().status()["cards_printed"], 1);
}

/// Wraps the simulator and corrupts chosen replies.
struct Garbler {
    inner: EvolisSim,
    /// Replies left to replace with this garbage (one per received command burst).
    garbage: Vec<Vec<u8>>,
    /// Commands to answer with silence.
    mute: bool,
}

impl SimDevice for Garbler {
    fn name(&self) -> &'static str {
        "card"
    }
    fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<SimOut> {
        let out = self.inner.receive(bytes, now);
        if self.mute {
            return Vec::new();
        }
        out.into_iter()
            .map(|o| match o {
                SimOut::Send(_) if !self.garbage.is_empty() => SimOut::Send(self.garbage.remove(0)),
                o => o,
            })
            .collect()
    }
    fn apply_fault(&mut self, f: &str) -> Result<(), String> {
        self.inner.apply_fault(f)
    }
    fn clear_faults(&mut self) {
        self.inner.clear_faults()
    }
    fn status(&self) -> serde_json::Value {
        self.inner.status()
    }
}

#[test]
fn garbage_replies() {
    let g = Garbler { inner: fast_sim(), garbage: vec![b"\xff\xfe\x01\x02\r".to_vec()], mute: false };
    let (link, served) = serve(g);
    let mut printer = driver_from_config(&device_cfg("ribbon = \"k\"", 1000), Box::new(link)).unwrap();
    // A read is retried once after a garbled reply.
    let st = printer.status().expect("status survives one garbled reply");
    assert_eq!(st.firmware, "SIM-EVOLIS 1.0");

    // A garbled reply during a job ends it as a protocol error; nothing more is sent.
    served.lock().garbage = vec![vec![b'A'; 1000]];
    let job = CardJob { front: CardSide { k: Some(pattern_k()), ..Default::default() }, back: None };
    match printer.print(&job) {
        Err(DeviceError::Protocol { detail, .. }) => assert!(detail.contains("garbled"), "{detail}"),
        other => panic!("expected protocol error, got {other:?}"),
    }
    assert_eq!(served.lock().status()["commands"], 6 + 1, "job stopped at the first command");

    // An unexpected value instead of OK.
    served.lock().garbage = vec![b"HELLO\r".to_vec()];
    assert!(matches!(printer.print(&job), Err(DeviceError::Protocol { .. })));

    // Silence is a timeout, not success.
    served.lock().mute = true;
    assert!(matches!(printer.status(), Err(DeviceError::Link(LinkError::Timeout { .. }))));
    assert_eq!(served.lock().status()["cards_printed"], 0);
}

#[test]
fn config_errors_name_the_key() {
    let (link, _served) = serve(fast_sim());
    match driver_from_config(&device_cfg("ribbon = \"rainbow\"", 1000), Box::new(link)) {
        Err(DeviceError::Config { key, .. }) => assert_eq!(key, "devices.card.options.ribbon"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted a bad ribbon"),
    }
    let (link, _served) = serve(fast_sim());
    let mut cfg = device_cfg("", 1000);
    cfg.driver = "zebra".into();
    assert!(matches!(
        driver_from_config(&cfg, Box::new(link)),
        Err(DeviceError::Config { key, .. }) if key == "devices.card.driver"
    ));
}

fn sparse_bitmap(points: &[(u32, u32)], lines: &[u32], landscape: bool) -> Bitmap1 {
    let (w, h) = if landscape { (1016, 648) } else { (648, 1016) };
    let mut b = Bitmap1::blank(w, h);
    for &(x, y) in points {
        b.set(x % w, y % h, true);
    }
    for &l in lines {
        for x in 0..w {
            b.set(x, l % h, true);
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Panels survive the driver's encoder and the simulator's own decoder, with and without
    /// compression, portrait and landscape.
    #[test]
    fn panels_round_trip(points in proptest::collection::vec((0u32..2000, 0u32..2000), 0..200),
                         lines in proptest::collection::vec(0u32..1016, 0..5),
                         seed in 0u32..256, compress: bool, landscape: bool) {
        let k = sparse_bitmap(&points, &lines, landscape);
        let y = gradient(seed);
        let job = CardJob {
            front: CardSide { k: Some(k.clone()), ymc: Some(ColourPlanes { y: y.clone(), m: gradient(seed + 1), c: Plane8::filled(648, 1016, 0) }), overlay: false },
            back: Some(CardSide { k: Some(k.clone()), ymc: None, overlay: true }),
        };
        let settings = JobSettings { ribbon: Ribbon::Ymcko, compress, ..JobSettings::default() };
        let mut sim = fast_sim();
        for c in build_job(&settings, &job).unwrap() {
            let out = sim.receive(&c.bytes, Instant::now());
            let ok = out.iter().any(|o| matches!(o, SimOut::Send(b) if b == b"OK\r"));
            prop_assert!(ok, "{} not accepted: {:?}", c.label, out);
        }
        let card = &sim.printed()[0];
        let find = |panels: &[mtu::sim::card::SimPanel], c: char| panels.iter().find(|p| p.panel == c).cloned();
        // Expected K in printer line order, computed independently of the encoder (the vendor
        // library's mapping: portrait turned half a turn, landscape column x = line x).
        let mut expect_k = Vec::with_capacity(648 * 1016);
        for line in 0..1016u32 {
            for col in 0..648u32 {
                let ink = if landscape { k.get(line, 647 - col) } else { k.get(647 - col, 1015 - line) };
                expect_k.push(u8::from(ink));
            }
        }
        if expect_k.contains(&1) {
            prop_assert_eq!(&find(&card.front, 'k').unwrap().levels, &expect_k);
            prop_assert_eq!(&find(&card.back, 'k').unwrap().levels, &expect_k);
        } else {
            // A blank K panel is not sent, as the vendor library does.
            prop_assert!(find(&card.front, 'k').is_none() && find(&card.back, 'k').is_none());
        }
        prop_assert_eq!(&find(&card.front, 'y').unwrap().portrait(), &y.data);
        prop_assert!(find(&card.front, 'c').is_none(), "blank cyan is not sent");
        prop_assert!(find(&card.back, 'o').unwrap().levels.iter().all(|&v| v == 1));
    }
}
