//! Whole-program tests of the serial transport, device manager, control socket and `van-sim`,
//! over real pseudo-terminals.

mod common;
use common::pty_at;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use mtu::config::{Parity, SerialConfig};
use mtu::devices::transport::{Backoff, Reopener, SerialLink};
use mtu::devices::{Link, LinkError};
use serialport::{SerialPort, TTYPort};

fn serial_cfg(path: &Path) -> SerialConfig {
    SerialConfig {
        path: path.to_owned(),
        baud: 9600,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 2,
        timeout_ms: 500,
    }
}

fn read_exact_by(link: &mut dyn Link, n: usize, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < n {
        let k = link.read_some(&mut buf, deadline).expect("read");
        out.extend_from_slice(&buf[..k]);
    }
    out
}

fn master_read(master: &mut TTYPort, n: usize) -> Vec<u8> {
    master.set_timeout(Duration::from_secs(5)).unwrap();
    let mut out = vec![0u8; n];
    master.read_exact(&mut out).expect("master read");
    out
}

#[test]
fn serial_link_reads_and_writes_over_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, path) = pty_at(dir.path(), "payment");
    let mut link = SerialLink::open("payment", &serial_cfg(&path)).unwrap();
    assert_eq!(link.path(), path.display().to_string());

    // ZVT purchase frame from the spec (devices.md): bytes must pass untouched, incl. 0x10 and CR/LF.
    let frame = [
        0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57, 0x0d, 0x0a, 0x11,
        0x13,
    ];
    link.write_all(&frame).unwrap();
    assert_eq!(master_read(&mut master, frame.len()), frame);

    master.write_all(&[0x80, 0x00, 0x00, 0xff, 0x0d]).unwrap();
    assert_eq!(read_exact_by(&mut link, 5, Duration::from_secs(5)), vec![0x80, 0x00, 0x00, 0xff, 0x0d]);
}

#[test]
fn serial_link_times_out_when_nothing_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, path) = pty_at(dir.path(), "sticker");
    let mut link = SerialLink::open("sticker", &serial_cfg(&path)).unwrap();
    let mut buf = [0u8; 8];
    let e = link.read_some(&mut buf, Instant::now() + Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("sticker"), "{e}");
    // A deadline already in the past still answers (no hang), with a timeout.
    let e = link.read_some(&mut buf, Instant::now() - Duration::from_millis(1)).unwrap_err();
    assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
}

#[test]
fn serial_link_discard_input_drops_pending_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, path) = pty_at(dir.path(), "rfid");
    let mut link = SerialLink::open("rfid", &serial_cfg(&path)).unwrap();
    master.write_all(b"garbage").unwrap();
    // Wait until the bytes are queued on the slave side, then discard them.
    let mut one = [0u8; 1];
    assert_eq!(link.read_some(&mut one, Instant::now() + Duration::from_secs(5)).unwrap(), 1);
    link.discard_input().unwrap();
    master.write_all(&[0xff, 0x00, 0x03, 0x1d, 0x0c]).unwrap();
    assert_eq!(read_exact_by(&mut link, 5, Duration::from_secs(5)), vec![0xff, 0x00, 0x03, 0x1d, 0x0c]);
}

#[test]
fn serial_link_reports_unplug_when_the_master_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (master, path) = pty_at(dir.path(), "card");
    let mut link = SerialLink::open("card", &serial_cfg(&path)).unwrap();
    let probe = link.hangup_probe().unwrap();
    assert!(!probe.hung_up());
    drop(master);
    assert!(probe.hung_up(), "idle hang-up must be visible without reading");
    let mut buf = [0u8; 8];
    let e = link.read_some(&mut buf, Instant::now() + Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, LinkError::Unplugged { .. }), "{e}");
    let e = link.write_all(b"\x1bSs\r").unwrap_err();
    assert!(matches!(e, LinkError::Unplugged { .. }), "{e}");
}

#[test]
fn second_opener_is_refused_while_the_port_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, path) = pty_at(dir.path(), "card");
    let first = SerialLink::open("card", &serial_cfg(&path)).unwrap();
    let e = SerialLink::open("card", &serial_cfg(&path)).unwrap_err();
    assert!(matches!(e, LinkError::Open { .. }), "{e}");
    assert!(e.to_string().contains("busy"), "{e}");
    drop(first);
    // Released on close: the next opener gets it.
    SerialLink::open("card", &serial_cfg(&path)).unwrap();
}

#[test]
fn reopener_follows_a_repointed_symlink_after_replug() {
    let dir = tempfile::tempdir().unwrap();
    let (master, path) = pty_at(dir.path(), "payment");
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
    let mut reopener = Reopener::new("payment", serial_cfg(&path), backoff);
    let mut link = reopener.try_open(Instant::now()).unwrap().expect("opened");

    // Unplug: the master goes away and the symlink dangles.
    drop(master);
    let mut buf = [0u8; 4];
    assert!(matches!(
        link.read_some(&mut buf, Instant::now() + Duration::from_secs(5)),
        Err(LinkError::Unplugged { .. })
    ));
    drop(link);
    std::fs::remove_file(&path).unwrap();
    let t0 = Instant::now();
    reopener.after_unplug(t0);
    assert!(reopener.try_open(t0).unwrap().is_none(), "backoff must hold the first retry");
    let e = reopener.try_open(t0 + Duration::from_millis(1)).unwrap_err();
    assert!(matches!(e, LinkError::Open { .. }), "{e}");
    assert!(reopener.last_error().is_some());
    // The next attempt waits longer (2 ms after the 1 ms one).
    let next = reopener.next_attempt().unwrap();
    assert_eq!(next.duration_since(t0 + Duration::from_millis(1)), Duration::from_millis(2));

    // Replug: a new PTY, the symlink re-pointed; the reopener finds it.
    let (mut master2, path2) = pty_at(dir.path(), "payment");
    assert_eq!(path2, path);
    let mut link = reopener.try_open(next).unwrap().expect("reopened");
    link.write_all(b"\x06").unwrap();
    assert_eq!(master_read(&mut master2, 1), b"\x06");
    assert!(reopener.next_attempt().is_none());
}

// ---------------------------------------------------------------- device manager

mod manager {
    use super::*;
    use common::respond;
    use mtu::config::Config;
    use mtu::devices::manager::{Driver, GenericDevice, JobError, Manager, ManagerOptions};
    use mtu::devices::{DeviceError, DeviceId, Fault, Health, SelfTestReport};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Test double: a "device" that answers `PING\r` with `PONG\r` (the responder below plays it).
    struct Pinger {
        link: Box<dyn Link>,
        patience: Duration,
    }

    impl GenericDevice for Pinger {
        fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
            self.link.write_all(b"PING\r")?;
            let deadline = Instant::now() + self.patience;
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while !got.ends_with(b"\r") {
                let n = self.link.read_some(&mut buf, deadline)?;
                got.extend_from_slice(&buf[..n]);
            }
            if got == b"FAULT\r" {
                return Err(DeviceError::fault(
                    "payment",
                    Fault::Sticker(mtu::devices::sticker::StickerFault::PaperOut),
                    "said FAULT",
                ));
            }
            Ok(SelfTestReport {
                device: "payment".into(),
                ok: got == b"PONG\r",
                lines: vec![String::from_utf8_lossy(&got).trim().to_owned()],
            })
        }
    }

    /// Idle status polls off: these tests drive every exchange themselves.
    fn config(dir: &Path) -> Config {
        config_polling(dir, 0)
    }

    fn config_polling(dir: &Path, poll: u64) -> Config {
        let d = dir.display();
        let text = format!(
            r#"mode = "simulation"
[van]
id = "MTU-T"
[paths]
state_dir = "{d}"
[devices.payment]
driver = "zvt"
path = "{d}/payment"
baud = 9600
health_poll_ms = {poll}
[devices.card]
driver = "evolis"
path = "{d}/card"
baud = 115200
health_poll_ms = {poll}
[devices.sticker]
driver = "zpl"
enabled = false
path = "{d}/sticker"
baud = 9600
[gpio]
backend = "sim"
debounce_ms = 0
[gpio.lines]
fault_led = {{ pin = 22 }}
tamper = {{ pin = 5, active_high = false }}
"#
        );
        Config::parse(&text, "test.toml").unwrap()
    }

    fn start(cfg: &Config) -> Manager {
        start_patient(cfg, Duration::from_secs(5))
    }

    fn start_patient(cfg: &Config, patience: Duration) -> Manager {
        let factory: mtu::devices::manager::DriverFactory =
            Arc::new(move |_name, _cfg, link| Ok(Driver::Generic(Box::new(Pinger { link, patience }))));
        let options = ManagerOptions {
            backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
            idle_check: Duration::from_millis(5),
            self_test_timeout: Duration::from_secs(10),
            sink: None,
        };
        Manager::start_with(cfg, factory, options)
    }

    async fn wait_for(m: &Manager, device: DeviceId, pred: impl Fn(&Health) -> bool) -> Health {
        let mut rx = m.watch_health();
        let got = tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|b| b.devices.get(&device).is_some_and(&pred)),
        )
        .await;
        match got {
            Ok(Ok(b)) => b.devices[&device].clone(),
            _ => panic!("{device} never reached the expected state; now {:?}", m.health()),
        }
    }

    /// Waits (bounded) until the LED reads `want`, returning the last reading.
    async fn wait_led(m: &Manager, led: &dyn Fn(&Manager) -> Option<bool>, want: bool) -> Option<bool> {
        for _ in 0..4000 {
            if led(m) == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        led(m)
    }

    async fn ping(m: &Manager) -> Result<SelfTestReport, JobError> {
        m.device(DeviceId::Payment).unwrap().run("ping", Duration::from_secs(10), |d| d.self_test()).await
    }

    #[tokio::test]
    async fn health_follows_absent_connected_unplug_and_replug() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"PONG\r");
        let m = start(&cfg);

        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        let card =
            wait_for(&m, DeviceId::Card, |h| matches!(h, Health::Disconnected { why } if why != "opening"))
                .await;
        assert!(format!("{card:?}").contains("no such device"), "{card:?}");
        let h = m.health();
        assert_eq!(h[&DeviceId::Sticker], Health::Absent, "disabled device is absent");
        assert_eq!(h[&DeviceId::Rfid], Health::Absent, "unconfigured device is absent");
        assert_eq!(h[&DeviceId::Gpio], Health::Connected);
        assert!(m.device(DeviceId::Rfid).is_none());

        let report = ping(&m).await.unwrap();
        assert!(report.ok && report.lines == ["PONG"], "{report:?}");

        // Unplug while idle: detected without any job running.
        responder.unplug();
        std::fs::remove_file(dir.path().join("payment")).unwrap();
        wait_for(&m, DeviceId::Payment, |h| matches!(h, Health::Disconnected { .. })).await;
        let e = ping(&m).await.unwrap_err();
        assert!(matches!(e, JobError::NotConnected { .. }), "{e}");

        // Replug under the same stable name: reconnected by the backoff loop.
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"PONG\r");
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        assert!(ping(&m).await.unwrap().ok);

        // The fault LED is on while the card printer is missing…
        let led = |m: &Manager| m.gpio_state().unwrap().outputs.get("fault_led").copied();
        assert_eq!(wait_led(&m, &led, true).await, Some(true));

        // …and goes off once the card printer appears too.
        let (card_master, _) = pty_at(dir.path(), "card");
        let card_responder = respond(card_master, b"PONG\r");
        wait_for(&m, DeviceId::Card, |h| *h == Health::Connected).await;
        assert_eq!(wait_led(&m, &led, false).await, Some(false));

        // Opening, connected, unplugged, connected again: each stable change is counted (busy
        // during the pings is not), so a recorder that looked late still knows.
        let board = m.watch_health().borrow().clone();
        assert_eq!(board.changes[&DeviceId::Payment], 4, "{board:?}");
        assert_eq!(board.stable[&DeviceId::Payment], Health::Connected);

        let reports = m.self_test().await;
        let names: Vec<&str> = reports.iter().map(|r| r.device.as_str()).collect();
        assert_eq!(names, ["payment", "card", "sticker", "rfid", "gpio"]);
        assert!(reports.iter().all(|r| r.ok), "{reports:?}");
        assert_eq!(reports[3].lines, ["not configured in this van (absent)"]);
        responder.unplug();
        card_responder.unplug();
        m.shutdown();
    }

    #[tokio::test]
    async fn a_silent_device_shows_as_a_fault_with_an_action() {
        let dir = tempfile::tempdir().unwrap();
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"");
        let m = start_patient(&config(dir.path()), Duration::from_millis(100));
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        let e = ping(&m).await.unwrap_err();
        assert!(matches!(e, JobError::Device(DeviceError::Link(LinkError::Timeout { .. }))), "{e}");
        match m.health()[&DeviceId::Payment].clone() {
            Health::Fault { fault, detail } => {
                assert_eq!(fault, Fault::Link(mtu::devices::LinkFault::NoAnswer));
                assert!(detail.contains("no answer"), "{detail}");
                assert!(fault.action(mtu::devices::Lang::En).contains("switched on"));
            }
            other => panic!("{other:?}"),
        }
        responder.unplug();
    }

    #[tokio::test]
    async fn a_panicking_driver_is_reported_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"PONG\r");
        let m = start(&config(dir.path()));
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        let handle = m.device(DeviceId::Payment).unwrap().clone();
        let e = handle
            .run("boom", Duration::from_secs(10), |_d| -> Result<(), DeviceError> { panic!("driver bug") })
            .await
            .unwrap_err();
        assert!(matches!(e, JobError::Aborted { .. }), "{e}");
        // The thread survived: the port is reopened and the device works again.
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        assert!(ping(&m).await.unwrap().ok);
        // Typed helpers refuse a driver of another kind instead of guessing.
        let e = handle.card("status", Duration::from_secs(10), |_c| Ok(())).await.unwrap_err();
        assert!(e.to_string().contains("not a card device"), "{e}");
        responder.unplug();
    }

    #[tokio::test]
    async fn tamper_from_the_sim_state_file_arrives_as_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let m = start(&config(dir.path()));
        let mut events = m.gpio_events().unwrap();
        // What `van-sim gpio tamper on` does.
        mtu::sim::host::set_gpio(&dir.path().join("gpio-sim.json"), "tamper", "on").unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv()).await.unwrap().unwrap();
        assert_eq!(ev, mtu::devices::gpio::GpioEvent::Tamper { active: true });
        let reports = m.self_test().await;
        assert!(reports[4].lines.contains(&"tamper: ACTIVE".to_owned()), "{reports:?}");
    }

    #[tokio::test]
    async fn a_fault_reported_by_a_job_shows_in_health_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"FAULT\r");
        let m = start(&cfg);
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        let e = ping(&m).await.unwrap_err();
        assert!(e.to_string().contains("out of labels: said FAULT — load a new label roll"), "{e}");
        assert_eq!(
            m.health()[&DeviceId::Payment],
            Health::Fault {
                fault: Fault::Sticker(mtu::devices::sticker::StickerFault::PaperOut),
                detail: "said FAULT".into()
            }
        );
        responder.unplug();
        let _ = std::fs::remove_file(dir.path().join("payment"));
        let (master, _) = pty_at(dir.path(), "payment");
        let responder = respond(master, b"PONG\r");
        wait_for(&m, DeviceId::Payment, |h| *h == Health::Connected).await;
        assert!(ping(&m).await.unwrap().ok);
        responder.unplug();
        let _: BTreeMap<DeviceId, Health> = m.health();
    }
}

// ---------------------------------------------------------------- control socket

mod control {
    use super::*;
    use mtu::config::Config;
    use mtu::control::{ControlError, request, serve};
    use mtu::devices::manager::Manager;
    use serde_json::{Value, json};
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn config(dir: &Path) -> Config {
        let text = format!(
            "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{}\"\n\
             [devices.rfid]\ndriver = \"mercury\"\npath = \"{}/rfid\"\nbaud = 115200\n[gpio]\nbackend = \"none\"\n",
            dir.display(),
            dir.display()
        );
        Config::parse(&text, "test.toml").unwrap()
    }

    async fn wait_for_socket(path: &Path) {
        for _ in 0..2000 {
            if path.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("socket {} never appeared", path.display());
    }

    async fn ask(path: &Path, req: Value) -> Result<Value, ControlError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || request(&path, &req)).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_socket_answers_and_survives_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let manager = Arc::new(Manager::start(&cfg));
        manager.settled(Duration::from_secs(10)).await;
        let sock = mtu::control::socket_path(dir.path());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn({
            let (sock, m) = (sock.clone(), manager.clone());
            async move { serve(&sock, m, stop_rx).await }
        });
        wait_for_socket(&sock).await;
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        let devices = ask(&sock, json!({"cmd": "devices"})).await.unwrap();
        assert_eq!(devices["devices"]["payment"], json!({"state": "absent"}));
        assert_eq!(devices["devices"]["gpio"], json!({"state": "absent"}));
        assert_eq!(devices["devices"]["rfid"]["state"], "disconnected", "{devices}");

        let reports = ask(&sock, json!({"cmd": "self_test"})).await.unwrap();
        let reports = reports["self_test"].as_array().unwrap().clone();
        assert_eq!(reports.len(), 5);
        assert_eq!(reports[3]["device"], "rfid");
        assert_eq!(reports[3]["ok"], false);
        assert!(reports[3]["lines"][0].as_str().unwrap().contains("not connected"), "{reports:?}");

        match ask(&sock, json!({"cmd": "reboot"})).await {
            Err(ControlError::Remote(msg)) => assert!(msg.contains("unknown cmd \"reboot\""), "{msg}"),
            other => panic!("{other:?}"),
        }

        // Raw bytes on one connection: each bad line gets an error naming the problem, then a good
        // request still works on the same connection.
        let raw = sock.clone();
        let answers = tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&raw).unwrap();
            s.write_all(b"hello\n[1,2]\n{\"cmd\":42}\n{}\n\xff\xfe\n{\"cmd\":\"devices\"}\n").unwrap();
            let mut r = std::io::BufReader::new(s);
            (0..6)
                .map(|_| {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    serde_json::from_str::<Value>(&line).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let err = |i: usize| answers[i]["error"].as_str().unwrap_or_default().to_owned();
        assert!(err(0).contains("not JSON"), "{answers:?}");
        assert!(err(1).contains("expected a JSON object"), "{answers:?}");
        assert!(err(2).contains("\"cmd\" must be a string"), "{answers:?}");
        assert!(err(3).contains("missing field \"cmd\""), "{answers:?}");
        assert!(err(4).contains("not JSON"), "{answers:?}");
        assert!(answers[5]["devices"].is_object(), "{answers:?}");

        // A second daemon on the same socket is refused.
        let (_s2, rx2) = tokio::sync::watch::channel(false);
        match serve(&sock, manager.clone(), rx2).await {
            Err(ControlError::InUse { .. }) => {}
            other => panic!("{other:?}"),
        }

        stop.send(true).unwrap();
        server.await.unwrap().unwrap();
        assert!(!sock.exists(), "socket removed on shutdown");
        match ask(&sock, json!({"cmd": "devices"})).await {
            Err(ControlError::NoDaemon { .. }) => {}
            other => panic!("{other:?}"),
        }
        manager.shutdown();
    }
}

// ---------------------------------------------------------------- van-sim binary

mod van_sim {
    use super::*;
    use serde_json::Value;
    use std::process::{Child, Command, Stdio};

    struct Sim {
        child: Child,
    }

    impl Drop for Sim {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn van_sim(args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_van-sim"));
        c.args(args).env("RUST_LOG", "warn");
        c
    }

    fn ctl(dir: &Path, words: &[&str]) -> (bool, Value) {
        let sock = dir.join("sim.sock");
        let mut args = vec!["--control", sock.to_str().unwrap(), "ctl"];
        args.extend_from_slice(words);
        let out = van_sim(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        (out.status.success(), serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    #[test]
    fn van_sim_serves_devices_and_answers_control() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.toml");
        std::fs::write(
            &scenario,
            "[timing]\nscale = 0\n[card]\nkind = \"loopback\"\n[rfid]\nenabled = false\n",
        )
        .unwrap();
        let devdir = dir.path().join("dev");
        let sock = dir.path().join("sim.sock");
        let mut child = van_sim(&[
            "--scenario",
            scenario.to_str().unwrap(),
            "--dir",
            devdir.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // Wait for the readiness line (symlinks and socket exist by then).
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        let _sim = Sim { child };
        assert_eq!(ready.trim(), "van-sim ready");

        let card = devdir.join("card");
        assert!(std::fs::symlink_metadata(&card).unwrap().file_type().is_symlink());
        assert!(std::fs::read_link(&card).unwrap().starts_with("/dev/pts"));
        assert!(!devdir.join("rfid").exists(), "disabled device has no name");

        let (ok, status) = ctl(dir.path(), &["status"]);
        assert!(ok, "{status}");
        assert_eq!(status["scale"], 0.0);
        assert_eq!(status["devices"]["card"]["plugged"], true);
        assert_eq!(status["devices"]["rfid"]["error"], "disabled in the scenario");
        // The protocol simulators of this build may or may not exist yet: either served or reported.
        for d in ["payment", "sticker"] {
            let v = &status["devices"][d];
            assert!(v["plugged"] == true || v["error"].is_string(), "{d}: {v}");
        }

        // A second van-sim on the same socket is refused and leaves the first one's names alone.
        let target = std::fs::read_link(&card).unwrap();
        let second = van_sim(&[
            "--scenario",
            scenario.to_str().unwrap(),
            "--dir",
            devdir.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert!(!second.status.success());
        assert!(String::from_utf8_lossy(&second.stderr).contains("another van-sim is running"));
        assert_eq!(std::fs::read_link(&card).unwrap(), target);

        // Bytes through the real PTY behind the stable name.
        let mut link = SerialLink::open("card", &serial_cfg(&card)).unwrap();
        link.write_all(b"\x1bSs\r").unwrap();
        assert_eq!(read_exact_by(&mut link, 4, Duration::from_secs(10)), b"\x1bSs\r");

        let (ok, answer) = ctl(dir.path(), &["unplug", "card"]);
        assert!(ok, "{answer}");
        let mut buf = [0u8; 4];
        assert!(matches!(
            link.read_some(&mut buf, Instant::now() + Duration::from_secs(10)),
            Err(LinkError::Unplugged { .. })
        ));
        let (ok, answer) = ctl(dir.path(), &["replug", "card"]);
        assert!(ok, "{answer}");
        let mut link = SerialLink::open("card", &serial_cfg(&card)).unwrap();
        link.write_all(b"ok").unwrap();
        assert_eq!(read_exact_by(&mut link, 2, Duration::from_secs(10)), b"ok");

        let (ok, answer) = ctl(dir.path(), &["fly", "card"]);
        assert!(!ok);
        assert!(answer["error"].as_str().unwrap().contains("unknown command"), "{answer}");

        // GPIO: written next to the device folder, where vand's sim backend looks.
        let (ok, answer) = ctl(dir.path(), &["gpio", "tamper", "on"]);
        assert!(ok, "{answer}");
        let gpio: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("gpio-sim.json")).unwrap()).unwrap();
        assert_eq!(gpio["tamper"], true);
        let out = van_sim(&["--dir", devdir.to_str().unwrap(), "gpio", "power-fail", "on"]).output().unwrap();
        assert!(out.status.success());
        let gpio: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("gpio-sim.json")).unwrap()).unwrap();
        assert_eq!(gpio["power_fail"], true);
    }

    #[test]
    fn van_sim_ctl_without_a_running_sim_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let out = van_sim(&["--control", sock.to_str().unwrap(), "ctl", "status"]).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no van-sim running"));
    }
}

// ---------------------------------------------------------------- van-sim + manager, real drivers

mod end_to_end {
    use super::*;
    use mtu::config::Config;
    use mtu::devices::manager::Manager;
    use mtu::devices::{DeviceId, Health};
    use serde_json::Value;
    use std::process::{Command, Stdio};

    /// Every simulator this build has, served by van-sim (fast scenario), reached by the daemon's
    /// manager with the real drivers: served devices connect and pass the self-test, the others are
    /// reported disconnected. Devices whose simulator is not built yet are skipped by van-sim.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn manager_reaches_every_device_van_sim_serves() {
        let dir = tempfile::tempdir().unwrap();
        let devdir = dir.path().join("dev");
        let sock = dir.path().join("sim.sock");
        let fast = concat!(env!("CARGO_MANIFEST_DIR"), "/hw/sim/fast.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args([
                "--scenario",
                fast,
                "--dir",
                devdir.to_str().unwrap(),
                "--control",
                sock.to_str().unwrap(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "van-sim ready");

        let status = Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args(["--control", sock.to_str().unwrap(), "ctl", "status"])
            .output()
            .unwrap();
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();

        let d = devdir.display();
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim.toml"))
            .unwrap()
            .replace("var/dev/", &format!("{d}/"))
            .replace("state_dir = \"var\"", &format!("state_dir = \"{}\"", dir.path().display()));
        // The e-sticker driver needs the tag secret (hex, mode 0600) that config/sim.toml names;
        // vand creates it in simulation, this test writes its own.
        let secret = dir.path().join("rfid-tag-secret");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&secret, "11".repeat(32)).unwrap();
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(text.contains("\"var/tag-secret.hex\""), "config/sim.toml names the tag secret");
        let text = text.replace("\"var/tag-secret.hex\"", &format!("\"{}\"", secret.display()));
        let cfg = Config::parse(&text, "sim.toml (test copy)").unwrap();
        let manager = Manager::start(&cfg);
        let mut rx = manager.watch_health();
        for id in DeviceId::SERIAL {
            let name = id.name();
            let served = status["devices"][name]["plugged"] == true;
            let want_connected = move |h: &Health| {
                if served {
                    *h == Health::Connected
                } else {
                    matches!(h, Health::Disconnected { why } if why != "opening")
                }
            };
            let got = tokio::time::timeout(
                Duration::from_secs(30),
                rx.wait_for(|m| m.devices.get(&id).is_some_and(want_connected)),
            )
            .await;
            assert!(got.is_ok(), "{name} (served: {served}): {:?}", manager.health().get(&id));
        }
        let reports = manager.self_test().await;
        // Every served device answered its driver's self-test over the PTY (whether the device
        // state is fine is the driver's verdict, e.g. a module still in its bootloader).
        let answered = |r: &mtu::devices::SelfTestReport| {
            !r.lines.is_empty()
                && r.lines.iter().all(|l| {
                    !l.contains("not connected") && !l.contains("no answer") && !l.contains("unplugged")
                })
        };
        for r in &reports {
            if status["devices"][r.device.as_str()]["plugged"] == true {
                assert!(answered(r), "{r:?}");
            }
        }

        // Pull and replug every served device through van-sim's control: the manager follows.
        let ctl = |words: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_van-sim"))
                .args(["--control", sock.to_str().unwrap(), "ctl"])
                .args(words)
                .output()
                .unwrap();
            assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for id in DeviceId::SERIAL {
            let name = id.name();
            if status["devices"][name]["plugged"] != true {
                continue;
            }
            ctl(&["unplug", name]);
            let gone = tokio::time::timeout(
                Duration::from_secs(30),
                rx.wait_for(|m| matches!(m.devices.get(&id), Some(Health::Disconnected { .. }))),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            assert!(gone, "{name}: {:?}", manager.health().get(&id));
            ctl(&["replug", name]);
            let back = tokio::time::timeout(
                Duration::from_secs(30),
                rx.wait_for(|m| m.devices.get(&id) == Some(&Health::Connected)),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            assert!(back, "{name}: {:?}", manager.health().get(&id));
        }
        let reports = manager.self_test().await;
        for r in reports.iter().filter(|r| status["devices"][r.device.as_str()]["plugged"] == true) {
            assert!(answered(r), "after replug: {r:?}");
        }
        manager.shutdown();
        let _ = child.kill();
        let _ = child.wait();
    }
}
