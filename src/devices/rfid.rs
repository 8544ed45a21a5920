//! The e-sticker encoder kind: what the workflow asks of any UHF Gen2 encoder (ThingMagic Mercury today).

use super::{DeviceError, SelfTestReport};

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
