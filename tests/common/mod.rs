//! Helpers shared by the whole-program tests (each test file includes this module).

use std::path::{Path, PathBuf};

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
