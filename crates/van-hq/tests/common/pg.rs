//! A real, throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl start` on a temp dir, on
//! 127.0.0.1 and a free port, its Unix socket in the same dir; one server per test binary, a fresh
//! database per test. Binaries come from Debian's `postgresql` package
//! (/usr/lib/postgresql/<N>/bin); when they are missing the test fails naming the package.
//!
//! PostgreSQL refuses to run as root: as root (CI), initdb and the server run as `nobody` through
//! `setpriv`. The server stops when the test process ends however it ends: a watchdog shell holds
//! a pipe from this process and stops the server and removes its directory when the pipe closes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// What to install when the binaries are missing.
pub const INSTALL_HINT: &str = "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found in \
     /usr/lib/postgresql/<N>/bin nor on PATH: run tools/test, which installs the Debian package \
     postgresql (or: apt-get install postgresql)";

/// The running server.
pub struct PgServer {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The server's directory (data, socket, log).
    pub dir: PathBuf,
    /// The bin directory used.
    pub bin: PathBuf,
    _watchdog: Child,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// The directory holding initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/<N>/bin,
/// else the directory of `initdb` on PATH (its symlinks resolved, as pg_ctl finds `postgres`).
pub fn bin_dir() -> Option<PathBuf> {
    let has_all = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| d.join(b).is_file());
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_all(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("initdb"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| has_all(d))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The user the server runs as when we are root (initdb and postgres refuse root).
const NOBODY: u32 = 65534;

/// The command prefix that drops root (empty when not root).
fn as_server_user() -> Vec<String> {
    if is_root() {
        vec![
            "setpriv".into(),
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ]
    } else {
        Vec::new()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a server. `durable`: PostgreSQL's defaults (fsync, synchronous commit, full page
/// writes), as a benchmark wants; otherwise those are off, as throwaway test databases want.
pub fn start(durable: bool) -> PgServer {
    let bin = bin_dir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    // Under /tmp as root: `nobody` must reach the directory (a root-only TMPDIR would not do).
    let parent = if is_root() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    let dir = tempfile::Builder::new().prefix("van-hq-pg-").tempdir_in(&parent).unwrap().keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let data = dir.join("data");
    let prefix = as_server_user();
    let initdb = bin.join("initdb");
    let mut argv: Vec<&str> = prefix.iter().map(String::as_str).collect();
    argv.push(initdb.to_str().unwrap());
    argv.extend(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
    argv.extend(["--locale=C", "--no-sync"]);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {} ({e}); {INSTALL_HINT}", argv[0]));
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A few tries: the free port may be taken between the probe and the server's bind.
    for _ in 0..5 {
        let port = free_port();
        let fast =
            if durable { "" } else { " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" };
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=32MB{fast}",
            dir.display()
        );
        let script = r#"
            as="$1"; pgctl="$2"; data="$3"; dir="$4"; opts="$5"
            if $as "$pgctl" start -w -t 60 -D "$data" -l "$dir/server.log" -o "$opts" >/dev/null 2>&1; then
                echo ready
            else
                echo failed; exit 1
            fi
            read -r _ignored || true
            $as "$pgctl" stop -m immediate -D "$data" >/dev/null 2>&1
            rm -rf "$dir"
        "#;
        let mut child = Command::new("sh")
            .args(["-c", script, "watchdog"])
            .arg(prefix.join(" "))
            .arg(bin.join("pg_ctl"))
            .arg(&data)
            .arg(&dir)
            .arg(&opts)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim() == "ready" {
            return PgServer { port, dir, bin, _watchdog: child };
        }
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    panic!("PostgreSQL did not start ({}): {log}", bin.display());
}

/// The test binary's server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(|| start(false))
}

impl PgServer {
    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A client on the `postgres` database (administration).
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap()
    }
}

/// A fresh, empty database on the test binary's server; its URL.
pub fn fresh_database() -> String {
    server().fresh_database()
}

impl PgServer {
    /// A fresh, empty database on this server; its URL.
    pub fn fresh_database(&self) -> String {
        let server = self;
        let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
        server.admin().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        server.url(&name)
    }
}

/// Runs SQL on a database (a test altering what HQ stores).
pub fn execute(url: &str, sql: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(sql).unwrap();
}
