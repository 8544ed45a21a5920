//! The signed, hash-chained, append-only journal.
