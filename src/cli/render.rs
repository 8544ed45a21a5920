//! `vanctl render` and `vanctl verify-qr`.

use crate::config::Config;

/// Arguments of `vanctl render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {}

/// Arguments of `vanctl verify-qr`.
#[derive(Debug, clap::Args)]
pub struct VerifyQrArgs {}

/// Runs `vanctl render`.
pub fn run_render(_args: &RenderArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("vanctl render is not built yet")
}

/// Runs `vanctl verify-qr`.
pub fn run_verify_qr(_args: &VerifyQrArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("vanctl verify-qr is not built yet")
}
