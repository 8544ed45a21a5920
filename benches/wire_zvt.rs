//! Wire efficiency of a ZVT purchase: the driver against the simulator (timing 0) over a real
//! PTY, compared with the time the same bytes need on the configured serial line.
//!
//! Prints bytes each way, line turnarounds, pure wire time (bits per character × bytes / baud)
//! and wall time; the overhead target is wall < 5 % of wire time (a PTY has no baud pacing, so
//! wall time is our processing and scheduling cost).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtu::config::{Config, Parity};
use mtu::devices::payment::{PaymentOutcome, PaymentTerminal};
use mtu::devices::transport::{CountingLink, SerialLink};
use mtu::devices::zvt::{ZvtOptions, ZvtTerminal};
use mtu::sim::payment::{SimOptions, ZvtSim};
use mtu::sim::{SimDevice, SimOut};
use serialport::{SerialPort, TTYPort};

fn main() {
    let cfg = Config::parse(include_str!("../config/sim.toml"), "config/sim.toml").expect("config/sim.toml");
    let dev = cfg.devices.payment.expect("config/sim.toml has [devices.payment]");
    let baud = f64::from(dev.serial.baud);
    let parity_bits = if matches!(dev.serial.parity, Parity::None) { 0.0 } else { 1.0 };
    let bits_per_char = 1.0 + f64::from(dev.serial.data_bits) + parity_bits + f64::from(dev.serial.stop_bits);

    let (mut master, slave) = TTYPort::pair().expect("pty pair");
    let sim = Arc::new(Mutex::new(ZvtSim::new(SimOptions { timing_scale: 0.0, ..Default::default() })));
    let stop = Arc::new(AtomicBool::new(false));
    let (sim2, stop2) = (sim.clone(), stop.clone());
    let host = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let _ = master.set_timeout(Duration::from_millis(5));
        while !stop2.load(Ordering::Relaxed) {
            let n = match master.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return,
            };
            let outs = sim2.lock().map(|mut s| s.receive(&buf[..n], Instant::now())).unwrap_or_default();
            for o in outs {
                if let SimOut::Send(b) = o {
                    let _ = master.write_all(&b);
                }
            }
        }
    });

    let link = CountingLink::new(Box::new(SerialLink::from_tty(slave, "payment")));
    let counts = link.counts();
    let opts = ZvtOptions::from_table(&dev.options).expect("payment options");
    let mut term = ZvtTerminal::new(Box::new(link), opts);

    // Warm-up.
    let _ = term.purchase(190, &mut |_s: &str| true);
    counts.reset();

    let runs = 50u32;
    let start = Instant::now();
    for i in 0..runs {
        let out = term.purchase(190 + u64::from(i), &mut |_s: &str| true).expect("purchase");
        assert!(matches!(out, PaymentOutcome::Approved(_)), "{out:?}");
    }
    let wall = start.elapsed().as_secs_f64() / f64::from(runs);
    stop.store(true, Ordering::Relaxed);
    drop(term);
    let _ = host.join();

    let tally = counts.snapshot();
    let up = tally.bytes_out as f64 / f64::from(runs);
    let down = tally.bytes_in as f64 / f64::from(runs);
    let turns = tally.turnarounds as f64 / f64::from(runs);
    let wire = (up + down) * bits_per_char / baud;
    println!(
        "ZVT purchase over PTY, simulator timing 0, {runs} runs, line {} baud, {bits_per_char} bits/char",
        dev.serial.baud
    );
    println!("  bytes ECR->terminal per purchase: {up:.0}");
    println!("  bytes terminal->ECR per purchase: {down:.0}");
    println!("  line turnarounds per purchase:    {turns:.0}");
    println!("  pure wire time per purchase:      {:.1} ms", wire * 1e3);
    println!("  wall time per purchase (PTY):     {:.3} ms", wall * 1e3);
    println!("  wall / wire:                      {:.2} % (target < 5 %)", wall / wire * 100.0);
}
