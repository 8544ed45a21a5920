//! `van-sim`: the van's devices simulated on pseudo-terminals, for development and tests.
//!
//! `van-sim [--scenario hw/sim/NAME.toml] [--dir var/dev] [--control var/sim.sock]
//! [--ledger var/sim-ledger.jsonl]` serves every device; `van-sim ctl VERB…` talks to a running
//! van-sim (`van-sim ctl ledger [DEVICE] [--json]` prints what the devices physically did);
//! `van-sim gpio LINE on|off` sets a simulated GPIO input for the daemon.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mtu::sim::host::{Scenario, SimHost, claim_control, default_factory, serve_control, set_gpio};
use mtu::sim::ledger::{Entry, Ledger, table};

/// Simulated payment terminal, card printer, sticker printer and RFID encoder on PTYs.
#[derive(Debug, Parser)]
#[command(name = "van-sim", version)]
struct Cli {
    /// Scenario file (format documented in hw/sim/default.toml); default: realistic timing, no faults.
    #[arg(long, global = true)]
    scenario: Option<PathBuf>,
    /// Folder for the stable device names (symlinks to the PTYs), as in config/sim.toml.
    #[arg(long, default_value = "var/dev", global = true)]
    dir: PathBuf,
    /// Control socket.
    #[arg(long, default_value = "var/sim.sock", global = true)]
    control: PathBuf,
    /// GPIO simulation state file watched by vand's sim backend (default: <dir>/../gpio-sim.json).
    #[arg(long, global = true)]
    gpio_file: Option<PathBuf>,
    /// Ledger of what the devices physically did, JSON Lines, appended across restarts
    /// (default: <dir>/../sim-ledger.jsonl).
    #[arg(long, global = true)]
    ledger: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sends one control command to a running van-sim and prints its answer:
    /// status | fault DEV NAME | clear DEV | unplug DEV | replug DEV | gpio LINE on|off |
    /// tag next | ledger [DEV] [--json] (a table; --json: the array of entries).
    Ctl {
        /// `ledger`: print the entries as a JSON array instead of a table (other verbs always
        /// print JSON).
        #[arg(long)]
        json: bool,
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Sets a simulated GPIO input (tamper, power-fail) on or off; works without a running van-sim.
    Gpio { line: String, state: String },
}

/// `<dir>/../NAME`: files that belong next to the device folder, not in it.
fn beside_dir(cli: &Cli, name: &str) -> PathBuf {
    cli.dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(name)
}

fn gpio_file(cli: &Cli) -> PathBuf {
    cli.gpio_file.clone().unwrap_or_else(|| beside_dir(cli, "gpio-sim.json"))
}

fn ledger_file(cli: &Cli) -> PathBuf {
    cli.ledger.clone().unwrap_or_else(|| beside_dir(cli, "sim-ledger.jsonl"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Cmd::Ctl { words, json }) if words.first().is_some_and(|w| w == "ledger") => {
            ledger(&cli.control, words, *json)
        }
        Some(Cmd::Ctl { words, .. }) => ctl(&cli.control, &words.join(" ")).map(|value| {
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        }),
        Some(Cmd::Gpio { line, state }) => {
            set_gpio(&gpio_file(&cli), line, state).map_err(anyhow::Error::msg)?;
            println!("{line} {state}");
            Ok(())
        }
        None => serve(&cli),
    }
}

/// Sends one control line; the answer, or an error carrying van-sim's `{"error": …}`.
fn ctl(control: &Path, line: &str) -> anyhow::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("{}: no van-sim running (start `van-sim`)", control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(stream, "{line}")?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    let value: serde_json::Value = serde_json::from_str(&answer).context("malformed answer from van-sim")?;
    if let Some(e) = value.get("error") {
        println!("{}", serde_json::to_string_pretty(&value)?);
        anyhow::bail!("van-sim: {}", e.as_str().unwrap_or_default());
    }
    Ok(value)
}

/// `ctl ledger [DEVICE] [--json]`: a table, or the entries as a JSON array.
fn ledger(control: &Path, words: &[String], json: bool) -> anyhow::Result<()> {
    if words.len() > 2 {
        anyhow::bail!("usage: van-sim ctl ledger [payment|card|sticker|rfid] [--json]");
    }
    let value = ctl(control, &words.join(" "))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let entries: Vec<Entry> = serde_json::from_value(value).context("malformed ledger from van-sim")?;
        print!("{}", table(&entries));
    }
    Ok(())
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    mtu::logging::init(&mtu::config::LogConfig {
        level: "info".into(),
        format: mtu::config::LogFormat::Text,
    });
    let scenario = match &cli.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default(),
    };

    let listener =
        claim_control(&cli.control).with_context(|| format!("{}: cannot listen", cli.control.display()))?;
    // Devices only after the socket is ours: a second van-sim must not re-point the first one's names.
    let ledger = Arc::new(Ledger::open(&ledger_file(cli))?);
    let mut host = SimHost::start_with_ledger(&scenario, &cli.dir, default_factory, ledger)
        .with_context(|| format!("cannot serve devices in {}", cli.dir.display()))?;
    host.set_gpio_file(&gpio_file(cli));
    let host = Arc::new(host);
    serve_control(host.clone(), listener);
    tracing::info!(
        "van-sim ready: devices in {}, control on {}, ledger in {}",
        cli.dir.display(),
        cli.control.display(),
        ledger_file(cli).display()
    );
    println!("van-sim ready");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    tracing::info!("van-sim stopping");
    let _ = std::fs::remove_file(&cli.control);
    // The device threads stop and remove their symlinks.
    host.shutdown();
    Ok(())
}
