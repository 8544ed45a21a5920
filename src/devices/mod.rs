//! Device drivers: one pure codec/state machine per protocol, driven over one serial transport.
//!
//! Layering (see ARCHITECTURE.md): `codec` modules never touch I/O; drivers own a [`Link`] and turn
//! protocol exchanges into typed results; the rest of the daemon only sees the per-kind traits and
//! [`Health`].

pub mod transport;

use std::time::Instant;

/// What went wrong on a link, in terms a technician can act on.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The device answered nothing before the deadline.
    #[error("{device} on {path}: no answer within {waited_ms} ms")]
    Timeout { device: String, path: String, waited_ms: u64 },
    /// The port read end-of-file or the PTY/USB adapter vanished.
    #[error("{device} on {path}: unplugged (read returned no data / device gone)")]
    Unplugged { device: String, path: String },
    /// The port could not be opened or configured.
    #[error("{device} on {path}: cannot open: {reason}")]
    Open { device: String, path: String, reason: String },
    /// Any other I/O failure.
    #[error("{device} on {path}: I/O error: {source}")]
    Io {
        device: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A byte pipe to one device. Implemented by the serial transport and by in-memory test links.
///
/// Drivers are synchronous and run on the thread that owns the port (one owner per resource);
/// the async face for the daemon is a channel in front of that thread.
pub trait Link: Send {
    /// Writes all bytes (and drains them to the wire where the OS allows).
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError>;
    /// Reads whatever is available, waiting at most until `deadline`. Never returns `Ok(0)`:
    /// end-of-file is reported as [`LinkError::Unplugged`], nothing before the deadline as
    /// [`LinkError::Timeout`].
    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LinkError>;
    /// Discards unread input (used to resynchronise after garbage).
    fn discard_input(&mut self) -> Result<(), LinkError>;
    /// Device path as configured, for messages.
    fn path(&self) -> &str;
}

/// Connection state of a device as shown to officers and technicians.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Not configured in this van.
    Absent,
    /// Port open, last exchange fine, idle.
    Connected,
    /// Working on a job.
    Busy { what: String },
    /// Cannot be used; `why` says what is wrong, `action` what a person should do.
    Fault { why: String, action: String },
    /// Port not open (unplugged or not yet found); retrying.
    Disconnected { why: String },
}

pub mod card;
pub mod evolis;
pub mod gpio;
pub mod manager;
pub mod mercury;
pub mod options;
pub mod payment;
pub mod rfid;
pub mod sticker;
pub mod zpl;
pub mod zvt;

/// A device operation that did not succeed, with what a person should know to act on it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The link failed (timeout, unplug, open failure).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The device spoke, but not the protocol (bad frames after all retries, unexpected replies).
    #[error("{device}: protocol error: {detail}")]
    Protocol { device: String, detail: String },
    /// The device reports a condition that needs a person (ribbon ended, cover open, no tag …).
    #[error("{device}: {fault} — {action}")]
    Fault { device: String, fault: String, action: String },
    /// A driver option in the configuration is invalid.
    #[error("{device}: configuration option {key}: {message}")]
    Config { device: String, key: String, message: String },
    /// The operation is not offered by this device or driver.
    #[error("{device}: not supported: {what}")]
    Unsupported { device: String, what: String },
}

/// Result of `vanctl devices self-test` for one device: only safe queries (version, status);
/// nothing is printed, encoded or charged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelfTestReport {
    /// Device name (`payment`, `card`, `sticker`, `rfid`, `gpio`).
    pub device: String,
    /// Whether every check passed.
    pub ok: bool,
    /// One line per check, readable by a technician.
    pub lines: Vec<String>,
}
