//! Simulated sticker device.

use super::SimDevice;

/// Builds the simulator from its scenario options (`[sticker]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    let _ = options;
    Err("the sticker simulator is not built yet".into())
}
