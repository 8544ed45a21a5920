//! The payment terminal kind: what the workflow asks of any terminal protocol (ZVT today; an
//! acquirer's own protocol can be added as a second driver behind the same trait).

use super::{DeviceError, SelfTestReport};

/// An approved payment (or reversal/refund) as the terminal reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    /// Amount in piastres.
    pub amount: u64,
    /// Terminal trace number.
    pub trace: Option<u32>,
    /// Receipt number (used for a reversal and to match a recovered result).
    pub receipt_no: Option<u32>,
    /// Terminal id.
    pub terminal_id: Option<u32>,
    /// Terminal clock time `HHMMSS` (terminal local time, as sent).
    pub time: Option<String>,
    /// Terminal clock date `MMDD` (terminal local date, as sent).
    pub date: Option<String>,
    /// Card number with masked digits as `*`.
    pub masked_pan: Option<String>,
    /// Card scheme name.
    pub card_name: Option<String>,
    /// Authorisation attribute (AID).
    pub aid: Option<String>,
    /// Result code (0 = approved).
    pub result_code: u8,
    /// Receipt text lines printed by the terminal for the ECR.
    pub receipt_lines: Vec<String>,
}

impl Approval {
    /// Whether this transaction (from [`PaymentTerminal::repeat_last`]) is the purchase whose
    /// outcome was unknown: approved, same amount, and a receipt number different from the last
    /// one known before that purchase was sent (`None` if none was known).
    pub fn matches_unknown_purchase(&self, amount: u64, receipt_before: Option<u32>) -> bool {
        self.result_code == 0
            && self.amount == amount
            && self.receipt_no.is_some()
            && self.receipt_no != receipt_before
    }
}

/// How a payment operation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// Money moved.
    Approved(Approval),
    /// The terminal or the card issuer said no; nothing was charged.
    Declined {
        /// Protocol result code.
        result_code: u8,
        /// Readable reason.
        text: String,
    },
    /// Cancelled on the terminal or by the ECR; nothing was charged.
    Aborted,
    /// The command may have reached the terminal but its result was lost (link lost, timeout).
    /// Never re-send: recover with [`PaymentTerminal::repeat_last`] and match amount and receipt.
    Unknown {
        /// What went wrong.
        reason: String,
    },
}

/// End-of-day result: totals of the closed period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DayTotals {
    /// Total turnover in piastres.
    pub total: u64,
    /// Number of transactions (sum over schemes).
    pub count: u32,
    /// First and last receipt number of the period, if reported.
    pub receipts: Option<(u32, u32)>,
    /// (scheme, count, amount) per card scheme.
    pub schemes: Vec<(String, u32, u64)>,
    /// Receipt text lines.
    pub receipt_lines: Vec<String>,
}

/// Terminal state from a status enquiry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TerminalStatus {
    /// Software version reported by the terminal.
    pub software: String,
    /// Terminal status code (0 = ready).
    pub status_code: u8,
    /// Whether the terminal is ready for payments.
    pub ready: bool,
}

/// Progress callback of a purchase: gets each status text ("Insert card", "Please enter PIN");
/// returning `false` asks the terminal to abort.
pub type Progress<'a> = &'a mut dyn FnMut(&str) -> bool;

/// A payment terminal, driven on the thread that owns its port.
pub trait PaymentTerminal: Send {
    /// Logs the ECR on to the terminal (password, receipt and status settings, currency).
    fn register(&mut self) -> Result<(), DeviceError>;
    /// Charges `amount` piastres; `progress` sees the terminal's status texts.
    fn purchase(&mut self, amount: u64, progress: Progress<'_>) -> Result<PaymentOutcome, DeviceError>;
    /// Reverses (voids) the payment with this receipt number, same day.
    fn reversal(&mut self, receipt_no: u32) -> Result<PaymentOutcome, DeviceError>;
    /// Refunds `amount` piastres to a card.
    fn refund(&mut self, amount: u64) -> Result<PaymentOutcome, DeviceError>;
    /// Closes the day at the terminal and returns the totals.
    fn end_of_day(&mut self) -> Result<DayTotals, DeviceError>;
    /// Asks the terminal's state (safe: no host contact, no charge).
    fn status(&mut self) -> Result<TerminalStatus, DeviceError>;
    /// The recovery path: the last transaction as the terminal recorded it (`None` if the
    /// terminal has none). Never charges.
    fn repeat_last(&mut self) -> Result<Option<Approval>, DeviceError>;
    /// Tells the terminal to abandon whatever it is doing.
    fn abort(&mut self) -> Result<(), DeviceError>;
    /// Safe checks only (status/diagnosis); never charges.
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(amount: u64, receipt_no: Option<u32>, result_code: u8) -> Approval {
        Approval {
            amount,
            trace: Some(7),
            receipt_no,
            terminal_id: None,
            time: None,
            date: None,
            masked_pan: None,
            card_name: None,
            aid: None,
            result_code,
            receipt_lines: Vec::new(),
        }
    }

    #[test]
    fn recovered_purchase_matching() {
        assert!(approval(1010, Some(4), 0).matches_unknown_purchase(1010, Some(3)));
        assert!(approval(1010, Some(1), 0).matches_unknown_purchase(1010, None));
        // The previous transaction (same receipt as before the purchase): not ours.
        assert!(!approval(1010, Some(3), 0).matches_unknown_purchase(1010, Some(3)));
        assert!(!approval(990, Some(4), 0).matches_unknown_purchase(1010, Some(3)));
        assert!(!approval(1010, Some(4), 5).matches_unknown_purchase(1010, Some(3)));
        assert!(!approval(1010, None, 0).matches_unknown_purchase(1010, None));
    }
}
