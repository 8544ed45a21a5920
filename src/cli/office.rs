//! `vanctl bookings|officers|blocklist|schedule|settings …`: reference data imports and lists, sent to the
//! running vand over its control socket (vand journals each import as `refdata.applied` and owns
//! `office.db`), and `vanctl officers hash-pin`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::config::Config;
use crate::control;

/// The service desk's reference data commands.
#[derive(Debug, clap::Subcommand)]
pub enum OfficeCmd {
    /// Bookings: import a bookings bundle, list a day's bookings.
    #[command(subcommand)]
    Bookings(BookingsCmd),
    /// Officers: import a roster bundle, list the roster, hash a PIN for a roster.
    #[command(subcommand)]
    Officers(OfficersCmd),
    /// The block list (stolen vehicles, suspended licences).
    #[command(subcommand)]
    Blocklist(ImportOnly),
    /// The fee schedule.
    #[command(subcommand)]
    Schedule(ImportOnly),
    /// Settings HQ may change (e-sticker profile, card colour, service hours): import a
    /// settings bundle, show the applied one and the one in effect (taken at vand's start).
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// The van's alarms: power failure (on the UPS) and the latched tamper alarm. A supervisor
    /// clears the tamper alarm from the console or `POST /api/v1/tamper/clear` (it names who).
    Alarms {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `vanctl settings …`.
#[derive(Debug, clap::Subcommand)]
pub enum SettingsCmd {
    /// Sends a settings bundle to vand (it takes effect at vand's next start).
    Import(ImportArgs),
    /// The settings bundle applied last, the one in effect, and whether a restart is pending.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `vanctl bookings …`.
#[derive(Debug, clap::Subcommand)]
pub enum BookingsCmd {
    /// Sends a bookings bundle (JSON file from HQ) to vand.
    Import(ImportArgs),
    /// Lists the bookings of a day (default: today in the service time zone).
    List {
        /// Day, YYYY-MM-DD (local date in the service time zone).
        #[arg(long)]
        date: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `vanctl officers …`.
#[derive(Debug, clap::Subcommand)]
pub enum OfficersCmd {
    /// Sends a roster bundle to vand.
    Import(ImportArgs),
    /// Lists the roster (no PIN hashes).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reads a PIN (4–12 digits) from one line of standard input and prints its Argon2id hash
    /// for a roster's `pin_hash`. The PIN is not echoed by this tool, nor logged.
    HashPin,
}

/// `vanctl blocklist|schedule import FILE`.
#[derive(Debug, clap::Subcommand)]
pub enum ImportOnly {
    /// Sends the bundle to vand.
    Import(ImportArgs),
}

/// A bundle file to import.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The bundle (JSON).
    pub file: PathBuf,
    /// Print vand's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs an office command; the exit code.
pub fn run(cmd: &OfficeCmd, config: &Config) -> anyhow::Result<u8> {
    match cmd {
        OfficeCmd::Bookings(BookingsCmd::Import(a)) => import(config, "bookings", a),
        OfficeCmd::Bookings(BookingsCmd::List { date, json }) => {
            list_bookings(config, date.as_deref(), *json)
        }
        OfficeCmd::Officers(OfficersCmd::Import(a)) => import(config, "roster", a),
        OfficeCmd::Officers(OfficersCmd::List { json }) => list_officers(config, *json),
        OfficeCmd::Officers(OfficersCmd::HashPin) => hash_pin(),
        OfficeCmd::Blocklist(ImportOnly::Import(a)) => import(config, "blocklist", a),
        OfficeCmd::Schedule(ImportOnly::Import(a)) => import(config, "schedule", a),
        OfficeCmd::Settings(SettingsCmd::Import(a)) => import(config, "settings", a),
        OfficeCmd::Settings(SettingsCmd::Show { json }) => show_settings(config, *json),
        OfficeCmd::Alarms { json } => show_alarms(config, *json),
    }?;
    Ok(0)
}

/// The import request for a bundle file: its exact text (so vand's SHA-256 is the file's), after
/// checking it is a bundle of the kind the command names.
pub fn import_request(path: &Path, expected: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let kind = v.get("bundle").and_then(Value::as_str).unwrap_or("");
    if kind != expected {
        let cmd = match kind {
            "bookings" => "vanctl bookings import",
            "roster" => "vanctl officers import",
            "blocklist" => "vanctl blocklist import",
            "schedule" => "vanctl schedule import",
            "settings" => "vanctl settings import",
            _ => bail!(
                "{}: field \"bundle\" must be \"{expected}\" (found {:?})",
                path.display(),
                v.get("bundle").unwrap_or(&Value::Null)
            ),
        };
        bail!("{} is a {kind} bundle, not {expected}: use `{cmd}`", path.display());
    }
    Ok(json!({"cmd": "import", "bundle_text": text}))
}

fn send(config: &Config, req: &Value) -> anyhow::Result<Value> {
    let socket = control::socket_path(&config.paths.state_dir);
    control::request(&socket, req).map_err(|e| match e {
        control::ControlError::NoDaemon { .. } => {
            anyhow::anyhow!("{e}; start vand first (it owns office.db and journals every import)")
        }
        e => e.into(),
    })
}

fn import(config: &Config, expected: &str, a: &ImportArgs) -> anyhow::Result<()> {
    let req = import_request(&a.file, expected)?;
    let answer = send(config, &req)?;
    let r = answer.get("import").context("malformed answer from vand: no \"import\"")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!(
            "imported {} bundle version {}: {} item(s) applied, {} skipped (sha256 {})",
            r["bundle"].as_str().unwrap_or("?"),
            r["version"],
            r["items"],
            r["skipped"],
            r["sha256"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

fn show_alarms(config: &Config, json_out: bool) -> anyhow::Result<()> {
    let answer = send(config, &json!({"cmd": "alarms"}))?;
    let a = answer.get("alarms").context("malformed answer from vand: no \"alarms\"")?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(a)?);
        return Ok(());
    }
    let power = if a["power_failing"] == true { "MAINS LOST (on the UPS; no new service)" } else { "mains" };
    println!("power: {power}");
    let t = &a["tamper"];
    let switch = if t["switch_open"] == true { "open" } else { "closed" };
    if t["latched"] == true {
        println!(
            "tamper: LATCHED since {} (record {}); switch {switch}; supervisor functions blocked until a supervisor clears it",
            t["since"].as_str().unwrap_or("?"),
            t["raised_seq"]
        );
    } else {
        println!("tamper: clear; switch {switch}");
    }
    Ok(())
}

fn show_settings(config: &Config, json_out: bool) -> anyhow::Result<()> {
    let answer = send(config, &json!({"cmd": "settings"}))?;
    let s = answer.get("settings").context("malformed answer from vand: no \"settings\"")?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        print!("{}", settings_text(s));
    }
    Ok(())
}

/// `vanctl settings show` as text.
pub fn settings_text(s: &Value) -> String {
    let mut out = String::new();
    match &s["in_effect"] {
        Value::Null => out.push_str("in effect: the configuration's values (no settings bundle at start)\n"),
        e => {
            out.push_str(&format!(
                "in effect since vand started: settings bundle version {}\n",
                e["version"]
            ));
            for c in e["settings"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let was = if c["config"].is_null() { "default".to_owned() } else { c["config"].to_string() };
                out.push_str(&format!(
                    "  {} = {} (configuration: {was})\n",
                    c["key"].as_str().unwrap_or("?"),
                    c["hq"]
                ));
            }
        }
    }
    match &s["applied"] {
        Value::Null => out.push_str("applied: none\n"),
        a => out.push_str(&format!(
            "applied: version {} at {} (sha256 {}): {}\n",
            a["version"],
            a["applied_at"].as_str().unwrap_or("?"),
            a["sha256"].as_str().unwrap_or("?"),
            a["settings"]
        )),
    }
    if s["pending"] == Value::Bool(true) {
        out.push_str("pending: the applied settings take effect at the next start of vand\n");
    }
    out
}

fn list_bookings(config: &Config, date: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let mut req = json!({"cmd": "bookings"});
    if let Some(d) = date {
        d.parse::<jiff::civil::Date>().with_context(|| format!("--date {d:?} is not YYYY-MM-DD"))?;
        req["date"] = json!(d);
    }
    let answer = send(config, &req)?;
    let list = answer.get("bookings").cloned().unwrap_or(Value::Null);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let tz = jiff::tz::TimeZone::get(&config.service.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    print!("{}", bookings_table(answer["date"].as_str().unwrap_or("?"), &list, &tz));
    Ok(())
}

/// A day's bookings as a table (local slot times).
pub fn bookings_table(date: &str, list: &Value, tz: &jiff::tz::TimeZone) -> String {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = format!("bookings on {date}: {}\n", items.len());
    for v in items {
        let b = &v["booking"];
        let local = |t: &Value| {
            t.as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%H:%M").to_string())
                .unwrap_or_else(|| "?".into())
        };
        out.push_str(&format!(
            "{}–{}  {:<16} {:<28} {:<10} {}{}\n",
            local(&b["slot"]["start"]),
            local(&b["slot"]["end"]),
            b["id"].as_str().unwrap_or("?"),
            b["service"].as_str().unwrap_or("?"),
            v["state"].as_str().unwrap_or("?"),
            b["citizen"]["name_ar"].as_str().unwrap_or(""),
            v["txn"].as_str().map(|t| format!("  [{t}]")).unwrap_or_default(),
        ));
    }
    out
}

fn list_officers(config: &Config, json_out: bool) -> anyhow::Result<()> {
    let answer = send(config, &json!({"cmd": "officers"}))?;
    let list = answer.get("officers").cloned().unwrap_or(Value::Null);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for o in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "{:<8} {:<10} {:<8} {} / {}",
            o["id"].as_str().unwrap_or("?"),
            o["role"].as_str().unwrap_or("?"),
            if o["active"] == true { "active" } else { "inactive" },
            o["name_ar"].as_str().unwrap_or(""),
            o["name_en"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn hash_pin() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        eprintln!("PIN (4–12 digits; it is shown as you type), then Enter:");
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin.lock().read_line(&mut line).context("cannot read the PIN from standard input")?;
    let hash = crate::office::people::hash_pin(line.trim_end_matches(['\r', '\n']))?;
    println!("{hash}");
    Ok(())
}
