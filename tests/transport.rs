//! Whole-program tests of the serial transport, device manager, control socket and `van-sim`,
//! over real pseudo-terminals.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mtu::config::{Parity, SerialConfig};
use mtu::devices::transport::{Backoff, Reopener, SerialLink};
use mtu::devices::{Link, LinkError};
use serialport::{SerialPort, TTYPort};

/// A PTY pair with a stable symlink `dir/name` → slave, as van-sim makes them. The slave end of the
/// pair is closed so the symlink's opener is the only user (like a real port).
fn pty_at(dir: &Path, name: &str) -> (TTYPort, PathBuf) {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = PathBuf::from(slave.name().expect("slave name"));
    drop(slave);
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&slave_path, &link).expect("symlink");
    (master, link)
}

fn serial_cfg(path: &Path) -> SerialConfig {
    SerialConfig {
        path: path.to_owned(),
        baud: 9600,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 2,
        timeout_ms: 500,
    }
}

fn read_exact_by(link: &mut dyn Link, n: usize, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < n {
        let k = link.read_some(&mut buf, deadline).expect("read");
        out.extend_from_slice(&buf[..k]);
    }
    out
}

fn master_read(master: &mut TTYPort, n: usize) -> Vec<u8> {
    master.set_timeout(Duration::from_secs(5)).unwrap();
    let mut out = vec![0u8; n];
    master.read_exact(&mut out).expect("master read");
    out
}

#[test]
fn serial_link_reads_and_writes_over_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, path) = pty_at(dir.path(), "payment");
    let mut link = SerialLink::open("payment", &serial_cfg(&path)).unwrap();
    assert_eq!(link.path(), path.display().to_string());

    // ZVT purchase frame from the spec (devices.md): bytes must pass untouched, incl. 0x10 and CR/LF.
    let frame = [
        0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57, 0x0d, 0x0a, 0x11,
        0x13,
    ];
    link.write_all(&frame).unwrap();
    assert_eq!(master_read(&mut master, frame.len()), frame);

    master.write_all(&[0x80, 0x00, 0x00, 0xff, 0x0d]).unwrap();
    assert_eq!(read_exact_by(&mut link, 5, Duration::from_secs(5)), vec![0x80, 0x00, 0x00, 0xff, 0x0d]);
}

#[test]
fn serial_link_times_out_when_nothing_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, path) = pty_at(dir.path(), "sticker");
    let mut link = SerialLink::open("sticker", &serial_cfg(&path)).unwrap();
    let mut buf = [0u8; 8];
    let e = link.read_some(&mut buf, Instant::now() + Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("sticker"), "{e}");
    // A deadline already in the past still answers (no hang), with a timeout.
    let e = link.read_some(&mut buf, Instant::now() - Duration::from_millis(1)).unwrap_err();
    assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
}

#[test]
fn serial_link_discard_input_drops_pending_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, path) = pty_at(dir.path(), "rfid");
    let mut link = SerialLink::open("rfid", &serial_cfg(&path)).unwrap();
    master.write_all(b"garbage").unwrap();
    // Wait until the bytes are queued on the slave side, then discard them.
    let mut one = [0u8; 1];
    assert_eq!(link.read_some(&mut one, Instant::now() + Duration::from_secs(5)).unwrap(), 1);
    link.discard_input().unwrap();
    master.write_all(&[0xff, 0x00, 0x03, 0x1d, 0x0c]).unwrap();
    assert_eq!(read_exact_by(&mut link, 5, Duration::from_secs(5)), vec![0xff, 0x00, 0x03, 0x1d, 0x0c]);
}

#[test]
fn serial_link_reports_unplug_when_the_master_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (master, path) = pty_at(dir.path(), "card");
    let mut link = SerialLink::open("card", &serial_cfg(&path)).unwrap();
    drop(master);
    let mut buf = [0u8; 8];
    let e = link.read_some(&mut buf, Instant::now() + Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, LinkError::Unplugged { .. }), "{e}");
    let e = link.write_all(b"\x1bSs\r").unwrap_err();
    assert!(matches!(e, LinkError::Unplugged { .. }), "{e}");
}

#[test]
fn second_opener_is_refused_while_the_port_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, path) = pty_at(dir.path(), "card");
    let first = SerialLink::open("card", &serial_cfg(&path)).unwrap();
    let e = SerialLink::open("card", &serial_cfg(&path)).unwrap_err();
    assert!(matches!(e, LinkError::Open { .. }), "{e}");
    assert!(e.to_string().contains("busy"), "{e}");
    drop(first);
    // Released on close: the next opener gets it.
    SerialLink::open("card", &serial_cfg(&path)).unwrap();
}

#[test]
fn reopener_follows_a_repointed_symlink_after_replug() {
    let dir = tempfile::tempdir().unwrap();
    let (master, path) = pty_at(dir.path(), "payment");
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
    let mut reopener = Reopener::new("payment", serial_cfg(&path), backoff);
    let mut link = reopener.try_open(Instant::now()).unwrap().expect("opened");

    // Unplug: the master goes away and the symlink dangles.
    drop(master);
    let mut buf = [0u8; 4];
    assert!(matches!(
        link.read_some(&mut buf, Instant::now() + Duration::from_secs(5)),
        Err(LinkError::Unplugged { .. })
    ));
    drop(link);
    std::fs::remove_file(&path).unwrap();
    let t0 = Instant::now();
    reopener.after_unplug(t0);
    assert!(reopener.try_open(t0).unwrap().is_none(), "backoff must hold the first retry");
    let e = reopener.try_open(t0 + Duration::from_millis(1)).unwrap_err();
    assert!(matches!(e, LinkError::Open { .. }), "{e}");
    assert!(reopener.last_error().is_some());
    // The next attempt waits longer (2 ms after the 1 ms one).
    let next = reopener.next_attempt().unwrap();
    assert_eq!(next.duration_since(t0 + Duration::from_millis(1)), Duration::from_millis(2));

    // Replug: a new PTY, the symlink re-pointed; the reopener finds it.
    let (mut master2, path2) = pty_at(dir.path(), "payment");
    assert_eq!(path2, path);
    let mut link = reopener.try_open(next).unwrap().expect("reopened");
    link.write_all(b"\x06").unwrap();
    assert_eq!(master_read(&mut master2, 1), b"\x06");
    assert!(reopener.next_attempt().is_none());
}
