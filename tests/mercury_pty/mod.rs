//! Test and bench support: the real serial transport ([`SerialLink`]) on one end of a
//! pseudo-terminal pair, and a thread that serves a simulator on the other end.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtu::devices::transport::SerialLink;
use mtu::sim::{SimDevice, SimOut};
use serialport::{SerialPort, TTYPort};

/// A simulator served on the device end of a PTY by its own thread.
pub struct Served {
    /// The simulator, shared with the serving thread (faults, status).
    pub sim: Arc<Mutex<Box<dyn SimDevice>>>,
    /// Every byte the host sent, in order.
    pub from_host: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    /// Applies a named fault.
    pub fn fault(&self, name: &str) {
        self.sim.lock().unwrap().apply_fault(name).unwrap();
    }

    /// The simulator's status.
    pub fn status(&self) -> serde_json::Value {
        self.sim.lock().unwrap().status()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens a PTY pair and serves `sim` on one end; returns the host's link to the other.
pub fn serve(sim: Box<dyn SimDevice>) -> (SerialLink, Served) {
    let (host, mut device) = TTYPort::pair().expect("pty pair");
    let sim = Arc::new(Mutex::new(sim));
    let from_host = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (sim, from_host, stop) = (sim.clone(), from_host.clone(), stop.clone());
        std::thread::spawn(move || {
            device.set_timeout(Duration::from_millis(5)).expect("timeout");
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::SeqCst) {
                let n = match device.read(&mut buf) {
                    Ok(n) => n,
                    Err(_) => continue,
                };
                from_host.lock().unwrap().extend_from_slice(&buf[..n]);
                let outs = sim.lock().unwrap().receive(&buf[..n], Instant::now());
                for out in outs {
                    match out {
                        SimOut::Wait(d) => std::thread::sleep(d),
                        SimOut::Send(bytes) => {
                            let _ = device.write_all(&bytes);
                            let _ = device.flush();
                        }
                        SimOut::DropLink => {}
                    }
                }
            }
        })
    };
    (SerialLink::from_tty(host, "rfid"), Served { sim, from_host, stop, thread: Some(thread) })
}
