//! HQ's storage for a fleet: PostgreSQL, shared by several `van-hq` instances behind a load
//! balancer (docs/sync.md, "Storage").
//!
//! Per-van ordering is held by the database, not by a process: [`Store::in_van_tx`] opens a
//! transaction and takes the van's row with `SELECT … FOR NO KEY UPDATE` (the row lock `UPDATE`
//! itself takes: it serialises every writer of that van, in any process, yet lets the foreign-key
//! checks of other vans' and of nonce inserts pass). The transaction runs at PostgreSQL's default
//! READ COMMITTED: once the lock is granted, every later statement sees what the previous holder
//! committed, so the second of two racing uploads finds the first one's records and head.
//!
//! The schema is created on open and versioned (table `schema_version`); opening runs the missing
//! migrations under a transaction-scoped advisory lock, so instances starting together do not race.
//! Columns are those of the SQLite store (hex text, microseconds as BIGINT) so reports and audits
//! read the same in both.
//!
//! Connections: `postgres://user[:password]@host[:port]/database` (libpq's URL form; a Unix socket
//! directory as a percent-encoded host, `postgres://user@%2Frun%2Fpostgresql/hq`), without TLS:
//! the database belongs on the same host or a private network segment as the instances. The URL
//! is never printed (it may hold a password).

use std::str::FromStr;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use mtu_journal::{ChainState, Record};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::{self, NoTls, Row, Transaction};

use crate::store::{
    Alarm, PublishOutcome, PublishedBundle, Store, StoreError, VanRow, VanTx, chain_state_from_json,
    chain_state_to_json, public_key_from_hex,
};

/// Connections each instance keeps at most (the blocking pool waits for one beyond that).
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// The migrations, in order; `schema_version` holds how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: what ingest keeps per van.
    "CREATE TABLE vans (
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
    CREATE TABLE records (
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
    CREATE TABLE alarms (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        van_id TEXT NOT NULL REFERENCES vans(van_id),
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        details_json TEXT NOT NULL
    );
    CREATE INDEX alarms_van ON alarms(van_id, id);
    CREATE TABLE nonces (
        van_id TEXT NOT NULL REFERENCES vans(van_id),
        nonce TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (van_id, nonce)
    );
    CREATE INDEX nonces_van_at ON nonces(van_id, at);",
    // 2: down-sync (bundles published to the vans, dossiers for walk-ups).
    "CREATE TABLE bundles (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        version BIGINT NOT NULL,
        body BYTEA NOT NULL,
        published_at BIGINT NOT NULL,
        UNIQUE (target, kind, version)
    );
    CREATE INDEX bundles_target ON bundles(target, id);
    CREATE TABLE dossiers (
        national_id TEXT PRIMARY KEY NOT NULL,
        dossier TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );",
];

/// Key of the advisory lock taken while migrating (any constant both instances agree on).
const MIGRATION_LOCK: i64 = 0x6d74_752d_6871; // "mtu-hq"

/// The van columns every read takes, in [`van_row`]'s order.
const VAN_COLUMNS: &str = "van_id, genesis_key, current_key, chain_state_json, last_ack_at, \
                           last_checkpoint_at, last_checkpoint_seq";

type Pool = r2d2_postgres::r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// HQ's PostgreSQL database (a pool of connections).
pub struct PgStore {
    pool: Pool,
}

fn db(e: postgres::Error) -> StoreError {
    // The server's own message (and SQLSTATE) when there is one; never the connection URL.
    match e.as_db_error() {
        Some(d) => StoreError::Database(format!("postgres: {} ({})", d.message(), d.code().code())),
        None => StoreError::Database(format!("postgres: {e}")),
    }
}

fn damaged(van: &str, what: String) -> StoreError {
    StoreError::Damaged { van: van.to_owned(), what }
}

/// A seq or version as PostgreSQL's BIGINT.
fn big(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} {n} exceeds BIGINT")))
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) with a pool of [`DEFAULT_POOL_SIZE`] connections and
    /// brings the schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, DEFAULT_POOL_SIZE)
    }

    /// [`PgStore::open`] with another pool size.
    pub fn open_with(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Database(format!("database URL is not a valid postgres:// URL: {e}")))?;
        let target = describe(&config);
        // One direct connection first: a server that is not there fails now, with its reason,
        // rather than after the pool's patient retries.
        config
            .connect(NoTls)
            .map_err(|e| StoreError::Database(format!("connecting to PostgreSQL {target}: {e}")))?
            .close()
            .map_err(db)?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2_postgres::r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .error_handler(Box::new(r2d2_postgres::r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| StoreError::Database(format!("connecting to PostgreSQL {target}: {e}")))?;
        let store = PgStore { pool };
        store.migrate()?;
        Ok(store)
    }

    fn conn(
        &self,
    ) -> Result<r2d2_postgres::r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Database(format!("postgres: no connection: {e}")))
    }

    /// Runs the migrations not yet applied, each in the one transaction that records it.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(db)?;
        let current: i32 = match tx.query_opt("SELECT version FROM schema_version", &[]).map_err(db)? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[]).map_err(db)?;
                0
            }
        };
        let known = MIGRATIONS.len() as i32;
        if current > known {
            return Err(StoreError::Database(format!(
                "the database's schema is version {current}, newer than this van-hq knows ({known}); \
                 upgrade van-hq"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).map_err(db)?;
            tx.execute("UPDATE schema_version SET version = $1", &[&(i as i32 + 1)]).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// The schema version of the database (migrations applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.query_one("SELECT version FROM schema_version", &[]).map_err(db)?;
        Ok(row.get::<_, i32>(0) as u32)
    }
}

/// Host, port and database of a connection, for messages (never the user or password).
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "(default host)".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default database)"))
}

fn van_row(row: &Row) -> Result<VanRow, StoreError> {
    let van_id: String = row.get(0);
    let genesis: String = row.get(1);
    let current: String = row.get(2);
    let chain: String = row.get(3);
    let genesis_key =
        public_key_from_hex(&genesis).map_err(|e| damaged(&van_id, format!("genesis_key: {e}")))?;
    let current_key =
        public_key_from_hex(&current).map_err(|e| damaged(&van_id, format!("current_key: {e}")))?;
    let chain =
        chain_state_from_json(&chain).map_err(|e| damaged(&van_id, format!("chain_state_json: {e}")))?;
    let cp_seq: Option<i64> = row.get(6);
    Ok(VanRow {
        van_id,
        genesis_key,
        current_key,
        chain,
        last_ack_at: row.get(4),
        last_checkpoint_at: row.get(5),
        last_checkpoint_seq: cp_seq.map(|s| s as u64),
    })
}

/// One transaction on one locked van. The van's row is read once, under the lock; the head, ack
/// and checkpoint changes are kept here and written back in one `UPDATE` before the commit.
struct PgVanTx<'a> {
    tx: Transaction<'a>,
    row: VanRow,
    dirty: bool,
}

impl PgVanTx<'_> {
    fn flush(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        let r = &self.row;
        self.tx
            .execute(
                "UPDATE vans SET last_seq = $2, head_hash = $3, chain_state_json = $4, current_key = $5, \
                 last_ack_at = $6, last_checkpoint_at = $7, last_checkpoint_seq = $8 WHERE van_id = $1",
                &[
                    &r.van_id,
                    &big(r.chain.seq, "seq")?,
                    &hex::encode(r.chain.hash),
                    &chain_state_to_json(&r.chain),
                    &hex::encode(r.current_key.as_bytes()),
                    &r.last_ack_at,
                    &r.last_checkpoint_at,
                    &r.last_checkpoint_seq.map(|s| big(s, "seq")).transpose()?,
                ],
            )
            .map_err(db)?;
        self.dirty = false;
        Ok(())
    }
}

impl VanTx for PgVanTx<'_> {
    fn van(&mut self) -> Result<VanRow, StoreError> {
        Ok(self.row.clone())
    }

    fn stored_line(&mut self, seq: u64) -> Result<Option<String>, StoreError> {
        let row = self
            .tx
            .query_opt(
                "SELECT line FROM records WHERE van_id = $1 AND seq = $2",
                &[&self.row.van_id, &big(seq, "seq")?],
            )
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn insert_record(&mut self, rec: &Record, line: &str) -> Result<(), StoreError> {
        self.insert_records(&[(rec.clone(), line.to_owned())])
    }

    /// The whole batch in one binary `COPY` (the fastest way into PostgreSQL): no statement to
    /// plan, no per-row round trip.
    fn insert_records(&mut self, records: &[(Record, String)]) -> Result<(), StoreError> {
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::Type;
        if records.is_empty() {
            return Ok(());
        }
        let sink = self
            .tx
            .copy_in(
                "COPY records (van_id, seq, hash, key_id, time_us, kind, payload, line) FROM STDIN BINARY",
            )
            .map_err(db)?;
        let types =
            [Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT];
        let mut w = BinaryCopyInWriter::new(sink, &types);
        for (rec, line) in records {
            let payload = String::from_utf8_lossy(&rec.payload);
            w.write(&[
                &self.row.van_id,
                &big(rec.seq, "seq")?,
                &hex::encode(rec.hash),
                &hex::encode(rec.key_id),
                &rec.time_us,
                &rec.kind,
                &payload.as_ref(),
                &line.as_str(),
            ])
            .map_err(db)?;
        }
        w.finish().map_err(db)?;
        Ok(())
    }

    fn set_head(&mut self, chain: &ChainState) -> Result<(), StoreError> {
        let key =
            chain.key.ok_or_else(|| damaged(&self.row.van_id, "verifier state without a key".into()))?;
        self.row.chain = chain.clone();
        self.row.current_key = key;
        self.dirty = true;
        Ok(())
    }

    fn set_last_ack(&mut self, at_us: i64) -> Result<(), StoreError> {
        self.row.last_ack_at = Some(at_us);
        self.dirty = true;
        Ok(())
    }

    fn set_checkpoint(&mut self, at_us: i64, seq: u64) -> Result<(), StoreError> {
        self.row.last_checkpoint_at = Some(at_us);
        self.row.last_checkpoint_seq = Some(seq);
        self.dirty = true;
        Ok(())
    }

    fn add_alarm(&mut self, at_us: i64, kind: &str, details: &serde_json::Value) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO alarms (van_id, at, kind, details_json) VALUES ($1, $2, $3, $4)",
                &[&self.row.van_id, &at_us, &kind, &details.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }
}

impl Store for PgStore {
    fn enroll(&self, van: &str, key: &VerifyingKey, at_us: i64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let key_hex = hex::encode(key.as_bytes());
        let n = conn
            .execute(
                "INSERT INTO vans (van_id, genesis_key, current_key, last_seq, head_hash, chain_state_json, \
                 enrolled_at) VALUES ($1, $2, $2, 0, $3, $4, $5) ON CONFLICT (van_id) DO NOTHING",
                &[
                    &van,
                    &key_hex,
                    &hex::encode([0u8; 32]),
                    &chain_state_to_json(&ChainState::empty()),
                    &at_us,
                ],
            )
            .map_err(db)?;
        if n == 0 {
            return Err(StoreError::AlreadyEnrolled(van.to_owned()));
        }
        Ok(())
    }

    fn current_key(&self, van: &str) -> Result<Option<VerifyingKey>, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.query_opt("SELECT current_key FROM vans WHERE van_id = $1", &[&van]).map_err(db)?;
        row.map(|r| {
            let k: String = r.get(0);
            public_key_from_hex(&k).map_err(|e| damaged(van, format!("current_key: {e}")))
        })
        .transpose()
    }

    /// One statement, atomic across instances: drops the van's nonces older than the window, and
    /// inserts this one unless it is remembered within the window (an old copy is renewed).
    fn remember_nonce(
        &self,
        van: &str,
        nonce: &[u8; 16],
        at_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let n = hex::encode(nonce);
        let fresh = conn
            .query_opt(
                "WITH gone AS (DELETE FROM nonces WHERE van_id = $1 AND at < $4 AND nonce <> $2) \
                 INSERT INTO nonces (van_id, nonce, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (van_id, nonce) DO UPDATE SET at = EXCLUDED.at WHERE nonces.at < $4 \
                 RETURNING 1",
                &[&van, &n, &at_us, &forget_before_us],
            )
            .map_err(|e| match e.code() {
                // The van is not enrolled (the nonce's foreign key): no nonce to remember.
                Some(c) if *c == postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                    StoreError::UnknownVan(van.to_owned())
                }
                _ => db(e),
            })?;
        Ok(fresh.is_some())
    }

    fn in_van_tx<R>(
        &self,
        van: &str,
        f: &mut dyn FnMut(&mut dyn VanTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        let locked = tx
            .query_opt(
                &format!("SELECT {VAN_COLUMNS} FROM vans WHERE van_id = $1 FOR NO KEY UPDATE"),
                &[&van],
            )
            .map_err(db)?;
        let Some(locked) = locked else {
            return Err(StoreError::UnknownVan(van.to_owned()));
        };
        let row = van_row(&locked)?;
        let mut vt = PgVanTx { tx, row, dirty: false };
        let out = f(&mut vt)?;
        vt.flush()?;
        vt.tx.commit().map_err(db)?;
        Ok(out)
    }

    fn vans(&self) -> Result<Vec<VanRow>, StoreError> {
        let mut conn = self.conn()?;
        conn.query(&format!("SELECT {VAN_COLUMNS} FROM vans ORDER BY van_id"), &[])
            .map_err(db)?
            .iter()
            .map(van_row)
            .collect()
    }

    fn alarms(&self, van: &str) -> Result<Vec<Alarm>, StoreError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT id, van_id, at, kind, details_json FROM alarms WHERE van_id = $1 ORDER BY id",
                &[&van],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let details: String = r.get(4);
                Alarm {
                    id: r.get(0),
                    van_id: r.get(1),
                    at: r.get(2),
                    kind: r.get(3),
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
                }
            })
            .collect())
    }

    fn records(
        &self,
        van: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, [u8; 32], String)>, StoreError> {
        let mut conn = self.conn()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                "SELECT seq, hash, line FROM records WHERE van_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&van, &big(from_seq, "seq")?, &limit],
            )
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let hash: String = r.get(1);
                let h = crate::protocol::hex_array::<32>(&hash)
                    .map_err(|e| damaged(van, format!("record {seq}: hash column: {e}")))?;
                Ok((seq as u64, h, r.get(2)))
            })
            .collect()
    }

    /// Publications are serialised (an exclusive lock on `bundles` for the transaction), so ids
    /// become visible in ascending order and a van's cursor never skips a bundle still being
    /// committed.
    fn publish_bundle(
        &self,
        target: &str,
        kind: &str,
        version: u64,
        body: &[u8],
        at_us: i64,
    ) -> Result<PublishOutcome, StoreError> {
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Conflict(format!("bundle version {version} is out of range")))?;
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        tx.batch_execute("LOCK TABLE bundles IN EXCLUSIVE MODE").map_err(db)?;
        let stored = tx
            .query_opt(
                "SELECT id, body FROM bundles WHERE target = $1 AND kind = $2 AND version = $3",
                &[&target, &kind, &version],
            )
            .map_err(db)?;
        if let Some(row) = stored {
            let id: i64 = row.get(0);
            let stored: Vec<u8> = row.get(1);
            if stored == body {
                return Ok(PublishOutcome::AlreadyStored(id as u64));
            }
            return Err(StoreError::Conflict(format!(
                "a different {kind} bundle version {version} is already published for {target:?} (id {id})"
            )));
        }
        let row = tx
            .query_one(
                "INSERT INTO bundles (target, kind, version, body, published_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id",
                &[&target, &kind, &version, &body, &at_us],
            )
            .map_err(db)?;
        let id: i64 = row.get(0);
        tx.commit().map_err(db)?;
        Ok(PublishOutcome::Stored(id as u64))
    }

    fn bundles_after(
        &self,
        van: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<PublishedBundle>, StoreError> {
        let mut conn = self.conn()?;
        let after = i64::try_from(after_id).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                "SELECT id, target, kind, version, body, published_at FROM bundles \
                 WHERE (target = $1 OR target = '*') AND id > $2 ORDER BY id LIMIT $3",
                &[&van, &after, &limit],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| PublishedBundle {
                id: r.get::<_, i64>(0) as u64,
                target: r.get(1),
                kind: r.get(2),
                version: r.get::<_, i64>(3) as u64,
                body: r.get(4),
                published_at: r.get(5),
            })
            .collect())
    }

    fn put_dossier(&self, national_id: &str, dossier_json: &str, at_us: i64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO dossiers (national_id, dossier, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (national_id) DO UPDATE SET dossier = EXCLUDED.dossier, updated_at = EXCLUDED.updated_at",
            &[&national_id, &dossier_json, &at_us],
        )
        .map_err(db)?;
        Ok(())
    }

    fn dossier(&self, national_id: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt("SELECT dossier FROM dossiers WHERE national_id = $1", &[&national_id])
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }
}
