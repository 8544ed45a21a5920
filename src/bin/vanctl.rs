//! `vanctl`: the technician's and officer's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mtu::cli;
use mtu::config::Config;

/// Command line of the mobile traffic unit. Without --config it uses the embedded simulation config.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Default: the embedded config/sim.toml.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the van's signing key (mode 0600); refuses to overwrite an existing one.
    Keygen,
    /// Prints the public key HQ enrolls: `<van id> <key id> <public key hex>`.
    Pubkey {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Signing key management.
    #[command(subcommand)]
    Key(cli::journal::KeyCmd),
    /// The signed journal: verify, export, show.
    #[command(subcommand)]
    Journal(cli::journal::JournalCmd),
    /// Device health and self-test.
    Devices(cli::devices::DevicesArgs),
    /// Renders a document to PDF and PNG.
    Render(cli::render::RenderArgs),
    /// Verifies a document's QR code payload.
    VerifyQr(cli::render::VerifyQrArgs),
    /// The uplink to HQ: `now`, `status`.
    #[command(subcommand)]
    Sync(cli::sync::SyncCmd),
    /// Reference data: `bookings`, `officers`, `blocklist`, `schedule`, `settings` (import, list,
    /// hash-pin, show).
    #[command(flatten)]
    Office(cli::office::OfficeCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load_or_embedded(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Keygen => cli::journal::keygen(&config).map(|_| 0),
        Command::Pubkey { json } => cli::journal::pubkey(&config, *json).map(|_| 0),
        Command::Key(cmd) => cli::journal::key(cmd, &config).map(|_| 0),
        Command::Journal(cmd) => cli::journal::run(cmd, &config),
        Command::Devices(args) => cli::devices::run(args, &config).map(|_| 0),
        Command::Render(args) => cli::render::run_render(args, &config).map(|_| 0),
        Command::VerifyQr(args) => cli::render::run_verify_qr(args, &config).map(|_| 0),
        Command::Office(cmd) => cli::office::run(cmd, &config),
        Command::Sync(cmd) => cli::sync::run(cmd, &config),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
