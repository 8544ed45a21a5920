//! The e-sticker encoder kind: what the workflow asks of any UHF Gen2 encoder (ThingMagic Mercury today).

use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// What to write on one e-sticker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagData {
    /// EPC bytes (length fixed by the tag profile).
    pub epc: Vec<u8>,
    /// User memory bytes, written from word 0 (padded to a whole word).
    pub user: Vec<u8>,
}

/// A tag that was written, read back, verified and locked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncodedTag {
    /// The chip's TID (identifies the physical sticker in records).
    pub tid: Vec<u8>,
    /// The EPC now on the tag.
    pub epc: Vec<u8>,
}

/// An e-sticker tag encoder, driven on the thread that owns its port.
pub trait TagEncoder: Send {
    /// Brings the encoder to a working state (firmware started, region, protocol, power).
    fn init(&mut self) -> Result<(), DeviceError>;
    /// Encodes the only tag in the field: passwords, EPC, user memory, read-back, lock.
    /// Fails with a clear cause when there is no tag or more than one.
    fn encode(&mut self, data: &TagData) -> Result<EncodedTag, DeviceError>;
    /// Permanently disables the tag with this TID (Gen2 Kill), e.g. a sticker that failed
    /// verification, so it can never pass as a valid one.
    fn void(&mut self, tid: &[u8]) -> Result<(), DeviceError>;
    /// Safe checks only (version, region); never writes a tag.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

/// Builds the configured tag encoder driver over an open link.
pub fn driver_from_config(
    cfg: &DeviceConfig,
    link: Box<dyn Link>,
) -> Result<Box<dyn TagEncoder>, DeviceError> {
    match cfg.driver.as_str() {
        "mercury" => Ok(Box::new(super::mercury::MercuryEncoder::from_config(cfg, link)?)),
        other => Err(DeviceError::Config {
            device: "rfid".into(),
            key: "driver".into(),
            message: format!("unknown e-sticker encoder driver {other:?}; known: mercury"),
        }),
    }
}
