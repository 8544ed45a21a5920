//! Down-sync end to end (docs/sync.md, "Down-sync"): a real `van-hq` in this process (SQLite, plain
//! HTTP on 127.0.0.1) publishes bundles; the van pulls them over HTTP with signed requests,
//! verifies HQ's signature, applies them through the office and journals what it applied and what
//! it refused; forged answers change nothing; a repeated pull (a crash before the cursor was saved)
//! is harmless; walk-ups get their dossier live from HQ.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use mtu::api::desk::{Desk as _, DossierQuery, LoginRequest};
use mtu::config::Config;
use mtu::devices::manager::{Manager, ManagerOptions};
use mtu::journal::{FirstStart, Journal, JournalOptions, JournalOwner, JournalReader};
use mtu::keys::DomainSigner;
use mtu::office::desk::Desk;
use mtu::office::front::{HqBundleOutcome, Office, OfficeParts};
use mtu::office::people::{LockoutPolicy, SessionPolicy};
use mtu::office::refdata::{BundleKind, RefData, ServiceHours};
use mtu::office::sample;
use mtu::sync::downlink::{Downlink, DownlinkError, Transport, TransportFuture};
use mtu_sync::bundle::{self, DossierQuery as WireQuery};
use serde_json::{Value, json};
use van_hq::sqlite::SqliteStore;

const VAN: &str = "MTU-T";

struct Van {
    _dir: tempfile::TempDir,
    journal: Option<JournalOwner>,
    manager: Arc<Manager>,
    office: Arc<Office>,
    journal_path: std::path::PathBuf,
}

impl Drop for Van {
    fn drop(&mut self) {
        self.manager.shutdown();
        if let Some(j) = self.journal.take() {
            j.close();
        }
    }
}

impl Van {
    async fn start() -> Van {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "mode = \"simulation\"\n[van]\nid = \"{VAN}\"\n[paths]\nstate_dir = \"{}\"\n[gpio]\nbackend = \"none\"\n",
            dir.path().display()
        );
        let config = Config::parse(&text, "t.toml").unwrap();
        let opts = JournalOptions { van_id: VAN.into(), ..mtu::daemon::journal_options(&config) };
        let journal_path = config.paths.journal_path();
        let (journal, _) =
            Journal::open_van(&journal_path, &config.paths.key_path(), &opts, FirstStart::Create).unwrap();
        let manager = Arc::new(Manager::start_with(
            &config,
            mtu::devices::manager::default_factory(),
            ManagerOptions::default(),
        ));
        let cfg = mtu::office::boot::desk_config(&config);
        let shell = Desk::new((*journal).clone(), manager.clone(), cfg).unwrap();
        let hours = ServiceHours::cairo_default();
        let tz = hours.tz.clone();
        let refdata = Arc::new(RefData::open(&dir.path().join("office.db"), VAN, hours).unwrap());
        let office = Office::new(OfficeParts {
            shell,
            refdata,
            lockout: LockoutPolicy { max_failures: 5, lock_for: jiff::SignedDuration::from_mins(5) },
            sessions: SessionPolicy {
                idle: jiff::SignedDuration::from_mins(30),
                absolute: jiff::SignedDuration::from_hours(12),
            },
            tz,
        })
        .unwrap();
        Van { _dir: dir, journal: Some(journal), manager, office, journal_path }
    }

    fn journal(&self) -> Journal {
        (**self.journal.as_ref().unwrap()).clone()
    }

    /// Payloads of the journal's records of `kind`, in order.
    fn records(&self, kind: &str) -> Vec<Value> {
        let r = JournalReader::open(&self.journal_path).unwrap();
        let mut out = Vec::new();
        r.for_each(1, u64::MAX, |rec| {
            if rec.kind == kind {
                out.push(serde_json::from_slice(&rec.payload).unwrap());
            }
            Ok(true)
        })
        .unwrap();
        out
    }

    fn versions(&self) -> [Option<u64>; 4] {
        let rd = self.office.refdata();
        [BundleKind::Roster, BundleKind::Schedule, BundleKind::Blocklist, BundleKind::Bookings]
            .map(|k| rd.version(k).unwrap())
    }
}

/// HQ on a temp database, served on 127.0.0.1:0 from its own runtime.
struct Hq {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    key: SigningKey,
    addr: SocketAddr,
}

fn start_hq(van_key: ed25519_dalek::VerifyingKey) -> Hq {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hq.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    van_hq::ingest::enroll(&*store, VAN, &hex::encode(van_key.as_bytes()), 0).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let (tx, rx) = std::sync::mpsc::channel();
    let (serve_store, serve_key) = (SqliteStore::open(&path).unwrap(), key.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let hq = Arc::new(van_hq::server::Hq { store: serve_store, key: serve_key });
            van_hq::server::serve(listener, hq, std::future::pending()).await.unwrap();
        });
    });
    Hq { _dir: dir, store, key, addr: rx.recv().unwrap() }
}

/// Plain HTTP/1.1 GET with the van's signed headers (what the HTTPS shell does, minus TLS).
struct Http {
    addr: SocketAddr,
    journal: Journal,
}

fn raw_get(addr: SocketAddr, pq: &str, headers: &[(&str, String)]) -> Result<(u16, Vec<u8>), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut req = format!("GET {pq} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header block")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok((status, raw[split + 4..].to_vec()))
}

impl Transport for Http {
    fn get_signed<'a>(&'a self, pq: &'a str) -> TransportFuture<'a> {
        Box::pin(async move {
            let path = pq.split('?').next().unwrap_or(pq);
            let mut nonce = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
            let h = mtu::sync::wire::sign_request(
                &self.journal,
                VAN,
                "GET",
                path,
                Timestamp::now().as_microsecond(),
                &nonce,
                b"",
            )
            .map_err(|e| e.to_string())?;
            let headers: Vec<(&str, String)> = h.pairs().iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
            let (addr, pq) = (self.addr, pq.to_owned());
            tokio::task::spawn_blocking(move || raw_get(addr, &pq, &headers))
                .await
                .map_err(|e| e.to_string())?
        })
    }
}

/// A fake HQ answering canned bodies in order (for forged answers).
struct Canned(Mutex<Vec<(u16, Vec<u8>)>>);

impl Transport for Canned {
    fn get_signed<'a>(&'a self, _pq: &'a str) -> TransportFuture<'a> {
        let next = self.0.lock().unwrap().pop();
        Box::pin(async move { next.ok_or_else(|| "connection refused".to_owned()) })
    }
}

fn van_key(v: &Van) -> ed25519_dalek::VerifyingKey {
    v.journal().sign_domain(b"mtu.test.enrol\0", b"").unwrap().public_key
}

fn bundle_for(target: &str, mut v: Value) -> Vec<u8> {
    v["van_id"] = json!(target);
    v.to_string().into_bytes()
}

fn schedule(version: u64) -> Value {
    let s: Value = serde_json::from_str(mtu::office::boot::SAMPLE_SCHEDULE).unwrap();
    json!({"bundle": "schedule", "version": version, "van_id": VAN, "issued_at": Timestamp::now(), "schedule": s})
}

fn blocklist(version: u64) -> Value {
    let mut b = sample::blocklist(VAN, Timestamp::now());
    b["version"] = json!(version);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_bundles_are_pulled_verified_applied_and_journaled() {
    let van = Van::start().await;
    let hq = start_hq(van_key(&van));
    let now = Timestamp::now();
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::get("Africa/Cairo").unwrap()).date();
    let tz = ServiceHours::cairo_default().tz;
    let publish = |bytes: Vec<u8>, target: Option<&str>| {
        van_hq::downsync::publish(&*hq.store, &bytes, target, 0).unwrap();
    };
    // Fleet-wide roster and schedule, this van's block list and bookings; then a stale schedule
    // for this van (refused), then a newer block list (applied: the refusal blocks nothing).
    publish(bundle_for("*", sample::roster(VAN, now).unwrap()), None);
    publish(bundle_for("*", schedule(5)), None);
    publish(bundle_for(VAN, blocklist(1)), Some(VAN));
    publish(bundle_for(VAN, sample::bookings(VAN, today, &tz, now)), Some(VAN));
    publish(bundle_for(VAN, schedule(4)), Some(VAN));
    publish(bundle_for(VAN, blocklist(2)), Some(VAN));
    // Another van's bundle is never served here.
    publish(bundle_for("MTU-OTHER", blocklist(9)), Some("MTU-OTHER"));

    let link =
        Downlink::new(Arc::new(Http { addr: hq.addr, journal: van.journal() }), hq.key.verifying_key(), VAN);
    let r = link.pull(&van.office).await.unwrap();
    assert_eq!(r.applied, [1, 2, 3, 4, 6]);
    assert_eq!(r.refused, [(5, "bundle.stale_version".to_owned())]);
    assert_eq!(r.cursor, 6);
    assert_eq!(van.office.refdata().down_cursor().unwrap(), 6);
    let versions = van.versions();
    assert_eq!(&versions[..3], &[Some(1), Some(5), Some(2)]);
    assert!(!van.office.refdata().bookings_on(today).unwrap().is_empty());
    // Journaled: which HQ bundle each applied record came from, and the refusal.
    let applied = van.records("refdata.applied");
    let hq_ids: Vec<(Value, Value)> =
        applied.iter().map(|a| (a["hq_id"].clone(), a["source"].clone())).collect();
    assert_eq!(hq_ids, [1, 2, 3, 4, 6].map(|i| (json!(i), json!("hq"))));
    assert_eq!(applied[1]["bundle"], "schedule");
    let refused = van.records("refdata.refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (&refused[0]["hq_id"], &refused[0]["code"], &refused[0]["version"]),
        (&json!(5), &json!("bundle.stale_version"), &json!(4))
    );

    // A crash after applying but before the cursor was saved: the next pull sees the same
    // bundles again; nothing is applied twice.
    van.office.refdata().set_down_cursor(0).unwrap();
    let r = link.pull(&van.office).await.unwrap();
    assert!(r.applied.is_empty(), "{r:?}");
    assert_eq!(r.already, [1, 2, 3, 4, 6]);
    assert_eq!(van.versions(), versions);
    assert_eq!(van.records("refdata.applied").len(), 5);
    // Nothing new: nothing done.
    let r = link.pull(&van.office).await.unwrap();
    assert_eq!((r.applied.len(), r.already.len(), r.refused.len(), r.cursor), (0, 0, 0, 6));
    // A later publication arrives on the next pull.
    publish(bundle_for("*", blocklist(3)), None);
    assert_eq!(link.pull(&van.office).await.unwrap().applied, [8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_answers_are_refused_and_change_nothing() {
    let van = Van::start().await;
    let hq = SigningKey::from_bytes(&[0x42; 32]);
    let roster = bundle_for(VAN, sample::roster(VAN, Timestamp::now()).unwrap());
    let genuine = bundle::sign_bundle(&hq, VAN, 1, "roster", 1, &roster).unwrap();
    let mut changed = genuine.clone();
    let mut bytes = roster.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    changed.bundle = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let forgeries = [
        (
            "another key",
            bundle::sign_bundle(&SigningKey::from_bytes(&[7; 32]), VAN, 1, "roster", 1, &roster).unwrap(),
        ),
        ("another van's bundle", bundle::sign_bundle(&hq, "MTU-OTHER", 1, "roster", 1, &roster).unwrap()),
        ("a changed byte", changed),
        ("another version under the signature", bundle::BundleEntryJson { version: 2, ..genuine.clone() }),
    ];
    for (what, entry) in forgeries {
        let t = Canned(Mutex::new(vec![(200, bundle::bundles_answer(vec![entry], false))]));
        let link = Downlink::new(Arc::new(t), hq.verifying_key(), VAN);
        let e = link.pull(&van.office).await.unwrap_err();
        assert!(matches!(e, DownlinkError::Envelope(_)), "{what}: {e}");
        assert_eq!(van.versions(), [None; 4], "{what}");
        assert_eq!(van.office.refdata().down_cursor().unwrap(), 0, "{what}");
        assert!(
            van.records("refdata.applied").is_empty() && van.records("refdata.refused").is_empty(),
            "{what}"
        );
    }
    // HQ's error answers and an unreachable HQ change nothing either.
    let t = Canned(Mutex::new(vec![(
        401,
        br#"{"error":{"code":"sync.stale_request","message":"clock"}}"#.to_vec(),
    )]));
    let e = Downlink::new(Arc::new(t), hq.verifying_key(), VAN).pull(&van.office).await.unwrap_err();
    assert!(matches!(e, DownlinkError::Refused { status: 401, .. }), "{e}");
    let e = Downlink::new(Arc::new(Canned(Mutex::new(vec![]))), hq.verifying_key(), VAN)
        .pull(&van.office)
        .await
        .unwrap_err();
    assert!(matches!(e, DownlinkError::Transport(_)), "{e}");
    // A genuine envelope whose bundle names another kind than signed: refused, journaled, passed.
    let lying = bundle::sign_bundle(&hq, VAN, 1, "schedule", 1, &roster).unwrap();
    let good = bundle::sign_bundle(&hq, VAN, 2, "roster", 1, &roster).unwrap();
    let t = Canned(Mutex::new(vec![(200, bundle::bundles_answer(vec![lying, good], false))]));
    let r = Downlink::new(Arc::new(t), hq.verifying_key(), VAN).pull(&van.office).await.unwrap();
    assert_eq!((r.refused, r.applied), (vec![(1, "bundle.envelope_mismatch".to_owned())], vec![2]));
    assert_eq!(
        van.office.apply_hq_bundle(2, "roster", 1, &roster).await.unwrap(),
        HqBundleOutcome::AlreadyApplied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_ups_get_their_dossier_live_from_hq() {
    let van = Van::start().await;
    let hq = start_hq(van_key(&van));
    let now = Timestamp::now();
    van.office.apply_bundle(None, &bundle_for(VAN, sample::roster(VAN, now).unwrap())).await.unwrap();
    let grant = van
        .office
        .login(serde_json::from_value::<LoginRequest>(json!({"officer_id": "1001", "pin": "1234"})).unwrap())
        .await
        .unwrap();
    let who = van.office.session(&grant.token).await.unwrap();
    let tz = ServiceHours::cairo_default().tz;
    let today = now.to_zoned_datetime(tz.clone()).date();
    let sample_day = sample::bookings(VAN, today, &tz, now);
    let booking = &sample_day["items"][0];
    let nid = booking["citizen"]["national_id"].as_str().unwrap().to_owned();
    let dossier = booking["dossier"].clone();
    let name = dossier["citizen"]["name_ar"].as_str().unwrap().to_owned();
    let line = json!({"national_id": nid, "dossier": dossier}).to_string();
    van_hq::downsync::import_dossiers(&*hq.store, line.as_bytes(), 0).unwrap();
    let q = |n: &str| DossierQuery { national_id: n.into(), plate_letters: None, plate_digits: None };
    // No live source: the van says HQ cannot be asked.
    let e = van.office.dossier(&who, q(&nid)).await.unwrap_err();
    assert_eq!(e.problems[0].code, "hq.unreachable");
    // A live source that is offline: the same.
    let toggle = Arc::new(Toggle {
        online: AtomicBool::new(false),
        http: Http { addr: hq.addr, journal: van.journal() },
    });
    let link = Downlink::new(toggle.clone(), hq.key.verifying_key(), VAN);
    assert!(van.office.set_live_dossiers(Arc::new(link.dossiers())));
    let e = van.office.dossier(&who, q(&nid)).await.unwrap_err();
    assert_eq!(e.problems[0].code, "hq.unreachable");
    // Online: HQ's signed answer.
    toggle.online.store(true, Ordering::SeqCst);
    let d = van.office.dossier(&who, q(&nid)).await.unwrap();
    assert_eq!((d.citizen.national_id.as_str(), d.citizen.name_ar.as_str()), (nid.as_str(), name.as_str()));
    // A walk-up served on HQ's dossier: the transaction records where its dossier came from.
    van.office.apply_bundle(None, &bundle_for(VAN, schedule(1))).await.unwrap();
    let stock = json!({"stock": {"cards": 10, "labels": 10, "tags": 10}});
    van.office.open_shift(&who, serde_json::from_value(stock).unwrap()).await.unwrap();
    let mut req = json!({"service": booking["service"], "citizen": booking["citizen"]});
    if !dossier["vehicle"].is_null() {
        req["vehicle"] = dossier["vehicle"].clone();
    }
    let view = van.office.open_service(&who, serde_json::from_value(req).unwrap()).await.unwrap();
    let open = van.records("service.open");
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["txn"].as_str(), open[0]["dossier_source"].as_str()),
        (Some(view.txn.as_str()), Some("hq"))
    );
    // A citizen HQ does not know: not found (HQ answered), not unreachable.
    let mut other = nid.clone().into_bytes();
    other[12] = if other[12] == b'9' { b'8' } else { other[12] + 1 };
    let other = String::from_utf8(other).unwrap();
    let e = van.office.dossier(&who, q(&other)).await.unwrap_err();
    assert_eq!(e.problems[0].code, "not_found.dossier", "{e:?}");
    // A genuine answer for another query, or an old one, is not used.
    let hq_key = hq.key.clone();
    let q_other = WireQuery { national_id: other.clone(), plate: None }.to_query();
    let replayed = bundle::sign_dossier(
        &hq_key,
        VAN,
        &q_other,
        Timestamp::now().as_microsecond(),
        dossier.to_string().as_bytes(),
    )
    .unwrap();
    let q_nid = WireQuery { national_id: nid.clone(), plate: None }.to_query();
    let stale = bundle::sign_dossier(
        &hq_key,
        VAN,
        &q_nid,
        Timestamp::now().as_microsecond() - 301_000_000,
        dossier.to_string().as_bytes(),
    )
    .unwrap();
    for (what, body) in [("another query's answer", replayed), ("a stale answer", stale)] {
        let link =
            Downlink::new(Arc::new(Canned(Mutex::new(vec![(200, body)]))), hq_key.verifying_key(), VAN);
        let e = link.dossiers().fetch(&nid, None).await.unwrap_err();
        assert!(e.contains("query") || e.contains("clock"), "{what}: {e}");
    }
}

/// A transport that can be switched off (HQ unreachable).
struct Toggle {
    online: AtomicBool,
    http: Http,
}

impl Transport for Toggle {
    fn get_signed<'a>(&'a self, pq: &'a str) -> TransportFuture<'a> {
        if self.online.load(Ordering::SeqCst) {
            self.http.get_signed(pq)
        } else {
            Box::pin(async { Err("connection refused".to_owned()) })
        }
    }
}

fn settings(version: u64, body: Value) -> Value {
    json!({"bundle": "settings", "version": version, "van_id": VAN, "issued_at": Timestamp::now(), "settings": body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_settings_are_pulled_journaled_kept_and_taken_at_the_next_start() {
    let van = Van::start().await;
    let hq = start_hq(van_key(&van));
    let publish = |bytes: &[u8]| van_hq::downsync::publish(&*hq.store, bytes, Some(VAN), 0).unwrap();
    let good = bundle_for(
        VAN,
        settings(
            2,
            json!({"epc_bytes": 16, "user_words": 8, "card_colour": false, "opens": "09:00", "closes": "17:00"}),
        ),
    );
    publish(&good);
    // HQ checks the shape only; the van refuses a value out of range and a stale version.
    publish(&bundle_for(VAN, settings(3, json!({"epc_bytes": 13}))));
    publish(&bundle_for(VAN, settings(1, json!({"epc_bytes": 12}))));
    let link =
        Downlink::new(Arc::new(Http { addr: hq.addr, journal: van.journal() }), hq.key.verifying_key(), VAN);
    let r = link.pull(&van.office).await.unwrap();
    assert_eq!(r.applied, [1]);
    // As for rosters and bookings, the code journaled is the first problem's.
    assert_eq!(r.refused, [(2, "settings.bad_value".to_owned()), (3, "bundle.stale_version".to_owned())]);
    let applied = van.records("refdata.applied");
    assert_eq!(applied.len(), 1);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&good));
    assert_eq!(
        (
            &applied[0]["bundle"],
            &applied[0]["version"],
            &applied[0]["sha256"],
            &applied[0]["source"],
            &applied[0]["hq_id"]
        ),
        (&json!("settings"), &json!(2), &json!(sha), &json!("hq"), &json!(1))
    );
    let refused = van.records("refdata.refused");
    assert!(refused[0]["message"].as_str().unwrap().contains("settings.epc_bytes"), "{}", refused[0]);
    let held = van.office.refdata().settings().unwrap().unwrap();
    assert_eq!((held.version, held.sha256.as_str()), (2, sha.as_str()));
    assert_eq!((held.settings.epc_bytes, held.settings.card_colour), (Some(16), Some(false)));

    // A forged settings bundle (another key) changes nothing.
    let forged = bundle_for(VAN, settings(9, json!({"epc_bytes": 4})));
    let entry =
        bundle::sign_bundle(&SigningKey::from_bytes(&[7; 32]), VAN, 4, "settings", 9, &forged).unwrap();
    let t = Canned(Mutex::new(vec![(200, bundle::bundles_answer(vec![entry], false))]));
    let e = Downlink::new(Arc::new(t), hq.key.verifying_key(), VAN).pull(&van.office).await.unwrap_err();
    assert!(matches!(e, DownlinkError::Envelope(_)), "{e}");
    assert_eq!(van.office.refdata().settings().unwrap().unwrap().version, 2);
    assert_eq!(van.office.refdata().down_cursor().unwrap(), 3);

    // Officers cannot import settings through their API, not even a supervisor.
    van.office
        .apply_bundle(None, &bundle_for(VAN, sample::roster(VAN, Timestamp::now()).unwrap()))
        .await
        .unwrap();
    let grant = van
        .office
        .login(serde_json::from_value::<LoginRequest>(json!({"officer_id": "9001", "pin": "9999"})).unwrap())
        .await
        .unwrap();
    let who = van.office.session(&grant.token).await.unwrap();
    let e = van.office.import(&who, bundle_for(VAN, settings(5, json!({"epc_bytes": 4})))).await.unwrap_err();
    assert_eq!(e.problems[0].code, "bundle.not_allowed");
    assert_eq!(van.office.refdata().settings().unwrap().unwrap().version, 2);

    // Not in effect for this run: it is taken when vand next starts, over the configuration.
    let text = format!(
        "mode = \"simulation\"\n[van]\nid = \"{VAN}\"\n[paths]\nstate_dir = \"{}\"\n[gpio]\nbackend = \"none\"\n\
         [devices.rfid]\ndriver = \"mercury\"\npath = \"/dev/van/rfid\"\nbaud = 115200\n\
         [devices.rfid.options]\npassword_file = \"/x\"\n",
        van._dir.path().display()
    );
    let config = Config::parse(&text, "t.toml").unwrap();
    assert_eq!(mtu::office::boot::desk_config(&config).epc_bytes, 12);
    let next = mtu::office::boot::with_applied_settings(config);
    let d = mtu::office::boot::desk_config(&next);
    assert_eq!((d.epc_bytes, d.user_words, d.card_colour), (16, 8, false));
    assert_eq!((next.service.opens.as_str(), next.service.closes.as_str()), ("09:00", "17:00"));
    assert_eq!(next.hq_settings.unwrap().record()["sha256"], json!(sha));
}
