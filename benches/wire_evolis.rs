//! Wire cost of one two-sided card (colour YMCKO front, K back) through the Evolis driver and
//! the simulator over a real pseudo-terminal, timing 0, in the vendor's uncompressed form and
//! with `Dbc` K/O panels. Prints bytes on the wire, round trips, the pure wire time at the
//! configured baud (config/sim.toml) and the measured wall time.
//! Run: `cargo bench --bench wire_evolis`.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtu::config::Config;
use mtu::devices::card::{Bitmap1, CardJob, CardSide, ColourPlanes, Plane8};
use mtu::devices::registry::card as driver_from_config;
use mtu::devices::transport::{CountingLink, SerialLink};
use mtu::sim::card::EvolisSim;
use mtu::sim::{SimDevice, SimOut};
use serialport::{SerialPort, TTYPort};

fn gradient(seed: u32) -> Plane8 {
    let mut p = Plane8::filled(648, 1016, 0);
    for (i, v) in p.data.iter_mut().enumerate() {
        *v = ((i as u32 / 648 + i as u32 % 648 + seed) % 256) as u8;
    }
    p
}

fn text_like_k() -> Bitmap1 {
    // Roughly what an ID card's black panel looks like: blocks of "text" lines, a QR-ish square.
    let mut b = Bitmap1::blank(648, 1016);
    for y in (100..900).step_by(40) {
        for dy in 0..20 {
            for x in (40..600).filter(|x| (x / 7 + y / 40) % 3 != 0) {
                b.set(x, y + dy, true);
            }
        }
    }
    for y in 700..950 {
        for x in 380..630 {
            if (x / 10 + y / 10) % 2 == 0 {
                b.set(x, y, true);
            }
        }
    }
    b
}

fn main() {
    let cfg_text = std::fs::read_to_string("config/sim.toml").expect("config/sim.toml");
    let cfg = Config::parse(&cfg_text, "config/sim.toml").expect("config");
    let card_cfg = cfg.devices.card.clone().expect("[devices.card] in config/sim.toml");
    let baud = card_cfg.serial.baud;
    let job = CardJob {
        front: CardSide {
            k: Some(text_like_k()),
            ymc: Some(ColourPlanes { y: gradient(0), m: gradient(85), c: gradient(170) }),
            overlay: true,
        },
        back: Some(CardSide { k: Some(text_like_k()), ymc: None, overlay: false }),
    };
    println!(
        "evolis two-sided card (YMCKO front: Y/M/C at 256 levels, K, O; K back), simulation timing 0, PTY"
    );
    let mut wires = Vec::new();
    for compression in [false, true] {
        let mut card_cfg = card_cfg.clone();
        card_cfg.options.insert("ribbon".into(), toml::Value::String("ymcko".into()));
        card_cfg.options.insert("compression".into(), toml::Value::Boolean(compression));
        let label =
            if compression { "K/O as Dbc (compression = true)" } else { "vendor form, all Db (default)" };
        wires.push(run(&card_cfg, &job, baud, label));
    }
    println!(
        "  Dbc saves {:.2} s of wire time per card ({:.1} % of the uncompressed card)",
        wires[0] - wires[1],
        (wires[0] - wires[1]) / wires[0] * 100.0
    );
}

/// Prints one configuration's figures; returns its wire time in seconds.
fn run(card_cfg: &mtu::config::DeviceConfig, job: &CardJob, baud: u32, label: &str) -> f64 {
    let (host, mut dev) = TTYPort::pair().expect("pty pair");
    let sim =
        Arc::new(Mutex::new(EvolisSim::from_options(&toml::from_str("timing_scale = 0").unwrap()).unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, stop2) = (sim.clone(), stop.clone());
    let server = std::thread::spawn(move || {
        dev.set_timeout(Duration::from_millis(10)).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while !stop2.load(Ordering::SeqCst) {
            match dev.read(&mut buf) {
                Ok(n) if n > 0 => {
                    for o in s2.lock().unwrap().receive(&buf[..n], Instant::now()) {
                        if let SimOut::Send(b) = o {
                            let _ = dev.write_all(&b);
                        }
                    }
                }
                _ => {}
            }
        }
    });

    let link = CountingLink::new(Box::new(SerialLink::from_tty(host, "card")));
    let counts = link.counts();
    let mut printer = driver_from_config(card_cfg, Box::new(link)).expect("driver");
    // One warm-up card, then the measured ones.
    printer.print(job).expect("warm-up print");
    let runs = 5;
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        counts.reset();
        let t = Instant::now();
        let r = printer.print(job).expect("print");
        walls.push(t.elapsed());
        last = Some((r, counts.snapshot()));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    let (receipt, wire_counts) = last.expect("at least one run");
    walls.sort();
    let median = walls[walls.len() / 2];
    let total = wire_counts.bytes_out + wire_counts.bytes_in;
    // 8N1: 10 bit times per byte. Host→printer and printer→host share no time on a full-duplex
    // line, but replies only follow commands, so both directions count.
    let wire = Duration::from_secs_f64(total as f64 * 10.0 / baud as f64);
    println!("{label}");
    println!("  panels             {}", receipt.panels.join(" "));
    println!("  bytes host→printer {}", wire_counts.bytes_out);
    println!("  bytes printer→host {}", wire_counts.bytes_in);
    println!("  round trips        {}", wire_counts.turnarounds);
    println!("  wire time @ {baud} baud 8N1: {:.2} s", wire.as_secs_f64());
    println!(
        "  measured wall time (median of {runs}): {:.1} ms (min {:.1} ms, max {:.1} ms)",
        median.as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        walls[walls.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "  overhead ratio (wall / wire): {:.2} % (target < 5 %)",
        median.as_secs_f64() / wire.as_secs_f64() * 100.0
    );
    wire.as_secs_f64()
}
