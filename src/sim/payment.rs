//! Simulated payment device.

use super::SimDevice;

/// Builds the simulator from its scenario options (`[payment]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    let _ = options;
    Err("the payment simulator is not built yet".into())
}
