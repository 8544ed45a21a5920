//! The control socket under load: a bounded number of clients, refusals with a reason, an idle
//! timeout, and a device that still reconnects while a thousand clients hold connections.

mod common;
use common::{pty_at, respond};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtu::config::Config;
use mtu::control::{ControlError, Limits, request, serve_with};
use mtu::devices::manager::{Driver, GenericDevice, Manager, ManagerOptions};
use mtu::devices::transport::Backoff;
use mtu::devices::{DeviceError, DeviceId, Health, Link, SelfTestReport};
use serde_json::{Value, json};

const CLIENTS: usize = 1100;

/// The tests here change the process's descriptor limit: they run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Test double: a device that answers `PING\r` with `PONG\r`.
struct Pinger {
    link: Box<dyn Link>,
}

impl GenericDevice for Pinger {
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        self.link.write_all(b"PING\r")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while !got.ends_with(b"\r") {
            let n = self.link.read_some(&mut buf, deadline)?;
            got.extend_from_slice(&buf[..n]);
        }
        Ok(SelfTestReport { device: "payment".into(), ok: got == b"PONG\r", lines: vec![] })
    }
}

fn config(dir: &Path, devices: &str) -> Config {
    let text = format!(
        "mode = \"simulation\"\n[van]\nid = \"MTU-T\"\n[paths]\nstate_dir = \"{}\"\n{devices}[gpio]\nbackend = \"none\"\n",
        dir.display()
    );
    Config::parse(&text, "test.toml").unwrap()
}

fn start_manager(cfg: &Config) -> Manager {
    let factory: mtu::devices::manager::DriverFactory =
        Arc::new(|_name, _cfg, link| Ok(Driver::Generic(Box::new(Pinger { link }))));
    let options = ManagerOptions {
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        idle_check: Duration::from_millis(20),
        self_test_timeout: Duration::from_secs(10),
        sink: None,
    };
    Manager::start_with(cfg, factory, options)
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

async fn wait_health(m: &Manager, device: DeviceId, pred: impl Fn(&Health) -> bool) {
    let mut rx = m.watch_health();
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|b| b.devices.get(&device).is_some_and(&pred)),
    )
    .await;
    assert!(matches!(got, Ok(Ok(_))), "{device} never reached the expected state; now {:?}", m.health());
}

async fn ask(path: &Path, req: Value) -> Result<Value, ControlError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || request(&path, &req)).await.unwrap()
}

/// The server ends of the control socket held by this process: sockets of ours that
/// `/proc/net/unix` lists under the socket's path (the listener and every accepted connection).
fn server_side_sockets(sock: &Path) -> usize {
    let ours: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let want = sock.to_string_lossy();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() >= 8 && cols[7] == want && ours.contains(cols[6])
        })
        .count()
}

fn set_soft_fd_limit(soft: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain rlimit calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// What a client got from the server: nothing yet (served, idle), or a line and the close.
#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Closed(String),
}

fn peek(client: &mut UnixStream, pending: &mut Vec<u8>) -> Seen {
    let mut buf = [0u8; 256];
    loop {
        match client.read(&mut buf) {
            Ok(0) => return Seen::Closed(String::from_utf8_lossy(pending).into_owned()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Seen::Nothing,
            Err(e) => panic!("client read: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_clients_are_refused_beyond_the_limit_and_a_replug_still_reconnects() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (master, _) = pty_at(dir.path(), "payment");
    let responder = respond(master, b"PONG\r");
    let devices = format!(
        "[devices.payment]\ndriver = \"zvt\"\npath = \"{}/payment\"\nbaud = 9600\nhealth_poll_ms = 0\n",
        dir.path().display()
    );
    let cfg = config(dir.path(), &devices);
    let manager = Arc::new(start_manager(&cfg));
    wait_health(&manager, DeviceId::Payment, |h| *h == Health::Connected).await;

    // The daemon's situation with systemd's default: a soft limit that a thousand connections
    // would exhaust if the socket took them all (the test's own client ends count here too).
    let baseline = open_fds();
    let limit = baseline + CLIENTS as u64 + 16 + mtu::control::FD_RESERVE + 100;
    set_soft_fd_limit(limit);

    let sock = mtu::control::socket_path(dir.path());
    let limits = Limits { max_clients: 16, idle_timeout: Duration::from_secs(60) };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn({
        let (sock, m) = (sock.clone(), manager.clone());
        async move { serve_with(&sock, m, limits, stop_rx).await }
    });
    wait_for_socket(&sock).await;

    let raw = sock.clone();
    let mut clients = tokio::task::spawn_blocking(move || {
        (0..CLIENTS)
            .map(|i| UnixStream::connect(&raw).unwrap_or_else(|e| panic!("client {i}: connect: {e}")))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for c in &clients {
        c.set_nonblocking(true).unwrap();
    }

    // Every client is either served (idle: nothing to read) or refused with the reason and closed.
    let mut pending = vec![Vec::new(); CLIENTS];
    let mut seen: Vec<Seen> = (0..CLIENTS).map(|_| Seen::Nothing).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, c) in clients.iter_mut().enumerate() {
            if seen[i] == Seen::Nothing {
                seen[i] = peek(c, &mut pending[i]);
            }
        }
        let idle = seen.iter().filter(|s| **s == Seen::Nothing).count();
        if idle <= 16 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served: Vec<usize> = (0..CLIENTS).filter(|&i| seen[i] == Seen::Nothing).collect();
    assert_eq!(served.len(), 16, "clients served at once");
    for s in &seen {
        if let Seen::Closed(text) = s {
            assert_eq!(text, "{\"error\":\"too many control clients (16); try again\"}\n");
        }
    }
    // The daemon side holds the listener and the 16 served connections, not a thousand.
    let held = server_side_sockets(&sock);
    assert!((2..=17).contains(&held), "server-side sockets: {held}");

    // vanctl gets the reason at once instead of hanging.
    match ask(&sock, json!({"cmd": "devices"})).await {
        Err(ControlError::Remote(msg)) => assert!(msg.contains("too many control clients (16)"), "{msg}"),
        other => panic!("{other:?}"),
    }

    // Under that load the payment terminal is pulled and plugged back: it reconnects (a reopen
    // needs descriptors; the control socket left them).
    responder.unplug();
    std::fs::remove_file(dir.path().join("payment")).unwrap();
    wait_health(&manager, DeviceId::Payment, |h| matches!(h, Health::Disconnected { .. })).await;
    let (master, _) = pty_at(dir.path(), "payment");
    let responder = respond(master, b"PONG\r");
    wait_health(&manager, DeviceId::Payment, |h| *h == Health::Connected).await;
    let report = manager
        .device(DeviceId::Payment)
        .unwrap()
        .run("ping", Duration::from_secs(10), |d| d.self_test())
        .await;
    assert!(report.unwrap().ok);

    // Served clients leave: their slots free up and a normal request is answered.
    for i in served.iter().rev() {
        drop(clients.swap_remove(*i));
    }
    let answered = loop {
        match ask(&sock, json!({"cmd": "devices"})).await {
            Ok(v) => break v,
            Err(ControlError::Remote(msg)) if msg.contains("too many") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(answered["devices"]["payment"]["state"], "connected", "{answered}");

    // Whatever else fills the descriptor table, the control socket leaves the last ones to the
    // devices: with free slots but a nearly full table, a client is refused and says why.
    set_soft_fd_limit(open_fds() + mtu::control::FD_RESERVE / 2);
    match ask(&sock, json!({"cmd": "devices"})).await {
        Err(ControlError::Remote(msg)) => assert!(msg.contains("short of file descriptors"), "{msg}"),
        other => panic!("{other:?}"),
    }
    set_soft_fd_limit(limit);

    drop(clients);
    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
    responder.unplug();
    manager.shutdown();
    set_soft_fd_limit(u64::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_dropped_after_the_idle_timeout_and_its_slot_is_reused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let manager = Arc::new(start_manager(&cfg));
    let sock = mtu::control::socket_path(dir.path());
    let limits = Limits { max_clients: 2, idle_timeout: Duration::from_secs(1) };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn({
        let (sock, m) = (sock.clone(), manager.clone());
        async move { serve_with(&sock, m, limits, stop_rx).await }
    });
    wait_for_socket(&sock).await;

    let raw = sock.clone();
    let (waited, texts, third) = tokio::task::spawn_blocking(move || {
        let idle: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(&raw).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        // A third client is refused with the limit in the reason.
        let mut third = String::new();
        UnixStream::connect(&raw).unwrap().read_to_string(&mut third).unwrap();
        // The idle ones are told why and closed after the timeout.
        let started = Instant::now();
        let texts: Vec<String> = idle
            .into_iter()
            .map(|mut c| {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            })
            .collect();
        (started.elapsed(), texts, third)
    })
    .await
    .unwrap();
    assert_eq!(third, "{\"error\":\"too many control clients (2); try again\"}\n");
    for t in &texts {
        assert_eq!(t, "{\"error\":\"no request for 1 s; closing\"}\n");
    }
    assert!(waited < Duration::from_secs(5), "idle clients closed after {waited:?}");

    // Their slots were freed before they saw the close: the next request is answered at once.
    let v = ask(&sock, json!({"cmd": "devices"})).await.unwrap();
    assert_eq!(v["devices"]["payment"]["state"], "absent", "{v}");
    // Quick requests one after another: a slot is free again once the daemon has seen the last
    // client leave (asynchronously), so at worst a retry after a refusal.
    for _ in 0..5 {
        let mut tries = 0;
        let v = loop {
            match ask(&sock, json!({"cmd": "devices"})).await {
                Ok(v) => break v,
                Err(ControlError::Remote(m)) if m.contains("too many") && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(v["devices"]["payment"]["state"], "absent", "{v}");
    }
    // A client that keeps talking is not idle, however long it stays.
    let raw = sock.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = UnixStream::connect(&raw).unwrap();
        let mut r = std::io::BufReader::new(c.try_clone().unwrap());
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(600));
            c.write_all(b"{\"cmd\":\"devices\"}\n").unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            assert!(line.contains("\"devices\""), "{line}");
        }
    })
    .await
    .unwrap();

    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
    manager.shutdown();
}
