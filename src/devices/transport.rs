//! The serial transport shared by every driver: exclusive open, line settings, deadlines,
//! unplug detection and reopen with backoff.
//!
//! A [`SerialLink`] is one open port. It resolves the configured path (usually a udev symlink such as
//! `/dev/van/card`) at open time, so a replugged adapter that comes back under a different
//! `/dev/ttyUSBn` is found again by the next open. A vanished device (USB adapter pulled, PTY master
//! closed) shows up as `Ok(0)`, `EIO` or a hang-up on read; all three become
//! [`LinkError::Unplugged`] so the owner closes the port and reopens it with [`Backoff`].

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort, TTYPort};

use super::{Link, LinkError};
use crate::config::{Parity, SerialConfig};

/// One open serial port (or PTY slave) with the line settings of its configuration; or a non-tty
/// character device such as a USB printer-class port (`/dev/usb/lp0`), which has no line settings.
pub struct SerialLink {
    port: Port,
    device: String,
    path: String,
    write_timeout: Duration,
}

impl std::fmt::Debug for SerialLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialLink").field("device", &self.device).field("path", &self.path).finish()
    }
}

/// The open descriptor: a tty driven through serialport, or a raw character device.
enum Port {
    Tty(TTYPort),
    Raw(RawPort),
}

impl Port {
    fn set_timeout(&mut self, t: Duration) {
        match self {
            Port::Tty(p) => {
                let _ = p.set_timeout(t);
            }
            Port::Raw(p) => p.timeout = t,
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Port::Tty(p) => p.read(buf),
            Port::Raw(p) => p.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Port::Tty(p) => p.write(buf),
            Port::Raw(p) => p.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Port::Tty(p) => p.flush(),
            Port::Raw(_) => Ok(()),
        }
    }
    fn clear_input(&mut self) -> io::Result<()> {
        match self {
            Port::Tty(p) => p.clear(ClearBuffer::Input).map_err(io::Error::from),
            Port::Raw(p) => p.drain(),
        }
    }
    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Port::Tty(p) => p.as_raw_fd(),
            Port::Raw(p) => p.file.as_raw_fd(),
        }
    }
}

/// A character device that is not a tty (USB printer class): poll-based reads and writes with the
/// same deadline rules; exclusive through `flock`.
struct RawPort {
    file: std::fs::File,
    timeout: Duration,
}

impl RawPort {
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let ms = self.timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        if pfd.revents & events != 0 {
            return Ok(());
        }
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "device hung up"))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(libc::POLLIN)?;
        match self.file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::Interrupted, e))
            }
            r => r,
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wait(libc::POLLOUT)?;
        match self.file.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::Interrupted, e))
            }
            r => r,
        }
    }

    /// Reads and drops whatever is pending (bounded, never blocks).
    fn drain(&mut self) -> io::Result<()> {
        let saved = self.timeout;
        self.timeout = Duration::ZERO;
        let mut buf = [0u8; 1024];
        let mut result = Ok(());
        for _ in 0..64 {
            match self.read(&mut buf) {
                Ok(n) if n > 0 => continue,
                Ok(_) => break,
                Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.timeout = saved;
        result
    }
}

/// Opens a path that is a character device: `Ok(None)` if it is a tty (opened by serialport
/// instead), `Ok(Some)` with the exclusively locked raw device otherwise.
fn open_raw_if_not_tty(path: &Path, timeout: Duration) -> Result<Option<RawPort>, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_char_device() {
        return Err(format!("{} is not a device", path.display()));
    }
    // O_NONBLOCK: opening a serial port must not wait for carrier detect.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| e.to_string())?;
    // SAFETY: isatty and flock on a descriptor we own.
    if unsafe { libc::isatty(file.as_raw_fd()) } == 1 {
        return Ok(None);
    }
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!("{} is busy (opened by another program)", path.display()));
    }
    Ok(Some(RawPort { file, timeout }))
}

/// Maps the configuration's data bits to serialport's enum.
fn data_bits(bits: u8) -> Option<serialport::DataBits> {
    Some(match bits {
        5 => serialport::DataBits::Five,
        6 => serialport::DataBits::Six,
        7 => serialport::DataBits::Seven,
        8 => serialport::DataBits::Eight,
        _ => return None,
    })
}

fn stop_bits(bits: u8) -> Option<serialport::StopBits> {
    Some(match bits {
        1 => serialport::StopBits::One,
        2 => serialport::StopBits::Two,
        _ => return None,
    })
}

fn parity(p: Parity) -> serialport::Parity {
    match p {
        Parity::None => serialport::Parity::None,
        Parity::Even => serialport::Parity::Even,
        Parity::Odd => serialport::Parity::Odd,
    }
}

/// Whether an I/O error means the device is gone (as opposed to a transient failure).
fn is_unplug(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENXIO) | Some(libc::ENODEV))
        || matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof)
}

impl SerialLink {
    /// Opens `cfg.path` exclusively with the configured line settings; `device` names it in errors
    /// (`card`, `payment` …). Symlinks are resolved now, so each reopen follows the current target.
    pub fn open(device: &str, cfg: &SerialConfig) -> Result<SerialLink, LinkError> {
        let shown = cfg.path.display().to_string();
        let open_err =
            |reason: String| LinkError::Open { device: device.to_owned(), path: shown.clone(), reason };
        let real: PathBuf = std::fs::canonicalize(&cfg.path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                open_err("no such device (not plugged in, or udev rule missing)".into())
            }
            _ => open_err(e.to_string()),
        })?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        if let Some(raw) = open_raw_if_not_tty(&real, timeout).map_err(open_err)? {
            return Ok(SerialLink {
                port: Port::Raw(raw),
                device: device.to_owned(),
                path: shown,
                write_timeout: timeout,
            });
        }
        let real_str = real
            .to_str()
            .ok_or_else(|| open_err(format!("resolved path {} is not UTF-8", real.display())))?;
        let bits = data_bits(cfg.data_bits)
            .ok_or_else(|| open_err(format!("{} data bits not supported", cfg.data_bits)))?;
        let stops = stop_bits(cfg.stop_bits)
            .ok_or_else(|| open_err(format!("{} stop bits not supported", cfg.stop_bits)))?;
        let builder = serialport::new(real_str, cfg.baud)
            .data_bits(bits)
            .parity(parity(cfg.parity))
            .stop_bits(stops)
            .flow_control(serialport::FlowControl::None)
            .timeout(Duration::from_millis(cfg.timeout_ms));
        let port = TTYPort::open(&builder).map_err(|e| {
            let reason = match e.kind() {
                serialport::ErrorKind::NoDevice => {
                    format!("{real_str} is busy (opened by another program) or gone: {e}")
                }
                _ => format!("{real_str}: {e}"),
            };
            open_err(reason)
        })?;
        // Anything the device sent before our settings applied is garbage.
        let _ = port.clear(ClearBuffer::Input);
        set_nonblocking(&port);
        Ok(SerialLink {
            port: Port::Tty(port),
            device: device.to_owned(),
            path: shown,
            write_timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    /// Wraps an already open TTY (e.g. the slave end of [`TTYPort::pair`]) for tests and simulators.
    pub fn from_tty(port: TTYPort, name: &str) -> SerialLink {
        let path = port.name().unwrap_or_else(|| name.to_owned());
        set_nonblocking(&port);
        SerialLink {
            port: Port::Tty(port),
            device: name.to_owned(),
            path,
            write_timeout: Duration::from_secs(2),
        }
    }

    /// Sets how long a write may make no progress before it fails with a timeout.
    pub fn with_write_timeout(mut self, timeout: Duration) -> SerialLink {
        self.write_timeout = timeout;
        self
    }

    /// A watcher that tells, without reading, whether the port has hung up (adapter pulled, PTY
    /// master closed). The device manager polls it while the driver is idle.
    pub fn hangup_probe(&self) -> Option<HangupProbe> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: dup of a valid open descriptor; the result is owned by the OwnedFd alone.
        let fd = unsafe { libc::dup(self.port.raw_fd()) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by dup and is not owned elsewhere.
        Some(HangupProbe { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The device name this link was opened for.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn io_err(&self, source: io::Error) -> LinkError {
        if is_unplug(&source) {
            self.unplugged()
        } else {
            LinkError::Io { device: self.device.clone(), path: self.path.clone(), source }
        }
    }

    fn unplugged(&self) -> LinkError {
        LinkError::Unplugged { device: self.device.clone(), path: self.path.clone() }
    }
}

impl Link for SerialLink {
    /// The write timeout bounds a *stall*, not the whole write: the deadline restarts whenever bytes
    /// leave. A card job is over a megabyte, about two minutes of wire time at 115200 baud.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut deadline = Instant::now() + self.write_timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Timeout {
                    device: self.device.clone(),
                    path: self.path.clone(),
                    waited_ms: self.write_timeout.as_millis() as u64,
                });
            }
            self.port.set_timeout(left);
            match self.port.write(rest) {
                Ok(0) => return Err(self.unplugged()),
                Ok(n) => {
                    rest = &rest[n..];
                    deadline = Instant::now() + self.write_timeout;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        // tcdrain: returns once the UART has sent the bytes (immediately on a PTY).
        match self.port.flush() {
            Err(e) if is_unplug(&e) => Err(self.unplugged()),
            _ => Ok(()),
        }
    }

    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LinkError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.port.set_timeout(left);
            match self.port.read(buf) {
                Ok(0) => return Err(self.unplugged()),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !left.is_zero() => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::Interrupted => {
                    return Err(LinkError::Timeout {
                        device: self.device.clone(),
                        path: self.path.clone(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    fn discard_input(&mut self) -> Result<(), LinkError> {
        self.port.clear_input().map_err(|e| self.io_err(e))
    }

    fn path(&self) -> &str {
        &self.path
    }
}

/// Detects a hang-up of an open port without consuming input (see [`SerialLink::hangup_probe`]).
#[derive(Debug)]
pub struct HangupProbe {
    fd: std::os::fd::OwnedFd,
}

impl HangupProbe {
    /// True once the port reports a hang-up or error (the device is gone).
    pub fn hung_up(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: 0, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && (pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL)) != 0
    }
}

/// A [`Link`] wrapper that counts the bytes each way and the write→read turnarounds (request/answer
/// round trips) of the link it wraps, for the wire-cost benches and diagnostics.
///
/// The counts live in a shared [`WireCounts`] (see [`CountingLink::counts`]), so they stay readable
/// after the link has been boxed into a driver.
pub struct CountingLink {
    inner: Box<dyn Link>,
    counts: std::sync::Arc<WireCounts>,
    wrote_since_read: bool,
}

impl std::fmt::Debug for CountingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingLink")
            .field("path", &self.inner.path())
            .field("counts", &self.counts)
            .finish()
    }
}

/// The counters of a [`CountingLink`], shared with whoever reads them.
#[derive(Debug, Default)]
pub struct WireCounts {
    bytes_out: std::sync::atomic::AtomicU64,
    bytes_in: std::sync::atomic::AtomicU64,
    turnarounds: std::sync::atomic::AtomicU64,
}

/// A snapshot of [`WireCounts`]: host→device bytes, device→host bytes, write→read turnarounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireTally {
    /// Bytes written to the device.
    pub bytes_out: u64,
    /// Bytes read from the device.
    pub bytes_in: u64,
    /// Times the link went from writing to reading (one per request/answer round trip).
    pub turnarounds: u64,
}

impl WireTally {
    /// What was counted between `earlier` and this snapshot.
    pub fn since(self, earlier: WireTally) -> WireTally {
        WireTally {
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            turnarounds: self.turnarounds.saturating_sub(earlier.turnarounds),
        }
    }
}

impl WireCounts {
    /// The current counts.
    pub fn snapshot(&self) -> WireTally {
        use std::sync::atomic::Ordering::Relaxed;
        WireTally {
            bytes_out: self.bytes_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            turnarounds: self.turnarounds.load(Relaxed),
        }
    }

    /// Sets every count back to zero (e.g. after a warm-up run).
    pub fn reset(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes_out.store(0, Relaxed);
        self.bytes_in.store(0, Relaxed);
        self.turnarounds.store(0, Relaxed);
    }
}

impl CountingLink {
    /// Wraps `inner`; every byte through it is counted from now on.
    pub fn new(inner: Box<dyn Link>) -> CountingLink {
        CountingLink { inner, counts: std::sync::Arc::default(), wrote_since_read: false }
    }

    /// A handle on the counters, valid after the link itself has been moved into a driver.
    pub fn counts(&self) -> std::sync::Arc<WireCounts> {
        self.counts.clone()
    }
}

impl Link for CountingLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        use std::sync::atomic::Ordering::Relaxed;
        let r = self.inner.write_all(bytes);
        if r.is_ok() {
            self.counts.bytes_out.fetch_add(bytes.len() as u64, Relaxed);
            self.wrote_since_read |= !bytes.is_empty();
        }
        r
    }

    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LinkError> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.inner.read_some(buf, deadline)?;
        if n > 0 {
            self.counts.bytes_in.fetch_add(n as u64, Relaxed);
            if std::mem::take(&mut self.wrote_since_read) {
                self.counts.turnarounds.fetch_add(1, Relaxed);
            }
        }
        Ok(n)
    }

    fn discard_input(&mut self) -> Result<(), LinkError> {
        self.inner.discard_input()
    }

    fn path(&self) -> &str {
        self.inner.path()
    }
}

/// Exponential backoff between reopen attempts: `initial`, doubled after each failure, capped at `max`.
/// Pure (no clock): the caller sleeps for what [`Backoff::next_delay`] returns.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The transport's default: 0.2 s doubling up to 5 s.
    pub const DEFAULT_INITIAL: Duration = Duration::from_millis(200);
    /// Upper bound of the default backoff.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(5);

    /// A backoff starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        Backoff { initial, max, next: initial }
    }

    /// How long to wait before the next attempt; doubles the following one (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// After a successful open: start again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Self::DEFAULT_INITIAL, Self::DEFAULT_MAX)
    }
}

/// Keeps trying to open one configured port, waiting per [`Backoff`] between failures. Used by the
/// device manager's per-device thread after start-up and after every unplug.
#[derive(Debug)]
pub struct Reopener {
    device: String,
    cfg: SerialConfig,
    backoff: Backoff,
    not_before: Option<Instant>,
    last_error: Option<String>,
}

impl Reopener {
    /// A reopener for `device` with the given serial settings and backoff.
    pub fn new(device: &str, cfg: SerialConfig, backoff: Backoff) -> Reopener {
        Reopener { device: device.to_owned(), cfg, backoff, not_before: None, last_error: None }
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// When the next attempt is allowed (`None`: now).
    pub fn next_attempt(&self) -> Option<Instant> {
        self.not_before
    }

    /// The error of the last failed attempt, for health messages.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Tries to open now if the backoff allows; on failure schedules the next attempt. Returns
    /// `Ok(None)` while still waiting.
    pub fn try_open(&mut self, now: Instant) -> Result<Option<SerialLink>, LinkError> {
        if let Some(t) = self.not_before {
            if now < t {
                return Ok(None);
            }
        }
        match SerialLink::open(&self.device, &self.cfg) {
            Ok(link) => {
                self.backoff.reset();
                self.not_before = None;
                self.last_error = None;
                Ok(Some(link))
            }
            Err(e) => {
                self.not_before = Some(now + self.backoff.next_delay());
                self.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// After an unplug: wait one backoff step before the first reopen attempt (the adapter needs a
    /// moment to re-enumerate).
    pub fn after_unplug(&mut self, now: Instant) {
        self.not_before = Some(now + self.backoff.next_delay());
    }
}

/// Puts a TTY in non-blocking mode. serialport polls before each read and write, but a blocking
/// `write` of many bytes to a tty with little room sleeps until *all* are taken: a stalled printer
/// would hang the device thread past any timeout. Non-blocking, a write takes what fits and the
/// next poll waits (with the deadline) for room.
fn set_nonblocking(port: &TTYPort) {
    use std::os::fd::AsRawFd;
    let fd = port.as_raw_fd();
    // SAFETY: fcntl on a descriptor the port owns; only the status flags change.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write longer than the write timeout succeeds while the line keeps moving, and fails once it
    /// stalls. (Over a PTY the peer's reading paces the writer, like a UART's baud rate does.)
    #[test]
    fn write_timeout_bounds_stalls_not_long_writes() {
        let (host, mut dev) = TTYPort::pair().expect("pty pair");
        let mut link = SerialLink::from_tty(host, "card").with_write_timeout(Duration::from_millis(500));
        let total = 256 * 1024;
        let reader = std::thread::spawn(move || {
            let mut got = 0;
            let mut buf = [0u8; 4096];
            dev.set_timeout(Duration::from_secs(5)).unwrap();
            while got < total {
                std::thread::sleep(Duration::from_millis(20));
                match dev.read(&mut buf) {
                    Ok(n) => got += n,
                    Err(_) => break,
                }
            }
            (got, dev)
        });
        let started = Instant::now();
        link.write_all(&vec![0x55; total]).expect("a long write that keeps moving must not time out");
        assert!(started.elapsed() > Duration::from_millis(500), "the peer paced the write past one timeout");
        let (got, _dev) = reader.join().unwrap();
        assert_eq!(got, total);
        // Nobody reads now: the PTY buffer fills and the write stalls.
        let err = link.write_all(&vec![0xAA; total]).unwrap_err();
        assert!(matches!(err, LinkError::Timeout { .. }), "{err}");
    }

    /// An in-memory device: each write queues the scripted answer for it.
    struct Script {
        answers: std::collections::VecDeque<Vec<u8>>,
        pending: Vec<u8>,
    }

    impl Link for Script {
        fn write_all(&mut self, _bytes: &[u8]) -> Result<(), LinkError> {
            if let Some(a) = self.answers.pop_front() {
                self.pending.extend_from_slice(&a);
            }
            Ok(())
        }
        fn read_some(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<usize, LinkError> {
            if self.pending.is_empty() {
                return Err(LinkError::Timeout { device: "t".into(), path: "mem".into(), waited_ms: 0 });
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
        fn discard_input(&mut self) -> Result<(), LinkError> {
            self.pending.clear();
            Ok(())
        }
        fn path(&self) -> &str {
            "mem"
        }
    }

    #[test]
    fn counting_link_counts_bytes_and_turnarounds() {
        let inner =
            Script { answers: vec![b"ACK".to_vec(), vec![], b"12345".to_vec()].into(), pending: vec![] };
        let mut link = CountingLink::new(Box::new(inner));
        let counts = link.counts();
        let soon = Instant::now() + Duration::from_millis(10);
        let mut buf = [0u8; 2];
        // Request 1 (4 bytes), answer read in two pieces: one turnaround.
        link.write_all(b"\x1bSs\r").unwrap();
        assert_eq!(link.read_some(&mut buf, soon).unwrap(), 2);
        assert_eq!(link.read_some(&mut buf, soon).unwrap(), 1);
        // Two writes in a row, then the answer: one more turnaround.
        link.write_all(b"ab").unwrap();
        link.write_all(b"c").unwrap();
        let before = counts.snapshot();
        let mut big = [0u8; 16];
        assert_eq!(link.read_some(&mut big, soon).unwrap(), 5);
        // A failed read counts nothing.
        assert!(link.read_some(&mut big, soon).is_err());
        assert_eq!(counts.snapshot(), WireTally { bytes_out: 7, bytes_in: 8, turnarounds: 2 });
        assert_eq!(counts.snapshot().since(before), WireTally { bytes_out: 0, bytes_in: 5, turnarounds: 1 });
        assert_eq!(link.path(), "mem");
        counts.reset();
        assert_eq!(counts.snapshot(), WireTally::default());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, vec![200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn backoff_initial_above_cap_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn line_settings_map() {
        assert_eq!(data_bits(7), Some(serialport::DataBits::Seven));
        assert_eq!(data_bits(9), None);
        assert_eq!(stop_bits(2), Some(serialport::StopBits::Two));
        assert_eq!(stop_bits(3), None);
        assert_eq!(parity(Parity::Even), serialport::Parity::Even);
    }

    #[test]
    fn unplug_errors_classified() {
        assert!(is_unplug(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(is_unplug(&io::Error::new(io::ErrorKind::BrokenPipe, "x")));
        assert!(!is_unplug(&io::Error::new(io::ErrorKind::TimedOut, "x")));
    }

    fn cfg_at(path: &str) -> SerialConfig {
        SerialConfig {
            path: path.into(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            timeout_ms: 100,
        }
    }

    #[test]
    fn non_tty_character_device_opens_raw_exclusively() {
        // /dev/null stands in for a USB printer-class port: a character device that is not a tty.
        let mut link = SerialLink::open("card", &cfg_at("/dev/null")).unwrap();
        assert!(matches!(link.port, Port::Raw(_)));
        link.write_all(b"\x1bSs\r").unwrap();
        link.discard_input().unwrap();
        let mut buf = [0u8; 4];
        // End of file from the device = gone.
        let e = link.read_some(&mut buf, Instant::now() + Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, LinkError::Unplugged { .. }), "{e}");
        let e = SerialLink::open("card", &cfg_at("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("busy"), "{e}");
        drop(link);
        SerialLink::open("card", &cfg_at("/dev/null")).unwrap();
    }

    #[test]
    fn regular_file_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = SerialLink::open("card", &cfg_at(f.path().to_str().unwrap())).unwrap_err();
        assert!(e.to_string().contains("is not a device"), "{e}");
    }

    #[test]
    fn missing_path_is_open_error_naming_device() {
        let cfg = SerialConfig {
            path: "/nonexistent/van/card".into(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            timeout_ms: 100,
        };
        let e = SerialLink::open("card", &cfg).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, LinkError::Open { .. }), "{msg}");
        assert!(msg.contains("card") && msg.contains("/nonexistent/van/card"), "{msg}");
    }
}
