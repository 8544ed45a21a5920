//! Liveness of the daemon's loops, for systemd's watchdog.
//!
//! Each loop that matters (the journal writer, the recorders, the service desk) beats a
//! [`Heartbeat`] at least once per its allowed silence. The daemon pings systemd
//! (`WATCHDOG=1`) only while [`Watchdog::check`] says every loop is alive; when one is stalled
//! the pings stop, and systemd restarts vand once `WatchdogSec=` passes. The decision is pure
//! (beats and time in, a verdict out) so it is tested without clocks or sockets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the watchdog says about the loops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every loop beat within its allowed silence: ping systemd.
    Healthy,
    /// This loop (the first, by name, of those stalled) has been silent for this long: no ping.
    Stalled {
        /// The loop's name.
        name: &'static str,
        /// How long since its last beat.
        silent: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Loop {
    last: Instant,
    max_silence: Duration,
}

/// The loops watched and their last beats.
#[derive(Debug, Default)]
pub struct Watchdog {
    loops: BTreeMap<&'static str, Loop>,
}

impl Watchdog {
    /// Nothing watched yet.
    pub fn new() -> Watchdog {
        Watchdog::default()
    }

    /// Watches `name`, which counts as alive at `now` and must beat again within `max_silence`.
    pub fn register(&mut self, name: &'static str, max_silence: Duration, now: Instant) {
        self.loops.insert(name, Loop { last: now, max_silence });
    }

    /// Stops watching `name` (its loop ended on purpose, e.g. at stop).
    pub fn unregister(&mut self, name: &str) {
        self.loops.remove(name);
    }

    /// `name` is alive at `now` (unknown names are ignored).
    pub fn beat(&mut self, name: &str, now: Instant) {
        if let Some(l) = self.loops.get_mut(name) {
            l.last = l.last.max(now);
        }
    }

    /// Whether every watched loop beat within its allowed silence at `now`.
    pub fn check(&self, now: Instant) -> Verdict {
        for (name, l) in &self.loops {
            let silent = now.saturating_duration_since(l.last);
            if silent > l.max_silence {
                return Verdict::Stalled { name, silent };
            }
        }
        Verdict::Healthy
    }
}

/// A shareable watchdog: loops get [`Heartbeat`]s, the pinger checks.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<Mutex<Watchdog>>);

impl Liveness {
    /// An empty one.
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Watches a loop named `name` that must beat within `max_silence`.
    pub fn heartbeat(&self, name: &'static str, max_silence: Duration) -> Heartbeat {
        self.lock().register(name, max_silence, Instant::now());
        Heartbeat { name, liveness: self.clone() }
    }

    /// The verdict now.
    pub fn check(&self) -> Verdict {
        self.lock().check(Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watchdog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One loop's handle: beat it each time round the loop; dropping it stops the watching.
#[derive(Debug)]
pub struct Heartbeat {
    name: &'static str,
    liveness: Liveness,
}

impl Heartbeat {
    /// The loop is alive now.
    pub fn beat(&self) {
        self.liveness.lock().beat(self.name, Instant::now());
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.liveness.lock().unregister(self.name);
    }
}

/// Decides, at each ping tick, whether to ping and what to log: a stall is logged once when it
/// starts (naming the loop) and once when it ends.
#[derive(Debug, Default)]
pub struct Pinger {
    stalled: Option<&'static str>,
}

/// What to do at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Send `WATCHDOG=1`.
    pub ping: bool,
    /// A line to log (a stall began or ended), if any.
    pub log: Option<String>,
}

impl Pinger {
    /// The action for `verdict`.
    pub fn tick(&mut self, verdict: &Verdict) -> Tick {
        match verdict {
            Verdict::Healthy => {
                let log =
                    self.stalled.take().map(|n| format!("watchdog: {n} is alive again; pinging systemd"));
                Tick { ping: true, log }
            }
            Verdict::Stalled { name, silent } => {
                let log = (self.stalled != Some(name)).then(|| {
                    format!(
                        "watchdog: {name} has not run for {:.1} s; no more pings, systemd will restart vand",
                        silent.as_secs_f64()
                    )
                });
                self.stalled = Some(name);
                Tick { ping: false, log }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_stalled_loop_stops_the_pings_and_recovery_resumes_them() {
        let t0 = Instant::now();
        let mut w = Watchdog::new();
        w.register("journal writer", 10 * S, t0);
        w.register("gpio recorder", 5 * S, t0);
        let mut p = Pinger::default();
        assert_eq!(p.tick(&w.check(t0 + 4 * S)), Tick { ping: true, log: None });
        w.beat("journal writer", t0 + 4 * S);
        // The gpio recorder has been silent for 6 s, more than its 5.
        let v = w.check(t0 + 6 * S);
        assert_eq!(v, Verdict::Stalled { name: "gpio recorder", silent: 6 * S });
        let t = p.tick(&v);
        assert!(!t.ping);
        assert!(t.log.unwrap().contains("gpio recorder"));
        // Logged once, still no ping.
        assert_eq!(p.tick(&w.check(t0 + 7 * S)), Tick { ping: false, log: None });
        w.beat("gpio recorder", t0 + 8 * S);
        let t = p.tick(&w.check(t0 + 8 * S));
        assert!(t.ping);
        assert!(t.log.unwrap().contains("alive again"));
        assert_eq!(p.tick(&w.check(t0 + 9 * S)), Tick { ping: true, log: None });
    }

    #[test]
    fn each_loop_has_its_own_allowed_silence() {
        let t0 = Instant::now();
        let mut w = Watchdog::new();
        w.register("slow", 30 * S, t0);
        w.register("fast", 2 * S, t0);
        w.beat("fast", t0 + 20 * S);
        assert_eq!(w.check(t0 + 21 * S), Verdict::Healthy);
        assert_eq!(w.check(t0 + 31 * S), Verdict::Stalled { name: "fast", silent: 11 * S });
        w.beat("fast", t0 + 31 * S);
        assert_eq!(w.check(t0 + 31 * S), Verdict::Stalled { name: "slow", silent: 31 * S });
    }

    #[test]
    fn an_ended_loop_is_no_longer_watched_and_unknown_beats_are_ignored() {
        let t0 = Instant::now();
        let mut w = Watchdog::new();
        w.register("a", S, t0);
        w.beat("nobody", t0);
        assert!(matches!(w.check(t0 + 2 * S), Verdict::Stalled { name: "a", .. }));
        w.unregister("a");
        assert_eq!(w.check(t0 + 2 * S), Verdict::Healthy);
        // A beat from the past does not move the last beat back.
        w.register("b", S, t0 + 2 * S);
        w.beat("b", t0);
        assert_eq!(w.check(t0 + 3 * S), Verdict::Healthy);
    }

    #[test]
    fn a_dropped_heartbeat_unregisters_its_loop() {
        let live = Liveness::new();
        let hb = live.heartbeat("x", Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(live.check(), Verdict::Stalled { name: "x", .. }));
        hb.beat();
        drop(hb);
        assert_eq!(live.check(), Verdict::Healthy);
    }
}
