//! One ZVT exchange (a command and everything the terminal sends until it hands master rights
//! back) as a pure state machine in the quinn-proto style: bytes and time in
//! ([`Exchange::handle_bytes`], [`Exchange::handle_timeout`], [`Exchange::link_lost`]), bytes,
//! deadlines and progress texts out ([`Exchange::poll_transmit`], [`Exchange::poll_timeout`],
//! [`Exchange::poll_progress`]), then [`Exchange::finish`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::{
    self, ACK, Apdu, EnquiryCompletion, FrameDecoder, LineEvent, NAK, StatusInfo, TerminalMsg,
};

/// Serial transport: the receiver answers a frame with ACK/NAK; the sender waits this long before
/// repeating it (PA00P015 serial transport, ACK timeout; the same 5 s value as T3).
pub const SERIAL_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Serial transport: a frame is sent at most this many times (PA00P015: repeated up to 3 times).
///
/// Only a NAK (the terminal says it did not take the frame) repeats a *command*. Silence never
/// does: the terminal's ACK may have been lost while it already runs the payment (Ingenico
/// terminals are known to miss ACKs in the field), so a silent command ends the exchange with
/// [`Ending::Timeout`] and [`Exchange::maybe_delivered`]; recovery (status enquiry, repeat
/// receipt) decides what happened. Our own `80 00 00` answers are idempotent and may be repeated
/// on silence.
pub const SERIAL_MAX_TRIES: u8 = 3;
/// T3 (PA00P015 chapter "Timeouts"): the ECR waits at most 5 s for the terminal's `80 00 00`
/// to a command.
pub const T3: Duration = Duration::from_secs(5);
/// T4 (PA00P015 chapter "Timeouts"): the ECR waits for master rights to return; every
/// intermediate status restarts it. Default 180 s (an intermediate status may carry its own
/// timeout in seconds, which then applies).
pub const T4: Duration = Duration::from_secs(180);

/// The protocol timers in use (named constants by default; shortened in tests via options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Serial ACK/NAK wait before repeating a frame.
    pub serial_ack: Duration,
    /// Wait for the terminal's `80 00 00` to a command.
    pub t3: Duration,
    /// Wait for the next terminal message while it holds master rights.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self { serial_ack: SERIAL_ACK_TIMEOUT, t3: T3, t4: T4 }
    }
}

/// What kind of command an exchange carries (decides how the completion is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `06 00`.
    Registration,
    /// `06 01`.
    Purchase,
    /// `06 30`.
    Reversal,
    /// `06 31`.
    Refund,
    /// `06 50`.
    EndOfDay,
    /// `05 01`.
    StatusEnquiry,
    /// `06 20`.
    RepeatReceipt,
    /// `06 B0` sent on its own: done when the terminal answers `80 00 00`.
    Abort,
}

/// How an exchange ended, with everything the terminal sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The terminal sent Completion `06 0F` (or `80 00 00` to a stand-alone abort).
    Completed,
    /// The terminal sent Abort `06 1E` with this result code.
    Aborted(u8),
    /// The terminal refused the command with `84 xx`: nothing was done.
    Refused(u8),
    /// Every try of the command frame was answered NAK: the terminal never took it.
    NotDelivered,
    /// No answer in time; the terminal may or may not have acted.
    Timeout(&'static str),
    /// The link went away mid-exchange.
    LinkLost,
}

/// The finished exchange: how it ended and what was collected on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub ending: Ending,
    /// The last Status-Information received.
    pub status: Option<StatusInfo>,
    /// Receipt lines (`06 D1` and `06 D3`).
    pub receipt_lines: Vec<String>,
    /// Completion data, raw.
    pub completion: Option<Vec<u8>>,
    /// Frames rejected (NAK sent) on the way.
    pub bad_frames: u32,
    /// Frames repeated because of NAK or ACK timeout.
    pub retransmissions: u32,
    /// Terminal frames dropped as repeats (our ACK of them was lost).
    pub repeats_dropped: u32,
}

impl Finished {
    /// The completion of a status enquiry, if it was one and well formed.
    pub fn enquiry(&self) -> Option<EnquiryCompletion> {
        self.completion.as_deref().and_then(EnquiryCompletion::parse)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `80 00 00` to our command.
    AwaitAck,
    /// The terminal holds master rights; it sends status, print lines, completion.
    Master,
    /// The exchange is decided; waiting only for the serial ACK of our last `80 00 00`.
    Closing,
    /// Done.
    Done,
}

#[derive(Debug)]
struct Pending {
    frame: Vec<u8>,
    tries: u8,
    deadline: Instant,
    is_command: bool,
}

/// One command exchange with the terminal.
#[derive(Debug)]
pub struct Exchange {
    kind: CommandKind,
    timers: Timers,
    decoder: FrameDecoder,
    phase: Phase,
    phase_deadline: Option<Instant>,
    pending: Option<Pending>,
    out: VecDeque<Vec<u8>>,
    progress: VecDeque<String>,
    abort_requested: bool,
    abort_sent: bool,
    /// Some try of the command frame got no answer: the terminal may have received it.
    maybe_delivered: bool,
    result: Finished,
    events: Vec<LineEvent>,
    /// The last terminal frame taken (to recognise its repeat).
    last_frame: Option<Apdu>,
}

impl Exchange {
    /// Starts an exchange: the command frame is ready in [`Exchange::poll_transmit`].
    pub fn new(
        kind: CommandKind,
        command: &Apdu,
        timers: Timers,
        now: Instant,
    ) -> Result<Self, codec::ApduError> {
        let frame = codec::encode_frame(&command.encode()?);
        let mut ex = Self {
            kind,
            timers,
            decoder: FrameDecoder::new(),
            phase: Phase::AwaitAck,
            // T3 runs from the serial ACK of the command (repeats of the frame come first).
            phase_deadline: None,
            pending: None,
            out: VecDeque::new(),
            progress: VecDeque::new(),
            abort_requested: false,
            abort_sent: false,
            maybe_delivered: false,
            result: Finished {
                ending: Ending::Completed,
                status: None,
                receipt_lines: Vec::new(),
                completion: None,
                bad_frames: 0,
                retransmissions: 0,
                repeats_dropped: 0,
            },
            last_frame: None,
            events: Vec::new(),
        };
        ex.send_frame(frame, true, now);
        Ok(ex)
    }

    fn send_frame(&mut self, frame: Vec<u8>, is_command: bool, now: Instant) {
        self.out.push_back(frame.clone());
        self.pending = Some(Pending { frame, tries: 1, deadline: now + self.timers.serial_ack, is_command });
    }

    fn send_apdu(&mut self, apdu: &Apdu, now: Instant) {
        if let Ok(bytes) = apdu.encode() {
            self.send_frame(codec::encode_frame(&bytes), false, now);
        }
    }

    fn end(&mut self, ending: Ending) {
        self.result.ending = ending;
        // Our last `80 00 00` may still await its serial ACK: keep it until then.
        self.phase = if self.pending.is_some() && !matches!(self.result.ending, Ending::LinkLost) {
            Phase::Closing
        } else {
            Phase::Done
        };
        self.phase_deadline = None;
    }

    /// Asks the terminal to abort the running transaction: `06 B0` is sent instead of the
    /// acknowledgement of the next intermediate status.
    pub fn request_abort(&mut self) {
        self.abort_requested = true;
    }

    /// Bytes to write to the link, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Status texts to show the officer (intermediate status), in order.
    pub fn poll_progress(&mut self) -> Option<String> {
        self.progress.pop_front()
    }

    /// When [`Exchange::handle_timeout`] must be called next, if the exchange is still running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        let p = self.pending.as_ref().map(|p| p.deadline);
        match (p, self.phase_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The result once the exchange is over and all its bytes were handed out.
    pub fn finish(&self) -> Option<&Finished> {
        (self.phase == Phase::Done && self.out.is_empty()).then_some(&self.result)
    }

    /// Whether the command may have reached the terminal (for deciding "unknown" vs "not done").
    pub fn maybe_delivered(&self) -> bool {
        self.maybe_delivered
    }

    /// The link failed (unplugged, I/O error): the exchange ends here.
    pub fn link_lost(&mut self) {
        if self.phase != Phase::Done {
            self.pending = None;
            if self.phase != Phase::Closing {
                self.result.ending = Ending::LinkLost;
            }
            self.phase = Phase::Done;
            self.phase_deadline = None;
        }
    }

    /// Time passed: repeats an unacknowledged frame or ends the exchange on T3/T4.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        if let Some(p) = self.pending.as_mut() {
            if now >= p.deadline {
                if p.is_command {
                    // No ACK and no NAK: the terminal may have taken it. Never send it again.
                    self.maybe_delivered = true;
                    self.pending = None;
                    self.end(Ending::Timeout("no ACK to the command (it may have reached the terminal)"));
                    self.phase = Phase::Done;
                    return;
                }
                if p.tries < SERIAL_MAX_TRIES {
                    p.tries += 1;
                    p.deadline = now + self.timers.serial_ack;
                    self.out.push_back(p.frame.clone());
                    self.result.retransmissions += 1;
                    // A half-received frame will not complete now.
                    self.decoder.reset();
                } else {
                    self.pending = None;
                    if self.phase == Phase::Closing {
                        self.phase = Phase::Done;
                    } else {
                        self.end(Ending::Timeout("no ACK from the terminal after 3 tries"));
                        self.phase = Phase::Done;
                    }
                    return;
                }
            }
        }
        if let Some(d) = self.phase_deadline {
            if now >= d {
                let what = match self.phase {
                    Phase::AwaitAck => "T3: no 80 00 00 to the command",
                    _ => "T4: terminal kept master rights too long",
                };
                self.maybe_delivered = true;
                self.pending = None;
                self.end(Ending::Timeout(what));
                self.phase = Phase::Done;
            }
        }
    }

    /// Bytes arrived from the terminal.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        self.decoder.push(bytes, &mut events);
        for ev in events.drain(..) {
            self.handle_event(ev, now);
            if self.phase == Phase::Done {
                break;
            }
        }
        self.events = events;
    }

    fn handle_event(&mut self, ev: LineEvent, now: Instant) {
        match ev {
            LineEvent::Ack => {
                if let Some(p) = self.pending.take() {
                    if p.is_command {
                        self.maybe_delivered = true;
                        if self.phase == Phase::AwaitAck {
                            self.phase_deadline = Some(now + self.timers.t3);
                        }
                    }
                    if self.phase == Phase::Closing {
                        self.phase = Phase::Done;
                    }
                }
            }
            LineEvent::Nak => {
                if let Some(p) = self.pending.as_mut() {
                    if p.tries < SERIAL_MAX_TRIES {
                        p.tries += 1;
                        p.deadline = now + self.timers.serial_ack;
                        self.out.push_back(p.frame.clone());
                        self.result.retransmissions += 1;
                    } else {
                        let was_command = p.is_command;
                        self.pending = None;
                        if self.phase == Phase::Closing {
                            self.phase = Phase::Done;
                        } else if was_command && !self.maybe_delivered {
                            self.end(Ending::NotDelivered);
                        } else {
                            self.end(Ending::Timeout("frame refused (NAK) 3 times"));
                        }
                    }
                }
            }
            LineEvent::Bad(_) => {
                self.result.bad_frames += 1;
                self.out.push_back(vec![NAK]);
            }
            LineEvent::Frame(apdu) => {
                self.out.push_back(vec![ACK]);
                // The terminal repeats a frame when our serial ACK of it was lost; while our
                // answer to it is still unacknowledged, the same bytes again are that repeat,
                // not a new message (a receipt line must not appear twice).
                let answer_pending = self.pending.as_ref().is_some_and(|p| !p.is_command);
                if answer_pending && self.last_frame.as_ref() == Some(&apdu) {
                    self.result.repeats_dropped += 1;
                    return;
                }
                // A frame from the terminal implies it took our pending one (its ACK was lost).
                if let Some(p) = self.pending.take() {
                    if p.is_command {
                        self.maybe_delivered = true;
                    }
                }
                self.last_frame = Some(apdu.clone());
                self.handle_message(TerminalMsg::from_apdu(&apdu), now);
            }
        }
    }

    fn ack_terminal(&mut self, now: Instant) {
        self.send_apdu(&codec::positive_ack(), now);
    }

    fn handle_message(&mut self, msg: TerminalMsg, now: Instant) {
        match (self.phase, msg) {
            (Phase::Closing | Phase::Done, TerminalMsg::Ack | TerminalMsg::Refused(_)) => {}
            (Phase::Closing | Phase::Done, _) => {
                // The terminal repeated its last message (our 80 00 00 was lost): answer again.
                self.ack_terminal(now);
                self.phase = Phase::Closing;
            }
            (Phase::AwaitAck, TerminalMsg::Ack) => {
                if self.kind == CommandKind::Abort {
                    self.end(Ending::Completed);
                } else {
                    self.phase = Phase::Master;
                    self.phase_deadline = Some(now + self.timers.t4);
                }
            }
            (Phase::AwaitAck | Phase::Master, TerminalMsg::Refused(code)) => {
                if self.abort_sent {
                    // Refusal of our abort request: the transaction goes on.
                    self.phase_deadline = Some(now + self.timers.t4);
                } else {
                    self.end(Ending::Refused(code));
                }
            }
            (Phase::Master, TerminalMsg::Ack) => {
                // The terminal's answer to our 06 B0.
                self.phase_deadline = Some(now + self.timers.t4);
            }
            (_, TerminalMsg::Intermediate { code, timeout_s }) => {
                self.phase = Phase::Master;
                self.progress.push_back(codec::intermediate_text(code));
                let wait = match timeout_s {
                    Some(s) if s > 0 => Duration::from_secs(u64::from(s)),
                    _ => self.timers.t4,
                };
                self.phase_deadline = Some(now + wait);
                if self.abort_requested && !self.abort_sent {
                    self.abort_sent = true;
                    self.send_apdu(&codec::abort(), now);
                } else {
                    self.ack_terminal(now);
                }
            }
            (_, TerminalMsg::Status(s)) => {
                self.phase = Phase::Master;
                self.result.status = Some(*s);
                self.phase_deadline = Some(now + self.timers.t4);
                self.ack_terminal(now);
            }
            (_, TerminalMsg::PrintLine(line)) => {
                self.phase = Phase::Master;
                self.result.receipt_lines.push(line);
                self.phase_deadline = Some(now + self.timers.t4);
                self.ack_terminal(now);
            }
            (_, TerminalMsg::PrintBlock(lines)) => {
                self.phase = Phase::Master;
                self.result.receipt_lines.extend(lines);
                self.phase_deadline = Some(now + self.timers.t4);
                self.ack_terminal(now);
            }
            (_, TerminalMsg::Completion(data)) => {
                self.result.completion = Some(data);
                self.ack_terminal(now);
                self.end(Ending::Completed);
            }
            (_, TerminalMsg::Abort(code)) => {
                self.ack_terminal(now);
                self.end(Ending::Aborted(code));
            }
            (_, TerminalMsg::Other(_)) => {
                self.phase_deadline = Some(now + self.timers.t4);
                self.ack_terminal(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::zvt::codec::{Password, encode_frame};

    fn timers() -> Timers {
        Timers {
            serial_ack: Duration::from_millis(100),
            t3: Duration::from_secs(5),
            t4: Duration::from_secs(10),
        }
    }

    fn frame(apdu: &[u8]) -> Vec<u8> {
        encode_frame(apdu)
    }

    fn drain(ex: &mut Exchange) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| ex.poll_transmit()).collect()
    }

    const ACK_FRAME: [u8; 3] = [0x80, 0x00, 0x00];

    #[test]
    fn approved_purchase_flow() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        let sent = drain(&mut ex);
        assert_eq!(
            sent,
            vec![vec![0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57]]
        );
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&ACK_FRAME), t0);
        assert_eq!(drain(&mut ex), vec![vec![ACK]]);
        ex.handle_bytes(&frame(&[0x04, 0xFF, 0x01, 0x0A]), t0);
        assert_eq!(ex.poll_progress().as_deref(), Some("Insert card"));
        assert_eq!(drain(&mut ex), vec![vec![ACK], frame(&ACK_FRAME)]);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&[0x04, 0x0F, 0x09, 0x27, 0x00, 0x04, 0, 0, 0, 0, 0x01, 0x90]), t0);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&[0x06, 0xD1, 0x04, 0x00, b'a', b'b', b'c']), t0);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&[0x06, 0x0F, 0x00]), t0);
        assert!(ex.finish().is_none(), "must wait for the serial ACK of its last 80 00 00");
        ex.handle_bytes(&[ACK], t0);
        let _ = drain(&mut ex);
        let f = ex.finish().unwrap();
        assert_eq!(f.ending, Ending::Completed);
        assert_eq!(f.status.as_ref().unwrap().amount, Some(190));
        assert_eq!(f.receipt_lines, vec!["abc".to_string()]);
    }

    #[test]
    fn nak_causes_bounded_retransmission() {
        let t0 = Instant::now();
        let pw = Password::parse("000000").unwrap();
        let mut ex = Exchange::new(CommandKind::EndOfDay, &codec::end_of_day(&pw), timers(), t0).unwrap();
        let first = drain(&mut ex);
        ex.handle_bytes(&[NAK], t0);
        assert_eq!(drain(&mut ex), first);
        ex.handle_bytes(&[NAK], t0);
        assert_eq!(drain(&mut ex), first);
        ex.handle_bytes(&[NAK], t0);
        assert!(drain(&mut ex).is_empty());
        assert_eq!(ex.finish().unwrap().ending, Ending::NotDelivered);
    }

    /// Finding: with no ACK, the same `06 01` frame went out three times.
    #[test]
    fn silent_terminal_gets_the_purchase_exactly_once_and_the_outcome_is_unknown() {
        for t in [timers(), Timers::default()] {
            let t0 = Instant::now();
            let cmd = codec::authorisation(190, Some(818)).unwrap();
            let mut ex = Exchange::new(CommandKind::Purchase, &cmd, t, t0).unwrap();
            let mut sent = drain(&mut ex);
            while ex.finish().is_none() {
                let now = ex.poll_timeout().unwrap();
                ex.handle_timeout(now);
                sent.extend(drain(&mut ex));
            }
            assert_eq!(sent.len(), 1, "the purchase frame must go out once: {sent:02X?}");
            assert!(ex.maybe_delivered());
            assert_eq!(ex.finish().unwrap().retransmissions, 0);
            assert!(matches!(ex.finish().unwrap().ending, Ending::Timeout(_)));
        }
    }

    #[test]
    fn nak_repeats_a_purchase_but_silence_after_a_nak_does_not() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        let first = drain(&mut ex);
        ex.handle_bytes(&[NAK], t0);
        assert_eq!(drain(&mut ex), first, "a NAK repeats the frame");
        ex.handle_timeout(ex.poll_timeout().unwrap());
        assert!(drain(&mut ex).is_empty(), "silence after the repeat: never again");
        assert!(ex.maybe_delivered());
        assert!(matches!(ex.finish().unwrap().ending, Ending::Timeout(_)));
    }

    #[test]
    fn our_unacknowledged_answer_is_repeated_on_silence() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&ACK_FRAME), t0);
        ex.handle_bytes(&frame(&[0x04, 0xFF, 0x01, 0x0A]), t0);
        assert_eq!(drain(&mut ex), vec![vec![ACK], vec![ACK], frame(&ACK_FRAME)]);
        ex.handle_timeout(ex.poll_timeout().unwrap());
        assert_eq!(drain(&mut ex), vec![frame(&ACK_FRAME)], "80 00 00 is idempotent");
    }

    /// A terminal that missed our ACK repeats its frame: one receipt line, not two.
    #[test]
    fn a_repeated_terminal_frame_is_acknowledged_and_dropped() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&ACK_FRAME), t0);
        let line = frame(&[0x06, 0xD1, 0x04, 0x00, b'a', b'b', b'c']);
        ex.handle_bytes(&line, t0);
        assert_eq!(drain(&mut ex), vec![vec![ACK], vec![ACK], frame(&ACK_FRAME)]);
        // Our ACK was lost: the terminal sends the same frame again before acknowledging our answer.
        ex.handle_bytes(&line, t0 + Duration::from_millis(50));
        assert_eq!(drain(&mut ex), vec![vec![ACK]], "ACK the repeat, answer nothing new");
        ex.handle_bytes(&[ACK], t0);
        // The same line again *after* our answer was taken is a new line (e.g. a separator).
        ex.handle_bytes(&line, t0);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&[0x06, 0x0F, 0x00]), t0);
        ex.handle_bytes(&[ACK], t0);
        drain(&mut ex);
        let f = ex.finish().unwrap();
        assert_eq!(f.receipt_lines, vec!["abc".to_string(), "abc".to_string()]);
        assert_eq!(f.repeats_dropped, 1);
    }

    #[test]
    fn t3_runs_from_the_serial_ack() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        let t1 = t0 + Duration::from_millis(50);
        ex.handle_bytes(&[ACK], t1);
        assert_eq!(ex.poll_timeout(), Some(t1 + timers().t3));
        ex.handle_timeout(t1 + timers().t3);
        assert_eq!(ex.finish().unwrap().ending, Ending::Timeout("T3: no 80 00 00 to the command"));
    }

    #[test]
    fn bad_crc_gets_nak_and_the_repeat_is_taken() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(190, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        ex.handle_bytes(&[ACK], t0);
        let mut bad = frame(&ACK_FRAME);
        let n = bad.len();
        bad[n - 1] ^= 0x01;
        ex.handle_bytes(&[0xFF, 0x00], t0);
        ex.handle_bytes(&bad, t0);
        assert_eq!(drain(&mut ex), vec![vec![NAK]]);
        ex.handle_bytes(&frame(&ACK_FRAME), t0);
        assert_eq!(drain(&mut ex), vec![vec![ACK]]);
        ex.handle_bytes(&frame(&[0x06, 0x1E, 0x01, 0x05]), t0);
        ex.handle_bytes(&[ACK], t0);
        drain(&mut ex);
        let f = ex.finish().unwrap();
        assert_eq!(f.ending, Ending::Aborted(0x05));
        assert_eq!(f.bad_frames, 1);
    }

    #[test]
    fn abort_request_replaces_the_next_ack() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(500, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        ex.handle_bytes(&[ACK], t0);
        ex.handle_bytes(&frame(&ACK_FRAME), t0);
        drain(&mut ex);
        ex.request_abort();
        ex.handle_bytes(&frame(&[0x04, 0xFF, 0x01, 0x0A]), t0);
        assert_eq!(drain(&mut ex), vec![vec![ACK], frame(&[0x06, 0xB0, 0x00])]);
    }

    #[test]
    fn link_loss_ends_the_exchange() {
        let t0 = Instant::now();
        let cmd = codec::authorisation(500, None).unwrap();
        let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
        drain(&mut ex);
        ex.handle_bytes(&[ACK], t0);
        ex.link_lost();
        assert_eq!(ex.finish().unwrap().ending, Ending::LinkLost);
        assert!(ex.maybe_delivered());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..20)) {
            let t0 = Instant::now();
            let cmd = codec::authorisation(190, None).unwrap();
            let mut ex = Exchange::new(CommandKind::Purchase, &cmd, timers(), t0).unwrap();
            for (i, c) in chunks.iter().enumerate() {
                ex.handle_bytes(c, t0 + Duration::from_millis(i as u64));
                while ex.poll_transmit().is_some() {}
                while ex.poll_progress().is_some() {}
            }
            ex.handle_timeout(t0 + Duration::from_secs(3600));
        }
    }
}
