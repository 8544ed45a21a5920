//! Device simulators: the device side of each protocol, served on real pseudo-terminals by `van-sim`.

use std::time::{Duration, Instant};

/// What a simulated device does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOut {
    /// Send these bytes to the host.
    Send(Vec<u8>),
    /// Wait this long before the following outputs (realistic timing; zero in fast tests).
    Wait(Duration),
    /// Drop the link (the host sees an unplug); the device keeps its state.
    DropLink,
}

/// The device side of one protocol, free of I/O: bytes and time in, bytes and waits out.
pub trait SimDevice: Send {
    /// Short name used in scenario files and the control socket (`payment`, `card`, `sticker`, `rfid`).
    fn name(&self) -> &'static str;
    /// Bytes arrived from the host.
    fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<SimOut>;
    /// Called when a deadline returned by [`SimDevice::next_deadline`] has passed.
    fn poll(&mut self, now: Instant) -> Vec<SimOut> {
        let _ = now;
        Vec::new()
    }
    /// When the device next wants [`SimDevice::poll`] called, if ever.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// Triggers a named fault (e.g. `decline`, `card_jam`, `no_tag`); unknown names are an error
    /// that lists the known ones.
    fn apply_fault(&mut self, fault: &str) -> Result<(), String>;
    /// Clears all faults.
    fn clear_faults(&mut self);
    /// State for `van-sim status` and tests (counts, last transaction, tags in field, …).
    fn status(&self) -> serde_json::Value;
    /// The host closed its end of the line (vand stopped or was killed, the cable was pulled).
    /// A real device notices through its input and ACK timeouts; the simulator is told at once
    /// and does what those timeouts would do: drop half-received input and finish or abandon the
    /// exchange in progress without the host.
    fn host_closed(&mut self) {}
    /// Takes what physically happened since the last call (charges, cards, labels, tags), oldest
    /// first. The host calls it after every input and appends it to the [`ledger`] before it
    /// sends the device's answer.
    fn take_ledger(&mut self) -> Vec<ledger::Event> {
        Vec::new()
    }
    /// A device-specific control verb (e.g. `next` on the RFID encoder: a fresh tag in the field);
    /// unknown verbs are an error that lists the known ones.
    fn control(&mut self, words: &[&str]) -> Result<serde_json::Value, String> {
        Err(format!("{}: no control verb {:?}", self.name(), words.join(" ")))
    }
}

pub mod card;
pub mod host;
pub mod ledger;
pub mod payment;
pub mod rfid;
pub mod sticker;
