//! The sticker printer kind: what the workflow asks of any label printer protocol (ZPL II today).

use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// A sticker printer, driven on the thread that owns its port.
pub trait StickerPrinter: Send {
    /// Safe checks only (host status); never prints.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// Builds the configured sticker printer driver over an open link.
pub fn driver_from_config(
    cfg: &DeviceConfig,
    link: Box<dyn Link>,
) -> Result<Box<dyn StickerPrinter>, DeviceError> {
    let _ = link;
    Err(DeviceError::Unsupported {
        device: "sticker".into(),
        what: format!("driver {:?} not built yet", cfg.driver),
    })
}
