//! ThingMagic/JADAK Mercury serial protocol (UHF EPC Gen2 e-sticker encoder): a pure codec
//! ([`codec`]), the tag profile and per-tag passwords ([`profile`]), and the synchronous driver
//! ([`driver`]) that runs the Gen2 encoding sequence over a [`crate::devices::Link`].

pub mod codec;
pub mod driver;
pub mod profile;

pub use driver::{MercuryEncoder, MercuryError, WireStats};
pub use profile::{TagProfile, TagSecret};
