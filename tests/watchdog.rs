//! vand's systemd notifications, received on a unix datagram socket the test owns (as systemd's
//! `NOTIFY_SOCKET`): `READY=1` once the journal and devices are up, `WATCHDOG=1` at about half
//! of `WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::rig::Rig;
use mtu::journal::JournalReader;

/// Datagrams received, with when.
fn receive(sock: &UnixDatagram, until: Instant, out: &mut Vec<(Instant, String)>, stop_at: Option<&str>) {
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = stop_at.is_some_and(|s| text.lines().any(|l| l == s));
                out.push((Instant::now(), text));
                if done {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

fn has(msgs: &[(Instant, String)], line: &str) -> bool {
    msgs.iter().any(|(_, m)| m.lines().any(|l| l == line))
}

#[test]
fn ready_after_the_journal_and_devices_then_watchdog_pings_at_half_the_interval_then_stopping() {
    let mut rig = Rig::new();
    let path = rig.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let watchdog = Duration::from_secs(2);
    rig.start_with_env(&[
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()),
    ]);
    // start_with_env returns once the API answers; READY came before or about then.
    let mut msgs = Vec::new();
    receive(&sock, Instant::now() + Duration::from_secs(10), &mut msgs, Some("READY=1"));
    assert!(has(&msgs, "READY=1"), "no READY=1: {msgs:?}");
    // By READY the journal holds the start and every device's health.
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    let mut kinds = Vec::new();
    reader
        .for_each(1, u64::MAX, |r| {
            kinds.push(r.kind.clone());
            Ok(true)
        })
        .unwrap();
    assert!(kinds.iter().any(|k| k == "daemon.start"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "devices.health"), "{kinds:?}");

    let mut pings = Vec::new();
    receive(&sock, Instant::now() + Duration::from_secs(5), &mut pings, None);
    let at: Vec<Instant> =
        pings.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).map(|(t, _)| *t).collect();
    assert!(at.len() >= 4, "{} pings in 5 s with a 2 s watchdog: {pings:?}", at.len());
    for w in at.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(700) && gap <= Duration::from_millis(1400),
            "pings {gap:?} apart; expected about half of {watchdog:?}"
        );
    }

    let pid = rig.vand_pid().unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut stopping = Vec::new();
    receive(&sock, Instant::now() + Duration::from_secs(10), &mut stopping, Some("STOPPING=1"));
    assert!(has(&stopping, "STOPPING=1"), "no STOPPING=1: {stopping:?}");
    let status = stopping.iter().find_map(|(_, m)| m.lines().find_map(|l| l.strip_prefix("STATUS=")));
    assert_eq!(status, Some("stopping: SIGTERM"), "{stopping:?}");
    let exit = rig.wait_exit(Duration::from_secs(10)).expect("vand stopped");
    assert!(exit.success(), "{exit}");
}
