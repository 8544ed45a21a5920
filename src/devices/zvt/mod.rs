//! ZVT (ECR ↔ terminal) over serial: codec, transaction state machine and driver.
//!
//! [`codec`] and [`machine`] do no I/O; [`ZvtTerminal`] drives one [`machine::Exchange`] at a
//! time over a [`Link`] on the thread that owns the port. Specification: "ZVT-Protokoll"
//! PA00P015 (serial transport, commands 06 00/01/20/30/31/50/B0 and 05 01).

pub mod codec;
pub mod machine;

use std::time::{Duration, Instant};

use self::codec::{Apdu, EGP, Password};
use self::machine::{CommandKind, Ending, Exchange, Finished, Timers};
use super::payment::{Approval, DayTotals, PaymentOutcome, PaymentTerminal, Progress, TerminalStatus};
use super::{DeviceError, Fault, Link, LinkError, PaymentFault, SelfTestReport};
use crate::config::DeviceConfig;

/// Registration config byte: ECR prints payment receipts (0x02) and administration receipts
/// (0x04), and wants intermediate status information (0x08) — PA00P015, Registration.
pub const DEFAULT_CONFIG_BYTE: u8 = 0x0E;

/// Driver options from the `[devices.payment.options]` table.
#[derive(Clone)]
pub struct ZvtOptions {
    /// Terminal password (6 digits); a secret, never logged.
    pub password: Password,
    /// Whether to send BMP 49 currency with purchases/refunds and the currency in registration.
    pub send_currency: bool,
    /// ISO 4217 numeric currency code (818 = EGP).
    pub currency_code: u16,
    /// Registration config byte.
    pub config_byte: u8,
    /// Protocol timers.
    pub timers: Timers,
}

impl std::fmt::Debug for ZvtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZvtOptions")
            .field("password", &self.password)
            .field("send_currency", &self.send_currency)
            .field("currency_code", &self.currency_code)
            .field("config_byte", &self.config_byte)
            .field("timers", &self.timers)
            .finish()
    }
}

impl Default for ZvtOptions {
    fn default() -> Self {
        Self {
            password: Password::parse("000000").unwrap_or_else(|_| unreachable!("literal is valid")),
            send_currency: true,
            currency_code: EGP,
            config_byte: DEFAULT_CONFIG_BYTE,
            timers: Timers::default(),
        }
    }
}

impl ZvtOptions {
    /// Reads and checks the options (typed in [`super::options::ZvtOptions`], which
    /// `vand check-config` also uses); an error names the full key and never echoes the password.
    pub fn from_table(t: &toml::Table) -> Result<Self, DeviceError> {
        let o = super::options::ZvtOptions::from_table(t)?;
        Ok(Self {
            password: o.password.0,
            send_currency: o.currency,
            currency_code: o.currency_code.0 as u16,
            config_byte: o.config_byte.0 as u8,
            timers: Timers {
                serial_ack: o.ack_timeout_ms.millis(),
                t3: o.t3_ms.millis(),
                t4: o.t4_ms.millis(),
            },
        })
    }

    fn currency(&self) -> Option<u16> {
        self.send_currency.then_some(self.currency_code)
    }
}

/// The ZVT driver: one exchange at a time over the link.
pub struct ZvtTerminal {
    link: Box<dyn Link>,
    opts: ZvtOptions,
    device: String,
}

/// Result of running one exchange: what happened, plus the link error that ended it, if any.
struct Run {
    finished: Finished,
    maybe_delivered: bool,
    link_error: Option<LinkError>,
}

impl ZvtTerminal {
    /// A driver over an open link with checked options.
    pub fn new(link: Box<dyn Link>, opts: ZvtOptions) -> Self {
        let device = format!("payment terminal on {}", link.path());
        Self { link, opts, device }
    }

    /// Builds the driver from the `[devices.payment]` section.
    pub fn from_config(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Self, DeviceError> {
        Ok(Self::new(link, ZvtOptions::from_table(&cfg.options)?))
    }

    /// Swaps in a fresh link (after an unplug) keeping options.
    pub fn replace_link(&mut self, link: Box<dyn Link>) {
        self.device = format!("payment terminal on {}", link.path());
        self.link = link;
    }

    fn protocol(&self, detail: impl Into<String>) -> DeviceError {
        DeviceError::Protocol { device: self.device.clone(), detail: detail.into() }
    }

    fn run(
        &mut self,
        kind: CommandKind,
        apdu: &Apdu,
        mut progress: Option<Progress<'_>>,
    ) -> Result<Run, DeviceError> {
        let mut ex = Exchange::new(kind, apdu, self.opts.timers, Instant::now())
            .map_err(|e| self.protocol(format!("cannot encode command: {e}")))?;
        tracing::debug!(device = %self.device, command = ?kind, "ZVT exchange start");
        let mut link_error = None;
        let mut buf = [0u8; 512];
        loop {
            while let Some(bytes) = ex.poll_transmit() {
                if let Err(e) = self.link.write_all(&bytes) {
                    ex.link_lost();
                    link_error = Some(e);
                    break;
                }
            }
            while let Some(text) = ex.poll_progress() {
                tracing::info!(device = %self.device, status = %text, "terminal status");
                if let Some(cb) = progress.as_mut() {
                    if !cb(&text) {
                        ex.request_abort();
                    }
                }
            }
            if let Some(f) = ex.finish() {
                let finished = f.clone();
                tracing::debug!(device = %self.device, ending = ?finished.ending, "ZVT exchange end");
                return Ok(Run { finished, maybe_delivered: ex.maybe_delivered(), link_error });
            }
            let deadline = ex.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_millis(10));
            match self.link.read_some(&mut buf, deadline) {
                Ok(n) => ex.handle_bytes(buf.get(..n).unwrap_or_default(), Instant::now()),
                Err(LinkError::Timeout { .. }) => ex.handle_timeout(Instant::now()),
                Err(e) => {
                    ex.link_lost();
                    link_error = Some(e);
                }
            }
        }
    }

    /// Error for an administrative exchange that did not complete.
    fn admin_failure(&self, run: Run, what: &str) -> DeviceError {
        if let Some(e) = run.link_error {
            return DeviceError::Link(e);
        }
        match run.finished.ending {
            Ending::Refused(code) | Ending::Aborted(code) => DeviceError::fault(
                self.device.clone(),
                Fault::Payment(PaymentFault::CommandRefused),
                format!("{what} refused: {}", codec::result_text(code)),
            ),
            Ending::Timeout(why) => DeviceError::Link(LinkError::Timeout {
                device: format!("payment terminal ({what}: {why})"),
                path: self.link.path().to_string(),
                waited_ms: self.opts.timers.t4.as_millis() as u64,
            }),
            Ending::LinkLost => DeviceError::Link(LinkError::Unplugged {
                device: "payment terminal".into(),
                path: self.link.path().to_string(),
            }),
            Ending::NotDelivered => DeviceError::fault(
                self.device.clone(),
                Fault::Payment(PaymentFault::FrameRejected),
                format!("{what}: the terminal refused the frame 3 times (NAK)"),
            ),
            Ending::Completed => self.protocol(format!("{what}: completed without the expected data")),
        }
    }

    fn payment(
        &mut self,
        kind: CommandKind,
        apdu: &Apdu,
        requested: Option<u64>,
        progress: Option<Progress<'_>>,
    ) -> Result<PaymentOutcome, DeviceError> {
        let run = self.run(kind, apdu, progress)?;
        let f = &run.finished;
        let outcome = match &f.ending {
            Ending::Completed => match &f.status {
                Some(s) if s.result_code.unwrap_or(0) == 0 => {
                    PaymentOutcome::Approved(approval(s, requested, &f.receipt_lines))
                }
                Some(s) => {
                    let code = s.result_code.unwrap_or(0xFF);
                    PaymentOutcome::Declined { result_code: code, text: codec::result_text(code) }
                }
                None => PaymentOutcome::Unknown { reason: "completion without status information".into() },
            },
            Ending::Aborted(0x6C) => PaymentOutcome::Aborted,
            Ending::Aborted(code) | Ending::Refused(code) => {
                PaymentOutcome::Declined { result_code: *code, text: codec::result_text(*code) }
            }
            Ending::NotDelivered if !run.maybe_delivered => {
                return Err(DeviceError::fault(
                    self.device.clone(),
                    Fault::Payment(PaymentFault::FrameRejected),
                    "the terminal refused the command frame 3 times (NAK); nothing was charged",
                ));
            }
            Ending::NotDelivered | Ending::Timeout(_) | Ending::LinkLost => {
                let reason = match (&run.link_error, &f.ending) {
                    (Some(e), _) => e.to_string(),
                    (None, Ending::Timeout(why)) => (*why).to_string(),
                    (None, other) => format!("{other:?}"),
                };
                PaymentOutcome::Unknown { reason }
            }
        };
        match &outcome {
            PaymentOutcome::Approved(a) => {
                tracing::info!(device = %self.device, amount = a.amount, receipt = ?a.receipt_no, "payment approved")
            }
            other => tracing::warn!(device = %self.device, outcome = ?other, "payment not approved"),
        }
        Ok(outcome)
    }
}

fn approval(s: &codec::StatusInfo, requested: Option<u64>, lines: &[String]) -> Approval {
    Approval {
        amount: s.amount.or(requested).unwrap_or(0),
        trace: s.trace,
        receipt_no: s.receipt_no,
        terminal_id: s.terminal_id,
        time: s.time.clone(),
        date: s.date.clone(),
        masked_pan: s.masked_pan.clone(),
        card_name: s.card_name.clone(),
        aid: s.aid.clone(),
        result_code: s.result_code.unwrap_or(0),
        receipt_lines: lines.to_vec(),
    }
}

impl PaymentTerminal for ZvtTerminal {
    fn register(&mut self) -> Result<(), DeviceError> {
        let apdu = codec::registration(&self.opts.password, self.opts.config_byte, self.opts.currency())
            .map_err(|e| self.protocol(e.to_string()))?;
        let run = self.run(CommandKind::Registration, &apdu, None)?;
        if run.finished.ending == Ending::Completed {
            Ok(())
        } else {
            Err(self.admin_failure(run, "registration"))
        }
    }

    fn purchase(&mut self, amount: u64, progress: Progress<'_>) -> Result<PaymentOutcome, DeviceError> {
        let apdu =
            codec::authorisation(amount, self.opts.currency()).map_err(|e| self.protocol(e.to_string()))?;
        self.payment(CommandKind::Purchase, &apdu, Some(amount), Some(progress))
    }

    fn reversal(&mut self, receipt_no: u32) -> Result<PaymentOutcome, DeviceError> {
        let apdu =
            codec::reversal(&self.opts.password, receipt_no).map_err(|e| self.protocol(e.to_string()))?;
        self.payment(CommandKind::Reversal, &apdu, None, None)
    }

    fn refund(&mut self, amount: u64) -> Result<PaymentOutcome, DeviceError> {
        let apdu = codec::refund(&self.opts.password, amount, self.opts.currency())
            .map_err(|e| self.protocol(e.to_string()))?;
        self.payment(CommandKind::Refund, &apdu, Some(amount), None)
    }

    fn end_of_day(&mut self) -> Result<DayTotals, DeviceError> {
        let apdu = codec::end_of_day(&self.opts.password);
        let run = self.run(CommandKind::EndOfDay, &apdu, None)?;
        match (&run.finished.ending, &run.finished.status) {
            (Ending::Completed, Some(s)) if s.result_code.unwrap_or(0) == 0 => {
                let t = s.totals.clone().unwrap_or_default();
                Ok(DayTotals {
                    total: s.amount.unwrap_or(0),
                    count: t.schemes.iter().map(|x| x.1).sum(),
                    receipts: s.totals.as_ref().map(|t| (t.receipt_from, t.receipt_to)),
                    schemes: t.schemes,
                    receipt_lines: run.finished.receipt_lines.clone(),
                })
            }
            (Ending::Completed, Some(s)) => Err(DeviceError::fault(
                self.device.clone(),
                Fault::Payment(PaymentFault::EndOfDayFailed),
                codec::result_text(s.result_code.unwrap_or(0xFF)),
            )),
            _ => Err(self.admin_failure(run, "end-of-day")),
        }
    }

    fn status(&mut self) -> Result<TerminalStatus, DeviceError> {
        let apdu = codec::status_enquiry(&self.opts.password);
        let run = self.run(CommandKind::StatusEnquiry, &apdu, None)?;
        if run.finished.ending == Ending::Completed {
            let c = run.finished.enquiry().ok_or_else(|| {
                self.protocol("status enquiry completion without software version and status")
            })?;
            Ok(TerminalStatus { software: c.software, status_code: c.status_code, ready: c.status_code == 0 })
        } else {
            Err(self.admin_failure(run, "status enquiry"))
        }
    }

    fn repeat_last(&mut self) -> Result<Option<Approval>, DeviceError> {
        let apdu = codec::repeat_receipt(&self.opts.password);
        let run = self.run(CommandKind::RepeatReceipt, &apdu, None)?;
        match (&run.finished.ending, &run.finished.status) {
            (Ending::Completed, Some(s)) => Ok(Some(approval(s, None, &run.finished.receipt_lines))),
            (Ending::Completed, None) | (Ending::Aborted(_), _) => Ok(None),
            _ => Err(self.admin_failure(run, "repeat receipt")),
        }
    }

    fn abort(&mut self) -> Result<(), DeviceError> {
        let run = self.run(CommandKind::Abort, &codec::abort(), None)?;
        match run.finished.ending {
            Ending::Completed | Ending::Aborted(_) => Ok(()),
            _ => Err(self.admin_failure(run, "abort")),
        }
    }

    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        let mut lines = Vec::new();
        let ok = match self.status() {
            Ok(s) => {
                lines.push(format!(
                    "status enquiry: software {:?}, status code {:#04x} ({})",
                    s.software,
                    s.status_code,
                    if s.ready { "ready" } else { "not ready" }
                ));
                s.ready
            }
            Err(e) => {
                lines.push(format!("status enquiry failed: {e}"));
                false
            }
        };
        Ok(SelfTestReport { device: "payment".into(), ok, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn options_defaults_and_errors_name_the_key() {
        let o = ZvtOptions::from_table(&toml::Table::new()).unwrap();
        assert!(o.send_currency);
        assert_eq!(o.currency_code, 818);
        let o = ZvtOptions::from_table(&table("currency = false\npassword = \"123456\"")).unwrap();
        assert!(!o.send_currency);
        assert!(!format!("{o:?}").contains("123456"));
        for (src, key) in [
            ("password = \"12x456\"", "options.password"),
            ("password = 123456", "options.password"),
            ("currency = \"yes\"", "options.currency"),
            ("config_byte = 300", "options.config_byte"),
            ("t4_ms = -1", "options.t4_ms"),
            ("colour = 1", "options.colour"),
        ] {
            match ZvtOptions::from_table(&table(src)) {
                Err(DeviceError::Config { key: k, message, .. }) => {
                    assert_eq!(k, format!("devices.payment.{key}"));
                    assert!(!message.contains("12x456"));
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }
}
