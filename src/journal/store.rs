//! SQLite storage of the journal: schema and migrations, the single writer thread, and readers.
//!
//! Invariants enforced here (and again by triggers in the database):
//! - records are only ever inserted, never updated or deleted;
//! - record `n + 1` is inserted only after record `n`, and chains to its hash;
//! - an append is reported written only after its transaction committed with `synchronous=FULL`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;

use super::record::{Draft, FieldError, Record, kinds, rotation_proof_bytes};
use super::verify::{ChainState, ChainVerifier, VerifyError};
use crate::clock;
use crate::keys::VanKey;

/// `PRAGMA application_id` of a journal database ("MTUJ").
pub const APPLICATION_ID: i32 = 0x4D54_554A;

/// Rows read per short read transaction when streaming (keeps WAL checkpoints unblocked).
const READ_CHUNK: u64 = 4096;
/// Most appends committed in one transaction (group commit under concurrent appenders).
const MAX_BATCH: usize = 256;

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
    #[error("journal {path}: disk full: the record was NOT written ({detail}); free space, nothing was lost")]
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
    Migrations::new(vec![M::up(
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
    )])
}

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
    /// Kind of the last record before this open (tells a clean from an unclean stop).
    pub last_kind: Option<String>,
    /// Time taken to open and verify.
    pub elapsed: Duration,
}

/// A record written: its place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: [u8; 32],
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

enum Cmd {
    Append { kind: String, payload: Vec<u8>, reply: Reply<Appended> },
    Rotate { new_key: Box<VanKey>, reply: Reply<Appended> },
    Checkpoint { reply: Reply<u64> },
    Quota { max_pages: Option<u64>, reply: Reply<()> },
}

/// Handle to the journal's single writer thread. Cloning shares the same writer.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Cmd>,
    path: PathBuf,
}

/// Owns the writer thread; dropping it (or calling [`JournalOwner::close`]) stops the writer after
/// the queued appends, checkpoints, and releases the lock.
pub struct JournalOwner {
    handle: Journal,
    thread: Option<JoinHandle<()>>,
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
        // Replace our sender with a dead one so the writer sees all senders dropped once clones go.
        let (dead, _) = mpsc::channel();
        self.handle.tx = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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
    /// Appends that failed since the last successful commit: (count, first error text).
    failed: Option<(u64, String, i64)>,
    _lock: File,
}

fn lock_file(path: &Path) -> Result<File, JournalError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .or_else(|_| File::open(&lock_path))
        .map_err(|e| JournalError::Open { path: path.to_owned(), detail: format!("lock file: {e}") })?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
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

fn insert(conn: &Connection, r: &Record) -> rusqlite::Result<()> {
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

impl Journal {
    /// Opens (or creates) the journal at `path` as its only writer, verifies the records since
    /// the last checkpoint, and starts the writer thread. A new journal gets its genesis record.
    pub fn open(
        path: &Path,
        key: VanKey,
        opts: &JournalOptions,
    ) -> Result<(JournalOwner, OpenReport), JournalError> {
        let started = Instant::now();
        super::record::check_van_id(&opts.van_id)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| JournalError::Open { path: path.to_owned(), detail: e.to_string() })?;
        }
        check_writable(path)?;
        let lock = lock_file(path)?;
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
        let mut writer = Writer {
            conn,
            path: path.to_owned(),
            van_id: opts.van_id.clone(),
            key,
            checkpoint: state.clone(),
            tail: state,
            checkpoint_every: opts.checkpoint_every.max(1),
            failed: None,
            _lock: lock,
        };
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
            )])?;
            writer
                .conn
                .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('van_id', ?1)", [&writer.van_id])
                .map_err(m)?;
        }
        save_checkpoint(&writer.conn, &writer.tail).map_err(|e| map_sqlite(path, e))?;
        writer.checkpoint = writer.tail.clone();
        let report =
            OpenReport { created, records: writer.tail.seq, verified, last_kind, elapsed: started.elapsed() };

        let (tx, rx) = mpsc::channel();
        let thread =
            std::thread::Builder::new().name("journal-writer".into()).spawn(move || writer.run(rx)).map_err(
                |e| JournalError::Open { path: path.to_owned(), detail: format!("writer thread: {e}") },
            )?;
        Ok((JournalOwner { handle: Journal { tx, path: path.to_owned() }, thread: Some(thread) }, report))
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<oneshot::Receiver<Result<T, JournalError>>, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| JournalError::Closed)?;
        Ok(rx)
    }

    /// Appends a record and waits until it is durably committed. Blocking: do not call from an
    /// async task (use [`Journal::append_async`]).
    pub fn append(&self, kind: &str, payload: &serde_json::Value) -> Result<Appended, JournalError> {
        let payload = payload.to_string().into_bytes();
        let kind = kind.to_owned();
        self.send(|reply| Cmd::Append { kind, payload, reply })?
            .blocking_recv()
            .map_err(|_| JournalError::Closed)?
    }

    /// Appends a record and waits (asynchronously) until it is durably committed.
    pub async fn append_async(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<Appended, JournalError> {
        let payload = payload.to_string().into_bytes();
        let kind = kind.to_owned();
        self.send(|reply| Cmd::Append { kind, payload, reply })?.await.map_err(|_| JournalError::Closed)?
    }

    /// Hands signing over to `new_key`: writes a `key.rotate` record signed by the current key that
    /// carries the new public key and the new key's proof. The caller saves the new key file first.
    pub fn rotate_key(&self, new_key: VanKey) -> Result<Appended, JournalError> {
        let new_key = Box::new(new_key);
        self.send(|reply| Cmd::Rotate { new_key, reply })?
            .blocking_recv()
            .map_err(|_| JournalError::Closed)?
    }

    /// Re-reads and verifies the records since the last checkpoint from storage and advances the
    /// checkpoint to the tail. Returns the checkpoint's sequence number.
    pub fn checkpoint(&self) -> Result<u64, JournalError> {
        self.send(|reply| Cmd::Checkpoint { reply })?.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    /// Changes the size cap (`None` lifts it); see [`JournalOptions::max_pages`].
    pub fn set_max_pages(&self, max_pages: Option<u64>) -> Result<(), JournalError> {
        self.send(|reply| Cmd::Quota { max_pages, reply })?
            .blocking_recv()
            .map_err(|_| JournalError::Closed)?
    }

    /// Async form of [`Journal::checkpoint`].
    pub async fn checkpoint_async(&self) -> Result<u64, JournalError> {
        self.send(|reply| Cmd::Checkpoint { reply })?.await.map_err(|_| JournalError::Closed)?
    }
}

type Pending = (String, Vec<u8>, Option<Reply<Appended>>);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch: Vec<Pending> = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append { kind, payload, reply } => batch.push((kind, payload, Some(reply))),
                    Cmd::Rotate { new_key, reply } => {
                        self.flush(&mut batch);
                        let _ = reply.send(self.rotate(*new_key));
                    }
                    Cmd::Checkpoint { reply } => {
                        self.flush(&mut batch);
                        let _ = reply.send(self.advance_checkpoint());
                    }
                    Cmd::Quota { max_pages, reply } => {
                        self.flush(&mut batch);
                        let pages = max_pages.map_or(i64::from(u32::MAX), |p| p as i64);
                        let r = self.conn.pragma_update(None, "max_page_count", pages);
                        let _ = reply.send(r.map_err(|e| map_sqlite(&self.path, e)));
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.flush(&mut batch);
            if self.tail.seq >= self.checkpoint.seq + self.checkpoint_every
                && let Err(e) = self.advance_checkpoint()
            {
                tracing::error!(error = %e, "journal checkpoint failed");
            }
        }
        if let Err(e) = self.advance_checkpoint() {
            tracing::error!(error = %e, "journal checkpoint at close failed");
        }
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    }

    /// Commits a batch and answers every caller.
    fn flush(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        // Format-rule errors are the caller's, not storage's: answer them and keep the rest.
        batch.retain_mut(|(kind, payload, reply)| match super::rules::check_appended(kind, payload) {
            Ok(()) => true,
            Err(e) => {
                if let Some(r) = reply.take() {
                    let _ = r.send(Err(JournalError::Field(e)));
                }
                false
            }
        });
        if batch.is_empty() {
            return;
        }
        match self.commit_batch(batch) {
            Ok(done) => {
                for ((_, _, reply), appended) in batch.drain(..).zip(done) {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(appended));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "journal append failed; nothing of this batch was written");
                let text = e.to_string();
                let entry = self.failed.get_or_insert((0, text.clone(), clock::now_utc_us()));
                entry.0 += batch.len() as u64;
                for (_, _, reply) in batch.drain(..) {
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
        let mut seal_insert = |kind: &str, payload: &[u8]| -> Result<Appended, JournalError> {
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
            insert(&tx, &rec).map_err(|e| map_sqlite(&path, e))?;
            prev = rec.hash;
            Ok(Appended { seq, hash: rec.hash })
        };
        if let Some((count, error, since_us)) = &self.failed {
            let marker = serde_json::json!({
                "failed_appends": count,
                "first_error": error,
                "since": clock::format_utc_us(*since_us),
            });
            seal_insert(kinds::FAULT_STORAGE, marker.to_string().as_bytes())?;
        }
        let mut done = Vec::with_capacity(batch.len());
        for (kind, payload, _) in batch.iter() {
            done.push(seal_insert(kind, payload)?);
        }
        tx.commit().map_err(m)?;
        self.failed = None;
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
        let mut batch = vec![(kinds::KEY_ROTATE.to_owned(), payload.to_string().into_bytes(), None)];
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
        let (state, _) = verify_from(&self.conn, &self.path, self.checkpoint.clone(), None)?;
        save_checkpoint(&self.conn, &state).map_err(|e| map_sqlite(&self.path, e))?;
        self.checkpoint = state;
        Ok(self.checkpoint.seq)
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
}

impl JournalReader {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        if !path.exists() {
            return Err(JournalError::Open { path: path.to_owned(), detail: "file does not exist".into() });
        }
        let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| map_sqlite(path, e))?;
        prepare(&mut conn, path, false)?;
        Ok(JournalReader { conn, path: path.to_owned() })
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
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        f: impl FnMut(Record) -> Result<bool, JournalError>,
    ) -> Result<(), JournalError> {
        for_each_record(&self.conn, &self.path, from, to, f)
    }

    /// Verifies every record from 1 (every signature, chain link and the gapless sequence).
    /// With `trusted`, record 1 must carry that public key. Returns the number of records.
    pub fn verify_all(&self, trusted: Option<VerifyingKey>) -> Result<u64, JournalError> {
        let (state, _) = verify_from(&self.conn, &self.path, ChainState::empty(), trusted)?;
        // A missing tail (records after a gap) must not pass silently.
        if let Some(tail) = self.tail()?
            && tail.seq != state.seq
        {
            return Err(JournalError::Integrity {
                path: self.path.clone(),
                error: VerifyError::Gap { seq: tail.seq, expected: state.seq + 1 },
            });
        }
        Ok(state.seq)
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
