//! The van's uplink task (`mtu::sync::shell` with its HTTPS client) against the real HQ
//! (`van-hq`'s router, SQLite store and TLS, in-process) through a fault-injecting TCP proxy:
//! HQ down, 500 pages, slow, late and lost answers, connections cut mid-upload, truncated and garbled
//! answers, forged and replayed acknowledgements, the van restarted mid-batch, HQ restarted
//! mid-batch. In every case every record reaches HQ exactly once (HQ's stored seqs and hashes are
//! the journal's, no more) and, checked all along, the van never counts as synced a record HQ
//! does not hold. Real TLS with a throwaway CA for the main path; a server certificate from
//! another CA is refused.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use mtu::journal::{Journal, JournalOptions, JournalOwner, JournalReader};
use mtu::keys::VanKey;
use mtu::sync::http::{Endpoint, HqClient};
use mtu::sync::machine::{JournalView, UplinkConfig};
use mtu::sync::shell::{ShellConfig, UplinkHandle, UplinkTask};
use mtu::sync::wire;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use van_hq::sqlite::SqliteStore;
use van_hq::store::Store;

const VAN: &str = "MTU-HQ-1";

fn van_key() -> VanKey {
    VanKey::from_seed(&[21u8; 32])
}

fn hq_key() -> SigningKey {
    SigningKey::from_bytes(&[88u8; 32])
}

/// A journal of genesis plus `n` records.
fn make_journal(dir: &Path, n: u64) -> (JournalOwner, PathBuf) {
    let path = dir.join("journal.db");
    let opts = JournalOptions { van_id: VAN.into(), checkpoint_every: 100, max_pages: None };
    let (j, _) = Journal::open(&path, van_key(), &opts).unwrap();
    append(&j, n);
    (j, path)
}

fn append(j: &Journal, n: u64) {
    for i in 0..n {
        j.append(
            "test.append",
            &serde_json::json!({"i": i, "name": "محمد عبد الله", "pad": "x".repeat(200)}),
        )
        .unwrap();
    }
}

/// HQ in-process on a database that outlives restarts.
struct Hq {
    db: PathBuf,
    reader: SqliteStore,
    tls: Option<Arc<rustls::ServerConfig>>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Hq {
    async fn start(db: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> Hq {
        let store = SqliteStore::open(db).unwrap();
        if store.current_key(VAN).unwrap().is_none() {
            van_hq::ingest::enroll(&store, VAN, &hex::encode(van_key().verifying_key().as_bytes()), 0)
                .unwrap();
        }
        let hq = Arc::new(van_hq::server::Hq { store, key: hq_key() });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let config = tls.clone();
        let task = tokio::spawn(async move {
            match config {
                Some(c) => van_hq::tls::serve_tls(listener, c, hq, shutdown).await.unwrap(),
                None => van_hq::server::serve(listener, hq, shutdown).await.unwrap(),
            }
        });
        let reader = SqliteStore::open(db).unwrap();
        Hq { db: db.to_owned(), reader, tls, addr, stop: Some(stop), task: Some(task) }
    }

    /// Stops the server (as a process exit would: open connections are dropped).
    async fn kill(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restart(&mut self) {
        self.kill().await;
        *self = Hq::start(&self.db.clone(), self.tls.clone()).await;
    }

    /// (seq, hash) of every record HQ stores for the van.
    fn stored(&self) -> Vec<(u64, [u8; 32])> {
        self.reader.records(VAN, 0, 1_000_000).unwrap().into_iter().map(|(s, h, _)| (s, h)).collect()
    }
}

/// What the proxy does to one HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Pass,
    /// HQ unreachable: the connection closes before anything reaches HQ.
    Down,
    /// A 500 page from a proxy in front of HQ; HQ never sees the request.
    Status500,
    /// The connection drops halfway through sending the request.
    CutRequest,
    /// HQ handles the request; its answer is lost.
    LoseAnswer,
    /// HQ handles the request; its answer comes late but within the van's timeout.
    Slow,
    /// HQ handles the request; its answer comes after the van gave up.
    Hold,
    /// The answer is cut short.
    Truncate,
    /// Bytes of the answer's body are altered.
    Garble,
    /// The answer is replaced by an acknowledgement signed with another key, claiming more.
    Forge,
    /// The answer is replaced by an earlier acknowledgement of HQ's (a replay).
    Replay,
}

/// A TCP proxy between van and HQ. With `http`, it understands HTTP/1.1 exchanges (content
/// length framing) and applies the scripted faults one per exchange; otherwise (TLS) it pumps
/// bytes and applies only `Down` and `CutRequest`.
#[derive(Clone)]
struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    script: Arc<Mutex<VecDeque<Fault>>>,
    seen: Arc<Mutex<Vec<Fault>>>,
    earlier_ok: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr, http: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream: Arc::new(Mutex::new(upstream)),
            script: Arc::default(),
            seen: Arc::default(),
            earlier_ok: Arc::default(),
        };
        let me = p.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let me = me.clone();
                tokio::spawn(async move {
                    if http {
                        me.serve_http(client).await;
                    } else {
                        me.serve_raw(client).await;
                    }
                });
            }
        });
        p
    }

    fn script(&self, faults: &[Fault]) {
        self.script.lock().unwrap().extend(faults.iter().copied());
    }

    fn next_fault(&self) -> Fault {
        let f = self.script.lock().unwrap().pop_front().unwrap_or(Fault::Pass);
        self.seen.lock().unwrap().push(f);
        f
    }

    fn script_done(&self) -> bool {
        self.script.lock().unwrap().is_empty()
    }

    fn set_upstream(&self, a: SocketAddr) {
        *self.upstream.lock().unwrap() = a;
    }

    async fn serve_raw(&self, mut client: TcpStream) {
        let fault = self.next_fault();
        if fault == Fault::Down {
            return;
        }
        let up = *self.upstream.lock().unwrap();
        let Ok(mut server) = TcpStream::connect(up).await else { return };
        if fault == Fault::CutRequest {
            // Let the TLS handshake and part of the request through, then cut.
            let mut budget = 2500usize;
            let (mut buf, mut sbuf) = (vec![0u8; 512], vec![0u8; 4096]);
            loop {
                tokio::select! {
                    r = client.read(&mut buf) => {
                        let Ok(n) = r else { return };
                        if n == 0 { return; }
                        let n = n.min(budget);
                        if server.write_all(&buf[..n]).await.is_err() { return; }
                        budget -= n;
                        if budget == 0 { return; }
                    }
                    r = server.read(&mut sbuf) => {
                        let Ok(n) = r else { return };
                        if n == 0 || client.write_all(&sbuf[..n]).await.is_err() { return; }
                    }
                }
            }
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }

    async fn serve_http(&self, mut client: TcpStream) {
        let mut ccarry = Vec::new();
        let mut server: Option<(TcpStream, Vec<u8>)> = None;
        loop {
            let Some(req) = read_http(&mut client, &mut ccarry).await else { return };
            let fault = self.next_fault();
            match fault {
                Fault::Down => return,
                Fault::Status500 => {
                    let page = b"<html><body><h1>500 Internal Server Error</h1></body></html>";
                    let head = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        page.len()
                    );
                    let _ = client.write_all(head.as_bytes()).await;
                    let _ = client.write_all(page).await;
                    return;
                }
                _ => {}
            }
            if server.is_none() {
                let up = *self.upstream.lock().unwrap();
                match TcpStream::connect(up).await {
                    Ok(s) => server = Some((s, Vec::new())),
                    Err(_) => return,
                }
            }
            let (srv, scarry) = server.as_mut().unwrap();
            if fault == Fault::CutRequest {
                let _ = srv.write_all(&req[..req.len() / 2]).await;
                return;
            }
            if srv.write_all(&req).await.is_err() {
                return;
            }
            let Some(resp) = read_http(srv, scarry).await else { return };
            let out = match fault {
                Fault::LoseAnswer => return,
                Fault::Slow => {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    resp.clone()
                }
                Fault::Hold => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    resp.clone()
                }
                Fault::Truncate => resp[..resp.len() - resp.len() / 3].to_vec(),
                Fault::Garble => {
                    let mut r = resp.clone();
                    let body_at = find(&r, b"\r\n\r\n").unwrap() + 4;
                    let mid = body_at + (r.len() - body_at) / 2;
                    for b in &mut r[mid..(mid + 6).min(resp.len())] {
                        *b = b'#';
                    }
                    r
                }
                Fault::Forge => match forged(&resp) {
                    Some(f) => f,
                    None => resp.clone(),
                },
                Fault::Replay => {
                    let earlier = self.earlier_ok.lock().unwrap().first().cloned();
                    earlier.unwrap_or_else(|| resp.clone())
                }
                _ => resp.clone(),
            };
            if resp.starts_with(b"HTTP/1.1 200") {
                self.earlier_ok.lock().unwrap().push(resp.clone());
            }
            if client.write_all(&out).await.is_err() {
                return;
            }
            if matches!(fault, Fault::Truncate | Fault::Hold) {
                return;
            }
        }
    }
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

/// One HTTP/1.1 message (head and a `content-length` body) from `s`, keeping what follows.
async fn read_http(s: &mut TcpStream, carry: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = find(carry, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if carry.len() >= end + 4 + len {
                return Some(carry.drain(..end + 4 + len).collect());
            }
        }
        let mut b = [0u8; 16 * 1024];
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        carry.extend_from_slice(&b[..n]);
    }
}

/// An acknowledgement like HQ's answer but signed by another key and claiming 50 more records.
fn forged(resp: &[u8]) -> Option<Vec<u8>> {
    let body_at = find(resp, b"\r\n\r\n")? + 4;
    let v: Value = serde_json::from_slice(&resp[body_at..]).ok()?;
    let a = &v["ack"];
    let head_hash = wire::lower_hex::<32>(a["head_hash"].as_str()?)?;
    let time_us = wire::parse_utc("t", a["time"].as_str()?).ok()?;
    let ack = wire::Ack { van: VAN, seq: a["seq"].as_u64()? + 50, head_hash, time_us: time_us + 1 };
    let body = wire::sign_ack(&SigningKey::from_bytes(&[99u8; 32]), &ack);
    Some(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn shell_config() -> ShellConfig {
    ShellConfig {
        uplink: UplinkConfig {
            max_records: 20,
            max_bytes: 1 << 20,
            request_timeout: Duration::from_millis(800),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(150),
            checkpoint_every: Duration::from_secs(600),
        },
        poll_interval: Duration::from_millis(50),
    }
}

/// A van: its journal (reader), client and uplink task.
struct Van {
    handle: UplinkHandle,
    cancel: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_van(journal: &Path, state: &Path, url: &str, ca_pem: &[u8]) -> Van {
    start_van_with(journal, state, url, ca_pem, None)
}

fn start_van_with(
    journal: &Path,
    state: &Path,
    url: &str,
    ca_pem: &[u8],
    hook: Option<mtu::sync::SessionHook>,
) -> Van {
    // Plain HTTP (so the proxy can alter answers) still needs a CA to build the client.
    let ca_pem = if ca_pem.is_empty() {
        van_hq::tls::throwaway_ca("unused", &["localhost".into()]).unwrap().ca_cert_pem.into_bytes()
    } else {
        ca_pem.to_vec()
    };
    let endpoint = Endpoint {
        url: url.to_owned(),
        ca_pem,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    let client = HqClient::new(&endpoint, "test CA", VAN, Arc::new(van_key())).unwrap();
    let reader = JournalReader::open(journal).unwrap();
    let (mut task, handle) =
        UplinkTask::new(shell_config(), VAN, hq_key().verifying_key(), client, reader, Some(state));
    if let Some(h) = hook {
        task = task.on_session(h);
    }
    let (cancel, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(task.run(rx));
    Van { handle, cancel, task }
}

impl Van {
    async fn stop(self) {
        let _ = self.cancel.send(true);
        let _ = self.task.await;
    }
}

/// Waits until the van has nothing pending and HQ holds its head, checking all the while that the
/// van never counts a record HQ lacks (its status and its kept state file).
async fn until_synced(van: &UplinkHandle, hq: &Hq, journal: &Path, state: &Path, within: Duration) -> Value {
    let head = JournalReader::open(journal).unwrap().head().unwrap().0;
    let started = Instant::now();
    loop {
        let st = van.status().await;
        let kept =
            mtu::sync::shell::load_state(&state.join(mtu::sync::shell::STATE_FILE), VAN).map(|a| a.seq);
        let held = hq.stored().len() as u64;
        let acked = st["acked_seq"].as_u64().unwrap_or(0);
        assert!(acked <= held, "the van counts {acked} records as synced but HQ holds {held}: {st}");
        assert!(kept.unwrap_or(0) <= held, "the kept acknowledgement ({kept:?}) is beyond HQ's {held}");
        if acked == head && st["pending"] == 0 && held == head {
            return st;
        }
        assert!(started.elapsed() < within, "not synced within {within:?}: {st} (HQ holds {held} of {head})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// HQ holds exactly the van's journal: the same seqs 1..=head in order, the same hashes, once.
fn exactly_once(hq: &Hq, journal: &Path) {
    let reader = JournalReader::open(journal).unwrap();
    let head = reader.head().unwrap().0;
    let stored = hq.stored();
    assert_eq!(stored.len() as u64, head, "HQ holds {} records, the journal {head}", stored.len());
    let ours = reader.read(1, head as usize).unwrap();
    for (i, ((seq, hash), r)) in stored.iter().zip(&ours).enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*seq, r.seq);
        assert_eq!(*hash, r.hash, "record {seq} differs at HQ");
    }
    assert_eq!(van_hq::audit::verify_van(&hq.reader, VAN, 100).unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_the_wire_ends_with_every_record_at_hq_exactly_once() {
    use Fault::*;
    let dir = tempfile::tempdir().unwrap();
    let (j, jpath) = make_journal(dir.path(), 150);
    let mut hq = Hq::start(&dir.path().join("hq.db"), None).await;
    let proxy = Proxy::start(hq.addr, true).await;
    proxy.script(&[
        Down, Down, Status500, Pass, CutRequest, Pass, LoseAnswer, Truncate, Pass, Garble, Forge, Pass,
        Replay, Hold, Slow, Pass, LoseAnswer, LoseAnswer, Pass, Forge, Garble, Truncate, Replay, Pass,
    ]);
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let van = start_van(&jpath, &state, &format!("http://{}", proxy.addr), b"");
    until_synced(&van.handle, &hq, &jpath, &state, Duration::from_secs(60)).await;
    assert!(proxy.script_done(), "every scripted fault was met");
    // More records; HQ stores the next upload and restarts while its answer is on the way.
    let before = hq.stored().len();
    proxy.script(&[Hold]); // the next exchange: the upload the poll starts (no checkpoint is due)
    append(&j, 60);
    let started = Instant::now();
    while hq.stored().len() == before {
        assert!(started.elapsed() < Duration::from_secs(20), "the upload never reached HQ");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(van.handle.status().await["in_flight"] == true, "HQ restarts mid-exchange");
    hq.restart().await;
    proxy.set_upstream(hq.addr);
    let st = until_synced(&van.handle, &hq, &jpath, &state, Duration::from_secs(60)).await;
    assert!(st["last_error"].is_null(), "{st}");
    exactly_once(&hq, &jpath);
    // The forged acknowledgement was refused as such, never counted.
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(seen.contains(&Forge) && seen.contains(&Replay) && seen.contains(&LoseAnswer));
    van.stop().await;
    hq.kill().await;
    j.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_van_restarted_mid_batch_resumes_from_where_hq_stands() {
    let dir = tempfile::tempdir().unwrap();
    let (j, jpath) = make_journal(dir.path(), 120);
    let hq = Hq::start(&dir.path().join("hq.db"), None).await;
    let proxy = Proxy::start(hq.addr, true).await;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Checkpoint, two uploads acknowledged, then HQ stores the third but its answer is lost.
    proxy.script(&[Fault::Pass, Fault::Pass, Fault::Pass, Fault::LoseAnswer]);
    proxy.script(&[Fault::Down; 30]); // HQ out of reach until the van is stopped
    let van = start_van(&jpath, &state, &format!("http://{}", proxy.addr), b"");
    let started = Instant::now();
    while hq.stored().len() < 60 {
        assert!(started.elapsed() < Duration::from_secs(20), "HQ never got the third batch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    van.stop().await; // vand stops (or is killed) with the third batch unacknowledged
    let kept = mtu::sync::shell::load_state(&state.join(mtu::sync::shell::STATE_FILE), VAN).unwrap();
    assert_eq!(kept.seq, 40, "the van kept only what HQ acknowledged");
    proxy.script.lock().unwrap().clear();
    let van = start_van(&jpath, &state, &format!("http://{}", proxy.addr), b"");
    until_synced(&van.handle, &hq, &jpath, &state, Duration::from_secs(30)).await;
    exactly_once(&hq, &jpath);
    van.stop().await;
    j.close();
}

/// Throwaway CA files (CA certificate, server chain, server key) in `dir`.
fn tls_files(dir: &Path) -> van_hq::tls::TlsFiles {
    van_hq::tls::init(dir, &["127.0.0.1".into(), "localhost".into()]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_the_pinned_ca_records_arrive_despite_cut_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (j, jpath) = make_journal(dir.path(), 90);
    let files = tls_files(&dir.path().join("tls"));
    let config = van_hq::tls::server_config(&files.server_cert, &files.server_key).unwrap();
    let hq = Hq::start(&dir.path().join("hq.db"), Some(config)).await;
    let proxy = Proxy::start(hq.addr, false).await;
    proxy.script(&[Fault::Down, Fault::Pass, Fault::CutRequest, Fault::Down]);
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let ca = std::fs::read(&files.ca_cert).unwrap();
    // The hook after each completed session sees HQ level with the journal (down-sync goes there).
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let (seen, db) = (sessions.clone(), hq.db.clone());
    let hook: mtu::sync::SessionHook = Arc::new(move || {
        let (seen, db) = (seen.clone(), db.clone());
        Box::pin(async move {
            let held = SqliteStore::open(&db).unwrap().records(VAN, 0, 1000).unwrap().len();
            seen.lock().unwrap().push(held);
        })
    });
    let van = start_van_with(&jpath, &state, &format!("https://{}", proxy.addr), &ca, Some(hook));
    let st = until_synced(&van.handle, &hq, &jpath, &state, Duration::from_secs(60)).await;
    assert_eq!(st["acked_seq"], 91);
    exactly_once(&hq, &jpath);
    let started = Instant::now();
    while sessions.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "the session hook never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sessions.lock().unwrap()[0], 91, "the hook runs once everything is acknowledged");
    van.stop().await;
    j.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (j, jpath) = make_journal(dir.path(), 5);
    let served = tls_files(&dir.path().join("served"));
    let pinned = tls_files(&dir.path().join("pinned"));
    let config = van_hq::tls::server_config(&served.server_cert, &served.server_key).unwrap();
    let hq = Hq::start(&dir.path().join("hq.db"), Some(config)).await;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let ca = std::fs::read(&pinned.ca_cert).unwrap();
    let van = start_van(&jpath, &state, &format!("https://{}", hq.addr), &ca);
    let started = Instant::now();
    let st = loop {
        let st = van.handle.status().await;
        if !st["last_error"].is_null() {
            break st;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no error: {st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let err = st["last_error"].as_str().unwrap().to_lowercase();
    assert!(err.contains("certificate") || err.contains("unknownissuer"), "{err}");
    assert!(st["acked_seq"].is_null(), "{st}");
    assert!(hq.stored().is_empty());
    // The same van pinned to the right CA gets through.
    van.stop().await;
    let van =
        start_van(&jpath, &state, &format!("https://{}", hq.addr), &std::fs::read(&served.ca_cert).unwrap());
    until_synced(&van.handle, &hq, &jpath, &state, Duration::from_secs(30)).await;
    exactly_once(&hq, &jpath);
    van.stop().await;
    j.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_gets_reach_hq_and_bad_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (j, jpath) = make_journal(dir.path(), 3);
    let hq = Hq::start(&dir.path().join("hq.db"), None).await;
    let endpoint = Endpoint {
        url: format!("http://{}", hq.addr),
        ca_pem: Vec::new(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
    };
    // No CA at all: refused when built.
    assert!(HqClient::new(&endpoint, "none", VAN, Arc::new(van_key())).is_err());
    let files = tls_files(&dir.path().join("tls"));
    let ca = std::fs::read(&files.ca_cert).unwrap();
    let client =
        HqClient::new(&Endpoint { ca_pem: ca.clone(), ..endpoint.clone() }, "ca", VAN, Arc::new(van_key()))
            .unwrap();
    let (status, body) = client.get_signed("/v1/ack?x=1").await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let ack = wire::verify_ack(&body, &hq_key().verifying_key()).unwrap();
    assert_eq!((ack.van.as_str(), ack.seq), (VAN, 0));
    // Signed by a key HQ does not hold: refused by HQ with its code.
    let other = HqClient::new(
        &Endpoint { ca_pem: ca.clone(), ..endpoint.clone() },
        "ca",
        VAN,
        Arc::new(VanKey::from_seed(&[3u8; 32])),
    )
    .unwrap();
    let (status, body) = other.get_signed("/v1/ack").await.unwrap();
    assert_eq!(status, 401);
    assert!(String::from_utf8_lossy(&body).contains("sync.bad_request_signature"));
    for url in ["ftp://h", "https://h/path", "https://", "h:1"] {
        let e = HqClient::new(
            &Endpoint { url: url.into(), ca_pem: ca.clone(), ..endpoint.clone() },
            "ca",
            VAN,
            Arc::new(van_key()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sync.url"), "{e}");
    }
    let _ = jpath;
    j.close();
}
