//! The store `van-hq --database` names: a SQLite file path, or a `postgres://` URL.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store::{Alarm, PublishOutcome, PublishedBundle, Store, StoreError, VanRow, VanTx};

/// Either of HQ's stores, chosen at run time.
pub enum Database {
    /// One SQLite file (the default; embedded, no setup).
    Sqlite(SqliteStore),
    /// PostgreSQL, for a fleet and several instances.
    Postgres(PgStore),
}

/// Whether `spec` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(spec: &str) -> bool {
    let lower = spec.get(..13).unwrap_or(spec).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl Database {
    /// Opens `spec`: a `postgres://…` URL, else a SQLite file path (created if missing).
    pub fn open(spec: &str) -> Result<Self, StoreError> {
        if is_postgres_url(spec) {
            Ok(Database::Postgres(PgStore::open(spec)?))
        } else {
            Ok(Database::Sqlite(SqliteStore::open(Path::new(spec))?))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Database::Sqlite($s) => $e,
            Database::Postgres($s) => $e,
        }
    };
}

impl Store for Database {
    fn enroll(&self, van: &str, key: &VerifyingKey, at_us: i64) -> Result<(), StoreError> {
        both!(self, s => s.enroll(van, key, at_us))
    }

    fn current_key(&self, van: &str) -> Result<Option<VerifyingKey>, StoreError> {
        both!(self, s => s.current_key(van))
    }

    fn remember_nonce(
        &self,
        van: &str,
        nonce: &[u8; 16],
        at_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.remember_nonce(van, nonce, at_us, forget_before_us))
    }

    fn in_van_tx<R>(
        &self,
        van: &str,
        f: &mut dyn FnMut(&mut dyn VanTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        both!(self, s => s.in_van_tx(van, f))
    }

    fn vans(&self) -> Result<Vec<VanRow>, StoreError> {
        both!(self, s => s.vans())
    }

    fn alarms(&self, van: &str) -> Result<Vec<Alarm>, StoreError> {
        both!(self, s => s.alarms(van))
    }

    fn records(
        &self,
        van: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, [u8; 32], String)>, StoreError> {
        both!(self, s => s.records(van, from_seq, limit))
    }

    fn publish_bundle(
        &self,
        target: &str,
        kind: &str,
        version: u64,
        body: &[u8],
        at_us: i64,
    ) -> Result<PublishOutcome, StoreError> {
        both!(self, s => s.publish_bundle(target, kind, version, body, at_us))
    }

    fn bundles_after(
        &self,
        van: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<PublishedBundle>, StoreError> {
        both!(self, s => s.bundles_after(van, after_id, limit))
    }

    fn put_dossier(&self, national_id: &str, dossier_json: &str, at_us: i64) -> Result<(), StoreError> {
        both!(self, s => s.put_dossier(national_id, dossier_json, at_us))
    }

    fn dossier(&self, national_id: &str) -> Result<Option<String>, StoreError> {
        both!(self, s => s.dossier(national_id))
    }
}

#[cfg(test)]
mod tests {
    use super::is_postgres_url;

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(is_postgres_url("postgres://hq@db.local/hq"));
        assert!(is_postgres_url("PostgreSQL://hq@%2Frun%2Fpostgresql/hq"));
        assert!(!is_postgres_url("/var/lib/van-hq/hq.db"));
        assert!(!is_postgres_url("postgres.db"));
        assert!(!is_postgres_url("./postgres://x"));
    }
}
