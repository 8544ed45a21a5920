//! `vanctl` subcommands, one module per area; `src/bin/vanctl.rs` only wires them together.

pub mod devices;
pub mod journal;
pub mod office;
pub mod render;
pub mod sync;
