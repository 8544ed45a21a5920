//! `vanctl devices`: health of each device and a safe self-test.
//!
//! Asks the running daemon over its control socket; when no daemon runs, opens the devices itself
//! (same manager code, same drivers) and closes them again.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::Config;
use crate::control::{self, ControlError};
use crate::devices::Health;
use crate::devices::manager::{Manager, health_line};

/// Arguments of `vanctl devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<DevicesAction>,
}

/// What `vanctl devices` does besides showing health.
#[derive(Debug, clap::Subcommand)]
pub enum DevicesAction {
    /// Safe checks of each device (status and version queries; nothing printed, encoded or charged).
    SelfTest,
    /// A real test job on one device: a test card (card), a test label with an RFID write and
    /// read-back (sticker), a test tag encoded with the tag profile (rfid, uses up a sticker), or
    /// the terminal's status and diagnosis (payment, never a charge). Journaled as `device.job`.
    Test {
        /// payment, card, sticker or rfid.
        device: String,
        /// Do not ask for confirmation (asked under the production configuration).
        #[arg(long)]
        yes: bool,
    },
}

/// Where the answer came from, shown to the technician.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Daemon,
    Direct,
}

/// Runs `vanctl devices`.
pub fn run(args: &DevicesArgs, config: &Config) -> anyhow::Result<()> {
    if let Some(DevicesAction::Test { device, yes }) = &args.action {
        return test(config, device, *yes, args.json);
    }
    let self_test = matches!(args.action, Some(DevicesAction::SelfTest));
    let (answer, source) = query(config, self_test)?;
    if source == Source::Direct && !args.json {
        eprintln!("(vand is not running: opened the devices directly)");
    }
    if self_test {
        let reports = answer.get("self_test").cloned().unwrap_or(Value::Null);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            print!("{}", self_test_text(&reports));
        }
        let failed = reports.as_array().map_or(0, |r| r.iter().filter(|r| r["ok"] != true).count());
        if failed > 0 {
            anyhow::bail!("{failed} device(s) failed the self-test");
        }
    } else {
        let devices = answer.get("devices").cloned().unwrap_or(Value::Null);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&devices)?);
        } else {
            let map: BTreeMap<String, Health> =
                serde_json::from_value(devices).context("malformed device list from vand")?;
            print!("{}", health_table(&map));
        }
    }
    Ok(())
}

fn query(config: &Config, self_test: bool) -> anyhow::Result<(Value, Source)> {
    let socket = control::socket_path(&config.paths.state_dir);
    let cmd = if self_test { "self_test" } else { "devices" };
    match control::request(&socket, &json!({ "cmd": cmd })) {
        Ok(v) => return Ok((v, Source::Daemon)),
        Err(ControlError::NoDaemon { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let value = rt.block_on(async {
        let manager = Manager::start(config);
        manager.settled(Duration::from_secs(10)).await;
        let v = if self_test {
            json!({ "self_test": manager.self_test().await })
        } else {
            json!({ "devices": manager.health() })
        };
        manager.shutdown();
        v
    });
    Ok((value, Source::Direct))
}

/// `vanctl devices test DEVICE`.
fn test(config: &Config, device: &str, yes: bool, json_out: bool) -> anyhow::Result<()> {
    use crate::devices::DeviceId;
    let id = DeviceId::parse(device)
        .filter(|d| *d != DeviceId::Gpio)
        .ok_or_else(|| anyhow::anyhow!("unknown device {device:?} (known: payment, card, sticker, rfid)"))?;
    if config.mode == crate::config::Mode::Production && !yes {
        let what = match id {
            DeviceId::Card => "print a test card (uses a blank card and ribbon)",
            DeviceId::Sticker => "print a test label (and write its RFID tag on an RFID model)",
            DeviceId::Rfid => "encode and lock a test tag (uses up the e-sticker on the encoder)",
            _ => "ask the terminal for its status and diagnosis (no charge)",
        };
        eprint!("This will {what}. Continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not confirmed (use --yes to skip the question)");
        }
    }
    let socket = control::socket_path(&config.paths.state_dir);
    let answer = match control::request(&socket, &json!({ "cmd": "test", "device": id.name() })) {
        Ok(v) => v.get("test").cloned().unwrap_or(Value::Null),
        // Test jobs use real stock and are journaled by the daemon, which owns the journal and
        // the ports: without it there is nobody to record them.
        Err(ControlError::NoDaemon { .. }) => {
            anyhow::bail!("vand is not running: start it first (test jobs are journaled by the daemon)")
        }
        Err(e) => return Err(e.into()),
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        let verdict = if answer["ok"] == true { "OK" } else { "FAILED" };
        println!(
            "{id} test: {verdict} ({} {})",
            answer["job"].as_str().unwrap_or("?"),
            answer["outcome"].as_str().unwrap_or("?")
        );
        for line in answer["lines"].as_array().map(Vec::as_slice).unwrap_or_default() {
            println!("    {}", line.as_str().unwrap_or_default());
        }
    }
    if answer["ok"] != true {
        anyhow::bail!("{id} test failed");
    }
    Ok(())
}

/// The health map as an aligned table: device, state, detail.
pub fn health_table(map: &BTreeMap<String, Health>) -> String {
    let order = ["payment", "card", "sticker", "rfid", "gpio"];
    let mut names: Vec<&String> = map.keys().collect();
    names.sort_by_key(|n| (order.iter().position(|o| o == n).unwrap_or(order.len()), n.to_string()));
    let mut out = format!("{:<9} {:<13} {}\n", "DEVICE", "STATE", "DETAIL");
    for name in names {
        let h = &map[name];
        let state = match h {
            Health::Absent => "absent",
            Health::Connected => "connected",
            Health::Busy { .. } => "busy",
            Health::Fault { .. } => "FAULT",
            Health::Disconnected { .. } => "disconnected",
        };
        let detail = match h {
            Health::Absent | Health::Connected => String::new(),
            Health::Fault { fault, .. } => {
                format!("{fault} — {} [{}]", fault.action(crate::devices::Lang::En), fault.code())
            }
            other => health_line(other).split_once(": ").map(|(_, d)| d.to_owned()).unwrap_or_default(),
        };
        out.push_str(format!("{name:<9} {state:<13} {detail}").trim_end());
        out.push('\n');
    }
    out
}

/// Self-test reports (as JSON from the daemon or the local manager) as readable text.
pub fn self_test_text(reports: &Value) -> String {
    let mut out = String::new();
    for r in reports.as_array().map(Vec::as_slice).unwrap_or_default() {
        let device = r["device"].as_str().unwrap_or("?");
        let verdict = if r["ok"] == true { "OK" } else { "FAILED" };
        out.push_str(&format!("{device:<9} {verdict}\n"));
        for line in r["lines"].as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push_str(&format!("    {}\n", line.as_str().unwrap_or_default()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_orders_devices_and_shows_details() {
        let mut m = BTreeMap::new();
        m.insert("gpio".to_owned(), Health::Connected);
        m.insert("rfid".to_owned(), Health::Absent);
        m.insert(
            "card".to_owned(),
            Health::fault(crate::devices::Fault::Card(crate::devices::card::CardFault::RibbonEnded)),
        );
        m.insert("payment".to_owned(), Health::Disconnected { why: "unplugged from var/dev/payment".into() });
        let t = health_table(&m);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "DEVICE    STATE         DETAIL");
        assert_eq!(lines[1], "payment   disconnected  unplugged from var/dev/payment");
        assert_eq!(lines[2], "card      FAULT         ribbon ended — replace the ribbon [card.ribbon_ended]");
        assert_eq!(lines[3], "rfid      absent");
        assert_eq!(lines[4], "gpio      connected");
    }

    #[test]
    fn self_test_text_lists_lines_under_each_verdict() {
        let v = json!([
            {"device": "payment", "ok": true, "lines": ["terminal 52500038 ready"]},
            {"device": "card", "ok": false, "lines": ["card: not connected: no such device"]}
        ]);
        assert_eq!(
            self_test_text(&v),
            "payment   OK\n    terminal 52500038 ready\ncard      FAILED\n    card: not connected: no such device\n"
        );
        assert_eq!(self_test_text(&Value::Null), "");
    }

    #[test]
    fn the_running_daemon_is_asked_first() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "mode = \"simulation\"\n[van]\nid = \"T\"\n[paths]\nstate_dir = \"{}\"\n[gpio]\nbackend = \"none\"\n",
            dir.path().display()
        );
        let cfg = Config::parse(&text, "t.toml").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let manager = std::sync::Arc::new(Manager::start(&cfg));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let sock = control::socket_path(dir.path());
        let server = rt.spawn({
            let sock = sock.clone();
            async move { control::serve(&sock, manager, stop_rx).await }
        });
        for _ in 0..2000 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (v, source) = query(&cfg, false).unwrap();
        assert_eq!(source, Source::Daemon);
        assert_eq!(v["devices"]["card"]["state"], "absent");
        let (v, source) = query(&cfg, true).unwrap();
        assert_eq!(source, Source::Daemon);
        assert_eq!(v["self_test"].as_array().map(Vec::len), Some(5));
        stop.send(true).unwrap();
        rt.block_on(server).unwrap().unwrap();
    }

    #[test]
    fn without_a_daemon_the_devices_are_opened_directly() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "mode = \"simulation\"\n[van]\nid = \"T\"\n[paths]\nstate_dir = \"{}\"\n\
             [devices.card]\ndriver = \"evolis\"\npath = \"{}/card\"\nbaud = 9600\n[gpio]\nbackend = \"none\"\n",
            dir.path().display(),
            dir.path().display()
        );
        let cfg = Config::parse(&text, "t.toml").unwrap();
        let (v, source) = query(&cfg, false).unwrap();
        assert_eq!(source, Source::Direct);
        assert_eq!(v["devices"]["payment"]["state"], "absent");
        assert_eq!(v["devices"]["card"]["state"], "disconnected");
        let (v, _) = query(&cfg, true).unwrap();
        assert_eq!(v["self_test"][1]["device"], "card");
        assert_eq!(v["self_test"][1]["ok"], false);
    }
}
