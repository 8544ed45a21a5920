//! The e-sticker encoder kind: what the workflow asks of any UHF Gen2 encoder (ThingMagic Mercury today).

use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// An e-sticker tag encoder, driven on the thread that owns its port.
pub trait TagEncoder: Send {
    /// Safe checks only (version, region); never writes a tag.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// Builds the configured tag encoder driver over an open link.
pub fn driver_from_config(
    cfg: &DeviceConfig,
    link: Box<dyn Link>,
) -> Result<Box<dyn TagEncoder>, DeviceError> {
    let _ = link;
    Err(DeviceError::Unsupported {
        device: "rfid".into(),
        what: format!("driver {:?} not built yet", cfg.driver),
    })
}
