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
    /// Port open, last exchange or status poll fine, idle.
    Connected,
    /// Working on a job.
    Busy {
        /// What the job does (`print card`, `self-test`).
        what: String,
    },
    /// Cannot be used until a person acts: [`Fault::action`] says what to do.
    Fault {
        /// The typed condition (serialised as its code, e.g. `card.ribbon_ended`).
        fault: Fault,
        /// What the device or driver said, for a technician (may be empty).
        detail: String,
    },
    /// Port not open (unplugged or not yet found); retrying.
    Disconnected {
        /// Why, for a technician.
        why: String,
    },
}

impl Health {
    /// The state's name (`connected`, `fault`, …), as recorded in transitions.
    pub fn state_name(&self) -> &'static str {
        match self {
            Health::Absent => "absent",
            Health::Connected => "connected",
            Health::Busy { .. } => "busy",
            Health::Fault { .. } => "fault",
            Health::Disconnected { .. } => "disconnected",
        }
    }

    /// A fault state without detail.
    pub fn fault(fault: Fault) -> Health {
        Health::Fault { fault, detail: String::new() }
    }
}

pub mod card;
pub mod evolis;
pub mod fault;
pub mod gpio;
pub mod manager;
pub mod mercury;
pub mod options;
pub mod payment;
pub mod registry;
pub mod rfid;
pub mod sticker;
pub mod zpl;
pub mod zvt;

pub use fault::{DeviceId, Fault, Lang, LinkFault, PaymentFault, RfidFault};

/// A device operation that did not succeed, with what a person should know to act on it.
///
/// Callers branch on [`DeviceError::fault`] (typed) and [`DeviceError::may_have_acted`]; the
/// `Display` text is for logs and technicians.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The link failed (timeout, unplug, open failure).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The device spoke, but not the protocol (bad frames after all retries, unexpected replies).
    #[error("{device}: protocol error: {detail}")]
    Protocol { device: String, detail: String },
    /// The device reports a condition that needs a person (ribbon ended, cover open, no tag …).
    #[error("{device}: {fault}{}{detail} — {}", if detail.is_empty() { "" } else { ": " }, fault.action(Lang::En))]
    Fault {
        /// The device, as a technician knows it (`card printer on /dev/van/card`).
        device: String,
        /// The typed condition.
        fault: Fault,
        /// What the device said, for a technician (may be empty).
        detail: String,
        /// Whether the device may have acted (printed, charged, written) before the fault.
        may_have_acted: bool,
    },
    /// A driver option in the configuration is invalid.
    #[error("{device}: configuration option {key}: {message}")]
    Config { device: String, key: String, message: String },
    /// The operation is not offered by this device or driver.
    #[error("{device}: not supported: {what}")]
    Unsupported { device: String, what: String },
    /// The error came after the device was told to act (print, charge, write): it may have
    /// acted, and the outcome is unknown. Never repeat the operation blindly.
    #[error("outcome unknown (the device may have acted): {0}")]
    AfterActing(Box<DeviceError>),
}

impl DeviceError {
    /// A device-reported fault before anything was done.
    pub fn fault(device: impl Into<String>, fault: Fault, detail: impl Into<String>) -> DeviceError {
        DeviceError::Fault { device: device.into(), fault, detail: detail.into(), may_have_acted: false }
    }

    /// The typed condition behind this error.
    pub fn kind(&self) -> Fault {
        match self {
            DeviceError::Link(LinkError::Timeout { .. }) => Fault::Link(LinkFault::NoAnswer),
            DeviceError::Link(LinkError::Unplugged { .. }) | DeviceError::Link(LinkError::Io { .. }) => {
                Fault::Link(LinkFault::Unplugged)
            }
            DeviceError::Link(LinkError::Open { .. }) => Fault::Link(LinkFault::CannotOpen),
            DeviceError::Protocol { .. } => Fault::Link(LinkFault::Garbled),
            DeviceError::Fault { fault, .. } => *fault,
            DeviceError::Config { .. } | DeviceError::Unsupported { .. } => Fault::Config,
            DeviceError::AfterActing(inner) => inner.kind(),
        }
    }

    /// Whether the device may have acted before this error (the outcome is unknown).
    pub fn may_have_acted(&self) -> bool {
        match self {
            DeviceError::AfterActing(_) => true,
            DeviceError::Fault { may_have_acted, .. } => *may_have_acted,
            _ => false,
        }
    }

    /// Marks an error that happened after the device was told to act (drivers call it from
    /// their point of no return on: the purchase frame, the card sequence start, the first tag
    /// write, the label job).
    pub fn after_acting(self) -> DeviceError {
        match self {
            DeviceError::Fault { device, fault, detail, .. } => {
                DeviceError::Fault { device, fault, detail, may_have_acted: true }
            }
            DeviceError::AfterActing(_) | DeviceError::Config { .. } | DeviceError::Unsupported { .. } => {
                self
            }
            other => DeviceError::AfterActing(Box::new(other)),
        }
    }

    /// The health this error leaves the device in, if it needs a person. Unplugs are the owner
    /// thread's business (it reopens); configuration errors are shown as they are.
    pub fn health(&self) -> Option<Health> {
        match self {
            DeviceError::AfterActing(inner) => inner.health(),
            DeviceError::Link(
                LinkError::Unplugged { .. } | LinkError::Io { .. } | LinkError::Open { .. },
            ) => None,
            DeviceError::Unsupported { .. } => None,
            DeviceError::Fault { fault, detail, .. } => {
                Some(Health::Fault { fault: *fault, detail: detail.clone() })
            }
            other => Some(Health::Fault { fault: other.kind(), detail: other.to_string() }),
        }
    }
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
