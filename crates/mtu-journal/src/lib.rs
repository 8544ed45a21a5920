//! The van journal's shared format: what the van, HQ and auditors must agree on byte for byte.
//!
//! - [`record`]: a record's fields, its exact signed bytes, sealing.
//! - [`rules`]: the format rules every record obeys (field charsets and sizes, the payload limit,
//!   the single genesis record, catalogue payload shapes); the writer refuses what they refuse and
//!   the verifier reports it.
//! - [`kinds`]: the catalogue of record kinds and their typed payloads.
//! - [`keys`]: key ids, strict public-key checks and the [`keys::SealingKey`] a writer signs with.
//! - [`verify`]: streaming chain verification (constant memory).
//! - [`export`]: the JSON Lines export format.
//!
//! The specification is `docs/journal-format.md` in the repository; this crate does no I/O beyond
//! the `Write` it is handed, and depends on no database, clock, device or rendering code.

pub mod export;
pub mod keys;
pub mod kinds;
pub mod record;
pub mod rules;
pub mod verify;

pub use keys::{KEY_ID_LEN, SealingKey, key_id_of};
pub use record::{Draft, Record};
pub use rules::RuleError;
pub use verify::{ChainState, ChainVerifier, VerifyError};
