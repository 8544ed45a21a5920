//! The signed, hash-chained, append-only journal.
//!
//! - [`record`]: the record, its exact signed bytes and sealing (pure; shared with HQ).
//! - [`verify`]: streaming chain verification (pure; shared with HQ).
//! - [`store`]: SQLite storage, the single writer (group commit, no thread), readers.
//! - [`export`]: the documented JSON Lines export for HQ and auditors.

pub mod export;
pub mod record;
pub mod store;
pub mod verify;

pub use record::{Record, kinds};
pub use store::{
    Appended, FirstStart, Journal, JournalError, JournalOptions, JournalOwner, JournalReader, OpenReport,
    PreviousStop, VanFacts, VanVerified,
};
pub use verify::{ChainState, ChainVerifier, VerifyError};
