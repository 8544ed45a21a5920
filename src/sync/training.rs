//! The training van's local HQ (`[sync.training_hq]`, simulation only): `van-hq`'s receiver run
//! inside vand over TLS, so a newcomer who runs `cargo run --bin vand` sees the van's records
//! arrive at an HQ and can list them with `van-hq vans`.
//!
//! In-process rather than a spawned `van-hq` binary: `van-hq` is a library, so there is no
//! binary to find in the target folder (it may not be built yet), no child process to supervise
//! or leave behind after a kill, and the HQ stops with vand. The HQ side is exactly the one a
//! fleet runs (same router, same SQLite store, same TLS code as `van-hq serve` and `van-hq
//! tls-init`); only its place differs.
//!
//! At first start it creates, under `dir`: HQ's signing key (`hq.key`, 0600), a throwaway CA and
//! a server certificate for 127.0.0.1 and localhost (`tls/`, keys 0600), the database (`hq.db`),
//! and enrols the van with its genesis public key (record 1 of the journal). The van's effective
//! `[sync]` then pins this HQ's public key and CA.
//!
//! All of it needs the `training-hq` cargo feature (on by default). The van's package is built
//! without it: there [`TrainingHq`] is a type with no values and `[sync.training_hq]` is refused
//! (see [`super::start`]).

#[cfg(feature = "training-hq")]
pub use with_hq::*;

/// This build has no training HQ (built without the `training-hq` feature): no value of this type
/// exists, so vand never holds one.
#[cfg(not(feature = "training-hq"))]
pub enum TrainingHq {}

#[cfg(not(feature = "training-hq"))]
impl TrainingHq {
    /// Never called: there is no value to stop.
    pub async fn stop(self) {
        match self {}
    }
}

#[cfg(feature = "training-hq")]
mod with_hq {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use anyhow::Context;
    use ed25519_dalek::VerifyingKey;
    use van_hq::sqlite::SqliteStore;
    use van_hq::store::Store;

    use crate::config::TrainingHqConfig;
    use crate::journal::JournalReader;

    /// A running local HQ.
    pub struct TrainingHq {
        /// Its base URL (`https://127.0.0.1:<port>`).
        pub url: String,
        /// Its acknowledgement key (the van pins it).
        pub hq_key: VerifyingKey,
        /// The throwaway CA's certificate (the van pins it).
        pub ca_file: PathBuf,
        /// Its database (for `van-hq vans --db …`).
        pub db: PathBuf,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl TrainingHq {
        /// Starts the local HQ for `van_id`, whose journal is at `journal` (read for its genesis key).
        pub async fn start(
            cfg: &TrainingHqConfig,
            van_id: &str,
            journal: &Path,
        ) -> anyhow::Result<TrainingHq> {
            let dir = cfg.dir.clone();
            crate::keys::create_private_dir(&dir)
                .with_context(|| format!("creating the training HQ's folder {}", dir.display()))?;
            let key_path = dir.join("hq.key");
            let key = if key_path.exists() {
                van_hq::hq_key::load(&key_path)?
            } else {
                van_hq::hq_key::generate(&key_path)?
            };
            let tls_dir = dir.join("tls");
            let files = van_hq::tls::TlsFiles::in_dir(&tls_dir);
            if !files.exist() {
                if tls_dir.exists() {
                    // A half-written folder from an interrupted first start: make it again.
                    std::fs::remove_dir_all(&tls_dir)
                        .with_context(|| format!("removing {}", tls_dir.display()))?;
                }
                van_hq::tls::init(&tls_dir, &["127.0.0.1".to_owned(), "localhost".to_owned()])?;
            }
            let server_config = van_hq::tls::server_config(&files.server_cert, &files.server_key)?;
            let db = dir.join("hq.db");
            let store = SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let genesis = genesis_key(journal)?;
            match store.vans()?.into_iter().find(|v| v.van_id == van_id) {
                None => {
                    let key = hex::encode(genesis.as_bytes());
                    van_hq::ingest::enroll(&store, van_id, &key, van_hq::ingest::now_us())?;
                    tracing::info!(van = van_id, "training HQ: van enrolled with its genesis key");
                }
                Some(row) if row.genesis_key != genesis => tracing::warn!(
                    van = van_id,
                    "training HQ knows another journal under this van id (a new journal with an old HQ \
                 folder?): it will refuse this van's uploads; remove {} to start HQ over",
                    dir.display()
                ),
                Some(_) => {}
            }
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("training HQ: binding {}", cfg.listen))?;
            let addr = listener.local_addr()?;
            let hq_key = key.verifying_key();
            let hq = Arc::new(van_hq::server::Hq { store, key });
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = van_hq::tls::serve_tls(listener, server_config, hq, shutdown).await {
                    tracing::error!("training HQ: {e}");
                }
            });
            Ok(TrainingHq {
                url: format!("https://{addr}"),
                hq_key,
                ca_file: files.ca_cert,
                db,
                stop: Some(stop),
                task: Some(task),
            })
        }

        /// Stops serving (waits a moment for the server to finish).
        pub async fn stop(mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = self.task.take() {
                if tokio::time::timeout(std::time::Duration::from_secs(2), t).await.is_err() {
                    tracing::warn!("training HQ did not stop within 2 s");
                }
            }
        }
    }

    impl Drop for TrainingHq {
        fn drop(&mut self) {
            if let Some(t) = &self.task {
                t.abort();
            }
        }
    }

    /// The van's genesis public key: the `public_key` of record 1, which that key signed.
    pub fn genesis_key(journal: &Path) -> anyhow::Result<VerifyingKey> {
        let reader = JournalReader::open(journal)?;
        let genesis = reader.get(1)?;
        let hex_key = genesis
            .payload_json()
            .get("public_key")
            .and_then(|v| v.as_str().map(str::to_owned))
            .context("record 1 names no public key")?;
        let bytes =
            mtu_sync::lower_hex::<32>(&hex_key).context("record 1's public key is not 64 hex digits")?;
        let key =
            VerifyingKey::from_bytes(&bytes).context("record 1's public key is not a valid Ed25519 key")?;
        if mtu_journal::keys::key_id_of(&key) != genesis.key_id {
            anyhow::bail!("record 1 is not signed by the key it names: run `vanctl journal verify`");
        }
        Ok(key)
    }
}
