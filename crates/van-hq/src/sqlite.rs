//! HQ's default storage: one SQLite file (WAL, `synchronous=FULL`, `BEGIN IMMEDIATE`).
//!
//! The SQL is kept portable (no SQLite-only types or upserts) so a PostgreSQL store can run the
//! same statements, taking the van's row with `SELECT … FOR UPDATE` where SQLite's `BEGIN
//! IMMEDIATE` already serialises writers.

use std::path::Path;
use std::sync::Mutex;

use ed25519_dalek::VerifyingKey;
use mtu_journal::{ChainState, Record};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::store::{
    Alarm, PublishOutcome, PublishedBundle, StoreError, VanRow, VanTx, chain_state_from_json,
    chain_state_to_json, public_key_from_hex,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vans (
    van_id TEXT PRIMARY KEY NOT NULL,
    genesis_key TEXT NOT NULL,
    current_key TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    chain_state_json TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    last_ack_at BIGINT,
    last_checkpoint_at BIGINT,
    last_checkpoint_seq BIGINT
);
CREATE TABLE IF NOT EXISTS records (
    van_id TEXT NOT NULL REFERENCES vans(van_id),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (van_id, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY,
    van_id TEXT NOT NULL REFERENCES vans(van_id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    details_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    van_id TEXT NOT NULL REFERENCES vans(van_id),
    nonce TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (van_id, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_at ON nonces(at);
";

/// Down-sync: what HQ publishes to the vans (docs/sync.md, "Down-sync"). AUTOINCREMENT: an id is
/// never reused, so a van's cursor only moves forward.
const DOWNSYNC_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    body BLOB NOT NULL,
    published_at BIGINT NOT NULL,
    UNIQUE (target, kind, version)
);
CREATE TABLE IF NOT EXISTS dossiers (
    national_id TEXT PRIMARY KEY NOT NULL,
    dossier TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
";

/// HQ's SQLite database.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn =
            Connection::open(path).map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch(DOWNSYNC_SCHEMA).map_err(db)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back on drop).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn damaged(van: &str, what: String) -> StoreError {
    StoreError::Damaged { van: van.to_owned(), what }
}

type RawRow = (String, String, String, String, Option<i64>, Option<i64>, Option<i64>);

fn read_van(conn: &Connection, van: &str) -> Result<Option<VanRow>, StoreError> {
    let raw: Option<RawRow> = conn
        .query_row(
            "SELECT van_id, genesis_key, current_key, chain_state_json, last_ack_at, last_checkpoint_at, \
             last_checkpoint_seq FROM vans WHERE van_id = ?1",
            params![van],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .optional()
        .map_err(db)?;
    raw.map(van_row).transpose()
}

fn van_row((van_id, genesis, current, chain, ack, cp, cp_seq): RawRow) -> Result<VanRow, StoreError> {
    let genesis_key =
        public_key_from_hex(&genesis).map_err(|e| damaged(&van_id, format!("genesis_key: {e}")))?;
    let current_key =
        public_key_from_hex(&current).map_err(|e| damaged(&van_id, format!("current_key: {e}")))?;
    let chain =
        chain_state_from_json(&chain).map_err(|e| damaged(&van_id, format!("chain_state_json: {e}")))?;
    Ok(VanRow {
        van_id,
        genesis_key,
        current_key,
        chain,
        last_ack_at: ack,
        last_checkpoint_at: cp,
        last_checkpoint_seq: cp_seq.map(|s| s as u64),
    })
}

struct SqliteVanTx<'a> {
    tx: Transaction<'a>,
    van: String,
}

impl VanTx for SqliteVanTx<'_> {
    fn van(&mut self) -> Result<VanRow, StoreError> {
        read_van(&self.tx, &self.van)?.ok_or_else(|| StoreError::UnknownVan(self.van.clone()))
    }

    fn stored_line(&mut self, seq: u64) -> Result<Option<String>, StoreError> {
        self.tx
            .query_row(
                "SELECT line FROM records WHERE van_id = ?1 AND seq = ?2",
                params![self.van, seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    fn insert_record(&mut self, rec: &Record, line: &str) -> Result<(), StoreError> {
        self.insert_records(&[(rec.clone(), line.to_owned())])
    }

    fn insert_records(&mut self, records: &[(Record, String)]) -> Result<(), StoreError> {
        // One statement prepared once per connection, run per record inside the transaction.
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO records (van_id, seq, hash, key_id, time_us, kind, payload, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db)?;
        for (rec, line) in records {
            stmt.execute(params![
                self.van,
                rec.seq as i64,
                hex::encode(rec.hash),
                hex::encode(rec.key_id),
                rec.time_us,
                rec.kind,
                String::from_utf8_lossy(&rec.payload),
                line
            ])
            .map_err(db)?;
        }
        Ok(())
    }

    fn set_head(&mut self, chain: &ChainState) -> Result<(), StoreError> {
        let key = chain.key.ok_or_else(|| damaged(&self.van, "verifier state without a key".into()))?;
        self.tx
            .execute(
                "UPDATE vans SET last_seq = ?2, head_hash = ?3, chain_state_json = ?4, current_key = ?5 \
                 WHERE van_id = ?1",
                params![
                    self.van,
                    chain.seq as i64,
                    hex::encode(chain.hash),
                    chain_state_to_json(chain),
                    hex::encode(key.as_bytes())
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn set_last_ack(&mut self, at_us: i64) -> Result<(), StoreError> {
        self.tx
            .execute("UPDATE vans SET last_ack_at = ?2 WHERE van_id = ?1", params![self.van, at_us])
            .map_err(db)?;
        Ok(())
    }

    fn set_checkpoint(&mut self, at_us: i64, seq: u64) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE vans SET last_checkpoint_at = ?2, last_checkpoint_seq = ?3 WHERE van_id = ?1",
                params![self.van, at_us, seq as i64],
            )
            .map_err(db)?;
        Ok(())
    }

    fn add_alarm(&mut self, at_us: i64, kind: &str, details: &serde_json::Value) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO alarms (van_id, at, kind, details_json) VALUES (?1, ?2, ?3, ?4)",
                params![self.van, at_us, kind, details.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }
}

impl crate::store::Store for SqliteStore {
    fn enroll(&self, van: &str, key: &VerifyingKey, at_us: i64) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        if read_van(&tx, van)?.is_some() {
            return Err(StoreError::AlreadyEnrolled(van.to_owned()));
        }
        let key_hex = hex::encode(key.as_bytes());
        tx.execute(
            "INSERT INTO vans (van_id, genesis_key, current_key, last_seq, head_hash, chain_state_json, \
             enrolled_at) VALUES (?1, ?2, ?2, 0, ?3, ?4, ?5)",
            params![van, key_hex, hex::encode([0u8; 32]), chain_state_to_json(&ChainState::empty()), at_us],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn current_key(&self, van: &str) -> Result<Option<VerifyingKey>, StoreError> {
        let conn = self.lock();
        let key: Option<String> = conn
            .query_row("SELECT current_key FROM vans WHERE van_id = ?1", params![van], |r| r.get(0))
            .optional()
            .map_err(db)?;
        key.map(|k| public_key_from_hex(&k).map_err(|e| damaged(van, format!("current_key: {e}"))))
            .transpose()
    }

    fn remember_nonce(
        &self,
        van: &str,
        nonce: &[u8; 16],
        at_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        tx.execute("DELETE FROM nonces WHERE at < ?1", params![forget_before_us]).map_err(db)?;
        let n = hex::encode(nonce);
        let seen: Option<i64> = tx
            .query_row("SELECT at FROM nonces WHERE van_id = ?1 AND nonce = ?2", params![van, n], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if seen.is_some() {
            return Ok(false);
        }
        tx.execute("INSERT INTO nonces (van_id, nonce, at) VALUES (?1, ?2, ?3)", params![van, n, at_us])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn in_van_tx<R>(
        &self,
        van: &str,
        f: &mut dyn FnMut(&mut dyn VanTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM vans WHERE van_id = ?1", params![van], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if exists.is_none() {
            return Err(StoreError::UnknownVan(van.to_owned()));
        }
        let mut vt = SqliteVanTx { tx, van: van.to_owned() };
        let out = f(&mut vt)?;
        vt.tx.commit().map_err(db)?;
        Ok(out)
    }

    fn vans(&self) -> Result<Vec<VanRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT van_id, genesis_key, current_key, chain_state_json, last_ack_at, last_checkpoint_at, \
                 last_checkpoint_seq FROM vans ORDER BY van_id",
            )
            .map_err(db)?;
        let raws = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .map_err(db)?
            .collect::<Result<Vec<RawRow>, _>>()
            .map_err(db)?;
        raws.into_iter().map(van_row).collect()
    }

    fn alarms(&self, van: &str) -> Result<Vec<Alarm>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, van_id, at, kind, details_json FROM alarms WHERE van_id = ?1 ORDER BY id")
            .map_err(db)?;
        let rows = stmt
            .query_map(params![van], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(id, van_id, at, kind, details)| Alarm {
                id,
                van_id,
                at,
                kind,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
            })
            .collect())
    }

    fn records(
        &self,
        van: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, [u8; 32], String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT seq, hash, line FROM records WHERE van_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![van, from_seq as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(seq, hash, line)| {
                let h = crate::protocol::hex_array::<32>(&hash)
                    .map_err(|e| damaged(van, format!("record {seq}: hash column: {e}")))?;
                Ok((seq as u64, h, line))
            })
            .collect()
    }

    fn publish_bundle(
        &self,
        target: &str,
        kind: &str,
        version: u64,
        body: &[u8],
        at_us: i64,
    ) -> Result<PublishOutcome, StoreError> {
        publish_bundle(&mut self.lock(), target, kind, version, body, at_us)
    }

    fn bundles_after(
        &self,
        van: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<PublishedBundle>, StoreError> {
        bundles_after(&self.lock(), van, after_id, limit)
    }

    fn put_dossier(&self, national_id: &str, dossier_json: &str, at_us: i64) -> Result<(), StoreError> {
        put_dossier(&self.lock(), national_id, dossier_json, at_us)
    }

    fn dossier(&self, national_id: &str) -> Result<Option<String>, StoreError> {
        dossier(&self.lock(), national_id)
    }
}

// ---- Down-sync (bundles and dossiers) -------------------------------------------------------

fn publish_bundle(
    conn: &mut Connection,
    target: &str,
    kind: &str,
    version: u64,
    body: &[u8],
    at_us: i64,
) -> Result<PublishOutcome, StoreError> {
    let version = i64::try_from(version)
        .map_err(|_| StoreError::Conflict(format!("bundle version {version} is out of range")))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let stored: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT id, body FROM bundles WHERE target = ?1 AND kind = ?2 AND version = ?3",
            params![target, kind, version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    if let Some((id, stored)) = stored {
        if stored == body {
            return Ok(PublishOutcome::AlreadyStored(id as u64));
        }
        return Err(StoreError::Conflict(format!(
            "a different {kind} bundle version {version} is already published for {target:?} (id {id})"
        )));
    }
    tx.execute(
        "INSERT INTO bundles (target, kind, version, body, published_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![target, kind, version, body, at_us],
    )
    .map_err(db)?;
    let id = tx.last_insert_rowid();
    tx.commit().map_err(db)?;
    Ok(PublishOutcome::Stored(id as u64))
}

fn bundles_after(
    conn: &Connection,
    van: &str,
    after_id: u64,
    limit: usize,
) -> Result<Vec<PublishedBundle>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, target, kind, version, body, published_at FROM bundles \
             WHERE (target = ?1 OR target = '*') AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .map_err(db)?;
    let after = i64::try_from(after_id).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    stmt.query_map(params![van, after, limit], |r| {
        Ok(PublishedBundle {
            id: r.get::<_, i64>(0)? as u64,
            target: r.get(1)?,
            kind: r.get(2)?,
            version: r.get::<_, i64>(3)? as u64,
            body: r.get(4)?,
            published_at: r.get(5)?,
        })
    })
    .map_err(db)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(db)
}

fn put_dossier(
    conn: &Connection,
    national_id: &str,
    dossier_json: &str,
    at_us: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO dossiers (national_id, dossier, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (national_id) DO UPDATE SET dossier = excluded.dossier, updated_at = excluded.updated_at",
        params![national_id, dossier_json, at_us],
    )
    .map_err(db)?;
    Ok(())
}

fn dossier(conn: &Connection, national_id: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT dossier FROM dossiers WHERE national_id = ?1", params![national_id], |r| r.get(0))
        .optional()
        .map_err(db)
}
