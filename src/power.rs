//! What vand does when the UPS reports that mains power is lost, as a pure state machine: the
//! debounced power-fail input and the time go in, what the daemon must do comes out.
//!
//! On "mains lost" the van stops taking new services at once (the step in progress goes on to
//! its safe point). Mains back within `ride_through` is a glitch: services are taken again.
//! Otherwise, when `ride_through` has passed, the daemon stops cleanly; its stop budget is what
//! is left of the UPS's hold-up time (see [`crate::config::PowerConfig::stop_budget`]).
//! docs/hardware.md ("Power failure") describes the whole sequence.

use std::time::{Duration, Instant};

/// Where the van's power stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// On mains (or the input is not wired).
    Mains,
    /// Mains lost at `since`; draining, waiting to see whether it comes back.
    Failing {
        /// When the power-fail input became active.
        since: Instant,
    },
    /// Mains stayed away for the ride-through time: the daemon is stopping. Final.
    Stopping,
}

/// What the daemon must do after an input or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Nothing changes.
    None,
    /// Mains lost: stop accepting new services, let the step in progress finish.
    Drain,
    /// Mains back within the ride-through time: accept services again (`power.restored`).
    Restore {
        /// How long mains was away.
        away: Duration,
    },
    /// Mains stayed away: stop cleanly now (reason `power-fail`).
    Stop,
}

/// The power-fail decisions of one run of the daemon.
#[derive(Debug, Clone)]
pub struct PowerMonitor {
    ride_through: Duration,
    state: PowerState,
}

impl PowerMonitor {
    /// A monitor on mains that rides through outages shorter than `ride_through`.
    pub fn new(ride_through: Duration) -> PowerMonitor {
        PowerMonitor { ride_through, state: PowerState::Mains }
    }

    /// The current state.
    pub fn state(&self) -> PowerState {
        self.state
    }

    /// The debounced power-fail input changed to `active` (mains lost) at `now`.
    pub fn input(&mut self, active: bool, now: Instant) -> PowerAction {
        match (self.state, active) {
            (PowerState::Mains, true) => {
                self.state = PowerState::Failing { since: now };
                // A zero ride-through stops at once (the timer is already due).
                PowerAction::Drain
            }
            (PowerState::Failing { since }, false) => {
                self.state = PowerState::Mains;
                PowerAction::Restore { away: now.saturating_duration_since(since) }
            }
            // Repeated levels, and anything once stopping: nothing to do.
            _ => PowerAction::None,
        }
    }

    /// Time passed: `Stop` once mains has been away for the ride-through time.
    pub fn poll(&mut self, now: Instant) -> PowerAction {
        match self.state {
            PowerState::Failing { since } if now.saturating_duration_since(since) >= self.ride_through => {
                self.state = PowerState::Stopping;
                PowerAction::Stop
            }
            _ => PowerAction::None,
        }
    }

    /// When [`PowerMonitor::poll`] must next be called (`None`: only after an input).
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            PowerState::Failing { since } => Some(since + self.ride_through),
            _ => None,
        }
    }

    /// Whether new services must be refused now.
    pub fn refusing(&self) -> bool {
        self.state != PowerState::Mains
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_glitch_shorter_than_the_ride_through_drains_then_restores() {
        let t0 = Instant::now();
        let mut m = PowerMonitor::new(5 * S);
        assert_eq!(m.poll(t0), PowerAction::None);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.input(true, t0), PowerAction::Drain);
        assert!(m.refusing());
        assert_eq!(m.deadline(), Some(t0 + 5 * S));
        assert_eq!(m.poll(t0 + 4 * S), PowerAction::None);
        // The same level again (a lagging recorder re-reading levels) changes nothing.
        assert_eq!(m.input(true, t0 + 4 * S), PowerAction::None);
        assert_eq!(m.input(false, t0 + 4 * S), PowerAction::Restore { away: 4 * S });
        assert!(!m.refusing());
        // The old deadline is gone with the outage.
        assert_eq!(m.poll(t0 + 10 * S), PowerAction::None);
        assert_eq!(m.state(), PowerState::Mains);
    }

    #[test]
    fn an_outage_longer_than_the_ride_through_stops_once_and_for_good() {
        let t0 = Instant::now();
        let mut m = PowerMonitor::new(5 * S);
        assert_eq!(m.input(true, t0), PowerAction::Drain);
        assert_eq!(m.poll(t0 + 5 * S), PowerAction::Stop);
        assert_eq!(m.state(), PowerState::Stopping);
        assert_eq!(m.poll(t0 + 6 * S), PowerAction::None);
        // Mains back while stopping does not undo the stop.
        assert_eq!(m.input(false, t0 + 6 * S), PowerAction::None);
        assert!(m.refusing());
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_new_outage_after_a_glitch_gets_a_full_ride_through_of_its_own() {
        let t0 = Instant::now();
        let mut m = PowerMonitor::new(5 * S);
        m.input(true, t0);
        m.input(false, t0 + 3 * S);
        assert_eq!(m.input(true, t0 + 4 * S), PowerAction::Drain);
        assert_eq!(m.poll(t0 + 8 * S), PowerAction::None);
        assert_eq!(m.poll(t0 + 9 * S), PowerAction::Stop);
    }

    #[test]
    fn zero_ride_through_stops_at_the_first_poll() {
        let t0 = Instant::now();
        let mut m = PowerMonitor::new(Duration::ZERO);
        assert_eq!(m.input(true, t0), PowerAction::Drain);
        assert_eq!(m.poll(t0), PowerAction::Stop);
    }

    #[test]
    fn mains_back_without_an_outage_does_nothing() {
        let mut m = PowerMonitor::new(5 * S);
        assert_eq!(m.input(false, Instant::now()), PowerAction::None);
        assert!(!m.refusing());
    }
}
