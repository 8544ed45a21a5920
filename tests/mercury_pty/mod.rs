//! Test and bench support: a `Link` over one end of a real pseudo-terminal pair, and a thread that
//! serves a simulator on the other end. (Until the shared `SerialLink` lands in
//! `src/devices/transport.rs`.)
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtu::devices::{Link, LinkError};
use mtu::sim::{SimDevice, SimOut};
use serialport::{ClearBuffer, SerialPort, TTYPort};

/// The host side of the PTY pair.
pub struct PtyLink {
    port: TTYPort,
    path: String,
}

impl PtyLink {
    fn io(&self, source: std::io::Error) -> LinkError {
        LinkError::Io { device: "rfid".into(), path: self.path.clone(), source }
    }
}

impl Link for PtyLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.port.write_all(bytes).map_err(|e| self.io(e))?;
        self.port.flush().map_err(|e| self.io(e))
    }

    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LinkError> {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(LinkError::Timeout {
                    device: "rfid".into(),
                    path: self.path.clone(),
                    waited_ms: (now - start).as_millis() as u64,
                });
            }
            self.port.set_timeout(deadline - now).map_err(|e| self.io(e.into()))?;
            match self.port.read(buf) {
                Ok(0) => {
                    return Err(LinkError::Unplugged { device: "rfid".into(), path: self.path.clone() });
                }
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    fn discard_input(&mut self) -> Result<(), LinkError> {
        self.port.clear(ClearBuffer::Input).map_err(|e| self.io(e.into()))
    }

    fn path(&self) -> &str {
        &self.path
    }
}

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
pub fn serve(sim: Box<dyn SimDevice>) -> (PtyLink, Served) {
    let (host, mut device) = TTYPort::pair().expect("pty pair");
    let path = host.name().unwrap_or_else(|| "pty".into());
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
    (PtyLink { port: host, path }, Served { sim, from_host, stop, thread: Some(thread) })
}
