//! The uplink task in `vand`: a thin async shell around the pure [`Uplink`] machine. It reads the
//! committed journal through its own read-only [`JournalReader`], sends the machine's requests
//! with the [`HqClient`] (signed with the journal writer's key), feeds the answers, timeouts and
//! transport errors back, and sleeps until the machine's next deadline, a poll for new records,
//! `vanctl sync now`, or the daemon's stop.
//!
//! - After a restart the machine starts with a checkpoint, whose signed answer says where HQ
//!   stands; the last verified acknowledgement is also kept in a small state file
//!   (`<state_dir>/sync-ack.json`) and shown by `vanctl sync status` until HQ answers.
//! - Nothing counts as synced without HQ's verified acknowledgement: that rule lives in the
//!   machine; this shell only moves bytes and time.
//! - After each session that ends with everything acknowledged, the [`SessionHook`] runs (the
//!   down-sync goes there).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::http::HqClient;
use super::machine::{Event, JournalView, Uplink, UplinkConfig};
use super::wire::VerifiedAck;
use crate::journal::JournalReader;

/// Runs after each session that ended with every record acknowledged.
pub type SessionHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// File in the state folder holding the last verified acknowledgement.
pub const STATE_FILE: &str = "sync-ack.json";

/// The shell's tunables beyond the machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellConfig {
    /// The machine's tunables.
    pub uplink: UplinkConfig,
    /// How often an idle uplink looks for newly committed records.
    pub poll_interval: Duration,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig { uplink: UplinkConfig::default(), poll_interval: Duration::from_secs(2) }
    }
}

struct Core {
    up: Uplink,
    reader: JournalReader,
    state_path: Option<PathBuf>,
    last_success_us: Option<i64>,
    sessions: u64,
    /// How often an idle uplink looks for new records ([`UplinkHandle::set_pacing`] changes it).
    poll_interval: Duration,
}

impl Core {
    fn drain_events(&mut self) {
        while let Some(ev) = self.up.poll_event() {
            match ev {
                Event::Synced(ack) => {
                    tracing::info!(seq = ack.seq, "HQ acknowledged the journal up to this record");
                    self.persist(&ack);
                }
                Event::HqRegressed { acked_before, now } => {
                    tracing::warn!(
                        acked_before,
                        now = now.seq,
                        "HQ signed that it holds fewer records than it had acknowledged; sending them again"
                    );
                    self.persist(&now);
                }
                Event::Failed { error, retry_at } => {
                    let in_s = retry_at.saturating_duration_since(Instant::now()).as_secs_f64();
                    tracing::warn!(error = %error, retry_in_s = format!("{in_s:.1}"), "sync with HQ failed");
                }
            }
        }
    }

    fn persist(&self, ack: &VerifiedAck) {
        let Some(path) = &self.state_path else { return };
        if let Err(e) = save_state(path, ack) {
            tracing::warn!(path = %path.display(), "cannot keep the last acknowledgement: {e}");
        }
    }

    fn status(&self, now: Instant) -> Value {
        let s = self.up.status();
        let head = self.reader.head();
        let utc_at = |t: Instant| {
            let now_us = crate::clock::now_utc_us();
            let delta = t.saturating_duration_since(now).as_micros() as i64;
            fmt_us(now_us + delta)
        };
        json!({
            "head_seq": head.as_ref().map(|h| h.0).ok(),
            "pending": head.as_ref().ok().map(|h| self.up.pending(h.0)),
            "acked_seq": s.acked.as_ref().map(|a| a.seq),
            "acked_at": s.acked.as_ref().map(|a| fmt_us(a.time_us)),
            "last_success": self.last_success_us.map(fmt_us),
            "sessions": self.sessions,
            "failures": s.failures,
            "last_error": s.last_error.as_ref().map(|e| e.to_string()),
            "next_try": s.retry_at.map(utc_at),
            "in_flight": s.in_flight,
            "journal_error": head.err(),
        })
    }
}

fn fmt_us(us: i64) -> String {
    crate::journal::export::format_utc_us(us)
}

/// Reads the acknowledgement kept by [`save_state`] (`None` if absent, unreadable or of
/// another van: it is only a hint until HQ answers).
pub fn load_state(path: &Path, van: &str) -> Option<VerifiedAck> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let head_hash = super::wire::lower_hex::<32>(v.get("head_hash")?.as_str()?)?;
    let ack = VerifiedAck {
        van: v.get("van")?.as_str()?.to_owned(),
        seq: v.get("seq")?.as_u64()?,
        head_hash,
        time_us: v.get("time_us")?.as_i64()?,
    };
    (ack.van == van).then_some(ack)
}

/// Keeps `ack` in `path` (write to a temporary file, sync, rename).
pub fn save_state(path: &Path, ack: &VerifiedAck) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let body = json!({"van": ack.van, "seq": ack.seq, "head_hash": hex::encode(ack.head_hash),
                      "time_us": ack.time_us, "time": fmt_us(ack.time_us)});
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What other parts of vand hold: status for `vanctl sync status`, and `vanctl sync now`.
#[derive(Clone)]
pub struct UplinkHandle {
    core: Arc<Mutex<Core>>,
    wake: Arc<Notify>,
    url: String,
}

impl UplinkHandle {
    /// Where the uplink stands, as JSON (`vanctl sync status`).
    pub async fn status(&self) -> Value {
        let (core, url) = (self.core.clone(), self.url.clone());
        tokio::task::spawn_blocking(move || {
            let c = core.lock().unwrap_or_else(|p| p.into_inner());
            let mut v = c.status(Instant::now());
            v["enabled"] = json!(true);
            v["url"] = json!(url);
            v
        })
        .await
        .unwrap_or_else(|e| json!({"error": e.to_string()}))
    }

    /// Skips any backoff and wakes the task now.
    pub fn sync_now(&self) {
        self.core.lock().unwrap_or_else(|p| p.into_inner()).up.sync_now(Instant::now());
        self.wake.notify_one();
    }

    /// Takes new pacing tunables while running (a configuration reload of `[sync]`): the poll
    /// interval from the next idle wait on, the rest as [`Uplink::set_pacing`] says (the request
    /// timeout is not taken: it stays until a restart). Wakes the task so a shorter wait applies
    /// at once.
    pub fn set_pacing(&self, cfg: &ShellConfig) {
        {
            let mut c = self.core.lock().unwrap_or_else(|p| p.into_inner());
            c.up.set_pacing(Instant::now(), &cfg.uplink);
            c.poll_interval = cfg.poll_interval;
        }
        self.wake.notify_one();
    }

    /// Asks for a sync now and waits (up to `wait`) until it has caught up or failed; then the
    /// status.
    pub async fn sync_now_and_wait(&self, wait: Duration) -> Value {
        let started = Instant::now();
        let sessions_before = self.core.lock().unwrap_or_else(|p| p.into_inner()).sessions;
        self.sync_now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let done = {
                let c = self.core.lock().unwrap_or_else(|p| p.into_inner());
                let s = c.up.status();
                !s.in_flight && (c.sessions > sessions_before || s.last_error.is_some())
            };
            if done || started.elapsed() >= wait {
                return self.status().await;
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The uplink task.
pub struct UplinkTask {
    handle: UplinkHandle,
    client: HqClient,
    cfg: ShellConfig,
    hook: Option<SessionHook>,
}

impl UplinkTask {
    /// A task for `van` uploading the journal read by `reader`, trusting acknowledgements from
    /// `hq_key` only; `state_dir` keeps the last acknowledgement (`None`: keep nothing).
    pub fn new(
        cfg: ShellConfig,
        van: &str,
        hq_key: VerifyingKey,
        client: HqClient,
        reader: JournalReader,
        state_dir: Option<&Path>,
    ) -> (UplinkTask, UplinkHandle) {
        let state_path = state_dir.map(|d| d.join(STATE_FILE));
        let resume = state_path.as_deref().and_then(|p| load_state(p, van));
        let mut seed = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let up =
            Uplink::new(cfg.uplink.clone(), van, hq_key, resume, Instant::now(), u64::from_le_bytes(seed));
        let core = Core {
            up,
            reader,
            state_path,
            last_success_us: None,
            sessions: 0,
            poll_interval: cfg.poll_interval,
        };
        let handle = UplinkHandle {
            core: Arc::new(Mutex::new(core)),
            wake: Arc::new(Notify::new()),
            url: client.base_url().to_owned(),
        };
        (UplinkTask { handle: handle.clone(), client, cfg, hook: None }, handle)
    }

    /// Runs `hook` after each session that ended with every record acknowledged.
    pub fn on_session(mut self, hook: SessionHook) -> UplinkTask {
        self.hook = Some(hook);
        self
    }

    /// Runs `f` on the uplink's own worker thread (journal reads, batch encoding and answer
    /// checks block; one thread keeps their buffers in one allocator arena, so memory stays flat).
    async fn with_core<T: Send + 'static>(
        &self,
        worker: &std::sync::mpsc::Sender<Job>,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let core = self.handle.core.clone();
        let job: Job = Box::new(move || {
            let out = f(&mut core.lock().unwrap_or_else(|p| p.into_inner()));
            let _ = tx.send(out);
        });
        if worker.send(job).is_err() {
            tracing::error!("uplink: its worker thread is gone");
            return None;
        }
        match rx.await {
            Ok(t) => Some(t),
            Err(_) => {
                tracing::error!("uplink: its worker thread stopped in a step");
                None
            }
        }
    }

    /// Runs until `cancel` turns true.
    pub async fn run(self, mut cancel: watch::Receiver<bool>) {
        let (worker, jobs) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name("uplink".into()).spawn(move || {
            while let Ok(job) = jobs.recv() {
                job();
            }
        });
        if let Err(e) = spawned {
            tracing::error!("uplink: cannot start its worker thread: {e}");
            return;
        }
        let timeout = self.cfg.uplink.request_timeout;
        let mut exchanged = false;
        loop {
            if *cancel.borrow() {
                return;
            }
            let Some((req, next, clean, poll_interval)) = self
                .with_core(&worker, |c| {
                    let now = Instant::now();
                    c.up.handle_timeout(now);
                    let req = c.up.poll_request(now, crate::clock::now_utc_us(), &c.reader);
                    c.drain_events();
                    let s = c.up.status();
                    (req, c.up.poll_timeout(), s.last_error.is_none() && !s.in_flight, c.poll_interval)
                })
                .await
            else {
                return;
            };
            if let Some(req) = req {
                let sent = tokio::select! {
                    r = tokio::time::timeout(timeout, self.client.send(&req)) => r,
                    _ = cancel.changed() => return,
                };
                let id = req.id;
                let done = self
                    .with_core(&worker, move |c| {
                        let now = Instant::now();
                        match sent {
                            Ok(Ok(resp)) => c.up.handle_response(now, id, &resp, &c.reader),
                            Ok(Err(e)) => c.up.handle_transport_error(now, id, &e),
                            Err(_) => c.up.handle_transport_error(
                                now,
                                id,
                                &format!("HQ did not answer within {timeout:?}"),
                            ),
                        }
                        c.drain_events();
                    })
                    .await;
                if done.is_none() {
                    return;
                }
                exchanged = true;
                continue;
            }
            if exchanged && clean {
                exchanged = false;
                self.with_core(&worker, |c| {
                    c.sessions += 1;
                    c.last_success_us = Some(crate::clock::now_utc_us());
                })
                .await;
                if let Some(hook) = &self.hook {
                    hook().await;
                }
            }
            let now = Instant::now();
            let poll = now + poll_interval;
            let until = next.map_or(poll, |t| t.min(poll)).max(now);
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = self.handle.wake.notified() => {}
                _ = cancel.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_acknowledgement_round_trips_and_a_foreign_or_broken_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(load_state(&path, "V-1"), None);
        let ack =
            VerifiedAck { van: "V-1".into(), seq: 42, head_hash: [7; 32], time_us: 1_764_000_000_000_001 };
        save_state(&path, &ack).unwrap();
        assert_eq!(load_state(&path, "V-1"), Some(ack.clone()));
        assert_eq!(load_state(&path, "V-2"), None, "another van's file is not this van's mark");
        save_state(&path, &VerifiedAck { seq: 43, ..ack }).unwrap();
        assert_eq!(load_state(&path, "V-1").map(|a| a.seq), Some(43));
        std::fs::write(&path, b"{\"van\":\"V-1\",\"seq\":1,\"head_hash\":\"XY\",\"time_us\":0}").unwrap();
        assert_eq!(load_state(&path, "V-1"), None);
        std::fs::write(&path, b"\xff\x00").unwrap();
        assert_eq!(load_state(&path, "V-1"), None);
    }
}
