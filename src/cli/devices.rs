//! `vanctl devices`: health of each device and a safe self-test.

use crate::config::Config;

/// Arguments of `vanctl devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {}

/// Runs `vanctl devices`.
pub fn run(_args: &DevicesArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("vanctl devices is not built yet")
}
