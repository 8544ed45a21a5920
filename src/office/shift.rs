//! Shifts and controlled stock: a shift opens with a device self-test and the counts of card
//! blanks, sticker labels and e-sticker tags on board; it closes with the terminal's end-of-day,
//! the totals reconciled against the journal (by service and by card scheme) and the stock
//! reconciled (opening = issued + spoiled + remaining), every difference flagged, never hidden.
//!
//! A shift is a transaction of its own (`<van id>-S000001`), so `shift.open` and `shift.close` are
//! in the journal's transaction index. Services belong to the shift they were opened in.
//! Reconciliation ([`reconcile`]) is a pure function of the shift's records and transactions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::desk::{Desk, DeskError, ErrorClass};
use super::model::{Actor, Piastres, Role, ServiceKind};
use super::records::Step;
use super::workflow::{Payment, Txn};
use crate::devices::DeviceId;
use crate::devices::manager::Outcome;
use crate::render::documents::{self, DocOptions, ShiftReport, StockLine, TotalLine};

/// Record kinds.
pub mod kind {
    /// A shift opened.
    pub const SHIFT_OPEN: &str = "shift.open";
    /// A shift closed, with its reconciliation.
    pub const SHIFT_CLOSE: &str = "shift.close";
}

/// Counts of controlled stock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockCounts {
    /// Blank licence cards.
    pub cards: u32,
    /// Sticker labels.
    pub labels: u32,
    /// E-sticker tags.
    pub tags: u32,
}

impl StockCounts {
    fn get(&self, item: Step) -> u32 {
        match item {
            Step::Card => self.cards,
            Step::Label => self.labels,
            Step::Tag => self.tags,
        }
    }
}

/// One device's self-test at shift open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestLine {
    /// Device.
    pub device: String,
    /// Passed.
    pub ok: bool,
}

/// `shift.open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftOpen {
    /// Shift id (its transaction id).
    pub txn: String,
    /// Officer who opened it.
    pub officer: String,
    /// Stock counted at open.
    pub stock: StockCounts,
    /// Device self-test results.
    pub self_test: Vec<SelfTestLine>,
}

/// Count and amount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// What (service name, card scheme, …).
    pub what: String,
    /// Transactions.
    pub count: u32,
    /// Piastres.
    pub amount: Piastres,
}

/// The terminal's end-of-day as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalTotals {
    /// Net turnover, piastres.
    pub total: Piastres,
    /// Transactions.
    pub count: u32,
    /// First and last receipt number of the period.
    pub receipts: Option<(u32, u32)>,
}

/// One stock item's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRec {
    /// `card`, `tag`, `label`.
    pub item: Step,
    /// At open.
    pub opening: u32,
    /// Issued to citizens.
    pub issued: u32,
    /// Spoiled (misprints, failed encodes, unknown outcomes, voids).
    pub spoiled: u32,
    /// Expected remaining = opening − issued − spoiled (negative: more used than on board).
    pub expected: i64,
    /// Counted at close.
    pub counted: u32,
    /// counted − expected (0 when it balances).
    pub difference: i64,
}

/// `shift.close`: the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftClose {
    /// Shift id.
    pub txn: String,
    /// The supervisor who closed it.
    pub officer: String,
    /// First journal sequence of the shift (its open record).
    pub from_seq: u64,
    /// Completed services by service.
    pub by_service: Vec<Total>,
    /// Approved, unreversed payments by card scheme.
    pub by_payment: Vec<Total>,
    /// The journal's payment totals (approved and not reversed).
    pub journal: Total,
    /// The terminal's end-of-day, if it answered.
    pub terminal: Option<TerminalTotals>,
    /// Why the terminal did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_error: Option<String>,
    /// Stock lines.
    pub stock: Vec<StockRec>,
    /// Transactions held for reconciliation (payment outcome unknown).
    pub held: Vec<String>,
    /// Transactions not finished (paid, documents pending).
    pub unfinished: Vec<String>,
    /// Every difference, as stable codes (`totals.amount`, `totals.count`, `stock.card`, …).
    pub mismatches: Vec<String>,
}

/// The reconciliation of a shift from its transactions (pure).
pub fn reconcile(
    open: &ShiftOpen,
    from_seq: u64,
    txns: &[Txn],
    counted: StockCounts,
    terminal: Result<TerminalTotals, String>,
    officer: &str,
) -> ShiftClose {
    let mut by_service: BTreeMap<ServiceKind, Total> = BTreeMap::new();
    let mut by_payment: BTreeMap<String, Total> = BTreeMap::new();
    let mut journal = Total { what: "journal".into(), ..Total::default() };
    let mut stock: BTreeMap<Step, (u32, u32)> = BTreeMap::new();
    let (mut held, mut unfinished) = (Vec::new(), Vec::new());
    for t in txns.iter().filter(|t| t.opened_seq > from_seq) {
        if let Some((c, _)) = &t.complete {
            let e = by_service
                .entry(c.service)
                .or_insert_with(|| Total { what: c.service.name().into(), ..Total::default() });
            e.count += 1;
            e.amount += c.total;
        }
        match &t.payment {
            Payment::Approved(a) => {
                let scheme = a.card_name.clone().unwrap_or_else(|| "card".into());
                let e = by_payment
                    .entry(scheme.clone())
                    .or_insert_with(|| Total { what: scheme, ..Total::default() });
                e.count += 1;
                e.amount += a.amount;
                journal.count += 1;
                journal.amount += a.amount;
                if t.complete.is_none() && t.void.is_none() {
                    unfinished.push(t.id().to_owned());
                }
            }
            Payment::Held { .. } | Payment::Unknown { .. } | Payment::Sent { .. } => {
                held.push(t.id().to_owned())
            }
            _ => {}
        }
        for (item, issued, spoiled) in t.stock() {
            let e = stock.entry(item).or_default();
            e.0 += issued;
            e.1 += spoiled;
        }
    }
    let mut mismatches = Vec::new();
    let terminal_error = terminal.as_ref().err().cloned();
    let terminal = terminal.ok();
    match &terminal {
        Some(tt) => {
            if tt.total != journal.amount {
                mismatches.push("totals.amount".to_owned());
            }
            if tt.count != journal.count {
                mismatches.push("totals.count".to_owned());
            }
        }
        None => mismatches.push("totals.terminal_unavailable".to_owned()),
    }
    let stock: Vec<StockRec> = Step::ALL
        .iter()
        .map(|&item| {
            let (issued, spoiled) = stock.get(&item).copied().unwrap_or_default();
            let opening = open.stock.get(item);
            let expected = i64::from(opening) - i64::from(issued) - i64::from(spoiled);
            let counted = counted.get(item);
            let difference = i64::from(counted) - expected;
            if difference != 0 {
                mismatches.push(format!("stock.{}", item.name()));
            }
            StockRec { item, opening, issued, spoiled, expected, counted, difference }
        })
        .collect();
    if !held.is_empty() {
        mismatches.push("payments.held".to_owned());
    }
    ShiftClose {
        txn: open.txn.clone(),
        officer: officer.to_owned(),
        from_seq,
        by_service: by_service.into_values().collect(),
        by_payment: by_payment.into_values().collect(),
        journal,
        terminal,
        terminal_error,
        stock,
        held,
        unfinished,
        mismatches,
    }
}

/// The current shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenShift {
    /// The open record.
    pub open: ShiftOpen,
    /// Its sequence number.
    pub seq: u64,
    /// Its UTC time, microseconds.
    pub time_us: i64,
}

/// Shift open and close over the desk.
pub struct Shifts {
    desk: Arc<Desk>,
    current: Mutex<Option<OpenShift>>,
    last_closed: Mutex<Option<(ShiftClose, OpenShift, i64)>>,
    serial: Mutex<u64>,
}

fn prefix(van_id: &str) -> String {
    format!("{van_id}-S")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn storage(e: impl std::fmt::Display) -> DeskError {
    DeskError::new(
        ErrorClass::Storage,
        "journal.append_failed",
        format!("تعذر التسجيل في السجل: {e}"),
        format!("could not record in the journal: {e}"),
    )
}

impl Shifts {
    /// Finds the open shift (a `shift.open` without its `shift.close`) in the journal.
    pub fn new(desk: Arc<Desk>) -> Result<Shifts, DeskError> {
        let j = desk.journal();
        let ids = j.txn_ids(&prefix(&desk.config().issuer.van_id), 0).map_err(storage)?;
        let mut current = None;
        let mut last_closed = None;
        if let Some(last) = ids.last() {
            let recs = j.txn_records(last).map_err(storage)?;
            let open = recs.iter().find(|r| r.kind == kind::SHIFT_OPEN);
            let close = recs.iter().find(|r| r.kind == kind::SHIFT_CLOSE);
            if let Some(o) = open {
                let os = OpenShift {
                    open: serde_json::from_slice(&o.payload).map_err(storage)?,
                    seq: o.seq,
                    time_us: o.time_us,
                };
                match close {
                    None => current = Some(os),
                    Some(c) => {
                        last_closed =
                            Some((serde_json::from_slice(&c.payload).map_err(storage)?, os, c.time_us))
                    }
                }
            }
        }
        Ok(Shifts {
            desk,
            current: Mutex::new(current),
            last_closed: Mutex::new(last_closed),
            serial: Mutex::new(ids.len() as u64),
        })
    }

    /// The open shift, if any.
    pub fn current(&self) -> Option<OpenShift> {
        lock(&self.current).clone()
    }

    /// The last closed shift's reconciliation.
    pub fn last_closed(&self) -> Option<ShiftClose> {
        lock(&self.last_closed).as_ref().map(|(c, _, _)| c.clone())
    }

    /// Opens a shift: runs every device's self-test and records the stock on board. A device
    /// that fails its self-test is recorded, not fatal: its services wait for it.
    pub async fn open(&self, actor: &Actor, stock: StockCounts) -> Result<OpenShift, DeskError> {
        if let Some(s) = self.current() {
            return Err(DeskError::new(
                ErrorClass::State,
                "shift.already_open",
                format!("الوردية {} مفتوحة بالفعل", s.open.txn),
                format!("shift {} is already open", s.open.txn),
            ));
        }
        let reports = self.desk.manager().self_test().await;
        let self_test =
            reports.iter().map(|r| SelfTestLine { device: r.device.clone(), ok: r.ok }).collect::<Vec<_>>();
        let n = *lock(&self.serial) + 1;
        let id = format!("{}{n:06}", prefix(&self.desk.config().issuer.van_id));
        let open = ShiftOpen { txn: id, officer: actor.id.clone(), stock, self_test };
        let v = serde_json::to_value(&open).map_err(storage)?;
        let a = self.desk.journal().append_async(kind::SHIFT_OPEN, &v).await.map_err(storage)?;
        *lock(&self.serial) = n;
        let s = OpenShift { open, seq: a.seq, time_us: crate::clock::now_utc_us() };
        *lock(&self.current) = Some(s.clone());
        Ok(s)
    }

    /// Closes the shift (a supervisor): the terminal's end-of-day, reconciliation, the record.
    pub async fn close(&self, actor: &Actor, counted: StockCounts) -> Result<ShiftClose, DeskError> {
        if actor.role != Role::Supervisor {
            return Err(DeskError::new(
                ErrorClass::Role,
                "auth.role",
                "إغلاق الوردية يحتاج إلى مشرف",
                "closing a shift needs a supervisor",
            ));
        }
        let Some(open) = self.current() else {
            return Err(DeskError::new(
                ErrorClass::State,
                "shift.not_open",
                "لا توجد وردية مفتوحة",
                "no shift is open",
            ));
        };
        if let Some(t) =
            self.desk.txns(|t| t.opened_seq > open.seq).iter().find(|t| self.desk.is_running(t.id()))
        {
            return Err(DeskError::new(
                ErrorClass::State,
                "shift.service_running",
                format!("المعاملة {} قيد التنفيذ؛ انتظر انتهاءها", t.id()),
                format!("transaction {} is running; wait for it to finish", t.id()),
            ));
        }
        let terminal = match self.desk.manager().device(DeviceId::Payment) {
            None => Err("no payment terminal configured".to_owned()),
            Some(h) => match h
                .submit("end of day", |d, _| match d {
                    crate::devices::manager::Driver::Payment(p) => p.end_of_day(),
                    _ => Err(crate::devices::DeviceError::Unsupported {
                        device: "payment".into(),
                        what: "not a terminal".into(),
                    }),
                })
                .outcome()
                .await
            {
                Outcome::Done(t) => {
                    Ok(TerminalTotals { total: t.total, count: t.count, receipts: t.receipts })
                }
                Outcome::Failed(e) | Outcome::Unknown(e) => Err(e.to_string()),
                Outcome::Cancelled => Err("cancelled".into()),
            },
        };
        let txns = self.desk.txns(|t| t.opened_seq > open.seq);
        let close = reconcile(&open.open, open.seq, &txns, counted, terminal, &actor.id);
        let v = serde_json::to_value(&close).map_err(storage)?;
        self.desk.journal().append_async(kind::SHIFT_CLOSE, &v).await.map_err(storage)?;
        *lock(&self.current) = None;
        *lock(&self.last_closed) = Some((close.clone(), open, crate::clock::now_utc_us()));
        Ok(close)
    }

    /// The last closed shift's report as a PDF (Arabic, Africa/Cairo times).
    pub fn report_pdf(&self, officers: &dyn Fn(&str) -> String) -> Result<Vec<u8>, DeskError> {
        let Some((close, open, closed_us)) = lock(&self.last_closed).clone() else {
            return Err(DeskError::new(
                ErrorClass::NotFound,
                "not_found.shift",
                "لا توجد وردية مغلقة",
                "no closed shift yet",
            ));
        };
        let report = report(&self.desk, &close, &open, closed_us, officers);
        let scenes = documents::shift_report(&report, DocOptions::default()).map_err(storage)?;
        crate::render::output::pdf_of(
            crate::render::output::DocKind::ShiftReport,
            &scenes,
            "vand",
            jiff::Timestamp::now(),
        )
        .map_err(storage)
    }
}

fn cairo(us: i64) -> jiff::civil::DateTime {
    let tz = jiff::tz::TimeZone::get("Africa/Cairo").unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::from_microsecond(us).unwrap_or_default().to_zoned_datetime(tz).datetime()
}

fn report(
    desk: &Desk,
    c: &ShiftClose,
    open: &OpenShift,
    closed_us: i64,
    officers: &dyn Fn(&str) -> String,
) -> ShiftReport {
    let item_ar = |s: Step| match s {
        Step::Card => "كروت رخص فارغة",
        Step::Label => "ملصقات الزجاج",
        Step::Tag => "شرائح الملصق الإلكتروني",
    };
    let service_ar = |name: &str| {
        ServiceKind::ALL.iter().find(|k| k.name() == name).map_or(name.to_owned(), |k| k.name_ar().to_owned())
    };
    let mut names = vec![officers(&open.open.officer)];
    if c.officer != open.open.officer {
        names.push(officers(&c.officer));
    }
    ShiftReport {
        issuer: desk.config().issuer.clone(),
        opened: cairo(open.time_us),
        closed: cairo(closed_us),
        officers: names,
        by_service: c
            .by_service
            .iter()
            .map(|t| TotalLine { label_ar: service_ar(&t.what), count: t.count, piastres: t.amount })
            .collect(),
        by_payment: c
            .by_payment
            .iter()
            .map(|t| TotalLine { label_ar: t.what.clone(), count: t.count, piastres: t.amount })
            .collect(),
        stock: c
            .stock
            .iter()
            .map(|s| StockLine {
                item_ar: item_ar(s.item).into(),
                opening: s.opening,
                issued: s.issued,
                spoiled: s.spoiled,
                counted: s.counted,
            })
            .collect(),
        journal_range: (
            c.from_seq,
            desk.txns(|_| true).iter().map(|t| t.last_seq).max().unwrap_or(c.from_seq),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_and_totals_differences_are_flagged() {
        let open = ShiftOpen {
            txn: "S1".into(),
            officer: "1".into(),
            stock: StockCounts { cards: 10, labels: 5, tags: 5 },
            self_test: vec![],
        };
        let none = reconcile(
            &open,
            0,
            &[],
            StockCounts { cards: 10, labels: 5, tags: 5 },
            Ok(TerminalTotals { total: 0, count: 0, receipts: None }),
            "9",
        );
        assert!(none.mismatches.is_empty(), "{:?}", none.mismatches);
        let off = reconcile(
            &open,
            0,
            &[],
            StockCounts { cards: 9, labels: 5, tags: 5 },
            Ok(TerminalTotals { total: 100, count: 1, receipts: None }),
            "9",
        );
        assert_eq!(off.mismatches, ["totals.amount", "totals.count", "stock.card"]);
        assert_eq!(off.stock[0].difference, -1);
        let no_terminal =
            reconcile(&open, 0, &[], StockCounts { cards: 10, labels: 5, tags: 5 }, Err("down".into()), "9");
        assert_eq!(no_terminal.mismatches, ["totals.terminal_unavailable"]);
    }
}
