use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A transaction built record by record, as the shell would journal it.
struct T {
    txn: Txn,
    seq: u64,
}

fn citizen() -> serde_json::Value {
    json!({"national_id": "29001011234567", "name_ar": "أحمد"})
}

fn vehicle() -> serde_json::Value {
    json!({"plate": {"letters": "أ ب ج", "digits": "1234"}, "category": "private", "vin": "JHMCM56557C404453",
           "engine_no": "G4FC123456", "make_model": "Hyundai", "owner_national_id": "29001011234567"})
}

fn approval(amount: u64, receipt: u32) -> serde_json::Value {
    json!({"amount": amount, "trace": 1, "receipt_no": receipt, "terminal_id": 1, "time": null, "date": null,
           "masked_pan": null, "card_name": null, "aid": null, "result_code": 0, "receipt_lines": []})
}

impl T {
    fn open(service: &str) -> T {
        let mut req = json!({"service": service, "citizen": citizen()});
        if service != "driving_licence_renewal" {
            req["vehicle"] = vehicle();
        }
        let open = json!({"txn": "T1", "officer": "1001", "request": req, "dossier_source": "booking"});
        let txn = Txn::fold([(1, 0, kind::SERVICE_OPEN, open.to_string().as_bytes())]).unwrap();
        T { txn, seq: 1 }
    }
    fn rec(&mut self, k: &str, mut p: serde_json::Value) -> Result<(), FoldError> {
        p["txn"] = json!("T1");
        self.seq += 1;
        self.txn.apply(self.seq, k, p.to_string().as_bytes())
    }
    fn r(&mut self, k: &str, p: serde_json::Value) -> &mut Self {
        self.rec(k, p).unwrap();
        self
    }
    fn quote(&mut self, total: u64) -> &mut Self {
        self.r(
            kind::SERVICE_QUOTE,
            json!({"officer": "1001", "schedule_version": 1, "lines": [
            {"code": "fee", "label_ar": "رسم", "label_en": "fee", "amount": total}], "total": total}),
        )
    }
    fn pay_intent(&mut self, attempt: u32) -> &mut Self {
        self.r(
            kind::PAYMENT_INTENT,
            json!({"officer": "1001", "amount": 5000, "receipt_before": 7, "attempt": attempt}),
        )
    }
    fn pay_result(&mut self, attempt: u32, outcome: &str) -> &mut Self {
        let mut p = json!({"attempt": attempt, "outcome": outcome, "amount": 5000});
        if outcome == "approved" {
            p["approval"] = approval(5000, 8);
        }
        self.r(kind::PAYMENT_RESULT, p)
    }
    fn step(&mut self, step: Step, attempt: u32, outcome: &str, stock: &str) -> &mut Self {
        let (i, r) = step.kinds();
        self.r(i, json!({"officer": "1001", "attempt": attempt}));
        self.r(r, json!({"attempt": attempt, "outcome": outcome, "stock": stock}))
    }
}

#[test]
fn vehicle_licence_renewal_happy_path() {
    let mut t = T::open("vehicle_licence_renewal");
    assert_eq!(t.txn.next(), Next::Abandon, "no quote: the open was interrupted");
    t.quote(5000);
    assert_eq!(t.txn.next(), Next::Pay { attempt: 1, amount: 5000 });
    assert_eq!(t.txn.state(), State::Quoted);
    t.pay_intent(1);
    // A crash here: the purchase is recovered by asking the terminal, never sent again.
    assert_eq!(t.txn.next(), Next::RecoverPayment { attempt: 1, amount: 5000, receipt_before: Some(7) });
    t.pay_result(1, "approved");
    assert_eq!(t.txn.next(), Next::Do { step: Step::Card, attempt: 1 });
    t.step(Step::Card, 1, "done", "issued");
    assert_eq!(t.txn.next(), Next::Complete);
    t.r(
        kind::SERVICE_COMPLETE,
        json!({"officer": "1001", "service": "vehicle_licence_renewal", "total": 5000, "receipt_no": "T1"}),
    );
    assert_eq!(t.txn.next(), Next::Wait(Waiting::Completed));
    assert!(t.txn.is_final());
    assert_eq!(t.txn.stock(), vec![(Step::Card, 1, 0)]);
}

#[test]
fn unknown_payment_is_recovered_not_resent() {
    let mut t = T::open("e_sticker_issue");
    t.quote(5000).pay_intent(1).pay_result(1, "unknown");
    assert_eq!(t.txn.state(), State::PaymentUnknown);
    assert!(matches!(t.txn.next(), Next::RecoverPayment { attempt: 1, .. }));
    // The terminal's last receipt is the one before: nothing charged; a new attempt may go.
    t.r(kind::PAYMENT_RECOVERY, json!({"attempt": 1, "outcome": "not_charged"}));
    assert_eq!(t.txn.next(), Next::Pay { attempt: 2, amount: 5000 });
    t.pay_intent(2).pay_result(2, "unknown");
    t.r(kind::PAYMENT_RECOVERY, json!({"attempt": 2, "outcome": "approved", "approval": approval(5000, 8)}));
    assert_eq!(t.txn.next(), Next::Do { step: Step::Tag, attempt: 1 });
}

#[test]
fn held_payment_is_never_charged_again() {
    let mut t = T::open("inspection");
    t.quote(5000).pay_intent(1).pay_result(1, "unknown");
    t.r(kind::PAYMENT_RECOVERY, json!({"attempt": 1, "outcome": "unknown", "detail": "no answer"}));
    t.r(kind::PAYMENT_HOLD, json!({"reason": "terminal unreachable", "amount": 5000}));
    // Proceeding again asks the terminal again; it never sends a purchase.
    assert!(matches!(t.txn.next(), Next::RecoverPayment { attempt: 1, .. }));
    assert_eq!(t.txn.state(), State::Held);
    // A cancel is refused by the fold: the citizen may have paid.
    assert!(t.rec(kind::SERVICE_CANCEL, json!({"officer": "1001", "reason": "x"})).is_err());
    // A later recovery that finds the charge releases it.
    t.r(kind::PAYMENT_RECOVERY, json!({"attempt": 1, "outcome": "approved", "approval": approval(5000, 8)}));
    assert_eq!(t.txn.next(), Next::Inspect);
}

#[test]
fn declined_card_may_pay_again() {
    let mut t = T::open("driving_licence_renewal");
    t.quote(3000).pay_intent(1).pay_result(1, "declined");
    assert_eq!(t.txn.next(), Next::Pay { attempt: 2, amount: 3000 });
}

#[test]
fn refusal_waits_for_an_override() {
    let mut t = T::open("vehicle_licence_renewal");
    t.r(
        kind::SERVICE_REFUSAL,
        json!({"officer": "1001", "refusals": [
        {"code": "prereq.unpaid_fines", "ar": "غرامات", "en": "fines", "overridable": true}]}),
    );
    t.quote(5000);
    assert_eq!(t.txn.state(), State::Refused);
    assert!(
        t.rec(kind::SERVICE_OVERRIDE, json!({"officer": "9001", "code": "prereq.other", "reason": "r"}))
            .is_err()
    );
    t.r(
        kind::SERVICE_OVERRIDE,
        json!({"officer": "9001", "code": "prereq.unpaid_fines", "reason": "paid at the van"}),
    );
    assert_eq!(t.txn.next(), Next::Pay { attempt: 1, amount: 5000 });
}

#[test]
fn failed_and_unknown_steps_are_retried_and_spoil_stock() {
    let mut t = T::open("e_sticker_issue");
    t.quote(5000).pay_intent(1).pay_result(1, "approved");
    t.step(Step::Tag, 1, "failed", "none");
    assert_eq!(t.txn.next(), Next::Do { step: Step::Tag, attempt: 2 });
    t.step(Step::Tag, 2, "unknown", "spoiled");
    assert_eq!(t.txn.next(), Next::Do { step: Step::Tag, attempt: 3 });
    t.step(Step::Tag, 3, "done", "issued");
    assert_eq!(t.txn.next(), Next::Do { step: Step::Label, attempt: 1 });
    // An intent without a result (crash) is resolved first.
    t.r(kind::LABEL_INTENT, json!({"officer": "1001", "attempt": 1}));
    assert_eq!(t.txn.next(), Next::ResolveStep { step: Step::Label, attempt: 1 });
    t.r(
        kind::LABEL_RESULT,
        json!({"attempt": 1, "outcome": "unknown", "stock": "spoiled", "recovered": true}),
    );
    t.step(Step::Label, 2, "done", "issued");
    assert_eq!(t.txn.next(), Next::Complete);
    assert_eq!(t.txn.stock(), vec![(Step::Tag, 1, 1), (Step::Label, 1, 1)]);
}

#[test]
fn void_of_a_paid_service_reverses_once() {
    let mut t = T::open("vehicle_licence_renewal");
    t.quote(5000).pay_intent(1).pay_result(1, "approved");
    t.step(Step::Card, 1, "done", "issued");
    t.r(kind::SERVICE_VOID, json!({"officer": "9001", "reason": "wrong vehicle"}));
    t.r(kind::STOCK_SPOILED, json!({"officer": "9001", "item": "card", "reason": "void"}));
    assert_eq!(t.txn.next(), Next::Reverse { attempt: 1, receipt_no: 8, amount: 5000 });
    assert_eq!(t.txn.state(), State::Voiding);
    t.r(
        kind::PAYMENT_REVERSAL_INTENT,
        json!({"officer": "9001", "receipt_no": 8, "amount": 5000, "attempt": 1}),
    );
    assert_eq!(t.txn.next(), Next::ResolveReversal { attempt: 1, amount: 5000, receipt_before: None });
    t.r(kind::PAYMENT_REVERSAL, json!({"attempt": 1, "outcome": "approved", "approval": approval(5000, 9)}));
    assert_eq!(t.txn.next(), Next::Wait(Waiting::Voided));
    assert_eq!(t.txn.stock(), vec![(Step::Card, 0, 1)]);
}

#[test]
fn failed_inspection_completes_without_documents() {
    let mut t = T::open("inspection");
    t.quote(2000);
    assert_eq!(t.txn.next(), Next::Inspect);
    t.r(
        kind::SERVICE_INSPECTION,
        json!({"officer": "1001", "vin_matches": false, "engine_matches": true,
        "checklist": {"brakes": true}, "passed": false, "reasons": ["vin_mismatch"]}),
    );
    t.pay_intent(1).pay_result(1, "approved");
    assert_eq!(t.txn.next(), Next::Complete);
}

#[test]
fn out_of_order_records_are_refused() {
    let mut t = T::open("vehicle_licence_renewal");
    assert!(t.rec(kind::PAYMENT_RESULT, json!({"attempt": 1, "outcome": "approved", "amount": 1})).is_err());
    t.quote(5000).pay_intent(1);
    assert!(t.rec(kind::PAYMENT_INTENT, json!({"officer": "1", "amount": 5000, "attempt": 2})).is_err());
    assert!(
        t.rec(kind::TAG_INTENT, json!({"officer": "1", "attempt": 1})).is_err(),
        "no tag in this service"
    );
    assert!(t.rec("device.job", json!({})).is_err());
}

#[derive(Debug, Clone)]
enum Ev {
    StepResult(u8),
    Crash,
    Reprint,
    Void,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![(0u8..3).prop_map(Ev::StepResult), Just(Ev::Crash), Just(Ev::Reprint), Just(Ev::Void),]
}

proptest! {
    /// Once approved, whatever the devices do, the machine never asks for another purchase.
    #[test]
    fn never_a_second_charge(events in proptest::collection::vec(ev(), 0..40)) {
        let mut t = T::open("e_sticker_issue");
        t.quote(5000).pay_intent(1).pay_result(1, "approved");
        for e in events {
            let next = t.txn.next();
            prop_assert!(!matches!(next, Next::Pay { .. } | Next::RecoverPayment { .. }), "{next:?}");
            match (e, next) {
                (Ev::StepResult(o), Next::Do { step, attempt }) => {
                    let (outcome, stock) = [("done", "issued"), ("failed", "none"), ("unknown", "spoiled")][o as usize];
                    t.step(step, attempt, outcome, stock);
                }
                (Ev::Crash, Next::Do { step, attempt }) => {
                    t.r(step.kinds().0, json!({"officer": "1001", "attempt": attempt}));
                }
                (_, Next::ResolveStep { step, attempt }) => {
                    t.r(step.kinds().1, json!({"attempt": attempt, "outcome": "unknown", "stock": "spoiled"}));
                }
                (_, Next::Complete) => {
                    t.r(kind::SERVICE_COMPLETE, json!({"officer": "1", "service": "e_sticker_issue", "total": 5000, "receipt_no": "T1"}));
                }
                (Ev::Reprint, Next::Wait(Waiting::Completed)) => {
                    t.r(kind::SERVICE_REPRINT, json!({"officer": "9001", "what": "label", "reason": "smudged", "number": 1, "spoils_previous": true}));
                }
                (Ev::Void, Next::Do { .. } | Next::Wait(Waiting::Completed)) if t.txn.void.is_none() => {
                    t.r(kind::SERVICE_VOID, json!({"officer": "9001", "reason": "r"}));
                }
                (_, Next::Reverse { attempt, .. }) => {
                    t.r(kind::PAYMENT_REVERSAL_INTENT, json!({"officer": "9001", "receipt_no": 8, "amount": 5000, "attempt": attempt}));
                    t.r(kind::PAYMENT_REVERSAL, json!({"attempt": attempt, "outcome": "approved", "approval": approval(5000, 9)}));
                }
                _ => {}
            }
            // Stock: at most one item issued per step; every attempt accounted for.
            for s in t.txn.steps.values() {
                prop_assert!(s.issued <= 1);
            }
        }
    }
}
