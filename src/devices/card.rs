//! The card printer kind: what the workflow asks of any card printer protocol (Evolis today).

use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// A card printer, driven on the thread that owns its port.
pub trait CardPrinter: Send {
    /// Safe checks only (status, version); never prints.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// Builds the configured card printer driver over an open link.
pub fn driver_from_config(
    cfg: &DeviceConfig,
    link: Box<dyn Link>,
) -> Result<Box<dyn CardPrinter>, DeviceError> {
    let _ = link;
    Err(DeviceError::Unsupported {
        device: "card".into(),
        what: format!("driver {:?} not built yet", cfg.driver),
    })
}
