//! Shared test helpers: a van journal sealed with mtu-journal, batches, an HQ on a temp database,
//! and a minimal blocking HTTP/1.1 client for the real-server tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use mtu_journal::record::rotation_proof_bytes;
use mtu_journal::{Draft, Record, kinds};
use van_hq::database::Database;

pub mod pg;

/// Which store a test runs on: every store test runs on both (see [`on_both_stores`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on the test binary's throwaway PostgreSQL server.
    Postgres,
}

/// Runs each named `fn name(b: Backend)` as two tests, `sqlite::name` and `postgres::name`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Postgres) } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;

/// A van's journal, sealed the way the van seals it.
pub struct Van {
    pub id: String,
    pub key: SigningKey,
    pub records: Vec<Record>,
}

impl Van {
    /// A van with its genesis record.
    pub fn new(id: &str, seed: u8) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut van = Van { id: id.to_owned(), key, records: Vec::new() };
        let genesis = serde_json::json!({
            "format": 1,
            "public_key": hex::encode(van.key.verifying_key().as_bytes()),
            "van_id": id,
        })
        .to_string();
        van.append(kinds::GENESIS, &genesis);
        van
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Appends one record signed with the van's current key.
    pub fn append(&mut self, kind: &str, payload: &str) -> &Record {
        let seq = self.records.len() as u64 + 1;
        let prev = self.records.last().map(|r| r.hash).unwrap_or([0; 32]);
        let rec = Draft {
            seq,
            van_id: &self.id,
            time_us: 1_795_000_000_000_000 + seq as i64 * 1_000_000,
            boot_id: [7; 16],
            boot_us: seq * 1000,
            kind,
            payload: payload.as_bytes(),
            prev_hash: prev,
        }
        .seal(&self.key)
        .unwrap();
        self.records.push(rec);
        self.records.last().unwrap()
    }

    /// Appends `n` ordinary records.
    pub fn append_n(&mut self, n: usize) {
        for _ in 0..n {
            let seq = self.records.len() + 1;
            self.append("test.event", &format!("{{\"n\":{seq}}}"));
        }
    }

    /// Hands signing to `new` through a `key.rotate` record signed by the old key.
    pub fn rotate(&mut self, new: SigningKey) {
        let seq = self.records.len() as u64 + 1;
        let old_id = mtu_journal::key_id_of(&self.key.verifying_key());
        let proof = new.sign(&rotation_proof_bytes(&self.id, seq, &old_id, &new.verifying_key()));
        let payload = serde_json::json!({
            "new_key_id": hex::encode(mtu_journal::key_id_of(&new.verifying_key())),
            "new_public_key": hex::encode(new.verifying_key().as_bytes()),
            "old_key_id": hex::encode(old_id),
            "proof": hex::encode(proof.to_bytes()),
        })
        .to_string();
        self.append(kinds::KEY_ROTATE, &payload);
        self.key = new;
    }
}

/// Export lines of `records` (uncompressed batch).
pub fn lines(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        mtu_journal::export::write_line(&mut out, r).unwrap();
    }
    out
}

/// A zstd-compressed batch.
pub fn batch(records: &[Record]) -> Vec<u8> {
    zstd::encode_all(lines(records).as_slice(), 3).unwrap()
}

/// A record re-sealed with another key (the same fields, another signature and key id).
pub fn reseal(rec: &Record, key: &SigningKey) -> Record {
    Draft {
        seq: rec.seq,
        van_id: &rec.van_id,
        time_us: rec.time_us,
        boot_id: rec.boot_id,
        boot_us: rec.boot_us,
        kind: &rec.kind,
        payload: &rec.payload,
        prev_hash: rec.prev_hash,
    }
    .seal(key)
    .unwrap()
}

/// HQ on a temp database, with one key.
pub struct Hq {
    pub dir: tempfile::TempDir,
    pub store: Database,
    pub key: SigningKey,
    /// What `van-hq --database` takes for this store (a file path or a postgres:// URL).
    pub spec: String,
}

/// HQ on a SQLite file.
pub fn hq() -> Hq {
    hq_on(Backend::Sqlite)
}

/// HQ on a fresh database of `backend`.
pub fn hq_on(backend: Backend) -> Hq {
    let dir = tempfile::tempdir().unwrap();
    let spec = match backend {
        Backend::Sqlite => dir.path().join("hq.db").to_str().unwrap().to_owned(),
        Backend::Postgres => pg::fresh_database(),
    };
    let store = Database::open(&spec).unwrap();
    Hq { dir, store, key: SigningKey::from_bytes(&[0x42; 32]), spec }
}

/// Runs SQL on the database behind `spec` (a test altering what HQ stores).
pub fn execute_sql(spec: &str, sql: &str) {
    if van_hq::database::is_postgres_url(spec) {
        pg::execute(spec, sql);
    } else {
        rusqlite::Connection::open(spec).unwrap().execute_batch(sql).unwrap();
    }
}

pub const NOW: i64 = 1_795_000_500_000_000;

/// A running HTTP server on 127.0.0.1:0 (its own runtime on a thread; stops with the process).
pub fn serve(hq: Hq) -> (SocketAddr, ed25519_dalek::VerifyingKey, tempfile::TempDir) {
    let (tx, rx) = std::sync::mpsc::channel();
    let pubkey = hq.key.verifying_key();
    let Hq { dir, store, key, .. } = hq;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let hq = Arc::new(van_hq::server::Hq { store, key });
            van_hq::server::serve(listener, hq, std::future::pending()).await.unwrap();
        });
    });
    (rx.recv().unwrap(), pubkey, dir)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Sends one HTTP/1.1 request with `headers` and `body`; reads the whole answer.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP answer with a header block");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body_text = if chunked { dechunk(rest) } else { rest.to_owned() };
    let body = serde_json::from_str(&body_text).unwrap_or(serde_json::Value::String(body_text));
    Answer { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The current time as the van sends it.
pub fn now_text() -> String {
    van_hq::protocol::format_time_us(van_hq::ingest::now_us())
}

/// The authentication headers for one request, signed as the van signs (docs/sync.md).
pub fn auth(
    van: &Van,
    method: &str,
    path: &str,
    time: &str,
    nonce: [u8; 16],
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut signed = mtu_sync::REQUEST_DOMAIN.to_vec();
    signed.extend(mtu_sync::request_message(&van.id, method, path, time, &nonce, body).unwrap());
    let sig = van.key.sign(&signed).to_bytes();
    let h = mtu_sync::auth_headers(&van.id, time.to_owned(), &nonce, &sig);
    h.pairs().iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A fresh random nonce.
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    n
}
