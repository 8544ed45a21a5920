//! The service desk's commands on the control socket, driven by the real `vanctl` binary: bundle
//! imports (journal hook first, then office.db), a day's bookings, the roster, and large lines.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use mtu::config::Config;
use mtu::control::{Extra, Limits, serve_with_extra};
use mtu::devices::manager::{Manager, ManagerOptions};
use mtu::devices::transport::Backoff;
use mtu::office::refdata::{
    Applied, BundleKind, JournalHook, OfficeControl, RefData, ServiceHours, applied_record,
};
use mtu::office::sample;
use serde_json::{Value, json};

const VAN: &str = "MTU-T";

fn config_text(dir: &Path) -> String {
    format!(
        "mode = \"simulation\"\n[van]\nid = \"{VAN}\"\n[paths]\nstate_dir = \"{}\"\n[gpio]\nbackend = \"none\"\n",
        dir.display()
    )
}

fn manager(cfg: &Config) -> Manager {
    // No device is configured: the factory is never called.
    let factory: mtu::devices::manager::DriverFactory = Arc::new(|_name, _cfg, _link| {
        Err(mtu::devices::DeviceError::Protocol {
            device: "none".into(),
            detail: "no devices in this test".into(),
        })
    });
    let options = ManagerOptions {
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        idle_check: Duration::from_millis(20),
        self_test_timeout: Duration::from_secs(1),
        sink: None,
    };
    Manager::start_with(cfg, factory, options)
}

struct Van {
    dir: tempfile::TempDir,
    refdata: Arc<RefData>,
    journaled: Arc<Mutex<Vec<Value>>>,
    refuse_journal: Arc<Mutex<bool>>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), mtu::control::ControlError>>,
}

async fn start() -> Van {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("van.toml");
    std::fs::write(&cfg_path, config_text(dir.path())).unwrap();
    let cfg = Config::parse(&config_text(dir.path()), "van.toml").unwrap();
    let refdata =
        Arc::new(RefData::open(&dir.path().join("office.db"), VAN, ServiceHours::cairo_default()).unwrap());
    let journaled = Arc::new(Mutex::new(Vec::new()));
    let refuse_journal = Arc::new(Mutex::new(false));
    let hook: JournalHook = {
        let (j, r) = (journaled.clone(), refuse_journal.clone());
        Arc::new(move |a: &Applied| {
            if *r.lock().unwrap() {
                return Err("disk full".into());
            }
            j.lock().unwrap().push(applied_record(a, None));
            Ok(())
        })
    };
    let extra: Extra = Arc::new(OfficeControl::new(refdata.clone(), hook));
    let m = Arc::new(manager(&cfg));
    let sock = mtu::control::socket_path(dir.path());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let limits = Limits { max_clients: 4, idle_timeout: Duration::from_secs(30) };
    let server = tokio::spawn({
        let sock = sock.clone();
        async move { serve_with_extra(&sock, m, limits, Some(extra), stop_rx).await }
    });
    for _ in 0..2000 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Van { dir, refdata, journaled, refuse_journal, stop, server }
}

async fn vanctl(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vanctl"));
    cmd.arg("--config").arg(dir.join("van.toml")).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn today_cairo() -> Date {
    Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Africa/Cairo").unwrap()).date()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanctl_imports_bundles_through_vand_and_lists_them() {
    let van = start().await;
    let d = van.dir.path();
    let today = today_cairo();
    let tz = jiff::tz::TimeZone::get("Africa/Cairo").unwrap();
    let bookings =
        serde_json::to_string_pretty(&sample::bookings(VAN, today, &tz, Timestamp::now())).unwrap();
    std::fs::write(d.join("bookings.json"), &bookings).unwrap();
    std::fs::write(d.join("roster.json"), sample::roster(VAN, Timestamp::now()).unwrap().to_string())
        .unwrap();

    let out = vanctl(d, &["bookings", "import", d.join("bookings.json").to_str().unwrap()]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bookings.as_bytes()))
    };
    assert!(stdout.contains("imported bookings bundle version 1: 11 item(s) applied, 0 skipped"), "{stdout}");
    // The SHA-256 is the file's: vanctl sends its exact text.
    assert!(stdout.contains(&sha), "{stdout}");
    assert_eq!(
        van.journaled.lock().unwrap().clone(),
        [json!({"bundle": "bookings", "version": 1, "sha256": sha, "items": 11, "skipped": 0})]
    );
    assert_eq!(van.refdata.bookings_on(today).unwrap().len(), 11);

    // The wrong subcommand for the file says which one to use, and sends nothing.
    let out = vanctl(d, &["officers", "import", d.join("bookings.json").to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("use `vanctl bookings import`"), "{}", text(&out).1);

    let out = vanctl(d, &["officers", "import", d.join("roster.json").to_str().unwrap(), "--json"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let answer: Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!((answer["bundle"].as_str(), answer["items"].as_u64()), (Some("roster"), Some(3)));

    // A refused import: the error names the problem, the journal hook is not called.
    let out = vanctl(d, &["officers", "import", d.join("roster.json").to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("roster bundle version 1 is not newer than the applied version 1"),
        "{}",
        text(&out).1
    );
    assert_eq!(van.journaled.lock().unwrap().len(), 2);

    let out = vanctl(d, &["bookings", "list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with(&format!("bookings on {today}: 11\n")), "{stdout}");
    assert!(stdout.contains("10:00–10:45"), "{stdout}");
    assert!(stdout.contains(&format!("B-{}-01", today.strftime("%Y%m%d"))), "{stdout}");
    let out = vanctl(d, &["bookings", "list", "--date", "2001-01-01", "--json"]).await;
    assert_eq!(text(&out).0.trim(), "[]");
    let out = vanctl(d, &["bookings", "list", "--date", "tomorrow"]).await;
    assert!(text(&out).1.contains("is not YYYY-MM-DD"));

    let out = vanctl(d, &["officers", "list"]).await;
    let (stdout, _) = text(&out);
    assert!(stdout.contains("9001     supervisor active"), "{stdout}");
    assert!(!stdout.contains("argon2"), "{stdout}");

    let _ = van.stop.send(true);
    van.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_record_leaves_office_db_unchanged() {
    let van = start().await;
    *van.refuse_journal.lock().unwrap() = true;
    let bundle = sample::blocklist(VAN, Timestamp::now());
    let sock = mtu::control::socket_path(van.dir.path());
    let req = json!({"cmd": "import", "bundle": bundle});
    let e =
        tokio::task::spawn_blocking(move || mtu::control::request(&sock, &req)).await.unwrap().unwrap_err();
    assert!(e.to_string().contains("journal record failed: disk full"), "{e}");
    assert_eq!(van.refdata.version(BundleKind::Blocklist).unwrap(), None);
    assert!(van.refdata.blocklist_json().unwrap().is_none());
    let _ = van.stop.send(true);
}

fn raw_exchange(sock: &Path, line: &[u8]) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(line).unwrap();
    s.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_may_exceed_the_ordinary_line_limit_other_requests_may_not() {
    let van = start().await;
    let sock = mtu::control::socket_path(van.dir.path());
    // A 200 KiB schedule bundle (longer than the 64 KiB of an ordinary request).
    let big = json!({"bundle": "schedule", "version": 7, "van_id": VAN, "issued_at": "2026-12-01T05:00:00Z",
                     "schedule": {"padding": "x".repeat(200 * 1024)}});
    let line = json!({"cmd": "import", "bundle_text": big.to_string()}).to_string();
    assert!(line.len() > mtu::control::MAX_LINE);
    let s = sock.clone();
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&s, line.as_bytes())).await.unwrap();
    assert_eq!(answer["import"]["version"], 7, "{answer}");
    // The same size for an ordinary command is refused.
    let line = json!({"cmd": "devices", "padding": "x".repeat(200 * 1024)}).to_string();
    let s = sock.clone();
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&s, line.as_bytes())).await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("longer than 65536 bytes"), "{answer}");
    // Unknown commands list the extra ones; device commands still work.
    let s = sock.clone();
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&s, br#"{"cmd":"nope"}"#)).await.unwrap();
    assert_eq!(
        answer["error"],
        "unknown cmd \"nope\" (known: devices, self_test, test, import, bookings, officers)"
    );
    let s = sock.clone();
    let answer =
        tokio::task::spawn_blocking(move || raw_exchange(&s, br#"{"cmd":"devices"}"#)).await.unwrap();
    assert!(answer.get("devices").is_some(), "{answer}");
    let s = sock.clone();
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&s, br#"{"cmd":"import"}"#)).await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("needs \"bundle_text\""), "{answer}");
    let _ = van.stop.send(true);
}

#[test]
fn vanctl_hashes_a_pin_from_standard_input() {
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .args(["officers", "hash-pin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("١٢٣٤\n");
    assert!(out.status.success(), "{}", text(&out).1);
    let hash = text(&out).0.trim().to_owned();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(mtu::office::people::verify_pin("1234", &hash));
    assert!(!text(&out).1.contains("1234"), "the PIN is never echoed");
    let out = run("12ab\n");
    assert!(!out.status.success());
    assert!(text(&out).1.contains("a PIN is 4 to 12 digits"), "{}", text(&out).1);
}
