//! Every service of the training van's day through the local HTTP API, against the simulators:
//! each sample booking is served (inspection and overrides where its dossier needs them), bad
//! input is refused with the field named and nothing changed, the block list refuses a stolen
//! vehicle, and the shift closes with the terminal's totals equal to the journal's and the stock
//! balancing; then the journal is checked against the simulators' ledger.

mod common;

use common::rig::{Rig, check_against_ledger};
use serde_json::{Value, json};

fn request_for(booking: &Value, schedule: &Value) -> Value {
    let b = &booking["booking"];
    let d = &b["dossier"];
    let service = b["service"].as_str().unwrap();
    let mut req = json!({"service": service, "booking_id": b["id"], "citizen": b["citizen"]});
    if !d["vehicle"].is_null() && service != "supplies" {
        req["vehicle"] = d["vehicle"].clone();
    }
    match service {
        "driving_licence_replacement" => req["replacement"] = json!("lost"),
        "vehicle_licence_replacement" => req["replacement"] = json!("damaged"),
        "driving_licence_update" => req["changes"] = json!({"address": "١٢ شارع التحرير، الدقي"}),
        "supplies" => req["supplies"] = json!([{"code": schedule["supplies"][0]["code"], "qty": 2}]),
        _ => {}
    }
    req
}

#[test]
fn the_training_day_is_served_end_to_end_through_the_api() {
    let mut rig = Rig::new();
    rig.start(None);
    let t = rig.login("1001", "1234");
    let s = rig.login("9001", "9999");
    // No service before the shift is open.
    let (_, bookings) = rig.call("GET", "/bookings", &t, None);
    let bookings = bookings.as_array().unwrap().clone();
    assert!(bookings.len() >= 9, "a day of sample bookings: {bookings:?}");
    let (_, schedule) = rig.call("GET", "/schedule", &t, None);
    let first = request_for(&bookings[0], &schedule);
    let (code, v) = rig.call("POST", "/services", &t, Some(&first));
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("state.no_shift")), "{v}");
    let (code, v) =
        rig.call("POST", "/shift/open", &t, Some(&json!({"stock": {"cards": 40, "labels": 30, "tags": 30}})));
    assert!((200..300).contains(&code), "{v}");

    // Bad input changes nothing and names the field (Eastern Arabic digits are fine, a 30 February is not).
    let mut bad = first.clone();
    bad["citizen"]["national_id"] = json!("٢٩٠٠٢٣٠٠١٠١٢٣٤");
    let (code, v) = rig.call("POST", "/services", &t, Some(&bad));
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"]["field"], "citizen.national_id", "{v}");
    let (_, open) = rig.call("GET", "/services?state=today", &t, None);
    assert_eq!(open.as_array().unwrap().len(), 0, "a refused request opened nothing");

    for b in &bookings {
        let id = b["booking"]["id"].as_str().unwrap();
        let req = request_for(b, &schedule);
        let (code, mut v) = rig.call("POST", "/services", &t, Some(&req));
        assert_eq!(code, 201, "{id}: {v}");
        let txn = v["txn"].as_str().unwrap().to_owned();
        if v["state"] == "open" {
            let checklist: serde_json::Map<String, Value> = schedule["inspection_checklist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["code"].as_str().unwrap().to_owned(), json!(true)))
                .collect();
            let body = json!({"vin_matches": true, "engine_matches": true, "checklist": checklist});
            let (code, w) = rig.call("POST", &format!("/services/{txn}/inspection"), &t, Some(&body));
            assert_eq!(code, 200, "{id}: {w}");
            v = w;
        }
        if v["state"] == "refused" {
            for r in v["refusals"].as_array().unwrap().clone() {
                assert_eq!(r["overridable"], true, "{id}: a sample booking refused for good: {r}");
                // An officer may not override; a supervisor may, with a reason.
                let body = json!({"code": r["code"], "reason": "paid at the van (training)"});
                let (code, _) = rig.call("POST", &format!("/services/{txn}/override"), &t, Some(&body));
                assert_eq!(code, 403, "{id}");
                let (code, w) = rig.call("POST", &format!("/services/{txn}/override"), &s, Some(&body));
                assert_eq!(code, 200, "{id}: {w}");
            }
        }
        let v = rig.finish(&t, &txn);
        assert_eq!(v["state"], "completed", "{id}: {v}");
        if b["booking"]["service"] == "e_sticker_replacement" {
            // The damaged sticker's TID is void from now on; the new one is bound to the vehicle.
            let (_, records) = rig.call("GET", &format!("/services/{txn}/records"), &t, None);
            let payload = |kind: &str| {
                records
                    .as_array()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|r| r["kind"] == kind)
                    .map(|r| serde_json::from_str::<Value>(r["payload"].as_str().unwrap()).unwrap())
            };
            let old = b["booking"]["dossier"]["sticker_tid"].as_str().unwrap();
            assert_eq!(payload("service.complete").unwrap()["replaces_tid"], old, "{records}");
            let new = payload("tag.result").unwrap();
            assert!(new["tid"].as_str().is_some_and(|t| t != old), "{new}");
        }
        // The booking follows its transaction (right after the completion record).
        let started = std::time::Instant::now();
        let bv = loop {
            let (_, bv) = rig.call("GET", &format!("/bookings/{id}"), &t, None);
            if bv["state"] == "done" || started.elapsed() > std::time::Duration::from_secs(5) {
                break bv;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(bv["state"], "done", "{id}: {bv}");
        let (code, pdf) = rig.raw(&format!("/services/{txn}/receipt?format=roll80"), &t);
        assert_eq!(code, 200, "{id}");
        assert!(pdf.starts_with(b"%PDF"), "{id}: receipt is not a PDF");
    }

    // The block list: a booking for a stolen vehicle is refused, and no supervisor can override it.
    let mut stolen = bookings[0]["booking"].clone();
    stolen["id"] = json!("B-STOLEN-1");
    stolen["dossier"]["vehicle"]["plate"] = json!({"letters": mtu::office::sample::STOLEN_PLATE_LETTERS, "digits": mtu::office::sample::STOLEN_PLATE_DIGITS});
    stolen["dossier"]["vehicle"]["vin"] = json!(mtu::office::sample::STOLEN_VIN);
    let bundle = json!({"bundle": "bookings", "version": 99_999_999, "van_id": "MTU-SIM-0001",
                        "issued_at": jiff::Timestamp::now(), "items": [stolen]});
    let (code, v) = rig.call("POST", "/import", &s, Some(&bundle));
    assert_eq!(code, 200, "{v}");
    let req = request_for(&json!({"booking": stolen}), &schedule);
    let (code, v) = rig.call("POST", "/services", &t, Some(&req));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["state"], "refused", "{v}");
    let blocked = v["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "prereq.vehicle_blocked")
        .unwrap()
        .clone();
    assert_eq!(blocked["overridable"], false);
    let txn = v["txn"].as_str().unwrap();
    let (code, _) = rig.call(
        "POST",
        &format!("/services/{txn}/override"),
        &s,
        Some(&json!({"code": "prereq.vehicle_blocked", "reason": "x"})),
    );
    assert!((400..500).contains(&code), "{code}");
    let (code, _) = rig.call(
        "POST",
        &format!("/services/{txn}/cancel"),
        &t,
        Some(&json!({"reason": "stolen vehicle: police informed"})),
    );
    assert_eq!(code, 200);

    // Shift close: the stock the shift view says is left is what is counted.
    let (_, shift) = rig.call("GET", "/shift", &t, None);
    let left = |k: &str| {
        shift["stock_open"][k].as_i64().unwrap()
            - shift["issued"][k].as_i64().unwrap()
            - shift["spoiled"][k].as_i64().unwrap()
    };
    let counted = json!({"cards": left("cards"), "labels": left("labels"), "tags": left("tags")});
    let (code, _) = rig.call("POST", "/shift/close", &t, Some(&json!({"counted": counted})));
    assert_eq!(code, 403, "officers cannot close a shift");
    let (code, report) = rig.call("POST", "/shift/close", &s, Some(&json!({"counted": counted})));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["payments_match"], true, "{report}");
    assert_eq!(report["terminal"], report["journal"], "{report}");
    assert_eq!(report["mismatches"], json!([]), "{report}");
    rig.stop();
    check_against_ledger(&rig);
}
