//! Helpers shared by the whole-program tests (each test file includes this module and uses
//! what it needs).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

/// A PTY pair with a stable symlink `dir/name` → slave (as van-sim makes them); returns the
/// master (the device's side) and the symlink. The slave end is closed so the symlink's opener
/// is the only user (like a real port).
pub fn pty_at(dir: &Path, name: &str) -> (TTYPort, PathBuf) {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = PathBuf::from(slave.name().expect("slave name"));
    drop(slave);
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&slave_path, &link).expect("symlink");
    (master, link)
}

/// Plays a test device on the master side until unplugged: answers every `PING\r` with `answer`.
pub struct Responder {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// Starts a [`Responder`] on `master`.
pub fn respond(mut master: TTYPort, answer: &'static [u8]) -> Responder {
    let (stop, stop_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        master.set_timeout(Duration::from_millis(10)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while stop_rx.try_recv().is_err() {
            if let Ok(n) = master.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"PING\r") {
                    got.clear();
                    master.write_all(answer).unwrap();
                }
            }
        }
    });
    Responder { stop, thread }
}

impl Responder {
    /// Stops answering and closes the master (the device is unplugged).
    pub fn unplug(self) {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

/// A Debian tool the tests need; a missing one fails the test naming its package.
pub fn tool(cmd: &str, package: &str) -> std::process::Command {
    let found =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()));
    assert!(
        found,
        "{cmd} is missing: run tools/test, which installs the Debian package {package} \
         (listed in tools/test-debian-packages.txt)"
    );
    std::process::Command::new(cmd)
}

pub fn run_tool(cmd: &str, package: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = tool(cmd, package).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Text as poppler's `pdftotext` extracts it, with the directional marks poppler adds removed.
pub fn pdftotext(pdf: &std::path::Path) -> String {
    let raw = run_tool("pdftotext", "poppler-utils", &[pdf.as_os_str(), "-".as_ref()]);
    raw.chars().filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')).collect()
}
