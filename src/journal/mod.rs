//! The signed, hash-chained, append-only journal.
//!
//! The format itself (record layout, sealing, format rules, kinds catalogue, verification, export)
//! lives in the `mtu-journal` crate, shared with HQ and auditors; it is re-exported here under its
//! old paths. This module adds the van's side:
//!
//! - [`store`]: SQLite storage, the single writer (group commit, no thread), readers, the
//!   transaction index, and the van's rules for its key and journal files.

pub use mtu_journal::{export, kinds, record, rules, verify};
pub mod store;

pub use record::Record;
pub use store::{
    Appended, FirstStart, Journal, JournalError, JournalOptions, JournalOwner, JournalReader, OpenReport,
    VanFacts, VanVerified, WriterHealth,
};
pub use verify::{ChainState, ChainVerifier, VerifyError};
