//! The payment terminal kind: what the workflow asks of any terminal protocol (ZVT today).

use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// A payment terminal, driven on the thread that owns its port.
pub trait PaymentTerminal: Send {
    /// Safe checks only (status/diagnosis); never charges.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// Builds the configured payment driver over an open link.
pub fn driver_from_config(
    cfg: &DeviceConfig,
    link: Box<dyn Link>,
) -> Result<Box<dyn PaymentTerminal>, DeviceError> {
    let _ = link;
    Err(DeviceError::Unsupported {
        device: "payment".into(),
        what: format!("driver {:?} not built yet", cfg.driver),
    })
}
