//! SQLite storage of the journal: schema and migrations, the single writer, and readers.
//!
//! The writer is not a thread: an appender queues its record and takes the writer lock; whoever
//! holds the lock commits everything queued in one transaction (group commit) and answers each
//! caller. A lone appender so does its own commit with no thread handoff.
//!
//! Invariants enforced here (and again by triggers in the database):
//! - records are only ever inserted, never updated or deleted;
//! - record `n + 1` is inserted only after record `n`, and chains to its hash;
//! - an append is reported written only after its transaction committed with `synchronous=FULL`;
//! - a record whose payload names a transaction (`"txn"`) is indexed in the same transaction.
//!
//! Beside the database the writer keeps `<journal>.lock` (one writer at a time) and
//! `<journal>.status`, a fixed 4 KiB block rewritten in place (so it needs no new disk space when
//! the disk is full): whether the last writer closed cleanly, and the appends that failed and are
//! not yet on record as `fault.storage`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;

use super::kinds::PreviousStop;
use super::record::{Draft, FieldError, Record, kinds, rotation_proof_bytes};
use super::verify::{ChainState, ChainVerifier, VerifyError};
use crate::clock;
use crate::keys::{DomainSignature, DomainSigner, KeyError, SignError, VanKey, staged_key_path};

/// `PRAGMA application_id` of a journal database ("MTUJ").
pub const APPLICATION_ID: i32 = 0x4D54_554A;

/// Rows read per short read transaction when streaming (keeps WAL checkpoints unblocked).
const READ_CHUNK: u64 = 4096;
/// A record this writer sealed: seq, hash, signature.
type Sealed = (u64, [u8; 32], [u8; 64]);
/// Most sealed records remembered for a checkpoint (96 bytes each).
const MAX_SEALED: usize = 100_000;
/// Mode of the journal database, its WAL and side files: the `mtu` user writes, its group reads.
pub const JOURNAL_FILE_MODE: u32 = 0o640;
/// Longest transaction id (`"txn"` payload field), in bytes.
pub const MAX_TXN: usize = 64;

/// Why the journal could not be opened or written. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: in use by another process (only one writer: stop vand first)")]
    InUse { path: PathBuf },
    #[error("journal {path}: cannot open: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("journal {path}: not a journal database (corrupt or a different kind of file): {detail}")]
    NotAJournal { path: PathBuf, detail: String },
    #[error("journal {path}: belongs to van {found:?} but the configuration says {expected:?}")]
    ForeignVan { path: PathBuf, expected: String, found: String },
    #[error("journal {path}: database is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("journal {path}: verification failed at {0}", .error)]
    Integrity { path: PathBuf, error: VerifyError },
    #[error(
        "journal {path}: the key file holds key {key_file} but the journal's current key is {journal}; \
         restore the van's key (never create a new one for an existing journal)"
    )]
    KeyMismatch { path: PathBuf, key_file: String, journal: String },
    #[error(
        "journal {path}: disk full: the record was NOT written ({detail}); records acknowledged before \
         are safe; free space: the count of unwritten records is kept and recorded as fault.storage"
    )]
    DiskFull { path: PathBuf, detail: String },
    #[error("journal {path}: read-only (filesystem or permissions): the record was NOT written ({detail})")]
    ReadOnly { path: PathBuf, detail: String },
    #[error("journal {path}: storage error: the record was NOT written ({detail})")]
    Storage { path: PathBuf, detail: String },
    #[error("journal record refused: {0}")]
    Field(#[from] FieldError),
    #[error("journal {path}: record {seq} not found")]
    NotFound { path: PathBuf, seq: u64 },
    #[error("journal writer has stopped")]
    Closed,
    #[error(
        "journal {path} is missing or empty but the van's key {key_path} exists: restore the journal \
         (the .db file, with its -wal file if there is one) from the van's backup; never start a new \
         journal under an existing key (HQ would see a fork)"
    )]
    Missing { path: PathBuf, key_path: PathBuf },
    #[error(
        "journal {path} exists but the key file {key_path} is missing: restore the van's key \
         (never create a new one for an existing journal)"
    )]
    KeyMissing { path: PathBuf, key_path: PathBuf },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "journal {path} was made by a newer vand (schema version {found}; this vand knows up to \
         {known}): update vand; never run older software on a newer journal"
    )]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("journal record refused: {0}")]
    Txn(String),
    #[error("journal {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    #[error(
        "journal {path}: --pubkey {given} is not the van's genesis key {genesis} but the key it \
         rotated to at record {seq}: HQ enrolls the genesis key (`vanctl pubkey` prints it) and \
         follows key.rotate records from there"
    )]
    NotGenesisKey { path: PathBuf, given: String, genesis: String, seq: u64 },
}

impl JournalError {
    /// True for errors that mean the journal (or its pairing with the key file, the van id or its
    /// checkpoint) is not trustworthy, as opposed to not being readable.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            JournalError::Integrity { .. }
                | JournalError::KeyMismatch { .. }
                | JournalError::ForeignVan { .. }
                | JournalError::Checkpoint { .. }
                | JournalError::NotGenesisKey { .. }
        )
    }
}

fn map_sqlite(path: &Path, e: rusqlite::Error) -> JournalError {
    let path = path.to_owned();
    let detail = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => JournalError::DiskFull { path, detail },
        Some(ErrorCode::ReadOnly) => JournalError::ReadOnly { path, detail },
        Some(ErrorCode::NotADatabase) => JournalError::NotAJournal { path, detail },
        Some(ErrorCode::DatabaseCorrupt) => JournalError::Corrupt { path, detail },
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
            JournalError::Open { path, detail }
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => JournalError::InUse { path },
        _ => JournalError::Storage { path, detail },
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
        PRAGMA application_id = 1297372490;
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;
        CREATE TABLE records (
            seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
            van_id    TEXT    NOT NULL,
            key_id    BLOB    NOT NULL CHECK (length(key_id) = 8),
            time_us   INTEGER NOT NULL,
            boot_id   BLOB    NOT NULL CHECK (length(boot_id) = 16),
            boot_us   INTEGER NOT NULL,
            kind      TEXT    NOT NULL,
            payload   BLOB    NOT NULL,
            prev_hash BLOB    NOT NULL CHECK (length(prev_hash) = 32),
            hash      BLOB    NOT NULL CHECK (length(hash) = 32),
            sig       BLOB    NOT NULL CHECK (length(sig) = 64)
        ) STRICT;
        CREATE TRIGGER records_no_update BEFORE UPDATE ON records
        BEGIN SELECT RAISE(ABORT, 'journal records are append-only: UPDATE refused'); END;
        CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        BEGIN SELECT RAISE(ABORT, 'journal records are append-only: DELETE refused'); END;
        CREATE TRIGGER records_gapless BEFORE INSERT ON records
        WHEN NEW.seq <> COALESCE((SELECT MAX(seq) FROM records), 0) + 1
        BEGIN SELECT RAISE(ABORT, 'journal sequence must continue without gaps'); END;
        CREATE TRIGGER records_chained BEFORE INSERT ON records
        WHEN (NEW.seq = 1 AND NEW.prev_hash <> zeroblob(32))
          OR (NEW.seq > 1 AND NEW.prev_hash IS NOT (SELECT hash FROM records WHERE seq = NEW.seq - 1))
        BEGIN SELECT RAISE(ABORT, 'journal record does not chain to its predecessor'); END;
        CREATE TABLE checkpoint (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            seq         INTEGER NOT NULL,
            hash        BLOB    NOT NULL,
            public_key  BLOB    NOT NULL,
            verified_us INTEGER NOT NULL
        ) STRICT;
        "#,
        ),
        // Transaction index: records whose payload is an object with a top-level "txn" string.
        // Written in the same transaction as the record; append-only like the records.
        M::up(
            r#"
        CREATE TABLE txn_index (
            txn TEXT    NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (txn, seq)
        ) STRICT, WITHOUT ROWID;
        CREATE TRIGGER txn_index_no_update BEFORE UPDATE ON txn_index
        BEGIN SELECT RAISE(ABORT, 'journal transaction index is append-only: UPDATE refused'); END;
        CREATE TRIGGER txn_index_no_delete BEFORE DELETE ON txn_index
        BEGIN SELECT RAISE(ABORT, 'journal transaction index is append-only: DELETE refused'); END;
        INSERT INTO txn_index (txn, seq)
            SELECT json_extract(CAST(payload AS TEXT), '$.txn'), seq FROM records
            WHERE json_valid(CAST(payload AS TEXT))
              AND json_type(CAST(payload AS TEXT), '$.txn') = 'text';
        "#,
        ),
    ])
}

/// Schema version this build writes (`PRAGMA user_version`, one per migration).
pub const SCHEMA_VERSION: i64 = 2;

/// Options for opening the writer.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// The van id every record carries; must match an existing journal's.
    pub van_id: String,
    /// Records between verified checkpoints.
    pub checkpoint_every: u64,
    /// Caps the database at this many pages (`PRAGMA max_page_count`): a quota, and how tests
    /// simulate a full disk deterministically.
    pub max_pages: Option<u64>,
}

/// What happened when the journal was opened.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// A new journal (with its genesis record) was created.
    pub created: bool,
    /// Records in the journal after opening.
    pub records: u64,
    /// Records verified at open (those after the last checkpoint).
    pub verified: u64,
    /// Kind of the last record before this open.
    pub last_kind: Option<String>,
    /// How the previous writer stopped.
    pub previous_stop: PreviousStop,
    /// Appends that failed before this open and are not yet on record: the next commit writes a
    /// `fault.storage` record for them first.
    pub unrecorded_failures: u64,
    /// Time taken to open and verify.
    pub elapsed: Duration,
}

/// Appends that failed and are not on record yet (kept in `<journal>.status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Failures {
    count: u64,
    first_error: String,
    since_us: i64,
    /// Failed appends by kind (at most [`MAX_FAILED_KINDS`] kinds; the rest under `"other"`).
    kinds: BTreeMap<String, u64>,
}

const MAX_FAILED_KINDS: usize = 16;

impl Failures {
    fn add(&mut self, kinds: impl Iterator<Item = String>, error: &str) {
        if self.count == 0 {
            self.first_error = error.chars().take(400).collect();
            self.since_us = clock::now_utc_us();
        }
        for kind in kinds {
            self.count += 1;
            let key = if self.kinds.len() < MAX_FAILED_KINDS || self.kinds.contains_key(&kind) {
                kind
            } else {
                "other".to_owned()
            };
            *self.kinds.entry(key).or_default() += 1;
        }
    }
}

/// What `<journal>.status` says.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct WriterStatus {
    /// A writer has the journal open (true from open until its clean close).
    open: bool,
    /// The last record when the last writer closed cleanly.
    closed_at: Option<u64>,
    /// Appends that failed and are not yet on record.
    failures: Option<Failures>,
}

/// `<journal>.status`: one 4 KiB block, written in place and synced. Allocated at first open so a
/// full disk later never prevents keeping the failure count.
struct StatusFile {
    file: File,
}

const STATUS_SIZE: usize = 4096;

fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

impl StatusFile {
    fn read(path: &Path) -> Option<WriterStatus> {
        let bytes = std::fs::read(side_path(path, ".status")).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        match serde_json::from_str(text.trim_end_matches([' ', '\n', '\0'])) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "journal status file unreadable; treating the last stop as unclean");
                Some(WriterStatus { open: true, closed_at: None, failures: None })
            }
        }
    }

    fn open(path: &Path) -> std::io::Result<StatusFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(JOURNAL_FILE_MODE)
            .open(side_path(path, ".status"))?;
        Ok(StatusFile { file })
    }

    fn write(&self, status: &WriterStatus) -> std::io::Result<()> {
        let mut status = status.clone();
        let mut text = serde_json::to_vec(&status).map_err(std::io::Error::other)?;
        if text.len() >= STATUS_SIZE
            && let Some(f) = status.failures.as_mut()
        {
            f.first_error.truncate(100);
            let other: u64 = f.kinds.values().sum();
            f.kinds = BTreeMap::from([("other".to_owned(), other)]);
            text = serde_json::to_vec(&status).map_err(std::io::Error::other)?;
        }
        text.resize(STATUS_SIZE - 1, b' ');
        text.push(b'\n');
        self.file.write_all_at(&text, 0)?;
        self.file.sync_data()
    }
}

/// The writer's state ([`Journal::writer_health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterHealth {
    /// The writer is open (false once closed).
    pub open: bool,
    /// The last record committed (`None` once closed).
    pub head_seq: Option<u64>,
    /// Appends that failed and are not on record yet (a full disk, an I/O error).
    pub failed_appends: u64,
    /// The first of those failures' error.
    pub first_error: Option<String>,
}

/// A record written: its place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: [u8; 32],
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// What the handles share: appends waiting to be committed, and the writer (`None` once closed).
struct Shared {
    queue: Mutex<Vec<Pending>>,
    writer: Mutex<Option<Writer>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handle to the journal's single writer. Cloning shares the same writer.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
    path: PathBuf,
    /// A read-only connection for lookups (transaction index) beside the writer.
    reader: Arc<Mutex<Connection>>,
}

/// Owns the writer; dropping it (or calling [`JournalOwner::close`]) commits what is queued,
/// checkpoints, records a clean close and releases the lock.
pub struct JournalOwner {
    handle: Journal,
}

impl std::ops::Deref for JournalOwner {
    type Target = Journal;
    fn deref(&self) -> &Journal {
        &self.handle
    }
}

impl JournalOwner {
    /// Stops the writer after everything queued, checkpoints the WAL, and waits for it.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let taken = lock(&self.handle.shared.writer).take();
        if let Some(mut w) = taken {
            let mut rest = std::mem::take(&mut *lock(&self.handle.shared.queue));
            w.flush(&mut rest);
            w.close();
        }
    }
}

impl Drop for JournalOwner {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    van_id: String,
    key: VanKey,
    tail: ChainState,
    checkpoint: ChainState,
    checkpoint_every: u64,
    /// Appends that failed and are not on record yet.
    failed: Option<Failures>,
    status: Option<StatusFile>,
    /// (seq, hash, signature) of each record this writer sealed since the checkpoint, in order;
    /// `None` once more than [`MAX_SEALED`] (then the checkpoint verifies signatures).
    sealed: Option<Vec<Sealed>>,
    _lock: File,
}

/// Creates the journal's folder (mode 0750) and takes the writer lock `<journal>.lock`.
fn lock_file(path: &Path) -> Result<File, JournalError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::keys::create_private_dir(dir)
            .map_err(|e| JournalError::Open { path: path.to_owned(), detail: e.to_string() })?;
    }
    let lock_path = side_path(path, ".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(JOURNAL_FILE_MODE)
        .open(&lock_path)
        .or_else(|_| File::open(&lock_path))
        .map_err(|e| JournalError::Open { path: path.to_owned(), detail: format!("lock file: {e}") })?;
    // A writer that just closed may still appear to hold the lock for a moment: a process forked
    // meanwhile (before its exec closes inherited descriptors) shares the lock. Retry briefly.
    let deadline = Instant::now() + Duration::from_millis(500);
    let rc = loop {
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        let busy = rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK);
        if !busy || Instant::now() >= deadline {
            break rc;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            JournalError::InUse { path: path.to_owned() }
        } else {
            JournalError::Open { path: path.to_owned(), detail: format!("lock file: {err}") }
        });
    }
    Ok(file)
}

/// Refuses early, with a clear message, when the journal file or its folder cannot be written
/// (read-only filesystem, wrong owner): SQLite would otherwise fail later with a vaguer error.
fn check_writable(path: &Path) -> Result<(), JournalError> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_owned(),
        None => PathBuf::from("."),
    };
    for target in [path, dir.as_path()] {
        if target != dir.as_path() && !target.exists() {
            continue;
        }
        let Ok(c) = std::ffi::CString::new(target.as_os_str().as_bytes()) else { continue };
        // SAFETY: access() only reads the NUL-terminated path we pass.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(JournalError::ReadOnly {
                path: path.to_owned(),
                detail: format!("{} is not writable: {err}", target.display()),
            });
        }
    }
    Ok(())
}

/// Applies the per-connection pragmas and checks the file is a journal (or empty).
fn prepare(conn: &mut Connection, path: &Path, writer: bool) -> Result<(), JournalError> {
    let m = |e| map_sqlite(path, e);
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(m)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| JournalError::NotAJournal { path: path.to_owned(), detail: e.to_string() })?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
            detail: format!("application_id is {app_id:#x}, a journal has {APPLICATION_ID:#x}"),
        });
    }
    conn.busy_timeout(Duration::from_secs(5)).map_err(m)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(m)?;
    if version > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if writer {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(m)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Open {
                path: path.to_owned(),
                detail: format!("cannot enable WAL (got {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(m)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(m)?;
        migrations().to_latest(conn).map_err(|e| match e {
            rusqlite_migration::Error::RusqliteError { err, .. } => map_sqlite(path, err),
            other => JournalError::Storage { path: path.to_owned(), detail: other.to_string() },
        })?;
    } else {
        conn.pragma_update(None, "foreign_keys", true).map_err(m)?;
        if tables == 0 {
            return Err(JournalError::NotAJournal { path: path.to_owned(), detail: "empty database".into() });
        }
    }
    Ok(())
}

const RECORD_COLUMNS: &str =
    "seq, van_id, key_id, time_us, boot_id, boot_us, kind, payload, prev_hash, hash, sig";
const RECORD_COLUMNS_R: &str = "r.seq, r.van_id, r.key_id, r.time_us, r.boot_id, r.boot_us, r.kind, r.payload, \
     r.prev_hash, r.hash, r.sig";

fn blob<const N: usize>(
    row: &rusqlite::Row<'_>,
    idx: usize,
    seq: u64,
    name: &str,
) -> rusqlite::Result<[u8; N]> {
    let v: Vec<u8> = row.get(idx)?;
    <[u8; N]>::try_from(v.as_slice()).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Blob,
            format!("record {seq}: column {name} has {} bytes, expected {N}", v.len()).into(),
        )
    })
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let seq: i64 = row.get(0)?;
    let seq = seq as u64;
    let boot_us: i64 = row.get(5)?;
    Ok(Record {
        seq,
        van_id: row.get(1)?,
        key_id: blob(row, 2, seq, "key_id")?,
        time_us: row.get(3)?,
        boot_id: blob(row, 4, seq, "boot_id")?,
        boot_us: boot_us as u64,
        kind: row.get(6)?,
        payload: row.get(7)?,
        prev_hash: blob(row, 8, seq, "prev_hash")?,
        hash: blob(row, 9, seq, "hash")?,
        sig: blob(row, 10, seq, "sig")?,
    })
}

fn insert(conn: &Connection, r: &Record, txn: Option<&str>) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO records (seq, van_id, key_id, time_us, boot_id, boot_us, kind, payload, prev_hash, hash, sig)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        r.seq as i64,
        r.van_id,
        &r.key_id[..],
        r.time_us,
        &r.boot_id[..],
        r.boot_us as i64,
        r.kind,
        r.payload,
        &r.prev_hash[..],
        &r.hash[..],
        &r.sig[..],
    ])?;
    if let Some(txn) = txn {
        conn.prepare_cached("INSERT INTO txn_index (txn, seq) VALUES (?1, ?2)")?
            .execute(params![txn, r.seq as i64])?;
    }
    Ok(())
}

/// Reads records of `conn` from `from` to `to` (inclusive) in short chunks, calling `f` for each;
/// `f` returns false to stop early.
fn for_each_record(
    conn: &Connection,
    path: &Path,
    from: u64,
    to: u64,
    mut f: impl FnMut(Record) -> Result<bool, JournalError>,
) -> Result<(), JournalError> {
    let mut next = from.max(1);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
        ))
        .map_err(|e| map_sqlite(path, e))?;
    while next <= to {
        let end = to.min(next.saturating_add(READ_CHUNK - 1));
        let mut rows = stmt.query(params![next as i64, end as i64]).map_err(|e| map_sqlite(path, e))?;
        let mut last = None;
        while let Some(row) = rows.next().map_err(|e| map_sqlite(path, e))? {
            let rec = row_to_record(row)
                .map_err(|e| JournalError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
            last = Some(rec.seq);
            if !f(rec)? {
                return Ok(());
            }
        }
        match last {
            Some(s) if s >= end => next = end + 1,
            // Fewer rows than the range: the journal ends here (or has a gap the caller's
            // verifier reports). Stop at the end of the table.
            _ => break,
        }
    }
    Ok(())
}

fn tail_of(conn: &Connection, path: &Path) -> Result<Option<Record>, JournalError> {
    conn.query_row(
        &format!("SELECT {RECORD_COLUMNS} FROM records ORDER BY seq DESC LIMIT 1"),
        [],
        row_to_record,
    )
    .optional()
    .map_err(|e| map_sqlite(path, e))
}

fn load_checkpoint(conn: &Connection, path: &Path, van_id: &str) -> Result<Option<ChainState>, JournalError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row("SELECT seq, hash, public_key FROM checkpoint WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(|e| map_sqlite(path, e))?;
    let Some((seq, hash, key)) = row else { return Ok(None) };
    let bad = |what: &str| JournalError::Corrupt {
        path: path.to_owned(),
        detail: format!("checkpoint row: {what}"),
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| bad("hash length"))?;
    let key: [u8; 32] = key.try_into().map_err(|_| bad("key length"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("public key"))?;
    // The checkpoint must agree with the record it names, or it is not a checkpoint of this journal.
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT hash FROM records WHERE seq = ?1", [seq], |r| r.get(0))
        .optional()
        .map_err(|e| map_sqlite(path, e))?;
    if stored.as_deref() != Some(&hash[..]) {
        return Err(bad(&format!("record {seq} is missing or differs from the checkpoint")));
    }
    Ok(Some(ChainState { van_id: van_id.to_owned(), seq: seq as u64, hash, key: Some(key) }))
}

fn save_checkpoint(conn: &Connection, state: &ChainState) -> rusqlite::Result<()> {
    let key = state.key.map(|k| k.to_bytes().to_vec()).unwrap_or_default();
    conn.execute(
        "INSERT INTO checkpoint (id, seq, hash, public_key, verified_us) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             public_key = excluded.public_key, verified_us = excluded.verified_us",
        params![state.seq as i64, &state.hash[..], key, clock::now_utc_us()],
    )?;
    Ok(())
}

/// Verifies the stored records after `from` (a verified state) up to the end.
fn verify_from(
    conn: &Connection,
    path: &Path,
    from: ChainState,
    trusted: Option<VerifyingKey>,
) -> Result<(ChainState, u64), JournalError> {
    let start = from.seq + 1;
    let mut verifier =
        if from.seq == 0 { ChainVerifier::from_genesis(trusted) } else { ChainVerifier::resume(from) };
    let mut count = 0u64;
    let mut failure = None;
    for_each_record(conn, path, start, u64::MAX, |rec| match verifier.check(&rec) {
        Ok(()) => {
            count += 1;
            Ok(true)
        }
        Err(e) => {
            failure = Some(e);
            Ok(false)
        }
    })?;
    if let Some(error) = failure {
        return Err(JournalError::Integrity { path: path.to_owned(), error });
    }
    Ok((verifier.state().clone(), count))
}

/// What is at a journal path before opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// No file, an empty file, or a database without records.
    Nothing,
    /// Something with records (or something that is not a journal: the open names it).
    Records,
}

fn probe(path: &Path) -> Result<Found, JournalError> {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if !path.exists() || (len(path) == 0 && len(&side_path(path, "-wal")) == 0) {
        return Ok(Found::Nothing);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| map_sqlite(path, e))?;
    let has_table: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'records')", [], |r| r.get(0))
        .unwrap_or(true);
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap_or(1);
    if !has_table {
        return Ok(if tables == 0 { Found::Nothing } else { Found::Records });
    }
    let any: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM records)", [], |r| r.get(0))
        .map_err(|e| map_sqlite(path, e))?;
    Ok(if any { Found::Records } else { Found::Nothing })
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir).and_then(|d| d.sync_all()),
        None => Ok(()),
    }
}

/// Whether [`Journal::open_van`] may create the van's identity (key and journal) when neither exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstStart {
    /// Create both (simulation, or `vanctl keygen`).
    Create,
    /// Refuse: the key must have been created with `vanctl keygen`.
    Refuse,
}

impl Journal {
    /// Opens (or creates) the journal at `path` as its only writer, verifies the records since
    /// the last checkpoint, and makes this process the writer. A new journal gets its genesis record.
    /// This is the storage layer; a van opens its journal with [`Journal::open_van`].
    pub fn open(
        path: &Path,
        key: VanKey,
        opts: &JournalOptions,
    ) -> Result<(JournalOwner, OpenReport), JournalError> {
        let lock = lock_file(path)?;
        Self::open_locked(path, lock, key, opts)
    }

    /// Opens the van's journal with the van's key file, by these rules:
    ///
    /// - key and journal exist: open; if the journal's key is the staged `<key>.new` (a rotation
    ///   committed, the rename did not happen), finish the handover. A staged key the journal
    ///   never adopted is left over from an interrupted rotation and is removed (it signed nothing).
    /// - neither exists: a first start; with [`FirstStart::Create`] the key is staged, the journal
    ///   created with its genesis record, then the key moved into place.
    /// - a key without a journal (deleted or emptied): refused, naming what to restore.
    /// - a journal without a key: refused ("restore the van's key"); a new key is never created.
    pub fn open_van(
        path: &Path,
        key_path: &Path,
        opts: &JournalOptions,
        first_start: FirstStart,
    ) -> Result<(JournalOwner, OpenReport), JournalError> {
        let lock = lock_file(path)?;
        let staged = staged_key_path(key_path);
        let found = probe(path)?;
        match (VanKey::load(key_path), found) {
            (Ok(key), Found::Records) => match Self::open_locked(path, lock, key, opts) {
                Err(mismatch @ JournalError::KeyMismatch { .. }) if staged.exists() => {
                    Self::finish_handover(path, key_path, opts, mismatch)
                }
                Ok(opened) => {
                    if staged.exists() {
                        std::fs::remove_file(&staged).map_err(|e| JournalError::Open {
                            path: path.to_owned(),
                            detail: e.to_string(),
                        })?;
                        tracing::warn!(
                            staged = %staged.display(),
                            "removed a key left over from an interrupted rotation (it never signed a record)"
                        );
                    }
                    Ok(opened)
                }
                Err(e) => Err(e),
            },
            (Ok(_), Found::Nothing) => {
                Err(JournalError::Missing { path: path.to_owned(), key_path: key_path.to_owned() })
            }
            (Err(KeyError::Missing { .. }), Found::Records) => {
                let missing =
                    JournalError::KeyMissing { path: path.to_owned(), key_path: key_path.to_owned() };
                if staged.exists() {
                    drop(lock);
                    return Self::finish_handover(path, key_path, opts, missing);
                }
                Err(missing)
            }
            (Err(KeyError::Missing { path: kp }), Found::Nothing) => {
                if first_start == FirstStart::Refuse {
                    return Err(KeyError::Missing { path: kp }.into());
                }
                if staged.exists() {
                    // Staged by a first start that crashed before its journal existed: unused.
                    std::fs::remove_file(&staged)
                        .map_err(|e| JournalError::Open { path: path.to_owned(), detail: e.to_string() })?;
                }
                let key = VanKey::generate();
                let key_id = hex::encode(key.key_id());
                key.save_new(&staged)?;
                let opened = Self::open_locked(path, lock, key, opts)?;
                std::fs::rename(&staged, key_path)
                    .and_then(|_| sync_dir(key_path))
                    .map_err(|source| KeyError::Write { path: key_path.to_owned(), source })?;
                tracing::info!(key = %key_path.display(), %key_id, journal = %path.display(), "first start: created the van's key and journal");
                Ok(opened)
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// Opens with the staged key and, if the journal accepts it, moves it into place.
    fn finish_handover(
        path: &Path,
        key_path: &Path,
        opts: &JournalOptions,
        original: JournalError,
    ) -> Result<(JournalOwner, OpenReport), JournalError> {
        let staged = staged_key_path(key_path);
        let Ok(new_key) = VanKey::load(&staged) else { return Err(original) };
        let opened = match Self::open(path, new_key, opts) {
            Ok(o) => o,
            Err(JournalError::KeyMismatch { .. }) => return Err(original),
            Err(e) => return Err(e),
        };
        std::fs::rename(&staged, key_path)
            .and_then(|_| sync_dir(key_path))
            .map_err(|source| KeyError::Write { path: key_path.to_owned(), source })?;
        tracing::warn!(
            "finished an interrupted key handover: {} now holds the journal's key",
            key_path.display()
        );
        Ok(opened)
    }

    fn open_locked(
        path: &Path,
        lock: File,
        key: VanKey,
        opts: &JournalOptions,
    ) -> Result<(JournalOwner, OpenReport), JournalError> {
        let started = Instant::now();
        super::record::check_van_id(&opts.van_id)?;
        check_writable(path)?;
        if !path.exists() {
            // Created here so its mode (and that of the -wal SQLite derives from it) is ours.
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(JOURNAL_FILE_MODE)
                .open(path)
                .map_err(|e| JournalError::Open { path: path.to_owned(), detail: e.to_string() })?;
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| map_sqlite(path, e))?;
        prepare(&mut conn, path, true)?;
        if let Some(pages) = opts.max_pages {
            conn.pragma_update(None, "max_page_count", pages as i64).map_err(|e| map_sqlite(path, e))?;
        }
        let m = |e| map_sqlite(path, e);

        let stored_van: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'van_id'", [], |r| r.get(0))
            .optional()
            .map_err(m)?;
        if let Some(found) = &stored_van
            && found != &opts.van_id
        {
            return Err(JournalError::ForeignVan {
                path: path.to_owned(),
                expected: opts.van_id.clone(),
                found: found.clone(),
            });
        }
        let tail = tail_of(&conn, path)?;
        let last_kind = tail.as_ref().map(|r| r.kind.clone());
        let from = load_checkpoint(&conn, path, &opts.van_id)?.unwrap_or_else(ChainState::empty);
        let (state, verified) = verify_from(&conn, path, from, None)?;

        let created = state.seq == 0;
        if !created
            && let Some(journal_key) = state.key
            && journal_key != key.verifying_key()
        {
            return Err(JournalError::KeyMismatch {
                path: path.to_owned(),
                key_file: hex::encode(key.key_id()),
                journal: hex::encode(crate::keys::key_id_of(&journal_key)),
            });
        }
        // How the previous writer stopped, and what it could not write.
        let previous = StatusFile::read(path);
        let previous_stop = match (&previous, created) {
            (_, true) => PreviousStop::None,
            (Some(st), false) if !st.open && st.closed_at == Some(state.seq) => PreviousStop::Clean,
            (Some(_), false) => PreviousStop::Unclean,
            // A journal from before the status file: a clean stop ends with daemon.stop.
            (None, false) if last_kind.as_deref() == Some(kinds::DAEMON_STOP) => PreviousStop::Clean,
            (None, false) => PreviousStop::Unclean,
        };
        let failed = previous.and_then(|s| s.failures).filter(|f| f.count > 0);
        let status = match StatusFile::open(path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, "journal status file cannot be created; failure counts will not survive a restart");
                None
            }
        };
        let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| map_sqlite(path, e))?;
        let mut writer = Writer {
            conn,
            path: path.to_owned(),
            van_id: opts.van_id.clone(),
            key,
            checkpoint: state.clone(),
            tail: state,
            checkpoint_every: opts.checkpoint_every.max(1),
            failed,
            status,
            sealed: Some(Vec::new()),
            _lock: lock,
        };
        writer.save_status(true);
        if created {
            let payload = serde_json::json!({
                "format": 1,
                "public_key": hex::encode(writer.key.verifying_key().as_bytes()),
                "van_id": writer.van_id,
            });
            writer.commit_batch(&mut [(
                kinds::GENESIS.to_owned(),
                payload.to_string().into_bytes(),
                None,
                None,
            )])?;
            writer
                .conn
                .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('van_id', ?1)", [&writer.van_id])
                .map_err(m)?;
        }
        if let Err(e) = save_checkpoint(&writer.conn, &writer.tail) {
            // A full disk must not keep vand from starting: the checkpoint is an optimisation.
            tracing::error!(error = %e, "journal checkpoint at open failed");
        } else {
            writer.checkpoint = writer.tail.clone();
            writer.sealed = Some(Vec::new());
        }
        let report = OpenReport {
            created,
            records: writer.tail.seq,
            verified,
            last_kind,
            previous_stop,
            unrecorded_failures: writer.failed.as_ref().map_or(0, |f| f.count),
            elapsed: started.elapsed(),
        };

        let shared = Arc::new(Shared { queue: Mutex::new(Vec::new()), writer: Mutex::new(Some(writer)) });
        let handle = Journal { shared, path: path.to_owned(), reader: Arc::new(Mutex::new(reader)) };
        Ok((JournalOwner { handle }, report))
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's state for health checks and metrics (`GET /healthz`, `GET /metrics`): open
    /// or closed, the last record committed, and the appends that failed and are not on record.
    pub fn writer_health(&self) -> WriterHealth {
        let guard = lock(&self.shared.writer);
        match guard.as_ref() {
            None => WriterHealth { open: false, head_seq: None, failed_appends: 0, first_error: None },
            Some(w) => WriterHealth {
                open: true,
                head_seq: Some(w.tail.seq),
                failed_appends: w.failed.as_ref().map_or(0, |f| f.count),
                first_error: w.failed.as_ref().filter(|f| f.count > 0).map(|f| f.first_error.clone()),
            },
        }
    }

    /// Runs `f` on the writer after committing what is queued; `Closed` once closed.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut guard = lock(&self.shared.writer);
        let w = guard.as_mut().ok_or(JournalError::Closed)?;
        let mut queued = std::mem::take(&mut *lock(&self.shared.queue));
        w.flush(&mut queued);
        f(w)
    }

    /// Appends a record and waits until it is durably committed. Blocking: do not call from an
    /// async task (use [`Journal::append_async`]).
    pub fn append(&self, kind: &str, payload: &serde_json::Value) -> Result<Appended, JournalError> {
        self.append_bytes(kind.to_owned(), payload.to_string().into_bytes())
    }

    fn append_bytes(&self, kind: String, payload: Vec<u8>) -> Result<Appended, JournalError> {
        // Checked here, in the caller's thread, so concurrent appenders check in parallel.
        super::rules::check_appended(&kind, &payload)?;
        let txn = txn_of(&payload)?;
        let (reply, mut rx) = oneshot::channel();
        lock(&self.shared.queue).push((kind, payload, txn, Some(reply)));
        let mut guard = lock(&self.shared.writer);
        // Committed by the previous holder of the lock (group commit)?
        match rx.try_recv() {
            Ok(result) => return result,
            Err(oneshot::error::TryRecvError::Closed) => return Err(JournalError::Closed),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let Some(w) = guard.as_mut() else { return Err(JournalError::Closed) };
        let mut batch = std::mem::take(&mut *lock(&self.shared.queue));
        w.flush(&mut batch);
        w.checkpoint_if_due();
        drop(guard);
        rx.try_recv().map_err(|_| JournalError::Closed)?
    }

    /// Appends a record and waits (asynchronously) until it is durably committed.
    pub async fn append_async(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<Appended, JournalError> {
        let payload = payload.to_string().into_bytes();
        let (kind, journal) = (kind.to_owned(), self.clone());
        tokio::task::spawn_blocking(move || journal.append_bytes(kind, payload))
            .await
            .map_err(|_| JournalError::Closed)?
    }

    /// Hands signing over to `new_key`: writes a `key.rotate` record signed by the current key that
    /// carries the new public key and the new key's proof. The caller saves the new key file first.
    pub fn rotate_key(&self, new_key: VanKey) -> Result<Appended, JournalError> {
        self.with_writer(|w| w.rotate(new_key))
    }

    /// Re-reads the records since the last checkpoint from storage, checks them and advances the
    /// checkpoint to the tail. Returns the checkpoint's sequence number.
    pub fn checkpoint(&self) -> Result<u64, JournalError> {
        self.with_writer(|w| w.advance_checkpoint())
    }

    /// Changes the size cap (`None` lifts it); see [`JournalOptions::max_pages`].
    pub fn set_max_pages(&self, max_pages: Option<u64>) -> Result<(), JournalError> {
        self.with_writer(|w| {
            let pages = max_pages.map_or(i64::from(u32::MAX), |p| p as i64);
            w.conn.pragma_update(None, "max_page_count", pages).map_err(|e| map_sqlite(&w.path, e))
        })
    }

    /// Takes and releases the writer (after committing what is queued): returns once the writer
    /// is free, so a writer stuck in I/O keeps it from returning (the daemon's watchdog probe).
    pub fn probe_writer(&self) -> Result<(), JournalError> {
        self.with_writer(|_| Ok(()))
    }

    /// Async form of [`Journal::checkpoint`].
    pub async fn checkpoint_async(&self) -> Result<u64, JournalError> {
        let journal = self.clone();
        tokio::task::spawn_blocking(move || journal.checkpoint()).await.map_err(|_| JournalError::Closed)?
    }

    /// Async form of [`DomainSigner::sign_domain`]: signs with the key the writer holds (after a
    /// rotation, the new one), without loading the key file again.
    pub async fn sign_domain_async(
        &self,
        domain: &[u8],
        message: &[u8],
    ) -> Result<DomainSignature, SignError> {
        let (domain, message, journal) = (domain.to_vec(), message.to_vec(), self.clone());
        tokio::task::spawn_blocking(move || journal.sign_domain(&domain, &message))
            .await
            .map_err(|_| SignError::Closed)?
    }

    /// The records of transaction `txn` (payload field `"txn"`), in order, from the index.
    pub fn txn_records(&self, txn: &str) -> Result<Vec<Record>, JournalError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        txn_records_of(&conn, &self.path, txn)
    }

    /// The last record of transaction `txn` (its current state), from the index.
    pub fn txn_last(&self, txn: &str) -> Result<Option<Record>, JournalError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        txn_last_of(&conn, &self.path, txn)
    }

    /// The transactions whose id starts with `prefix` and that have a record after `since_seq`,
    /// in the order of their first such record (the service desk reloads its open transactions
    /// with this at start).
    pub fn txn_ids(&self, prefix: &str, since_seq: u64) -> Result<Vec<String>, JournalError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT txn FROM txn_index WHERE seq > ?1 AND substr(txn, 1, length(?2)) = ?2
                 GROUP BY txn ORDER BY MIN(seq)",
            )
            .map_err(|e| map_sqlite(&self.path, e))?;
        let rows = stmt
            .query_map(params![since_seq as i64, prefix], |r| r.get::<_, String>(0))
            .map_err(|e| map_sqlite(&self.path, e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| map_sqlite(&self.path, e))
    }
}

impl DomainSigner for Journal {
    /// Signs with the key the writer owns (waits for a commit in progress). Blocking: from async
    /// code use [`Journal::sign_domain_async`].
    fn sign_domain(&self, domain: &[u8], message: &[u8]) -> Result<DomainSignature, SignError> {
        crate::keys::check_domain(domain)?;
        let guard = lock(&self.shared.writer);
        guard.as_ref().ok_or(SignError::Closed)?.key.sign_domain(domain, message)
    }

    fn current_key_id(&self) -> Result<[u8; crate::keys::KEY_ID_LEN], SignError> {
        let guard = lock(&self.shared.writer);
        Ok(guard.as_ref().ok_or(SignError::Closed)?.key.key_id())
    }
}

/// The transaction a payload belongs to: the top-level `"txn"` string of a JSON object payload
/// (1–64 bytes, no control characters). Absent or `null`: none. Any other value is refused.
pub fn txn_of(payload: &[u8]) -> Result<Option<String>, JournalError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        txn: Option<serde_json::Value>,
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    // No object, or no `"txn"` anywhere in it (escapes aside, which a probe then settles): no
    // transaction, without parsing the payload a second time.
    let maybe = payload.windows(5).any(|w| w == b"\"txn\"") || payload.contains(&b'\\');
    if first != Some(&b'{') || !maybe {
        return Ok(None);
    }
    let probe: Probe = serde_json::from_slice(payload)
        .map_err(|e| JournalError::Txn(format!("payload with a \"txn\" field: {e}")))?;
    match probe.txn {
        None => Ok(None),
        Some(serde_json::Value::String(t))
            if !t.is_empty() && t.len() <= MAX_TXN && !t.chars().any(char::is_control) =>
        {
            Ok(Some(t))
        }
        Some(other) => Err(JournalError::Txn(format!(
            "\"txn\" must be a string of 1–{MAX_TXN} bytes without control characters, found {other}"
        ))),
    }
}

fn txn_records_of(conn: &Connection, path: &Path, txn: &str) -> Result<Vec<Record>, JournalError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS_R} FROM txn_index t JOIN records r ON r.seq = t.seq
             WHERE t.txn = ?1 ORDER BY t.seq"
        ))
        .map_err(|e| map_sqlite(path, e))?;
    let rows = stmt.query_map([txn], row_to_record).map_err(|e| map_sqlite(path, e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| map_sqlite(path, e))
}

fn txn_last_of(conn: &Connection, path: &Path, txn: &str) -> Result<Option<Record>, JournalError> {
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS_R} FROM txn_index t JOIN records r ON r.seq = t.seq
         WHERE t.txn = ?1 ORDER BY t.seq DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([txn], row_to_record).optional())
    .map_err(|e| map_sqlite(path, e))
}

/// Kind, payload, transaction id, caller.
type Pending = (String, Vec<u8>, Option<String>, Option<Reply<Appended>>);

impl Writer {
    /// Advances the checkpoint when `checkpoint_every` records were written since the last.
    fn checkpoint_if_due(&mut self) {
        if self.tail.seq >= self.checkpoint.seq + self.checkpoint_every
            && let Err(e) = self.advance_checkpoint()
        {
            tracing::error!(error = %e, "journal checkpoint failed");
        }
    }

    /// Checkpoints, merges the WAL and records a clean close; the lock goes with `self`.
    fn close(mut self) {
        if let Err(e) = self.advance_checkpoint() {
            tracing::error!(error = %e, "journal checkpoint at close failed");
        }
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        self.save_status(false);
    }

    /// Writes `<journal>.status`: open or cleanly closed at the tail, and the failures pending.
    fn save_status(&self, open: bool) {
        let Some(file) = &self.status else { return };
        let status =
            WriterStatus { open, closed_at: (!open).then_some(self.tail.seq), failures: self.failed.clone() };
        if let Err(e) = file.write(&status) {
            tracing::error!(error = %e, "journal status file not written");
        }
    }

    /// Commits a batch and answers every caller.
    fn flush(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        match self.commit_batch(batch) {
            Ok(done) => {
                for ((_, _, _, reply), appended) in batch.drain(..).zip(done) {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(appended));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "journal append failed; nothing of this batch was written");
                let text = e.to_string();
                self.failed.get_or_insert_default().add(batch.iter().map(|p| p.0.clone()), &text);
                // Kept outside the database so it survives a restart while the disk is full.
                self.save_status(true);
                for (_, _, _, reply) in batch.drain(..) {
                    if let Some(r) = reply {
                        let _ = r.send(Err(clone_error(&e, &self.path)));
                    }
                }
            }
        }
    }

    /// Seals and inserts the batch in one IMMEDIATE transaction. A pending storage-fault marker is
    /// written first. On any error nothing is committed and the in-memory tail is unchanged.
    fn commit_batch(&mut self, batch: &mut [Pending]) -> Result<Vec<Appended>, JournalError> {
        let path = self.path.clone();
        let m = |e| map_sqlite(&path, e);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(m)?;
        let mut seq = self.tail.seq;
        let mut prev = self.tail.hash;
        let (time_us, boot_id, boot_us) = (clock::now_utc_us(), clock::boot_id(), clock::boottime_us());
        let mut sealed: Vec<Sealed> = Vec::with_capacity(batch.len() + 1);
        let mut seal_insert =
            |kind: &str, payload: &[u8], txn: Option<&str>| -> Result<Appended, JournalError> {
                seq += 1;
                let draft = Draft {
                    seq,
                    van_id: &self.van_id,
                    time_us,
                    boot_id,
                    boot_us,
                    kind,
                    payload,
                    prev_hash: prev,
                };
                let rec = draft.seal(&self.key)?;
                insert(&tx, &rec, txn).map_err(|e| map_sqlite(&path, e))?;
                sealed.push((rec.seq, rec.hash, rec.sig));
                prev = rec.hash;
                Ok(Appended { seq, hash: rec.hash })
            };
        if let Some(f) = &self.failed {
            let marker = kinds::FaultStorage {
                failed_appends: f.count,
                failed_kinds: f.kinds.clone(),
                first_error: f.first_error.clone(),
                since: clock::format_utc_us(f.since_us),
            };
            seal_insert(kinds::FAULT_STORAGE, &kinds::to_payload(&marker), None)?;
        }
        let mut done = Vec::with_capacity(batch.len());
        for (kind, payload, txn, _) in batch.iter() {
            done.push(seal_insert(kind, payload, txn.as_deref())?);
        }
        tx.commit().map_err(m)?;
        if let Some(list) = self.sealed.as_mut() {
            if list.len() + sealed.len() > MAX_SEALED {
                self.sealed = None;
            } else {
                list.extend(sealed);
            }
        }
        if self.failed.take().is_some() {
            self.save_status(true);
        }
        self.tail.seq = seq;
        self.tail.hash = prev;
        self.tail.van_id = self.van_id.clone();
        self.tail.key = Some(self.key.verifying_key());
        Ok(done)
    }

    fn rotate(&mut self, new_key: VanKey) -> Result<Appended, JournalError> {
        let seq = self.tail.seq + 1;
        let proof = new_key.sign(&rotation_proof_bytes(
            &self.van_id,
            seq,
            &self.key.key_id(),
            &new_key.verifying_key(),
        ));
        let payload = serde_json::json!({
            "new_key_id": hex::encode(new_key.key_id()),
            "new_public_key": hex::encode(new_key.verifying_key().as_bytes()),
            "old_key_id": hex::encode(self.key.key_id()),
            "proof": hex::encode(proof.to_bytes()),
        });
        let mut batch = vec![(kinds::KEY_ROTATE.to_owned(), payload.to_string().into_bytes(), None, None)];
        let done = self.commit_batch(&mut batch)?;
        let appended = *done.last().ok_or(JournalError::Closed)?;
        self.key = new_key;
        self.tail.key = Some(self.key.verifying_key());
        Ok(appended)
    }

    fn advance_checkpoint(&mut self) -> Result<u64, JournalError> {
        if self.tail.seq == self.checkpoint.seq {
            return Ok(self.checkpoint.seq);
        }
        let state = match self.sealed.take() {
            Some(list) if list.first().map(|r| r.0) == Some(self.checkpoint.seq + 1) => {
                self.check_own_records(&list)?
            }
            _ => verify_from(&self.conn, &self.path, self.checkpoint.clone(), None)?.0,
        };
        save_checkpoint(&self.conn, &state).map_err(|e| map_sqlite(&self.path, e))?;
        self.checkpoint = state;
        self.sealed = Some(Vec::new());
        Ok(self.checkpoint.seq)
    }

    /// Re-reads the records this writer sealed since the checkpoint and checks that storage holds
    /// exactly them: each record's bytes hash to its stored hash, which, with the stored signature,
    /// is the one sealed, and the chain links. A signature made here over bytes that are unchanged
    /// needs no second verification (records from earlier runs are verified in full at open).
    fn check_own_records(&self, sealed: &[Sealed]) -> Result<ChainState, JournalError> {
        let path = &self.path;
        let fail = |error| JournalError::Integrity { path: path.clone(), error };
        let mut prev = self.checkpoint.hash;
        let mut expected = sealed.iter();
        let mut buf = Vec::with_capacity(512);
        let mut failure = None;
        let end = sealed.last().map_or(self.checkpoint.seq, |r| r.0);
        for_each_record(&self.conn, path, self.checkpoint.seq + 1, end, |rec| {
            let Some((seq, hash, sig)) = expected.next() else { return Ok(false) };
            rec.write_signed_bytes(&mut buf);
            let computed: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&buf).into();
            failure = if rec.seq != *seq {
                Some(VerifyError::Gap { seq: rec.seq, expected: *seq })
            } else if rec.prev_hash != prev {
                Some(VerifyError::ChainBroken { seq: rec.seq })
            } else if computed != rec.hash || rec.hash != *hash {
                Some(VerifyError::HashMismatch { seq: rec.seq })
            } else if rec.sig != *sig {
                Some(VerifyError::BadSignature { seq: rec.seq })
            } else {
                None
            };
            prev = rec.hash;
            Ok(failure.is_none())
        })?;
        if let Some(error) = failure {
            return Err(fail(error));
        }
        if let Some((seq, _, _)) = expected.next() {
            return Err(fail(VerifyError::Gap { seq: *seq, expected: *seq }));
        }
        Ok(ChainState { van_id: self.van_id.clone(), seq: end, hash: prev, key: self.tail.key })
    }
}

/// A copy of a storage error for each caller of a failed batch.
fn clone_error(e: &JournalError, journal: &Path) -> JournalError {
    match e {
        JournalError::DiskFull { path, detail } => {
            JournalError::DiskFull { path: path.clone(), detail: detail.clone() }
        }
        JournalError::ReadOnly { path, detail } => {
            JournalError::ReadOnly { path: path.clone(), detail: detail.clone() }
        }
        JournalError::InUse { path } => JournalError::InUse { path: path.clone() },
        other => JournalError::Storage { path: journal.to_owned(), detail: other.to_string() },
    }
}

/// A read-only view of a journal for verify, export and show (may run while `vand` writes).
pub struct JournalReader {
    conn: Connection,
    path: PathBuf,
    immutable: bool,
}

/// What the van knows besides the journal itself, for [`JournalReader::verify_van`].
#[derive(Debug, Clone, Default)]
pub struct VanFacts {
    /// The configured van id: every record must carry it.
    pub van_id: Option<String>,
    /// The key HQ enrolled (the genesis key): record 1 must name it.
    pub genesis_key: Option<VerifyingKey>,
    /// The key file's public key: the journal's current key must be it…
    pub key_file: Option<VerifyingKey>,
    /// …or the staged `<key>.new` of a handover vand has not finished yet.
    pub staged_key: Option<VerifyingKey>,
}

/// What [`JournalReader::verify_van`] found.
#[derive(Debug, Clone)]
pub struct VanVerified {
    /// Records verified (all of them, from 1).
    pub records: u64,
    /// Hash of the last record.
    pub last_hash: [u8; 32],
    /// The genesis key (what HQ enrolls).
    pub genesis_key: Option<VerifyingKey>,
    /// The key that signs the next record.
    pub current_key: Option<VerifyingKey>,
    /// Sequence numbers of `key.rotate` records and the keys they handed over to.
    pub rotations: Vec<(u64, VerifyingKey)>,
    /// The checkpoint the van keeps (verified up to there at its last open).
    pub checkpoint: u64,
    /// The journal's current key is the staged one: vand finishes the handover at its next start.
    pub handover_pending: bool,
}

impl JournalReader {
    /// Opens `path` read-only. A copy that cannot be opened so (a read-only folder or medium, where
    /// SQLite cannot create its shared-memory file) and has no unmerged write-ahead log is opened
    /// as immutable: nothing else may be writing it then.
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        if !path.exists() {
            return Err(JournalError::Open { path: path.to_owned(), detail: "file does not exist".into() });
        }
        let plain = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| map_sqlite(path, e))
            .and_then(|mut c| prepare(&mut c, path, false).map(|_| c));
        match plain {
            Ok(conn) => Ok(JournalReader { conn, path: path.to_owned(), immutable: false }),
            Err(
                e
                @ (JournalError::Open { .. } | JournalError::ReadOnly { .. } | JournalError::Storage { .. }),
            ) => {
                let wal = std::fs::metadata(side_path(path, "-wal")).map(|m| m.len()).unwrap_or(0);
                if wal > 0 {
                    return Err(JournalError::Open {
                        path: path.to_owned(),
                        detail: format!(
                            "{e}; its -wal file holds records not merged into the .db file, and this \
                             copy is read-only: copy both to a folder you can write, then verify there"
                        ),
                    });
                }
                let mut conn = Connection::open_with_flags(
                    immutable_uri(path),
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| map_sqlite(path, e))?;
                prepare(&mut conn, path, false)?;
                Ok(JournalReader { conn, path: path.to_owned(), immutable: true })
            }
            Err(e) => Err(e),
        }
    }

    /// True when opened as an immutable read-only copy.
    pub fn is_immutable(&self) -> bool {
        self.immutable
    }

    /// Runs `f` inside one read transaction: everything it reads is one consistent snapshot,
    /// however many records `vand` appends meanwhile.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Self) -> Result<T, JournalError>) -> Result<T, JournalError> {
        self.conn.execute_batch("BEGIN DEFERRED").map_err(|e| map_sqlite(&self.path, e))?;
        let result = f(self);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.execute_batch(end).map_err(|e| map_sqlite(&self.path, e));
        let value = result?;
        ended?;
        Ok(value)
    }

    /// The last record, if any.
    pub fn tail(&self) -> Result<Option<Record>, JournalError> {
        tail_of(&self.conn, &self.path)
    }

    /// One record by sequence number.
    pub fn get(&self, seq: u64) -> Result<Record, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM records WHERE seq = ?1"),
                [seq as i64],
                row_to_record,
            )
            .optional()
            .map_err(|e| map_sqlite(&self.path, e))?
            .ok_or(JournalError::NotFound { path: self.path.clone(), seq })
    }

    /// Streams records `from..=to` in order with constant memory; `f` returns false to stop.
    /// Reads in short transactions unless called inside [`JournalReader::snapshot`].
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        f: impl FnMut(Record) -> Result<bool, JournalError>,
    ) -> Result<(), JournalError> {
        for_each_record(&self.conn, &self.path, from, to, f)
    }

    /// The records of transaction `txn` (payload field `"txn"`), in order, from the index.
    pub fn txn_records(&self, txn: &str) -> Result<Vec<Record>, JournalError> {
        txn_records_of(&self.conn, &self.path, txn)
    }

    /// The last record of transaction `txn` (its current state), from the index.
    pub fn txn_last(&self, txn: &str) -> Result<Option<Record>, JournalError> {
        txn_last_of(&self.conn, &self.path, txn)
    }

    /// Verifies every record from 1 (every signature, chain link and the gapless sequence) in one
    /// snapshot. With `trusted`, record 1 must carry that public key. Returns the number of records.
    pub fn verify_all(&self, trusted: Option<VerifyingKey>) -> Result<u64, JournalError> {
        self.snapshot(|r| r.verify_chain(trusted).map(|v| v.records))
    }

    /// [`JournalReader::verify_all`] plus everything the van knows: the van id, the key HQ
    /// enrolled, the key file (or a staged handover key) and the checkpoint (so a removed last
    /// record is found). One snapshot.
    pub fn verify_van(&self, facts: &VanFacts) -> Result<VanVerified, JournalError> {
        self.snapshot(|r| r.verify_van_in_snapshot(facts))
    }

    fn verify_van_in_snapshot(&self, facts: &VanFacts) -> Result<VanVerified, JournalError> {
        let path = self.path.clone();
        let mut v = self.verify_chain(None)?;
        let genesis = if v.records > 0 { Some(self.get(1)?) } else { None };
        // The enrolled key: the genesis key, and no other.
        if let (Some(given), Some(genesis_key)) = (facts.genesis_key, v.genesis_key)
            && given != genesis_key
        {
            if let Some((seq, _)) = v.rotations.iter().find(|(_, k)| *k == given) {
                return Err(JournalError::NotGenesisKey {
                    path,
                    given: hex::encode(given.as_bytes()),
                    genesis: hex::encode(genesis_key.as_bytes()),
                    seq: *seq,
                });
            }
            return Err(JournalError::Integrity {
                path,
                error: VerifyError::WrongKey {
                    seq: 1,
                    expected: hex::encode(crate::keys::key_id_of(&given)),
                    found: hex::encode(crate::keys::key_id_of(&genesis_key)),
                },
            });
        }
        if let (Some(expected), Some(g)) = (&facts.van_id, &genesis)
            && &g.van_id != expected
        {
            return Err(JournalError::ForeignVan {
                path,
                expected: expected.clone(),
                found: g.van_id.clone(),
            });
        }
        let stored_van: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'van_id'", [], |r| r.get(0))
            .optional()
            .map_err(|e| map_sqlite(&path, e))?;
        if let (Some(stored), Some(g)) = (&stored_van, &genesis)
            && stored != &g.van_id
        {
            return Err(JournalError::ForeignVan { path, expected: g.van_id.clone(), found: stored.clone() });
        }
        // The checkpoint vand keeps: it names a record that must still be there, unchanged.
        let cp: Option<(i64, Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row("SELECT seq, hash, public_key FROM checkpoint WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(|e| map_sqlite(&path, e))?;
        let Some((cp_seq, cp_hash, cp_key)) = cp else {
            return Err(JournalError::Checkpoint {
                path,
                detail: "no checkpoint: vand writes one at every open, so this file was altered".into(),
            });
        };
        let cp_seq = cp_seq.max(0) as u64;
        if cp_seq > v.records {
            return Err(JournalError::Checkpoint {
                path,
                detail: format!(
                    "the journal ends at record {} but vand had verified up to record {cp_seq}: \
                     records {}–{cp_seq} were removed",
                    v.records,
                    v.records + 1
                ),
            });
        }
        if cp_seq > 0 {
            let at = self.get(cp_seq)?;
            if at.hash[..] != cp_hash[..] {
                return Err(JournalError::Checkpoint {
                    path,
                    detail: format!("record {cp_seq} differs from the one vand verified (checkpoint hash)"),
                });
            }
            let key_at =
                v.rotations.iter().rev().find(|(seq, _)| *seq <= cp_seq).map(|(_, k)| *k).or(v.genesis_key);
            if key_at.map(|k| k.to_bytes().to_vec()) != Some(cp_key) {
                return Err(JournalError::Checkpoint {
                    path,
                    detail: format!("the checkpoint at record {cp_seq} names a different signing key"),
                });
            }
        }
        v.checkpoint = cp_seq;
        // The key file: the journal's current key must be the van's key.
        if let Some(current) = v.current_key {
            if Some(current) == facts.staged_key && facts.key_file != Some(current) {
                v.handover_pending = true;
            } else if let Some(file_key) = facts.key_file
                && file_key != current
            {
                return Err(JournalError::KeyMismatch {
                    path,
                    key_file: hex::encode(crate::keys::key_id_of(&file_key)),
                    journal: hex::encode(crate::keys::key_id_of(&current)),
                });
            }
        }
        Ok(v)
    }

    /// Verifies the chain from record 1 and that nothing follows the last good record.
    fn verify_chain(&self, trusted: Option<VerifyingKey>) -> Result<VanVerified, JournalError> {
        let path = &self.path;
        let mut verifier = ChainVerifier::from_genesis(trusted);
        let mut failure = None;
        let mut genesis_key = None;
        let mut rotations = Vec::new();
        for_each_record(&self.conn, path, 1, u64::MAX, |rec| match verifier.check(&rec) {
            Ok(()) => {
                if rec.seq == 1 {
                    genesis_key = verifier.state().key;
                } else if rec.kind == kinds::KEY_ROTATE
                    && let Some(k) = verifier.state().key
                {
                    rotations.push((rec.seq, k));
                }
                Ok(true)
            }
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        })?;
        if let Some(error) = failure {
            return Err(JournalError::Integrity { path: path.clone(), error });
        }
        let state = verifier.state().clone();
        // A missing tail (records after a gap) must not pass silently.
        if let Some(tail) = self.tail()?
            && tail.seq != state.seq
        {
            return Err(JournalError::Integrity {
                path: path.clone(),
                error: VerifyError::Gap { seq: tail.seq, expected: state.seq + 1 },
            });
        }
        Ok(VanVerified {
            records: state.seq,
            last_hash: state.hash,
            genesis_key,
            current_key: state.key,
            rotations,
            checkpoint: 0,
            handover_pending: false,
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `file:` URI opening `path` as immutable (percent-encoding what a URI path cannot hold).
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}
