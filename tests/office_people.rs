//! office.db (bundles, bookings, booking states), officers (PINs, lockout) and sessions, and the
//! training van's sample day.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use mtu::office::model::{BookingState, Role, ServiceKind};
use mtu::office::people::{
    LockoutPolicy, LoginError, People, SessionPolicy, Sessions, hash_pin_salted, hash_pin_with, verify_pin,
};
use mtu::office::refdata::{BundleKind, RefData, RefDataError, ServiceHours};
use mtu::office::sample;
use serde_json::{Value, json};

const VAN: &str = "MTU-SIM-0001";

fn today() -> Date {
    Date::new(2026, 12, 1).unwrap()
}

fn cairo() -> TimeZone {
    TimeZone::get("Africa/Cairo").unwrap()
}

/// 09:00 Cairo on the sample day (before service hours).
fn now() -> Timestamp {
    "2026-12-01T07:00:00Z".parse().unwrap()
}

fn open(dir: &Path) -> RefData {
    RefData::open(&dir.join("office.db"), VAN, ServiceHours::cairo_default()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn sample_bookings() -> Value {
    sample::bookings(VAN, today(), &cairo(), now())
}

/// A cheap Argon2id hash so tests stay fast (verification takes the parameters from the hash).
fn cheap(pin: &str) -> String {
    hash_pin_with(pin, 64, 1, 1).unwrap()
}

fn roster(version: u64, officers: Value) -> Value {
    json!({"bundle": "roster", "version": version, "van_id": VAN, "issued_at": "2026-12-01T05:00:00Z",
           "officers": officers})
}

fn cheap_roster() -> Value {
    roster(
        1,
        json!([
            {"id": "1001", "name_ar": "أحمد", "name_en": "Ahmed", "role": "officer", "pin_hash": cheap("1234")},
            {"id": "9001", "name_ar": "خالد", "name_en": "Khaled", "role": "supervisor", "pin_hash": cheap("9999")},
            {"id": "1003", "name_ar": "سمير", "name_en": "Samir", "role": "officer", "pin_hash": cheap("4321"),
             "active": false}
        ]),
    )
}

#[test]
fn the_sample_day_applies_once_and_covers_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let bundle = bytes(&sample_bookings());
    let a = db.apply(&bundle, now()).unwrap();
    assert_eq!((a.bundle, a.version, a.items, a.skipped), (BundleKind::Bookings, 1, 11, 0));
    assert_eq!(a.sha256, {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bundle))
    });
    // The same bookings again: every one skipped, nothing lost.
    let again = db.apply(&bundle, now()).unwrap();
    assert_eq!((again.items, again.skipped), (0, 11));

    let day = db.bookings_on(today()).unwrap();
    assert_eq!(day.len(), 11);
    assert_eq!(day[0].booking.id, "B-20261201-01");
    assert!(day.windows(2).all(|w| w[0].booking.slot.start < w[1].booking.slot.start));
    assert!(day.iter().all(|v| v.state == BookingState::Assigned && v.txn.is_none()));
    for kind in ServiceKind::ALL {
        assert!(day.iter().any(|v| v.booking.service == kind), "no sample booking for {kind:?}");
    }
    // 10:00 Cairo (UTC+2 in December) is 08:00 UTC.
    assert_eq!(day[0].booking.slot.start.to_string(), "2026-12-01T08:00:00Z");
    assert!(db.bookings_on(Date::new(2026, 12, 2).unwrap()).unwrap().is_empty());
    assert_eq!(
        db.booking("B-20261201-05").unwrap().unwrap().booking.dossier.unwrap().sticker_tid.as_deref(),
        Some("E2801160200074CF085B0B13")
    );

    // Roster and block list: applied once; the same version again is stale.
    let r = bytes(&sample::roster(VAN, now()).unwrap());
    assert_eq!(db.apply(&r, now()).unwrap().items, 3);
    assert!(matches!(
        db.apply(&r, now()),
        Err(RefDataError::StaleVersion { bundle: BundleKind::Roster, .. })
    ));
    let b = bytes(&sample::blocklist(VAN, now()));
    assert_eq!(db.apply(&b, now()).unwrap().items, 1);
    let (v, body) = db.blocklist_json().unwrap().unwrap();
    assert_eq!(v, 1);
    assert!(body.contains(sample::STOLEN_VIN));
    // The stolen vehicle is in no booking.
    for v in &day {
        let veh = v.booking.dossier.as_ref().and_then(|d| d.vehicle.as_ref());
        assert!(veh.is_none_or(
            |veh| veh.vin != sample::STOLEN_VIN && veh.plate.digits != sample::STOLEN_PLATE_DIGITS
        ));
    }
    assert_eq!(
        db.officers().unwrap().iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["1001", "1002", "9001"]
    );
}

#[test]
fn sample_ids_follow_the_national_id_rules_and_vins_have_no_i_o_q() {
    let v = sample_bookings();
    for item in v["items"].as_array().unwrap() {
        let nid = item["citizen"]["national_id"].as_str().unwrap();
        assert_eq!(nid.len(), 14);
        assert!(nid.bytes().all(|b| b.is_ascii_digit()));
        let century = match &nid[..1] {
            "2" => 1900,
            "3" => 2000,
            c => panic!("century digit {c}"),
        };
        let y: i16 = nid[1..3].parse().unwrap();
        let birth = Date::new(century + y, nid[3..5].parse().unwrap(), nid[5..7].parse().unwrap()).unwrap();
        assert!(birth < today());
        let gov: u8 = nid[7..9].parse().unwrap();
        assert!(
            [
                1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31, 32,
                33, 34, 35, 88
            ]
            .contains(&gov)
        );
        if let Some(veh) = item["dossier"]["vehicle"].as_object() {
            let vin = veh["vin"].as_str().unwrap();
            assert_eq!(vin.len(), 17, "{vin}");
            assert!(
                vin.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"IOQ".contains(&b))),
                "{vin}"
            );
            let letters = veh["plate"]["letters"].as_str().unwrap();
            assert!(
                letters.split(' ').all(|l| l.chars().count() == 1
                    && ('\u{0621}'..='\u{064A}').contains(&l.chars().next().unwrap()))
            );
        }
    }
}

#[test]
fn a_higher_booking_version_replaces_the_data_but_keeps_the_vans_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.apply(&bytes(&sample_bookings()), now()).unwrap();
    let id = "B-20261201-03";
    db.set_booking_state(id, BookingState::Assigned, BookingState::Arrived, None, now()).unwrap();
    db.set_booking_state(id, BookingState::Arrived, BookingState::InService, Some("T-1"), now()).unwrap();

    let mut v = sample_bookings();
    let items = v["items"].as_array_mut().unwrap();
    items[2]["version"] = json!(2);
    items[2]["notes"] = json!("الموعد مؤكد");
    items[3]["notes"] = json!("same version: ignored");
    v["version"] = json!(2);
    let a = db.apply(&bytes(&v), now()).unwrap();
    assert_eq!((a.items, a.skipped), (1, 10));
    let b = db.booking(id).unwrap().unwrap();
    assert_eq!((b.booking.version, b.booking.notes.as_str()), (2, "الموعد مؤكد"));
    assert_eq!((b.state, b.txn.as_deref()), (BookingState::InService, Some("T-1")));
    assert_eq!(db.booking("B-20261201-04").unwrap().unwrap().booking.notes, "");
}

#[test]
fn bookings_outside_service_hours_refuse_the_whole_bundle_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut v = sample_bookings();
    let items = v["items"].as_array_mut().unwrap();
    // 22:30–23:00 Cairo, and 09:00–09:30 Cairo.
    items[1]["slot"] = json!({"start": "2026-12-01T20:30:00Z", "end": "2026-12-01T21:00:00Z"});
    items[6]["slot"] = json!({"start": "2026-12-01T07:00:00Z", "end": "2026-12-01T07:30:00Z"});
    let Err(RefDataError::BadBookings(bad)) = db.apply(&bytes(&v), now()) else { panic!("accepted") };
    let ids: Vec<_> = bad.iter().map(|r| r.booking.as_str()).collect();
    assert_eq!(ids, ["B-20261201-02", "B-20261201-07"]);
    assert_eq!(bad[0].error.code, "booking.outside_hours");
    assert_eq!(bad[0].error.field, "items[1].slot");
    assert!(bad[0].error.en.contains("2026-12-01 22:30"), "{}", bad[0].error.en);
    assert!(bad[1].error.en.contains("10:00–22:00"), "{}", bad[1].error.en);
    // Changes nothing.
    assert!(db.bookings_on(today()).unwrap().is_empty());
    assert_eq!(db.version(BundleKind::Bookings).unwrap(), None);

    // A slot ending exactly at closing is inside; one running past it is not.
    let mut v = sample_bookings();
    v["items"][0]["slot"] = json!({"start": "2026-12-01T19:30:00Z", "end": "2026-12-01T20:00:00Z"});
    db.apply(&bytes(&v), now()).unwrap();
    let mut v = sample_bookings();
    v["items"][0]["version"] = json!(2);
    v["items"][0]["slot"] = json!({"start": "2026-12-01T19:30:00Z", "end": "2026-12-01T20:00:01Z"});
    assert!(matches!(db.apply(&bytes(&v), now()), Err(RefDataError::BadBookings(_))));
}

#[test]
fn summer_time_is_taken_from_the_tz_database() {
    // 1 July 2026: Cairo is UTC+3 (DST); 07:30 UTC is 10:30 local, 06:30 UTC is 09:30.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let summer = Date::new(2026, 7, 1).unwrap();
    let v = sample::bookings(VAN, summer, &cairo(), now());
    assert_eq!(v["items"][0]["slot"]["start"], "2026-07-01T07:00:00Z");
    db.apply(&bytes(&v), now()).unwrap();
    assert_eq!(db.bookings_on(summer).unwrap().len(), 11);
}

#[test]
fn duplicate_ids_wrong_van_and_malformed_bookings_are_refused_with_where() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut v = sample_bookings();
    v["items"][4]["id"] = json!("B-20261201-01");
    let Err(RefDataError::BadBookings(bad)) = db.apply(&bytes(&v), now()) else { panic!() };
    assert_eq!((bad[0].booking.as_str(), bad[0].error.code.as_str()), ("B-20261201-01", "booking.duplicate"));

    let mut v = sample_bookings();
    v["van_id"] = json!("MTU-CAI-0002");
    let e = db.apply(&bytes(&v), now()).unwrap_err();
    assert_eq!(e.code(), "bundle.wrong_van");
    assert!(e.to_string().contains("MTU-CAI-0002"));

    let mut v = sample_bookings();
    v["items"][1]["slot"]["start"] = json!("half past ten");
    match db.apply(&bytes(&v), now()).unwrap_err() {
        RefDataError::Malformed { path, booking, .. } => {
            assert_eq!(path, "items[1].slot.start");
            assert_eq!(booking.as_deref(), Some("B-20261201-02"));
        }
        e => panic!("{e}"),
    }
    let e = db.apply(b"{\"bundle\":\"menu\",\"version\":1,\"van_id\":\"MTU-SIM-0001\",\"issued_at\":\"2026-12-01T00:00:00Z\"}", now())
        .unwrap_err();
    assert!(e.to_string().contains("unknown bundle \"menu\""), "{e}");
    assert!(matches!(db.apply(b"[1,2", now()), Err(RefDataError::Malformed { .. })));
    assert!(db.bookings_on(today()).unwrap().is_empty());
}

#[test]
fn schedule_versions_only_go_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let sched = |v: u64| {
        bytes(&json!({"bundle": "schedule", "version": v, "van_id": VAN, "issued_at": "2026-12-01T05:00:00Z",
                      "schedule": {"version": v, "currency": "EGP"}}))
    };
    db.apply(&sched(2), now()).unwrap();
    for stale in [1, 2] {
        let e = db.apply(&sched(stale), now()).unwrap_err();
        assert_eq!(e.code(), "bundle.stale_version");
        assert!(matches!(e, RefDataError::StaleVersion { version, current: 2, .. } if version == stale));
    }
    db.apply(&sched(3), now()).unwrap();
    let (v, body) = db.schedule_json().unwrap().unwrap();
    assert_eq!(v, 3);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["version"], 3);
    // A prepared bundle that went stale before commit writes nothing.
    let p4 = db.prepare(&sched(4)).unwrap();
    db.apply(&sched(5), now()).unwrap();
    assert!(matches!(db.commit(&p4, now()), Err(RefDataError::Changed)));
    assert_eq!(db.schedule_json().unwrap().unwrap().0, 5);
    let e = db
        .apply(&bytes(&json!({"bundle": "schedule", "version": 9, "van_id": VAN, "issued_at": "2026-12-01T05:00:00Z"})), now())
        .unwrap_err();
    assert!(e.to_string().contains("\"schedule\""), "{e}");
}

#[test]
fn booking_states_follow_the_allowed_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.apply(&bytes(&sample_bookings()), now()).unwrap();
    let id = "B-20261201-01";
    use BookingState::*;
    assert!(matches!(
        db.set_booking_state(id, Assigned, Done, None, now()),
        Err(RefDataError::NotAllowed { from: Assigned, to: Done, .. })
    ));
    assert!(matches!(
        db.set_booking_state(id, Arrived, InService, None, now()),
        Err(RefDataError::WrongState { expected: Arrived, actual: Assigned, .. })
    ));
    assert!(matches!(
        db.set_booking_state("B-x", Assigned, Arrived, None, now()),
        Err(RefDataError::UnknownBooking(_))
    ));
    let later = now().checked_add(SignedDuration::from_hours(2)).unwrap();
    let v = db.set_booking_state(id, Assigned, Arrived, None, later).unwrap();
    assert_eq!((v.state, v.state_changed_at), (Arrived, later));
    let v = db.set_booking_state(id, Arrived, InService, Some("T-MTU-SIM-0001-000001"), later).unwrap();
    assert_eq!(v.txn.as_deref(), Some("T-MTU-SIM-0001-000001"));
    // Back to arrived (the transaction was cancelled): the transaction is cleared.
    let v = db.set_booking_state(id, InService, Arrived, None, later).unwrap();
    assert_eq!(v.txn, None);
    db.set_booking_state(id, Arrived, InService, Some("T-MTU-SIM-0001-000002"), later).unwrap();
    let v = db.set_booking_state(id, InService, Done, None, later).unwrap();
    assert_eq!((v.state, v.txn.as_deref()), (Done, Some("T-MTU-SIM-0001-000002")));
    let e = db.set_booking_state(id, Done, InService, None, later).unwrap_err();
    assert_eq!(e.code(), "state.booking_transition");
    assert!(e.field_errors()[0].ar.contains("تمت الخدمة"));
    // The state survives a reopen.
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.booking(id).unwrap().unwrap().state, Done);
}

#[test]
fn office_db_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.apply(&bytes(&cheap_roster()), now()).unwrap();
    for file in ["office.db", "office.db-wal", "office.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[test]
fn rosters_with_plain_or_malformed_pins_are_refused_naming_the_officer() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let argon2i = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    let huge = "$argon2id$v=19$m=4194304,t=2,p=1$bXR1c2FsdDE$CBt5nX1E+ObtVKNqxqtjZG2Mizn1NRFtQz74jansYP8";
    let bad = roster(
        1,
        json!([
            {"id": "1001", "name_ar": "أحمد", "name_en": "Ahmed", "role": "officer", "pin_hash": cheap("1234")},
            {"id": "1002", "name_ar": "منى", "name_en": "Mona", "role": "officer", "pin_hash": "2345"},
            {"id": "1004", "name_ar": "هبة", "name_en": "Heba", "role": "officer", "pin_hash": "$argon2id$v=19$garbage"},
            {"id": "1005", "name_ar": "علي", "name_en": "Ali", "role": "officer", "pin_hash": argon2i},
            {"id": "1006", "name_ar": "ياسر", "name_en": "Yasser", "role": "officer", "pin_hash": huge},
            {"id": "1007", "name_ar": "رنا", "name_en": "Rana", "role": "officer", "pin_hash": cheap("1111"), "pin": "1111"}
        ]),
    );
    let Err(RefDataError::BadRoster(errors)) = db.apply(&bytes(&bad), now()) else { panic!("accepted") };
    let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
    assert_eq!(
        got,
        [
            ("officers[1].pin_hash", "roster.plain_pin"),
            ("officers[2].pin_hash", "roster.bad_pin_hash"),
            ("officers[3].pin_hash", "roster.bad_pin_hash"),
            ("officers[4].pin_hash", "roster.bad_pin_hash"),
            ("officers[5].pin", "roster.plain_pin"),
        ]
    );
    for (e, id) in errors.iter().zip(["1002", "1004", "1005", "1006", "1007"]) {
        assert!(e.en.contains(id), "{}", e.en);
    }
    assert!(errors[2].en.contains("argon2i"));
    assert!(db.officers().unwrap().is_empty());
    let role = roster(
        1,
        json!([{"id": "1001", "name_ar": "أ", "name_en": "A", "role": "admin", "pin_hash": cheap("1234")}]),
    );
    let e = db.apply(&bytes(&role), now()).unwrap_err();
    assert!(e.to_string().contains("officers[0].role"), "{e}");
}

#[test]
fn login_locks_after_five_failures_and_the_lock_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    db.apply(&bytes(&cheap_roster()), now()).unwrap();
    let people = People::new(db.clone(), LockoutPolicy::default());
    let o = people.login("1001", "1234", now()).unwrap();
    assert_eq!((o.id.as_str(), o.role), ("1001", Role::Officer));
    // Eastern Arabic digits in the id and the PIN.
    assert_eq!(people.login("١٠٠١", "١٢٣٤", now()).unwrap().id, "1001");
    assert_eq!(people.login("9001", "۹۹۹۹", now()).unwrap().role, Role::Supervisor);

    for left in [4, 3, 2, 1] {
        assert_eq!(people.login("1001", "0000", now()), Err(LoginError::BadPin { attempts_left: left }));
    }
    drop(people);
    drop(db);
    // Restart: the counter is in office.db.
    let db = Arc::new(open(dir.path()));
    let people = People::new(db, LockoutPolicy::default());
    let until = now().checked_add(SignedDuration::from_mins(15)).unwrap();
    assert_eq!(people.login("1001", "0000", now()), Err(LoginError::LockedOut { until }));
    // Even the right PIN is refused while locked.
    let later = now().checked_add(SignedDuration::from_mins(14)).unwrap();
    assert_eq!(people.login("1001", "1234", later), Err(LoginError::LockedOut { until }));
    let e = LoginError::LockedOut { until };
    let fe = e.field_error(&cairo());
    assert_eq!(fe.code, "auth.locked_out");
    assert!(fe.en.contains("09:15"), "{}", fe.en);
    // After the lock: a fresh count, and the right PIN works.
    assert_eq!(people.login("1001", "0000", until), Err(LoginError::BadPin { attempts_left: 4 }));
    assert!(people.login("1001", "1234", until).is_ok());
    assert_eq!(people.login("1001", "0000", until), Err(LoginError::BadPin { attempts_left: 4 }));
}

#[test]
fn an_unknown_id_looks_like_a_wrong_pin_and_inactive_shows_only_after_the_right_pin() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    db.apply(&bytes(&cheap_roster()), now()).unwrap();
    let people = People::new(db, LockoutPolicy { max_failures: 3, lock_for: SignedDuration::from_mins(5) });
    let unknown = people.login("4242", "1234", now()).unwrap_err();
    let wrong = people.login("1001", "1235", now()).unwrap_err();
    assert_eq!(unknown, LoginError::UnknownOfficer { attempts_left: 2 });
    assert_eq!(wrong, LoginError::BadPin { attempts_left: 2 });
    let (u, w) = (unknown.field_error(&cairo()), wrong.field_error(&cairo()));
    assert_eq!((u.code.as_str(), &u.ar, &u.en), (w.code.as_str(), &w.ar, &w.en));
    assert_eq!((unknown.reason(), wrong.reason()), ("unknown_officer", "bad_pin"));
    // Unknown ids lock like known ones.
    people.login("4242", "1234", now()).unwrap_err();
    assert!(matches!(people.login("4242", "1234", now()), Err(LoginError::LockedOut { .. })));
    // Inactive: wrong PIN says wrong PIN; the right PIN says inactive.
    assert_eq!(people.login("1003", "0000", now()), Err(LoginError::BadPin { attempts_left: 2 }));
    assert_eq!(people.login("1003", "4321", now()), Err(LoginError::Inactive));
    // The journal payload names the id and the reason, never the PIN.
    let r = people.login("٤٢٤٢", "1234", now());
    assert_eq!(
        mtu::office::people::login_record("٤٢٤٢", &r),
        json!({"officer": "4242", "ok": false, "reason": "locked_out"})
    );
    let ok = people.login("9001", "9999", now());
    assert_eq!(mtu::office::people::login_record("9001", &ok), json!({"officer": "9001", "ok": true}));
}

#[tokio::test]
async fn async_callers_log_in_on_a_blocking_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    db.apply(&bytes(&cheap_roster()), now()).unwrap();
    let people = People::new(db, LockoutPolicy::default());
    let o = people.login_async("1001".into(), zeroize::Zeroizing::new("1234".into()), now()).await.unwrap();
    assert_eq!(o.id, "1001");
    let e = people.login_async("1001".into(), zeroize::Zeroizing::new("1".into()), now()).await.unwrap_err();
    assert_eq!(e, LoginError::BadPin { attempts_left: 4 });
}

#[test]
fn sessions_expire_when_idle_and_absolutely() {
    let s = Sessions::new(SessionPolicy::default());
    let officer = officer_1001();
    let t0 = now();
    let mins = |m: i64| t0.checked_add(SignedDuration::from_mins(m)).unwrap();
    let (token, expires) = s.create(officer.clone(), t0);
    assert_eq!(token.len(), 43);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(expires, mins(30));
    // Nothing in memory gives the token away.
    assert!(!format!("{s:?}").contains(&token));
    assert_eq!(s.check(&token, mins(29)), Some(officer.clone()));
    // Used at 29 min: idle expiry moves to 59 min.
    assert_eq!(s.expires_at(&token), Some(mins(59)));
    assert_eq!(s.check(&token, mins(58)), Some(officer.clone()));
    assert_eq!(s.check(&token, mins(88)), None);
    assert_eq!(s.check(&token, mins(60)), None, "an expired session is forgotten");

    // Absolute: kept busy every 20 minutes, it still ends at 12 h.
    let (token, _) = s.create(officer.clone(), t0);
    let mut m = 0;
    while m < 12 * 60 - 20 {
        m += 20;
        assert!(s.check(&token, mins(m)).is_some(), "at {m} min");
    }
    assert_eq!(s.check(&token, mins(12 * 60)), None);

    let (a, _) = s.create(officer.clone(), t0);
    let (b, _) = s.create(officer.clone(), t0);
    assert_ne!(a, b);
    assert!(s.end(&a));
    assert!(!s.end(&a));
    assert_eq!(s.check(&a, t0), None);
    assert_eq!(s.end_all_for("1001"), 1);
    assert_eq!(s.check(&b, t0), None);
    // A roster import ends the sessions of officers removed, deactivated or given another role.
    let other = |id: &str, role: Role, active: bool| mtu::office::people::Officer {
        id: id.into(),
        name_ar: "س".into(),
        name_en: "S".into(),
        role,
        active,
    };
    let (a, _) = s.create(officer.clone(), t0);
    let (b, _) = s.create(other("1002", Role::Officer, true), t0);
    let (c, _) = s.create(other("9001", Role::Supervisor, true), t0);
    let (d, _) = s.create(other("1003", Role::Officer, true), t0);
    let roster = [officer.clone(), other("1002", Role::Officer, false), other("9001", Role::Officer, true)];
    assert_eq!(s.retain_roster(&roster), 3);
    assert!(s.check(&a, t0).is_some());
    assert!(s.check(&b, t0).is_none() && s.check(&c, t0).is_none() && s.check(&d, t0).is_none());
    for junk in ["", "x", "!!!!", &"A".repeat(43), &"A".repeat(4000)] {
        assert_eq!(s.check(junk, t0), None);
    }
}

#[test]
fn a_new_lockout_policy_applies_from_the_next_attempt_and_a_lock_keeps_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    db.apply(&bytes(&cheap_roster()), now()).unwrap();
    let people = People::new(db.clone(), LockoutPolicy::default());
    // The API logs in on a clone (on a blocking thread): it must see a policy set later.
    let clone = people.clone();
    let mins = |m: i64| now().checked_add(SignedDuration::from_mins(m)).unwrap();
    for left in [4, 3] {
        assert_eq!(people.login("1001", "0000", now()), Err(LoginError::BadPin { attempts_left: left }));
    }
    // 9001 locked under a policy of one failure and 15 minutes.
    people.set_policy(LockoutPolicy { max_failures: 1, lock_for: SignedDuration::from_mins(15) });
    assert_eq!(clone.login("9001", "0000", now()), Err(LoginError::LockedOut { until: mins(15) }));
    // The reload: 3 failures, 5 minutes. 1001 has 2 failures counted: the next one locks.
    let policy = LockoutPolicy { max_failures: 3, lock_for: SignedDuration::from_mins(5) };
    people.set_policy(policy);
    assert_eq!(clone.policy(), policy);
    assert_eq!(clone.login("1001", "0000", now()), Err(LoginError::LockedOut { until: mins(5) }));
    // 9001's lock keeps the end it was given.
    assert_eq!(clone.login("9001", "9999", mins(6)), Err(LoginError::LockedOut { until: mins(15) }));
    assert!(clone.login("9001", "9999", mins(15)).is_ok());
    assert!(clone.login("1001", "1234", mins(5)).is_ok());
    assert_eq!(clone.login("1001", "0000", mins(5)), Err(LoginError::BadPin { attempts_left: 2 }));
}

#[test]
fn new_session_limits_apply_from_each_sessions_next_request() {
    let s = Sessions::new(SessionPolicy::default());
    let officer = officer_1001();
    let t0 = now();
    let mins = |m: i64| t0.checked_add(SignedDuration::from_mins(m)).unwrap();
    let (a, expires) = s.create(officer.clone(), t0);
    assert_eq!(expires, mins(30));
    let (b, _) = s.create(officer.clone(), t0);
    let (old, _) = s.create(officer.clone(), t0);
    assert!(s.check(&old, mins(25)).is_some());
    // The reload at 26 min: 10 minutes idle, 1 hour at most.
    s.set_policy(SessionPolicy {
        idle: SignedDuration::from_mins(10),
        absolute: SignedDuration::from_hours(1),
    });
    // The window each client was told ends as told...
    assert_eq!(s.expires_at(&a), Some(mins(30)));
    assert!(s.check(&a, mins(29)).is_some());
    // ...and its next one is the new idle limit.
    assert_eq!(s.expires_at(&a), Some(mins(39)));
    assert!(s.check(&a, mins(39)).is_none());
    assert!(s.check(&b, mins(29)).is_some());
    for m in [38, 47, 56] {
        assert!(s.check(&b, mins(m)).is_some(), "at {m} min");
    }
    // The shorter maximum counts from the login: at 60 min b ends, busy or not.
    assert_eq!(s.expires_at(&b), Some(mins(60)));
    assert!(s.check(&b, mins(60)).is_none());
    // Used at 25 min under the old limit: its window runs to 55 as told, then ends (1 h max).
    assert_eq!(s.expires_at(&old), Some(mins(55)));
    assert!(s.check(&old, mins(54)).is_some());
    assert!(s.check(&old, mins(60)).is_none());
    // A new login gets the new limits.
    let (c, expires) = s.create(officer, mins(61));
    assert_eq!(expires, mins(71));
    assert!(s.check(&c, mins(70)).is_some());
}

#[test]
fn new_service_hours_check_the_bookings_imported_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut v = sample_bookings();
    // 08:30–09:00 Cairo: before the default 10:00.
    v["items"][0]["slot"] = json!({"start": "2026-12-01T06:30:00Z", "end": "2026-12-01T07:00:00Z"});
    let Err(RefDataError::BadBookings(bad)) = db.apply(&bytes(&v), now()) else { panic!("accepted") };
    assert_eq!(bad[0].error.code, "booking.outside_hours");
    db.set_hours(8 * 60, 21 * 60);
    assert_eq!((db.hours().opens_min, db.hours().closes_min), (480, 1260));
    assert_eq!(db.hours().tz, cairo(), "the time zone stays");
    db.apply(&bytes(&v), now()).unwrap();
    // Stored bookings are not checked again when the hours narrow.
    db.set_hours(11 * 60, 21 * 60);
    assert_eq!(db.bookings_on(today()).unwrap().len(), 11);
}

fn argon2_cli(pin: &str, salt: &str, t: u32, m_kib: u32, p: u32) -> String {
    let mut child = Command::new("argon2")
        .args([salt, "-id", "-t", &t.to_string(), "-k", &m_kib.to_string(), "-p", &p.to_string(), "-l", "32", "-e"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the reference Argon2 CLI `argon2` is missing ({e}): run tools/test, which installs the Debian package argon2")
        });
    use std::io::Write;
    child.stdin.take().unwrap().write_all(pin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn pin_hashes_match_the_reference_argon2_implementation() {
    // The reference implementation (phc-winner-argon2's CLI) and ours agree byte for byte.
    let reference = argon2_cli("1234", "mtusalt1", 2, 19456, 1);
    assert_eq!(
        reference,
        "$argon2id$v=19$m=19456,t=2,p=1$bXR1c2FsdDE$CBt5nX1E+ObtVKNqxqtjZG2Mizn1NRFtQz74jansYP8"
    );
    assert_eq!(hash_pin_salted("1234", b"mtusalt1", 19456, 2, 1).unwrap(), reference);
    assert_eq!(hash_pin_salted("١٢٣٤", b"mtusalt1", 19456, 2, 1).unwrap(), reference);
    assert!(verify_pin("1234", &reference));
    assert!(!verify_pin("1235", &reference));
    let other = argon2_cli("98765", "another-salt", 1, 64, 2);
    assert!(verify_pin("98765", &other));
    assert!(!verify_pin("9876", &other));
    assert_eq!(hash_pin_salted("98765", b"another-salt", 64, 1, 2).unwrap(), other);
    assert!(!verify_pin("1234", "not a hash"));
}

mod properties {
    use super::*;
    use mtu::office::refdata::parse_bundle;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_bundle(&data, VAN, &ServiceHours::cairo_default());
        }

        #[test]
        fn arbitrary_tokens_never_authenticate(token in ".{0,64}") {
            let s = Sessions::default();
            prop_assert!(s.check(&token, now()).is_none());
        }

        /// A booking is accepted exactly when its slot lies inside 10:00–22:00 Cairo on one day.
        #[test]
        fn slots_are_accepted_exactly_inside_service_hours(start in 0i64..86_400 * 3, len in -3_600i64..14 * 3_600) {
            let base: Timestamp = "2026-11-30T22:00:00Z".parse().unwrap(); // 00:00 Cairo, 1 Dec
            let s = base.checked_add(SignedDuration::from_secs(start)).unwrap();
            let e = s.checked_add(SignedDuration::from_secs(len)).unwrap();
            let mut v = sample_bookings();
            v["items"][0]["slot"] = json!({"start": s, "end": e});
            let got = parse_bundle(&bytes(&v), VAN, &ServiceHours::cairo_default()).is_ok();
            // Cairo is UTC+2 all December: seconds after local midnight of each end.
            let (ls, le) = (start % 86_400, start % 86_400 + len);
            let want = len > 0 && le <= 22 * 3_600 && ls >= 10 * 3_600;
            prop_assert_eq!(got, want, "start {} len {}", s, len);
        }
    }
}

#[test]
fn a_training_van_gets_its_sample_day_once_and_each_new_day_its_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let first = sample::day_bundles(&db, VAN, today(), now()).unwrap();
    assert_eq!(first.len(), 3);
    let mut kinds = Vec::new();
    for b in &first {
        let journaled = |a: &mtu::office::refdata::Applied| {
            assert!(a.items > 0);
            Ok(())
        };
        kinds.push(db.import(b, now(), journaled).unwrap().bundle);
    }
    assert_eq!(kinds, [BundleKind::Roster, BundleKind::Blocklist, BundleKind::Bookings]);
    // A restart the same day: only the bookings again, all already held.
    let again = sample::day_bundles(&db, VAN, today(), now()).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(db.apply(&again[0], now()).unwrap().skipped, 11);
    // The next day: a new day of bookings; the first sample officer logs in with the sample PIN.
    let tomorrow = Date::new(2026, 12, 2).unwrap();
    let next = sample::day_bundles(&db, VAN, tomorrow, now()).unwrap();
    assert_eq!(db.apply(&next[0], now()).unwrap().items, 11);
    assert_eq!(db.bookings_on(tomorrow).unwrap()[0].booking.id, "B-20261202-01");
    let people = People::new(Arc::new(db), LockoutPolicy::default());
    for (id, pin, role, _, _) in sample::OFFICERS {
        let o = people.login(id, pin, now()).unwrap();
        assert_eq!(mtu::office::people::role_name(o.role), role);
    }
}

/// Every error code the reference data and login code can give is documented.
#[test]
fn docs_list_every_reference_data_and_login_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/reference-data.md")).unwrap();
    let mut codes = Vec::new();
    for file in ["src/office/refdata.rs", "src/office/people.rs"] {
        let src = std::fs::read_to_string(root.join(file)).unwrap();
        for piece in src.split('"').skip(1).step_by(2) {
            let (prefix, rest) = piece.split_once('.').unwrap_or(("", ""));
            if ["bundle", "booking", "roster", "auth", "storage", "state", "not_found"].contains(&prefix)
                && !rest.is_empty()
                && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                codes.push(piece.to_owned());
            }
        }
    }
    assert!(codes.len() >= 15, "{codes:?}");
    let missing: Vec<_> = codes.iter().filter(|c| !doc.contains(&format!("`{c}`"))).collect();
    assert!(missing.is_empty(), "docs/reference-data.md lacks {missing:?}");
}

/// Officer 1001 of the sample roster, as the session tests log in.
fn officer_1001() -> mtu::office::people::Officer {
    mtu::office::people::Officer {
        id: "1001".into(),
        name_ar: "أحمد".into(),
        name_en: "Ahmed".into(),
        role: Role::Officer,
        active: true,
    }
}
