//! `van-hq`: HQ's receiver of the vans' journals (see docs/sync.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use van_hq::database::Database;
use van_hq::{audit, hq_key, ingest, server, tls};

#[derive(Parser)]
#[command(name = "van-hq", about = "HQ receiver of the vans' signed journals", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where HQ's data lives: `--db PATH` (SQLite) or `--database PATH|postgres://…`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct DbArgs {
    /// SQLite database file (the same as `--database PATH`).
    #[arg(long)]
    db: Option<PathBuf>,
    /// A SQLite file path, or a PostgreSQL URL (`postgres://user@host/db`) shared by several instances.
    #[arg(long)]
    database: Option<String>,
}

impl DbArgs {
    fn open(&self) -> anyhow::Result<Database> {
        let store = match (&self.db, &self.database) {
            (Some(path), _) => Database::Sqlite(van_hq::sqlite::SqliteStore::open(path)?),
            (None, Some(spec)) => Database::open(spec)?,
            (None, None) => anyhow::bail!("--db or --database is required"),
        };
        Ok(store)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates HQ's signing key (PKCS#8 PEM, mode 0600); never overwrites.
    Keygen {
        #[arg(long)]
        key: PathBuf,
    },
    /// Prints HQ's public key (64 hex digits), the one each van pins.
    Pubkey {
        #[arg(long)]
        key: PathBuf,
    },
    /// Enrolls a van with its genesis public key (`vanctl pubkey`).
    Enroll {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        van: String,
        #[arg(long = "public-key")]
        public_key: String,
    },
    /// Serves protocol v1 (HTTP) until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// TLS: the server's certificate chain (PEM); with --tls-key. Without both, plain HTTP.
        #[arg(long = "tls-cert", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS: the server's private key (PEM, mode 0600).
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Makes a throwaway CA and a server certificate signed by it (for trials; keys 0600).
    TlsInit {
        /// Folder for ca.pem, ca.key, server.pem, server.key (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Host names or IP addresses the server certificate is for (repeat).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
    /// Per van: last seq, last acknowledgement, last checkpoint, staleness, alarms.
    Vans {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
    /// Publishes a reference-data bundle (docs/reference-data.md) for one van or every van.
    Publish {
        #[command(flatten)]
        db: DbArgs,
        /// The van it is for; without it, every van (its van_id is set per van when served).
        #[arg(long)]
        van: Option<String>,
        file: PathBuf,
    },
    /// Dossiers for the vans' live lookups.
    Dossiers {
        #[command(subcommand)]
        cmd: DossiersCmd,
    },
    /// Re-verifies everything stored for a van from its genesis record.
    Verify {
        #[command(flatten)]
        db: DbArgs,
        van: String,
    },
}

#[derive(Subcommand)]
enum DossiersCmd {
    /// Imports JSON Lines, one `{"national_id":"…","dossier":{…}}` a line; each replaces the stored one.
    Import {
        #[command(flatten)]
        db: DbArgs,
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Keygen { key } => {
            let k = hq_key::generate(&key)?;
            println!("{}", hex::encode(k.verifying_key().as_bytes()));
        }
        Cmd::Pubkey { key } => {
            let k = hq_key::load(&key)?;
            println!("{}", hex::encode(k.verifying_key().as_bytes()));
        }
        Cmd::Enroll { db, van, public_key } => {
            let store = db.open()?;
            ingest::enroll(&store, &van, &public_key, ingest::now_us())?;
            println!("enrolled {van}");
        }
        Cmd::TlsInit { dir, hosts } => {
            let f = tls::init(&dir, &hosts)?;
            println!("CA certificate (each van pins it as sync.ca_file): {}", f.ca_cert.display());
            println!(
                "serve with: --tls-cert {} --tls-key {}",
                f.server_cert.display(),
                f.server_key.display()
            );
        }
        Cmd::Serve { db, key, listen, tls_cert, tls_key } => {
            let store = db.open()?;
            let key = hq_key::load(&key)?;
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some(tls::server_config(&c, &k)?),
                _ => None,
            };
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let hq = Arc::new(server::Hq { store, key });
                if let Some(config) = tls {
                    eprintln!("van-hq listening on https://{}", listener.local_addr()?);
                    return tls::serve_tls(listener, config, hq, shutdown_signal()).await.context("serving");
                }
                eprintln!("van-hq listening on http://{}", listener.local_addr()?);
                server::serve(listener, hq, shutdown_signal()).await.context("serving")
            })?;
        }
        Cmd::Vans { db, json } => {
            let store = db.open()?;
            let vans = audit::vans(&store, ingest::now_us())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vans)?);
            } else {
                println!(
                    "{:<16} {:>8} {:<27} {:<27} {:>10} {:>6}",
                    "van", "last_seq", "last_ack", "last_checkpoint", "stale_s", "alarms"
                );
                for v in vans {
                    let alarms = match &v.last_alarm {
                        Some(k) => format!("{} ({k})", v.alarms),
                        None => v.alarms.to_string(),
                    };
                    println!(
                        "{:<16} {:>8} {:<27} {:<27} {:>10} {:>6}",
                        v.van,
                        v.last_seq,
                        v.last_ack.as_deref().unwrap_or("never"),
                        v.last_checkpoint.as_deref().unwrap_or("never"),
                        v.staleness_s.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                        alarms
                    );
                }
            }
        }
        Cmd::Publish { db, van, file } => {
            let store = db.open()?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let out = van_hq::downsync::publish(&store, &bytes, van.as_deref(), ingest::now_us())
                .with_context(|| format!("publishing {}", file.display()))?;
            println!("{}", van_hq::downsync::outcome_json(out));
        }
        Cmd::Dossiers { cmd: DossiersCmd::Import { db, file } } => {
            let store = db.open()?;
            let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let n = van_hq::downsync::import_dossiers(&store, std::io::BufReader::new(f), ingest::now_us())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("imported {n} dossiers");
        }
        Cmd::Verify { db, van } => {
            let store = db.open()?;
            let n = audit::verify_van(&store, &van, 1000)?;
            println!("{van}: {n} records verified from genesis; HQ's head matches");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
