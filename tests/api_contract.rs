//! The local HTTP API's contract, over real HTTP against a fake desk: sessions and roles on
//! every route, strict bodies, error shapes, the event stream, binding, and that `docs/api.md`
//! documents every route.

#[path = "api_contract/fake_desk.rs"]
mod fake_desk;
#[path = "api_contract/http.rs"]
mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fake_desk::{BOOKING, FakeDesk, OFFICER, SUPERVISOR, Shared};
use http::{Events, Req, send};
use mtu::api::desk::{DeskEvent, StepKind, TxnState};
use mtu::api::{Access, BASE, ROUTES, Server};
use serde_json::{Value, json};

/// A server on 127.0.0.1 (free port) over a fresh fake desk, stopped on drop.
struct Running {
    addr: SocketAddr,
    desk: Arc<FakeDesk>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), mtu::api::ServeError>>>,
}

impl Running {
    fn start() -> Running {
        let desk = Arc::new(FakeDesk::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared(desk.clone()));
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let server = Server::bind(&["127.0.0.1:0".parse().unwrap()]).await?;
                tx.send(server.local_addrs()[0]).unwrap();
                server
                    .run(shared, async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("server started");
        Running { addr, desk, stop: Some(stop), thread: Some(thread) }
    }

    /// Stops the server and waits for it (event streams must not keep it running).
    fn stop(&mut self) -> Result<(), mtu::api::ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().map_or(Ok(()), |t| t.join().expect("server thread"))
    }

    fn send(&self, req: Req<'_>) -> http::Resp {
        send(self.addr, req)
    }

    fn login(&self, (id, pin): (&str, &str)) -> String {
        let body = json!({ "officer_id": id, "pin": pin }).to_string();
        let r = self.send(Req::new("POST", "/api/v1/session").json(&body));
        assert_eq!(r.status, 200, "login: {}", String::from_utf8_lossy(&r.body));
        r.json()["token"].as_str().unwrap().to_owned()
    }

    /// Opens a shift and a driving licence renewal; returns the officer's token and the txn id.
    fn quoted_txn(&self) -> (String, String) {
        let token = self.login(OFFICER);
        let r = self.send(
            Req::new("POST", "/api/v1/shift/open")
                .token(&token)
                .json(r#"{"stock":{"cards":10,"labels":10,"tags":10}}"#),
        );
        assert!(r.status == 201 || r.code() == "state.shift_open", "{}", r.json());
        let body = json!({
            "service": "driving_licence_renewal",
            "booking_id": BOOKING,
            "citizen": { "national_id": "29001011234567", "name_ar": "محمد علي" },
            "grade": "private"
        })
        .to_string();
        let r = self.send(Req::new("POST", "/api/v1/services").token(&token).json(&body));
        assert_eq!(r.status, 201, "{}", r.json());
        assert_eq!(r.json()["state"], "quoted");
        (token, r.json()["txn"].as_str().unwrap().to_owned())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A concrete path for a route (`{id}` → the fake's booking, `{txn}` → a txn id).
fn concrete(path: &str) -> String {
    format!("{BASE}{}", path.replace("{id}", BOOKING).replace("{txn}", "T-000001"))
}

/// A plausible body for a route (valid JSON of the right shape where one is needed).
fn body_for(route: &mtu::api::Route) -> Option<&'static str> {
    if route.method != "POST" {
        return None;
    }
    Some(match route.path {
        "/session" => r#"{"officer_id":"o1","pin":"1234"}"#,
        "/import" => {
            r#"{"bundle":"roster","version":1,"van_id":"MTU-SIM-0001","issued_at":"2026-12-01T08:00:00Z","items":[]}"#
        }
        "/services/{txn}/override" => r#"{"code":"prereq.x","reason":"r"}"#,
        "/services/{txn}/void" | "/services/{txn}/cancel" => r#"{"reason":"r"}"#,
        "/shift/close" => r#"{"counted":{"cards":0,"labels":0,"tags":0}}"#,
        _ => "{}",
    })
}

fn request_for<'a>(route: &'a mtu::api::Route, path: &'a str) -> Req<'a> {
    let req = Req::new(route.method, path);
    match body_for(route) {
        Some(b) => req.json(b),
        None => req,
    }
}

#[test]
fn the_van_is_public_and_says_whether_it_trains() {
    let srv = Running::start();
    let route = ROUTES.iter().find(|r| r.path == "/van").expect("GET /van in the table");
    assert_eq!(route.access, Access::Public);
    let r = srv.send(request_for(route, &concrete(route.path)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["training"], false);
    assert_eq!(r.json()["van_id"], "MTU-TEST-0001");
}

#[test]
fn every_endpoint_without_a_token_is_401() {
    let srv = Running::start();
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let path = concrete(route.path);
        let r = srv.send(request_for(route, &path));
        assert_eq!(r.status, 401, "{} {}", route.method, route.path);
        assert_eq!(r.code(), "auth.required", "{} {}", route.method, route.path);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));

        let r = srv.send(request_for(route, &path).token("not-a-session"));
        assert_eq!((r.status, r.code().as_str()), (401, "auth.bad_token"), "{} {}", route.method, route.path);
    }
    // Public: the login answers without a token.
    let r = srv.send(Req::new("POST", "/api/v1/session").json(r#"{"officer_id":"o1","pin":"0000"}"#));
    assert_eq!((r.status, r.code().as_str()), (401, "auth.bad_credentials"));
}

#[test]
fn every_supervisor_endpoint_refuses_an_officer_and_admits_a_supervisor() {
    let srv = Running::start();
    let officer = srv.login(OFFICER);
    let supervisor = srv.login(SUPERVISOR);
    let supervised: Vec<_> = ROUTES.iter().filter(|r| r.access == Access::Supervisor).collect();
    assert!(supervised.len() >= 4, "void, override, import, shift close at least");
    for route in supervised {
        let path = concrete(route.path);
        let r = srv.send(request_for(route, &path).token(&officer));
        assert_eq!(r.status, 403, "{} {} as officer", route.method, route.path);
        assert_eq!(r.code(), "auth.role");
        let r = srv.send(request_for(route, &path).token(&supervisor));
        assert!(
            ![401, 403].contains(&r.status),
            "{} {} as supervisor: {}",
            route.method,
            route.path,
            r.status
        );
    }
}

#[test]
fn officers_reach_every_officer_endpoint() {
    let srv = Running::start();
    let officer = srv.login(OFFICER);
    // The event stream never ends by itself, and the logout would end the session: both are
    // tested on their own.
    let reachable =
        |r: &&mtu::api::Route| r.path != "/events" && !(r.method == "DELETE" && r.path == "/session");
    for route in ROUTES.iter().filter(|r| r.access == Access::Officer).filter(reachable) {
        let path = concrete(route.path);
        let r = srv.send(request_for(route, &path).token(&officer));
        assert!(![401, 403, 405].contains(&r.status), "{} {}: {}", route.method, route.path, r.status);
        if r.status == 404 {
            assert_ne!(r.code(), "not_found.route", "{} {} is not routed", route.method, route.path);
        }
    }
}

#[test]
fn login_session_logout_and_lockout() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    let r = srv.send(Req::new("GET", "/api/v1/session").token(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["officer"]["id"], "o1");
    assert_eq!(r.json()["officer"]["role"], "officer");
    assert!(r.json().get("token").is_none(), "GET /session does not echo the token");
    assert!(r.json()["expires_at"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let r = srv.send(Req::new("DELETE", "/api/v1/session").token(&token));
    assert_eq!(r.status, 204);
    let r = srv.send(Req::new("GET", "/api/v1/session").token(&token));
    assert_eq!((r.status, r.code().as_str()), (401, "auth.bad_token"));

    for _ in 0..3 {
        let r = srv.send(Req::new("POST", "/api/v1/session").json(r#"{"officer_id":"s1","pin":"0000"}"#));
        assert_eq!(r.status, 401);
    }
    let r = srv.send(Req::new("POST", "/api/v1/session").json(r#"{"officer_id":"s1","pin":"9999"}"#));
    assert_eq!((r.status, r.code().as_str()), (423, "auth.locked_out"));
    assert!(r.json()["error"]["details"]["until"].is_string());
    // Eastern Arabic digits in a PIN are the same PIN.
    let r = srv.send(Req::new("POST", "/api/v1/session").json(r#"{"officer_id":"o1","pin":"١٢٣٤"}"#));
    assert_eq!(r.status, 200);
}

#[test]
fn malformed_bodies_are_400_naming_the_field() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    let post =
        |path: &'static str, body: &'static str| srv.send(Req::new("POST", path).token(&token).json(body));

    let r = post("/api/v1/validate", r#"{"field": "vin", "value": "#);
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_json"));
    assert!(r.json()["error"]["details"]["line"].is_number());

    let r = post("/api/v1/shift/open", r#"{"stock": {"cards": 1, "labels": 1, "tags": 1, "pens": 4}}"#);
    assert_eq!((r.status, r.code().as_str()), (400, "request.unknown_field"));
    assert_eq!(r.json()["error"]["field"], "stock.pens");

    let r = post(
        "/api/v1/services",
        r#"{"service": "supplies", "citizen": {"national_id": "29001011234567", "name_ar": "س", "nickname": "x"}}"#,
    );
    assert_eq!((r.status, r.code().as_str()), (400, "request.unknown_field"));
    assert_eq!(r.json()["error"]["field"], "citizen.nickname");

    let r = post("/api/v1/shift/open", r#"{"stock": {"cards": "ten", "labels": 1, "tags": 1}}"#);
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_value"));
    assert_eq!(r.json()["error"]["field"], "stock.cards");

    let r = post("/api/v1/shift/open", r#"{"stock": {"cards": 1, "tags": 1}}"#);
    assert_eq!((r.status, r.code().as_str()), (400, "request.missing_field"));
    assert_eq!(r.json()["error"]["field"], "stock.labels");

    let r = post(
        "/api/v1/services",
        r#"{"service": "flying_licence", "citizen": {"national_id": "1", "name_ar": "س"}}"#,
    );
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_value"));
    assert_eq!(r.json()["error"]["field"], "service");

    let r = post("/api/v1/validate", r#"{"field": "vin", "value": "X"} trailing"#);
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_json"));

    // Not JSON by its content type, and too large.
    let r = srv.send(
        Req::new("POST", "/api/v1/validate")
            .token(&token)
            .raw(br#"{"field":"vin","value":"X"}"#, Some("text/plain")),
    );
    assert_eq!((r.status, r.code().as_str()), (415, "request.content_type"));
    let big = format!(r#"{{"field":"vin","value":"{}"}}"#, "A".repeat(70 * 1024));
    let r = srv.send(Req::new("POST", "/api/v1/validate").token(&token).json(&big));
    assert_eq!((r.status, r.code().as_str()), (413, "request.too_large"));
    assert_eq!(r.json()["error"]["details"]["limit"], 64 * 1024);

    // Queries are strict too.
    let r = srv.send(Req::new("GET", "/api/v1/bookings?date=2026-13-01").token(&token));
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_query"));
    assert_eq!(r.json()["error"]["field"], "date");
    let r = srv.send(Req::new("GET", "/api/v1/services?state=bogus").token(&token));
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_query"));
    let r = srv.send(Req::new("GET", "/api/v1/services?status=open").token(&token));
    assert_eq!((r.status, r.code().as_str()), (400, "request.bad_query"));
}

#[test]
fn imports_take_bundles_up_to_4_mib() {
    let srv = Running::start();
    let token = srv.login(SUPERVISOR);
    let items: Vec<Value> =
        (0..2000).map(|i| json!({ "id": format!("B-{i}"), "pad": "x".repeat(100) })).collect();
    let body = json!({ "bundle": "bookings", "version": 7, "van_id": "MTU-SIM-0001", "issued_at": "2026-12-01T08:00:00Z", "items": items }).to_string();
    assert!(body.len() > 64 * 1024 && body.len() < 4 * 1024 * 1024);
    let r = srv.send(Req::new("POST", "/api/v1/import").token(&token).json(&body));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json(), json!({ "bundle": "bookings", "version": 7, "items": 2000, "skipped": 0 }));
    let r = srv.send(Req::new("POST", "/api/v1/import").token(&token).json("{not json"));
    assert_eq!((r.status, r.code().as_str()), (400, "bundle.bad_json"));
}

#[test]
fn validation_errors_are_422_with_every_error() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    let body = json!({
        "service": "vehicle_licence_renewal",
        "citizen": { "national_id": "٢٩٠٠١", "name_ar": " " },
    })
    .to_string();
    let r = srv.send(Req::new("POST", "/api/v1/services").token(&token).json(&body));
    assert_eq!(r.status, 422);
    let v = r.json();
    let fields: Vec<&str> =
        v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["citizen.national_id", "citizen.name_ar", "vehicle"]);
    assert_eq!(v["error"], v["errors"][0]);
    for e in v["errors"].as_array().unwrap() {
        for key in ["code", "ar", "en"] {
            assert!(e[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {e}");
        }
    }

    let r = srv.send(
        Req::new("POST", "/api/v1/validate")
            .token(&token)
            .json(r#"{"field":"plate","letters":"","digits":"12345"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"].as_array().unwrap().len(), 2);

    let r = srv.send(
        Req::new("POST", "/api/v1/validate")
            .token(&token)
            .json(r#"{"field":"national_id","value":"٢٩٠٠١٠١١٢٣٤٥٦٧"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ok"], true);
    assert_eq!(r.json()["normalised"], "29001011234567");
}

#[test]
fn wrong_state_is_409_saying_the_state_and_what_is_allowed() {
    let srv = Running::start();
    let (token, txn) = srv.quoted_txn();
    let r = srv.send(
        Req::new("POST", &format!("/api/v1/services/{txn}/cancel"))
            .token(&token)
            .json(r#"{"reason":"changed mind"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "cancelled");
    let r = srv.send(Req::new("POST", &format!("/api/v1/services/{txn}/proceed")).token(&token));
    assert_eq!((r.status, r.code().as_str()), (409, "state.txn"));
    assert_eq!(
        r.json()["error"]["details"],
        json!({ "action": "proceed", "state": "cancelled", "allowed": [] })
    );

    let r = srv.send(Req::new("GET", "/api/v1/services/T-999999").token(&token));
    assert_eq!((r.status, r.code().as_str()), (404, "not_found.txn"));
    let r = srv.send(Req::new("GET", "/api/v1/dossier?national_id=29001011234567").token(&token));
    assert_eq!((r.status, r.code().as_str()), (503, "hq.unreachable"));
}

#[test]
fn healthz_is_503_naming_the_desk_when_the_desk_cannot_tell_and_metrics_stay_up() {
    // The fake desk keeps `Desk::ops`'s default (no snapshot): the daemon cannot vouch for itself.
    let srv = Running::start();
    let r = srv.send(Req::new("GET", "/healthz"));
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unhealthy");
    assert_eq!(r.json()["failing"][0]["part"], "desk", "{}", r.json());
    let r = srv.send(Req::new("GET", "/metrics"));
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.lines().any(|l| l == "mtu_healthy 0"), "{text}");
}

#[test]
fn unknown_routes_and_methods_answer_json() {
    let srv = Running::start();
    let r = srv.send(Req::new("GET", "/api/v1/nothing"));
    assert_eq!((r.status, r.code().as_str()), (404, "not_found.route"));
    let r = srv.send(Req::new("PUT", "/api/v1/session").json("{}"));
    assert_eq!((r.status, r.code().as_str()), (405, "request.method"));
}

#[test]
fn proceed_streams_progress_and_states_in_order() {
    let mut srv = Running::start();
    let (token, txn) = srv.quoted_txn();
    let mut events = Events::open(srv.addr, "/api/v1/events", Some(&token));
    assert_eq!(events.status, 200);
    assert!(
        events
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"))
    );

    let r = srv.send(Req::new("POST", &format!("/api/v1/services/{txn}/proceed")).token(&token));
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(r.json()["state"], "paying");

    let mut seen = Vec::new();
    while let Some(ev) = events.next() {
        assert_eq!(ev.data["txn"], txn.as_str());
        let label = match ev.event.as_str() {
            "progress" => format!(
                "progress:{}:{}",
                ev.data["step"].as_str().unwrap(),
                ev.data["text"].as_str().unwrap()
            ),
            "txn" => format!("txn:{}", ev.data["state"].as_str().unwrap()),
            other => panic!("unexpected event {other}"),
        };
        let done = label == "txn:completed";
        seen.push(label);
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "txn:paying",
            "progress:payment:Insert card",
            "progress:payment:PIN entry",
            "txn:paid",
            "txn:printing",
            "progress:card:Printing card",
            "txn:completed",
        ]
    );
    let r = srv.send(Req::new("GET", &format!("/api/v1/services/{txn}")).token(&token));
    let v = r.json();
    assert_eq!(v["state"], "completed");
    assert_eq!(v["payment"]["outcome"], "approved");
    assert_eq!(v["steps"][1], json!({ "step": "card", "state": "done", "attempts": 1, "fault": null }));
    assert_eq!(v["next"], json!(["reprint"]), "an officer may not void");

    let r = srv.send(Req::new("GET", &format!("/api/v1/services/{txn}/receipt?format=roll80")).token(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert!(r.body.starts_with(b"%PDF-"));

    // Stopping the server ends the stream instead of waiting for it.
    srv.stop().expect("server stopped cleanly");
    assert_eq!(events.next(), None);
}

#[test]
fn a_failed_step_is_reported_and_retried_by_proceeding_again() {
    let srv = Running::start();
    let (token, txn) = srv.quoted_txn();
    srv.desk.fail_next(StepKind::Card);
    let mut events = Events::open(srv.addr, &format!("/api/v1/events?token={token}"), None);
    assert_eq!(events.status, 200, "the token may come in the query for EventSource");
    let proceed = format!("/api/v1/services/{txn}/proceed");
    assert_eq!(srv.send(Req::new("POST", &proceed).token(&token)).status, 202);
    while let Some(ev) = events.next() {
        if ev.event == "progress" && ev.data["step"] == "card" {
            break;
        }
    }
    let paid_again = events.next().unwrap();
    assert_eq!(paid_again.data["state"], "paid", "card failed: back to paid");
    let v = srv.send(Req::new("GET", &format!("/api/v1/services/{txn}")).token(&token)).json();
    assert_eq!(v["steps"][1]["state"], "failed");
    assert_eq!(v["steps"][1]["fault"]["code"], "link.no_answer");
    assert!(v["steps"][1]["fault"]["action_ar"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["payment"]["outcome"], "approved");

    let r = srv.send(Req::new("POST", &proceed).token(&token));
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["state"], "printing", "retry starts at the failed step, not the payment");
    let mut states = Vec::new();
    while let Some(ev) = events.next() {
        if ev.event == "txn" {
            states.push(ev.data["state"].as_str().unwrap().to_owned());
            if ev.data["state"] == "completed" {
                break;
            }
        }
    }
    assert_eq!(states, ["printing", "completed"]);
}

#[test]
fn a_supervisor_void_reverses_the_payment_in_the_background() {
    let srv = Running::start();
    let (token, txn) = srv.quoted_txn();
    let supervisor = srv.login(SUPERVISOR);
    let mut events = Events::open(srv.addr, "/api/v1/events", Some(&token));
    let r = srv.send(Req::new("POST", &format!("/api/v1/services/{txn}/proceed")).token(&token));
    assert_eq!(r.status, 202);
    while let Some(ev) = events.next() {
        if ev.event == "txn" && ev.data["state"] == "completed" {
            break;
        }
    }
    let void = format!("/api/v1/services/{txn}/void");
    let r = srv.send(Req::new("POST", &void).token(&supervisor).json(r#"{"reason":"wrong citizen"}"#));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["state"], "voiding");
    let mut seen = Vec::new();
    while let Some(ev) = events.next() {
        seen.push(format!(
            "{}:{}",
            ev.event,
            ev.data["state"].as_str().or(ev.data["step"].as_str()).unwrap()
        ));
        if ev.data["state"] == "reversed" {
            break;
        }
    }
    assert_eq!(seen, ["txn:voiding", "progress:reversal", "txn:reversed"]);
    let v = srv.send(Req::new("GET", &format!("/api/v1/services/{txn}")).token(&supervisor)).json();
    assert_eq!(v["payment"]["outcome"], "reversed");
    assert_eq!(v["next"], json!([]));
}

#[test]
fn device_events_reach_the_stream() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    let mut events = Events::open(srv.addr, "/api/v1/events", Some(&token));
    let health = mtu::api::desk::DeviceView::from(&mtu::devices::Health::Connected);
    srv.desk.emit(DeskEvent::Device { device: "card".into(), health });
    let ev = events.next().unwrap();
    assert_eq!(ev.event, "device");
    assert_eq!(
        ev.data,
        json!({ "device": "card", "health": { "state": "connected", "fault": null, "detail": "" } })
    );
}

#[test]
fn the_server_binds_only_the_given_address() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let server = Server::bind(&["127.0.0.1:0".parse().unwrap()]).await.unwrap();
        let addrs = server.local_addrs();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].ip().to_string(), "127.0.0.1");
        let port = addrs[0].port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        // Another loopback address (all of 127/8 is local on Linux), same port: nobody listens.
        let other = std::net::TcpStream::connect(("127.0.0.2", port));
        assert_eq!(other.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(Server::bind(&[]).await, Err(mtu::api::ServeError::NoAddress)));
        let taken = Server::bind(&addrs).await.err().expect("port taken");
        assert!(taken.to_string().contains(&addrs[0].to_string()), "{taken}");
    });
}

#[test]
fn docs_document_every_route() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let mut missing = Vec::new();
    for route in ROUTES {
        let heading = format!("### `{} {BASE}{}`", route.method, route.path);
        let Some(at) = doc.find(&heading) else {
            missing.push(heading);
            continue;
        };
        // Each endpoint's section has a curl example for it.
        let section = &doc[at + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        // The examples call `$API/…`, with `API=http://127.0.0.1:8080/api/v1` set once.
        let curl_path = format!("$API{}", route.path.split('{').next().unwrap());
        assert!(
            section.contains("curl ") && section.contains(&curl_path),
            "{heading}: no curl example calling {curl_path}"
        );
        if route.access == Access::Supervisor {
            assert!(section.contains("Supervisor"), "{heading}: say it is supervisor-only");
        }
    }
    assert!(missing.is_empty(), "docs/api.md lacks sections: {missing:#?}");
    // And documents no endpoint that does not exist.
    for line in doc.lines().filter(|l| l.starts_with("### `")) {
        let documented = ROUTES.iter().any(|r| line == format!("### `{} {BASE}{}`", r.method, r.path));
        assert!(documented, "docs/api.md documents {line}, which the router does not have");
    }
    for state in TxnState::ALL {
        assert!(doc.contains(&format!("`{}`", state.name())), "state {} undocumented", state.name());
    }
}

#[test]
fn the_documented_txn_view_is_one() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let start =
        doc.find("```json\n{\n  \"txn\"").expect("a TxnView example in docs/api.md") + "```json\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let example: Value = serde_json::from_str(text).unwrap();
    let view: mtu::api::desk::TxnView =
        serde_json::from_value(example.clone()).expect("the example is a TxnView");
    assert_eq!(serde_json::to_value(&view).unwrap(), example, "the example has exactly TxnView's fields");
}

/// The bodies in the document's curl examples parse as their endpoint's request (no 400/415).
#[test]
fn the_documented_request_bodies_are_accepted() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let srv = Running::start();
    let token = srv.login(SUPERVISOR);
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.method == "POST") {
        let heading = format!("### `{} {BASE}{}`", route.method, route.path);
        let at = doc.find(&heading).expect("documented") + heading.len();
        let section = &doc[at..at + doc[at..].find("\n### ").unwrap_or(doc.len() - at)];
        let Some(d) = section.find(" -d '") else { continue };
        let body = &section[d + 5..];
        let body = &body[..body.find('\'').unwrap()];
        let path = concrete(route.path);
        let r = srv.send(Req::new("POST", &path).token(&token).json(body));
        assert!(
            ![400, 413, 415].contains(&r.status),
            "{heading}: the example body is refused: {}",
            String::from_utf8_lossy(&r.body)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} example bodies found");
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

/// Requests are logged by route template: neither the event stream's token in its query nor a
/// national ID in a query reaches the log. (The only test in this file that installs a logger.)
#[test]
fn requests_are_logged_without_tokens_or_national_ids() {
    let buf = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first logger in this test binary");

    let mut srv = Running::start();
    let token = srv.login(OFFICER);
    let events = Events::open(srv.addr, &format!("/api/v1/events?token={token}"), None);
    assert_eq!(events.status, 200);
    let r = srv.send(Req::new("GET", "/api/v1/dossier?national_id=29001019876543").token(&token));
    assert_eq!(r.status, 503);
    srv.stop().unwrap();
    drop(events);

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("route=/api/v1/dossier"), "{log}");
    assert!(log.contains("route=/api/v1/events"), "{log}");
    assert!(log.contains("status=503"), "{log}");
    assert!(!log.contains(&token), "the token was logged:\n{log}");
    assert!(!log.contains("29001019876543"), "a national ID was logged:\n{log}");
}

#[test]
fn a_path_parameter_that_is_not_utf8_is_a_json_400() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    let r = srv.send(Req::new("GET", "/api/v1/services/%FF%FE").token(&token));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.code(), "request.bad_path");
}

#[test]
fn a_supervisor_closes_the_shift_with_stock_differences_flagged() {
    let srv = Running::start();
    let officer = srv.login(OFFICER);
    let supervisor = srv.login(SUPERVISOR);
    let r = srv.send(Req::new("GET", "/api/v1/shift").token(&officer));
    assert_eq!((r.status, r.json()), (200, Value::Null), "no shift yet");
    let r = srv.send(
        Req::new("POST", "/api/v1/shift/open")
            .token(&officer)
            .json(r#"{"stock":{"cards":10,"labels":5,"tags":5}}"#),
    );
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = srv.send(
        Req::new("POST", "/api/v1/shift/close")
            .token(&supervisor)
            .json(r#"{"counted":{"cards":9,"labels":5,"tags":5}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    assert_eq!(
        v["stock"][0],
        json!({"item": "card", "opening": 10, "issued": 0, "spoiled": 0, "expected": 10, "counted": 9, "difference": -1, "flagged": true})
    );
    assert_eq!(v["stock"][1]["flagged"], false);
    assert_eq!(v["mismatches"], json!(["stock.card"]));
    let r = srv.send(Req::new("GET", &format!("/api/v1/shift/{id}/report")).token(&officer));
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    let r = srv.send(
        Req::new("POST", "/api/v1/shift/close")
            .token(&supervisor)
            .json(r#"{"counted":{"cards":9,"labels":5,"tags":5}}"#),
    );
    assert_eq!((r.status, r.code().as_str()), (409, "state.no_shift"));
}

#[test]
fn an_inspection_decides_between_quoted_and_refused() {
    let srv = Running::start();
    let token = srv.login(OFFICER);
    srv.send(
        Req::new("POST", "/api/v1/shift/open")
            .token(&token)
            .json(r#"{"stock":{"cards":1,"labels":1,"tags":1}}"#),
    );
    let body = json!({
        "service": "vehicle_licence_renewal",
        "citizen": { "national_id": "29001011234567", "name_ar": "محمد علي" },
        "vehicle": { "plate": { "letters": "أ ب ج", "digits": "١٢٣٤" }, "category": "private", "vin": "WVWZZZ1JZXW000001",
                     "engine_no": "AGN000001", "make_model": "Hyundai Elantra", "owner_national_id": "29001011234567" }
    })
    .to_string();
    let r = srv.send(Req::new("POST", "/api/v1/services").token(&token).json(&body));
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["state"], "open");
    assert_eq!(r.json()["next"], json!(["inspect", "cancel"]));
    let txn = r.json()["txn"].as_str().unwrap().to_owned();
    let r = srv.send(Req::new("POST", &format!("/api/v1/services/{txn}/inspection")).token(&token).json(
        r#"{"vin_matches": true, "engine_matches": false, "checklist": {"brakes": true, "lights": false}}"#,
    ));
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    assert_eq!(v["state"], "refused");
    assert_eq!(v["inspection"]["passed"], false);
    assert_eq!(v["inspection"]["reasons"], json!(["engine_mismatch", "checklist.lights"]));
    assert_eq!(v["inspection"]["checklist"], json!({"brakes": true, "lights": false}));
    assert_eq!(v["refusals"][0]["code"], "prereq.inspection_failed");
}
