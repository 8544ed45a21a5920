//! Onboard software of Egypt's mobile traffic units (MTU).
//!
//! The crate is one library with thin binaries on top (`vand`, `vanctl`, `van-sim`). See
//! `ARCHITECTURE.md` for the code map and the invariants that hold across modules.

pub mod api;
pub mod app;
pub mod bitmap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod daemon;
pub mod devices;
pub mod journal;
pub mod keys;
pub mod logging;
pub mod office;
pub mod power;
pub mod reload;
pub mod render;
pub mod sim;
pub mod sync;
pub mod techtest;
pub mod watchdog;
