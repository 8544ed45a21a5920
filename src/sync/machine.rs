//! The van's uplink to HQ as a pure state machine (in the style of `devices::zvt::machine`):
//! time, HQ's answers and read access to the committed journal go in
//! ([`Uplink::handle_response`], [`Uplink::handle_transport_error`], [`Uplink::handle_timeout`]),
//! requests, deadlines and events come out ([`Uplink::poll_request`], [`Uplink::poll_timeout`],
//! [`Uplink::poll_event`]). No sockets, no clock, no randomness: the shell signs and sends each
//! request (`wire::sign_request` with a fresh nonce) and the jitter comes from a seed it passes in.
//!
//! Rules it keeps:
//! - Every session starts with a checkpoint (and one follows every [`UplinkConfig::checkpoint_every`]);
//!   its answer is HQ's signed acknowledgement, so uploads resume from what HQ holds, not from
//!   what the van last believed.
//! - A record counts as synced only after an acknowledgement that verifies with HQ's pinned key,
//!   names this van, and whose seq and head hash match the van's own record at that seq. A forged,
//!   foreign or mismatching acknowledgement is an error, never progress.
//! - Uploads are contiguous ranges from the acknowledged seq + 1, bounded by count and bytes.
//! - Error answers are not signed, so they never move the acknowledged mark. A `sync.gap` answer
//!   (HQ says it holds fewer records than the batch assumes, which can only mean HQ lost records
//!   it had acknowledged) is checked against the van's head and then confirmed with `GET /v1/ack`:
//!   only that signed answer moves the mark, backwards if HQ signs a lower seq at a later time
//!   ([`Event::HqRegressed`], the records are sent again). An older signed acknowledgement with a
//!   lower seq (a replay, or a late duplicate) changes nothing.
//! - After a key rotation the van signs requests with its new key, which HQ learns only from the
//!   rotation record inside an upload. So when a checkpoint or acknowledgement query is refused
//!   with `sync.bad_request_signature`, the next request is an upload from the acknowledged seq
//!   (from record 1 if none is known: HQ skips identical duplicates and its answer says where it
//!   stands); HQ checks an upload's signature with the key in force after the batch it carries.
//! - Failures back off exponentially (base × 2^(n−1), capped) with equal jitter (half the delay
//!   fixed, half random); answers that cannot heal by retrying (fork, bad record, an
//!   acknowledgement that contradicts the journal) wait the longest delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use super::wire::{self, AckError, HqError, HqErrorCode, VerifiedAck, WireError};
use crate::journal::Record;

/// Read access to the van's committed journal (committed records never change, so reads are
/// deterministic). Errors are the journal's own messages.
pub trait JournalView {
    /// Seq and hash of the last committed record (`(0, zeros)` for an empty journal).
    fn head(&self) -> Result<(u64, [u8; 32]), String>;
    /// Hash of the record at `seq`, `None` if there is none.
    fn hash_at(&self, seq: u64) -> Result<Option<[u8; 32]>, String>;
    /// Up to `max` records from `from` on, ascending.
    fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, String>;
}

/// The uplink's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    /// At most this many records per batch.
    pub max_records: usize,
    /// At most this many uncompressed bytes per batch (a single larger record goes alone).
    pub max_bytes: usize,
    /// A request unanswered for this long has failed.
    pub request_timeout: Duration,
    /// First backoff delay.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// Interval between checkpoints.
    pub checkpoint_every: Duration,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        Self {
            max_records: wire::MAX_BATCH_RECORDS,
            max_bytes: wire::MAX_BATCH_BYTES,
            request_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            checkpoint_every: Duration::from_secs(15 * 60),
        }
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST /v1/records` with records `first_seq..=last_seq`.
    Upload { first_seq: u64, last_seq: u64 },
    /// `POST /v1/checkpoint` stating the van's head `seq`.
    Checkpoint { seq: u64 },
    /// `GET /v1/ack`.
    FetchAck,
}

/// One request for the shell to sign and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Pass back with the answer; answers to older requests are ignored.
    pub id: u64,
    /// What it is for.
    pub kind: RequestKind,
    /// HTTP method.
    pub method: &'static str,
    /// Path.
    pub path: &'static str,
    /// `Content-Type` of the body (`None` for no body).
    pub content_type: Option<&'static str>,
    /// `Content-Encoding` of the body.
    pub content_encoding: Option<&'static str>,
    /// The body as sent (the signature covers its SHA-256).
    pub body: Vec<u8>,
}

/// HQ's HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body as received (possibly truncated or garbled).
    pub body: Vec<u8>,
}

/// Why an exchange with HQ failed. None of them moves the acknowledged mark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UplinkError {
    #[error("HQ unreachable: {0}")]
    Transport(String),
    #[error("HQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("HQ answered HTTP {status} without a readable error: {detail}")]
    HqStatus { status: u16, detail: String },
    #[error("HQ refused (HTTP {status}, {code:?}): {message}")]
    Hq { status: u16, code: HqErrorCode, message: String },
    #[error("{0}")]
    Ack(AckError),
    #[error("acknowledgement names van {found:?}, not this van")]
    AckForeignVan { found: String },
    #[error("acknowledgement says HQ holds {seq} records but this journal has {head}")]
    AckBeyondHead { seq: u64, head: u64 },
    #[error("acknowledgement's head hash at record {seq} differs from this journal's record (fork)")]
    AckHashMismatch { seq: u64 },
    #[error("acknowledgement for record {seq} is older than the one already held (record {acked})")]
    StaleAck { seq: u64, acked: u64 },
    #[error("HQ accepted the batch up to {last_seq} but acknowledged only up to {seq}")]
    AckShort { seq: u64, last_seq: u64 },
    #[error("HQ says record {expected_seq} comes next but this journal ends at {head}")]
    GapBeyondHead { expected_seq: u64, head: u64 },
    #[error("journal: {0}")]
    Journal(String),
    #[error("{0}")]
    Batch(WireError),
}

impl UplinkError {
    /// True for answers a retry cannot heal (they wait the longest backoff).
    pub fn is_persistent(&self) -> bool {
        matches!(
            self,
            UplinkError::Hq { code: HqErrorCode::Fork { .. } | HqErrorCode::BadRecord { .. }, .. }
                | UplinkError::AckHashMismatch { .. }
                | UplinkError::AckBeyondHead { .. }
                | UplinkError::AckForeignVan { .. }
                | UplinkError::GapBeyondHead { .. }
        )
    }
}

/// What the shell must know (persist the resume point, journal alarms, show status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// HQ's verified acknowledgement moved forward: records up to `seq` are synced. Persist it
    /// (the resume point after a restart).
    Synced(VerifiedAck),
    /// HQ signed, later than before, that it holds fewer records than it had acknowledged: the
    /// records after `now.seq` are sent again.
    HqRegressed { acked_before: u64, now: VerifiedAck },
    /// An exchange failed; the next try waits until `retry_at`.
    Failed { error: UplinkError, retry_at: Instant },
}

/// A snapshot for `vanctl sync status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkStatus {
    /// The last verified acknowledgement.
    pub acked: Option<VerifiedAck>,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure (cleared by a success).
    pub last_error: Option<UplinkError>,
    /// When the next try may start, if backing off.
    pub retry_at: Option<Instant>,
    /// A request is outstanding.
    pub in_flight: bool,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: u64,
    kind: RequestKind,
    deadline: Instant,
}

/// The uplink state machine.
#[derive(Debug)]
pub struct Uplink {
    cfg: UplinkConfig,
    van: String,
    hq_key: VerifyingKey,
    acked: Option<VerifiedAck>,
    in_flight: Option<InFlight>,
    next_id: u64,
    retry_at: Option<Instant>,
    failures: u32,
    checkpoint_due: Instant,
    fetch_ack: bool,
    /// HQ refused a checkpoint's signature: upload first (the batch may carry a key rotation).
    upload_first: bool,
    max_records: usize,
    rng: u64,
    events: VecDeque<Event>,
    last_error: Option<UplinkError>,
}

impl Uplink {
    /// A new uplink for `van`, trusting acknowledgements signed by `hq_key` only. `resume` is the
    /// last [`Event::Synced`] acknowledgement persisted before a restart (shown in the status
    /// until HQ answers the start checkpoint, which decides where uploads resume). `seed` feeds
    /// the backoff jitter (the shell passes OS randomness; tests a constant).
    pub fn new(
        cfg: UplinkConfig,
        van: &str,
        hq_key: VerifyingKey,
        resume: Option<VerifiedAck>,
        now: Instant,
        seed: u64,
    ) -> Self {
        let max_records = cfg.max_records.max(1);
        Self {
            cfg,
            van: van.to_owned(),
            hq_key,
            acked: resume,
            in_flight: None,
            next_id: 1,
            retry_at: None,
            failures: 0,
            checkpoint_due: now,
            fetch_ack: false,
            upload_first: false,
            max_records,
            rng: seed,
            events: VecDeque::new(),
            last_error: None,
        }
    }

    /// The next request to send, if one is due now. Nothing while a request is outstanding or
    /// while backing off. `utc_us` is the wall-clock time for a checkpoint body.
    pub fn poll_request(&mut self, now: Instant, utc_us: i64, journal: &impl JournalView) -> Option<Request> {
        if self.in_flight.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        self.retry_at = None;
        let (head_seq, head_hash) = match journal.head() {
            Ok(h) => h,
            Err(e) => {
                self.fail(now, UplinkError::Journal(e));
                return None;
            }
        };
        if self.upload_first && self.acked.as_ref().is_some_and(|a| a.seq >= head_seq) {
            // Nothing left to upload, so HQ already holds every key: the refusal was not a rotation.
            self.upload_first = false;
        }
        let (kind, method, path, content_type, content_encoding, body) =
            if now >= self.checkpoint_due && !self.upload_first {
                let body = wire::checkpoint_body(&self.van, head_seq, &head_hash, utc_us);
                (
                    RequestKind::Checkpoint { seq: head_seq },
                    "POST",
                    wire::PATH_CHECKPOINT,
                    Some("application/json"),
                    None,
                    body,
                )
            } else if self.fetch_ack && !self.upload_first {
                (RequestKind::FetchAck, "GET", wire::PATH_ACK, None, None, Vec::new())
            } else {
                let from = self.acked.as_ref().map_or(1, |a| a.seq + 1);
                if from > head_seq {
                    return None;
                }
                let records = match journal.read(from, self.max_records) {
                    Ok(r) => r,
                    Err(e) => {
                        self.fail(now, UplinkError::Journal(e));
                        return None;
                    }
                };
                if records.first().map(|r| r.seq) != Some(from) {
                    self.fail(now, UplinkError::Journal(format!("record {from} could not be read")));
                    return None;
                }
                let batch = match wire::encode_batch(&records, self.max_records, self.cfg.max_bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        self.fail(now, UplinkError::Batch(e));
                        return None;
                    }
                };
                let kind = RequestKind::Upload { first_seq: batch.first_seq, last_seq: batch.last_seq };
                (kind, "POST", wire::PATH_RECORDS, Some("application/x-ndjson"), Some("zstd"), batch.body)
            };
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight = Some(InFlight { id, kind, deadline: now + self.cfg.request_timeout });
        Some(Request { id, kind, method, path, content_type, content_encoding, body })
    }

    /// The earliest time [`Uplink::handle_timeout`] or [`Uplink::poll_request`] has work: the
    /// outstanding request's deadline, the end of a backoff, or the next checkpoint. New journal
    /// records create work sooner: the shell then calls [`Uplink::poll_request`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(f) = &self.in_flight {
            return Some(f.deadline);
        }
        match self.retry_at {
            Some(t) => Some(t),
            None => Some(self.checkpoint_due),
        }
    }

    /// Time passed: an outstanding request past its deadline has failed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_flight.as_ref().is_some_and(|f| now >= f.deadline) {
            self.in_flight = None;
            self.fail(now, UplinkError::Timeout(self.cfg.request_timeout));
        }
    }

    /// The request `id` could not be sent or its answer not read (connection refused, reset …).
    pub fn handle_transport_error(&mut self, now: Instant, id: u64, what: &str) {
        if self.take_in_flight(id).is_some() {
            self.fail(now, UplinkError::Transport(what.to_owned()));
        }
    }

    /// HQ answered request `id`. Answers to requests no longer outstanding are ignored.
    pub fn handle_response(&mut self, now: Instant, id: u64, resp: &Response, journal: &impl JournalView) {
        let Some(f) = self.take_in_flight(id) else { return };
        if resp.status != 200 {
            let err = match wire::parse_error(&resp.body) {
                Ok(e) => self.hq_refused(resp.status, e, f.kind, journal),
                Err(e) => UplinkError::HqStatus { status: resp.status, detail: e.to_string() },
            };
            self.fail(now, err);
            return;
        }
        let ack = match wire::verify_ack(&resp.body, &self.hq_key) {
            Ok(a) => a,
            Err(e) => return self.fail(now, UplinkError::Ack(e)),
        };
        if let Err(e) = self.check_against_journal(&ack, journal) {
            return self.fail(now, e);
        }
        let seq = ack.seq;
        if let Err(e) = self.accept(ack) {
            return self.fail(now, e);
        }
        match f.kind {
            RequestKind::Checkpoint { .. } => self.checkpoint_due = now + self.cfg.checkpoint_every,
            RequestKind::FetchAck => self.fetch_ack = false,
            RequestKind::Upload { last_seq, .. } if seq < last_seq => {
                return self.fail(now, UplinkError::AckShort { seq, last_seq });
            }
            RequestKind::Upload { .. } => self.upload_first = false,
        }
        self.failures = 0;
        self.last_error = None;
        self.retry_at = None;
    }

    /// Try now, skipping any backoff (`vanctl sync now`): the next request is a checkpoint, so
    /// the van hears from HQ even with nothing to upload.
    pub fn sync_now(&mut self, now: Instant) {
        self.retry_at = None;
        self.checkpoint_due = self.checkpoint_due.min(now);
    }

    /// Takes new pacing tunables while running (a configuration reload): `cfg`'s batch limits,
    /// backoff delays and checkpoint interval; its `request_timeout` is not taken (the HTTP
    /// client holds its own, so the two stay equal until a restart). A request in flight keeps
    /// its deadline; the next batch uses the new limits (a batch limit HQ made the van halve
    /// stays halved unless `max_records` itself changed); a backoff or checkpoint wait under way
    /// is cut to the new longest delay or interval from `now`, never made longer; the next
    /// failure backs off with the new delays.
    pub fn set_pacing(&mut self, now: Instant, cfg: &UplinkConfig) {
        if cfg.max_records != self.cfg.max_records {
            self.max_records = cfg.max_records.max(1);
        }
        self.cfg = UplinkConfig { request_timeout: self.cfg.request_timeout, ..cfg.clone() };
        if let Some(t) = self.retry_at {
            self.retry_at = Some(t.min(now + self.cfg.backoff_max));
        }
        self.checkpoint_due = self.checkpoint_due.min(now + self.cfg.checkpoint_every);
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Where the uplink stands.
    pub fn status(&self) -> UplinkStatus {
        UplinkStatus {
            acked: self.acked.clone(),
            failures: self.failures,
            last_error: self.last_error.clone(),
            retry_at: self.retry_at,
            in_flight: self.in_flight.is_some(),
        }
    }

    /// Records after the acknowledged seq up to `head_seq` (all of them before any acknowledgement).
    pub fn pending(&self, head_seq: u64) -> u64 {
        head_seq.saturating_sub(self.acked.as_ref().map_or(0, |a| a.seq))
    }

    fn take_in_flight(&mut self, id: u64) -> Option<InFlight> {
        if self.in_flight.as_ref().is_some_and(|f| f.id == id) { self.in_flight.take() } else { None }
    }

    fn hq_refused(
        &mut self,
        status: u16,
        e: HqError,
        kind: RequestKind,
        journal: &impl JournalView,
    ) -> UplinkError {
        match (&e.code, kind) {
            (HqErrorCode::Gap { expected_seq }, _) => {
                let head = journal.head().map(|h| h.0).unwrap_or(0);
                if *expected_seq > head + 1 || *expected_seq == 0 {
                    return UplinkError::GapBeyondHead { expected_seq: *expected_seq, head };
                }
                // Unsigned: ask for HQ's signed word before moving anything.
                self.fetch_ack = true;
            }
            (HqErrorCode::BadRequestSignature, RequestKind::Checkpoint { .. } | RequestKind::FetchAck) => {
                self.upload_first = true;
            }
            (HqErrorCode::BatchTooLarge, RequestKind::Upload { first_seq, last_seq }) => {
                let sent = usize::try_from(last_seq - first_seq + 1).unwrap_or(usize::MAX);
                self.max_records = (sent / 2).max(1);
            }
            _ => {}
        }
        UplinkError::Hq { status, code: e.code, message: e.message }
    }

    fn check_against_journal(
        &self,
        ack: &VerifiedAck,
        journal: &impl JournalView,
    ) -> Result<(), UplinkError> {
        if ack.van != self.van {
            return Err(UplinkError::AckForeignVan { found: ack.van.clone() });
        }
        if ack.seq == 0 {
            return if ack.head_hash == [0; 32] {
                Ok(())
            } else {
                Err(UplinkError::AckHashMismatch { seq: 0 })
            };
        }
        let (head, _) = journal.head().map_err(UplinkError::Journal)?;
        if ack.seq > head {
            return Err(UplinkError::AckBeyondHead { seq: ack.seq, head });
        }
        match journal.hash_at(ack.seq).map_err(UplinkError::Journal)? {
            Some(h) if h == ack.head_hash => Ok(()),
            Some(_) => Err(UplinkError::AckHashMismatch { seq: ack.seq }),
            None => Err(UplinkError::Journal(format!("record {} could not be read", ack.seq))),
        }
    }

    fn accept(&mut self, ack: VerifiedAck) -> Result<(), UplinkError> {
        match &self.acked {
            Some(a) if ack.seq == a.seq => {
                if ack.time_us > a.time_us {
                    self.acked = Some(ack);
                }
                Ok(())
            }
            Some(a) if ack.seq < a.seq => {
                if ack.time_us <= a.time_us {
                    return Err(UplinkError::StaleAck { seq: ack.seq, acked: a.seq });
                }
                let acked_before = a.seq;
                self.events.push_back(Event::HqRegressed { acked_before, now: ack.clone() });
                self.acked = Some(ack);
                Ok(())
            }
            _ => {
                self.events.push_back(Event::Synced(ack.clone()));
                self.acked = Some(ack);
                Ok(())
            }
        }
    }

    fn next_jitter(&mut self) -> u64 {
        // splitmix64: good enough to spread retries; not for secrets.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The delay before try number `failures + 1`.
    fn backoff(&mut self, persistent: bool) -> Duration {
        let max = self.cfg.backoff_max;
        let full = if persistent {
            max
        } else {
            let exp = self.failures.saturating_sub(1).min(32);
            self.cfg.backoff_base.saturating_mul(1u32 << exp.min(31)).min(max)
        };
        let half = full / 2;
        let frac = (self.next_jitter() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(frac)
    }

    fn fail(&mut self, now: Instant, error: UplinkError) {
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff(error.is_persistent());
        let retry_at = now + delay;
        self.retry_at = Some(retry_at);
        self.last_error = Some(error.clone());
        self.events.push_back(Event::Failed { error, retry_at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    struct Mem(Vec<Record>, bool);

    impl JournalView for Mem {
        fn head(&self) -> Result<(u64, [u8; 32]), String> {
            Ok(self.0.last().map_or((0, [0; 32]), |r| (r.seq, r.hash)))
        }
        fn hash_at(&self, seq: u64) -> Result<Option<[u8; 32]>, String> {
            Ok(self.0.get((seq as usize).wrapping_sub(1)).map(|r| r.hash))
        }
        fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, String> {
            if self.1 {
                return Err("disk I/O error".into());
            }
            Ok(self.0.iter().skip(from as usize - 1).take(max).cloned().collect())
        }
    }

    fn hq() -> SigningKey {
        SigningKey::from_bytes(&[1u8; 32])
    }

    fn ack(j: &Mem, seq: u64, time_us: i64) -> Response {
        let head_hash = j.hash_at(seq).unwrap().unwrap_or([0; 32]);
        let body = wire::sign_ack(&hq(), &wire::Ack { van: "V-1", seq, head_hash, time_us });
        Response { status: 200, body: body.into_bytes() }
    }

    fn events(up: &mut Uplink) -> Vec<Event> {
        std::iter::from_fn(|| up.poll_event()).collect()
    }

    #[test]
    fn sync_now_skips_the_backoff_and_opens_with_a_checkpoint() {
        let j = Mem(crate::sync::test_chain("V-1", 3, 5), false);
        let t0 = Instant::now();
        let mut up = Uplink::new(UplinkConfig::default(), "V-1", hq().verifying_key(), None, t0, 9);
        let cp = up.poll_request(t0, 0, &j).unwrap();
        up.handle_response(t0, cp.id, &ack(&j, 3, 10), &j);
        assert!(up.poll_request(t0, 0, &j).is_none(), "caught up: nothing to send");
        up.sync_now(t0);
        assert_eq!(up.poll_request(t0, 0, &j).unwrap().kind, RequestKind::Checkpoint { seq: 3 });
        up.handle_transport_error(t0, 2, "refused");
        assert!(up.poll_request(t0, 0, &j).is_none(), "backing off");
        up.sync_now(t0);
        assert_eq!(up.poll_request(t0, 0, &j).unwrap().kind, RequestKind::Checkpoint { seq: 3 });
    }

    #[test]
    fn a_late_answer_to_a_timed_out_request_is_ignored() {
        let j = Mem(crate::sync::test_chain("V-1", 10, 5), false);
        let t0 = Instant::now();
        let mut up = Uplink::new(UplinkConfig::default(), "V-1", hq().verifying_key(), None, t0, 9);
        let first = up.poll_request(t0, 0, &j).unwrap();
        assert!(up.poll_request(t0, 0, &j).is_none(), "one request at a time");
        assert_eq!(up.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        up.handle_timeout(t0 + Duration::from_secs(59));
        assert!(up.status().in_flight);
        let t1 = t0 + Duration::from_secs(60);
        up.handle_timeout(t1);
        assert!(matches!(events(&mut up).as_slice(), [Event::Failed { error: UplinkError::Timeout(_), .. }]));
        let t2 = up.poll_timeout().unwrap();
        assert!(t2 >= t1 + Duration::from_secs(1) && t2 <= t1 + Duration::from_secs(2));
        assert!(up.poll_request(t2 - Duration::from_millis(1), 0, &j).is_none(), "backing off");
        let second = up.poll_request(t2, 0, &j).unwrap();
        assert_eq!(second.kind, RequestKind::Checkpoint { seq: 10 });
        // HQ's answer to the first request arrives now: not the outstanding one.
        up.handle_response(t2, first.id, &ack(&j, 4, 10), &j);
        assert!(events(&mut up).is_empty());
        assert!(up.status().in_flight);
        up.handle_transport_error(t2, first.id, "reset");
        assert!(up.status().in_flight);
        up.handle_response(t2, second.id, &ack(&j, 4, 11), &j);
        assert_eq!(up.status().acked.map(|a| a.seq), Some(4));
        let upload = up.poll_request(t2, 0, &j).unwrap();
        assert_eq!(upload.kind, RequestKind::Upload { first_seq: 5, last_seq: 10 });
        assert_eq!(upload.content_encoding, Some("zstd"));
        let back = wire::decode_batch(&upload.body, wire::MAX_BATCH_BYTES).unwrap();
        assert_eq!(back, j.0[4..].to_vec());
    }

    #[test]
    fn journal_errors_and_gaps_beyond_the_head_back_off() {
        let mut j = Mem(crate::sync::test_chain("V-1", 10, 5), true);
        let t0 = Instant::now();
        let mut up = Uplink::new(UplinkConfig::default(), "V-1", hq().verifying_key(), None, t0, 9);
        let cp = up.poll_request(t0, 0, &j).unwrap();
        up.handle_response(t0, cp.id, &ack(&j, 2, 10), &j);
        assert!(up.poll_request(t0, 0, &j).is_none());
        match events(&mut up).as_slice() {
            [Event::Synced(a), Event::Failed { error: UplinkError::Journal(e), .. }] => {
                assert_eq!(a.seq, 2);
                assert!(e.contains("disk I/O error"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        j.1 = false;
        let t1 = up.poll_timeout().unwrap();
        let upload = up.poll_request(t1, 0, &j).unwrap();
        assert_eq!(upload.kind, RequestKind::Upload { first_seq: 3, last_seq: 10 });
        let gap = br#"{"error":{"code":"sync.gap","message":"","details":{"expected_seq":12}}}"#;
        up.handle_response(t1, upload.id, &Response { status: 409, body: gap.to_vec() }, &j);
        let retry = up.status().retry_at.unwrap();
        assert_eq!(up.status().last_error, Some(UplinkError::GapBeyondHead { expected_seq: 12, head: 10 }));
        assert!(retry >= t1 + Duration::from_secs(300), "a persistent error waits the longest");
        // The unsigned gap moved nothing, and no acknowledgement fetch was queued.
        assert_eq!(up.status().acked.map(|a| a.seq), Some(2));
        let next = up.poll_request(retry, 0, &j).unwrap();
        assert_eq!(next.kind, RequestKind::Upload { first_seq: 3, last_seq: 10 });
        assert_eq!(up.pending(10), 8);
    }
    #[test]
    fn new_pacing_applies_to_the_next_batch_wait_and_checkpoint_and_spares_the_request_in_flight() {
        let j = Mem(crate::sync::test_chain("V-1", 10, 5), false);
        let t0 = Instant::now();
        let mut up = Uplink::new(UplinkConfig::default(), "V-1", hq().verifying_key(), None, t0, 9);
        let cp = up.poll_request(t0, 0, &j).unwrap();
        // A reload while the checkpoint is in flight: it keeps its deadline (60 s at start).
        let paced = UplinkConfig {
            max_records: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            checkpoint_every: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            ..UplinkConfig::default()
        };
        up.set_pacing(t0, &paced);
        assert_eq!(up.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        up.handle_response(t0, cp.id, &ack(&j, 2, 10), &j);
        // The next batch: 3 records; its deadline keeps the timeout vand started with.
        let t1 = t0 + Duration::from_secs(1);
        let upload = up.poll_request(t1, 0, &j).unwrap();
        assert_eq!(upload.kind, RequestKind::Upload { first_seq: 3, last_seq: 5 });
        assert_eq!(up.poll_timeout(), Some(t1 + Duration::from_secs(60)));
        // The next failures back off with the new delays (capped at 4 s, half of it jitter).
        up.handle_transport_error(t1, upload.id, "reset");
        let retry = up.status().retry_at.unwrap();
        assert!(
            retry >= t1 + Duration::from_millis(500) && retry <= t1 + Duration::from_secs(1),
            "{:?}",
            retry - t1
        );
        for _ in 0..5 {
            let t = up.status().retry_at.unwrap();
            let r = up.poll_request(t, 0, &j).unwrap();
            up.handle_transport_error(t, r.id, "reset");
            assert!(up.status().retry_at.unwrap() <= t + Duration::from_secs(4));
        }
        // Caught up: the checkpoint comes at the new interval.
        let t = up.status().retry_at.unwrap();
        let r = up.poll_request(t, 0, &j).unwrap();
        assert_eq!(r.kind, RequestKind::Upload { first_seq: 3, last_seq: 5 });
        up.handle_response(t, r.id, &ack(&j, 5, 11), &j);
        let r = up.poll_request(t, 0, &j).unwrap();
        up.handle_response(t, r.id, &ack(&j, 8, 12), &j);
        let r = up.poll_request(t, 0, &j).unwrap();
        assert_eq!(r.kind, RequestKind::Upload { first_seq: 9, last_seq: 10 });
        up.handle_response(t, r.id, &ack(&j, 10, 13), &j);
        assert!(up.poll_request(t, 0, &j).is_none());
        assert_eq!(up.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        // A long wait under way is cut to a shorter new limit, never lengthened.
        up.set_pacing(t, &UplinkConfig { checkpoint_every: Duration::from_secs(2), ..paced.clone() });
        assert_eq!(up.poll_timeout(), Some(t + Duration::from_secs(2)));
        up.set_pacing(t, &UplinkConfig { checkpoint_every: Duration::from_secs(3600), ..paced });
        assert_eq!(up.poll_timeout(), Some(t + Duration::from_secs(2)));
    }
}
