//! The service desk: the services a van offers, their rules, bookings, people, shifts and the
//! workflow that runs a service against the devices and the journal.
//!
//! It composes `journal`, `devices` and `render`, which know nothing of it; the local HTTP API
//! (`api`) drives it and nothing else does.

pub mod desk;
pub mod model;
pub mod people;
pub mod records;
pub mod refdata;
pub mod sample;
pub mod shift;
pub mod workflow;
