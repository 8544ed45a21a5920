//! The daemon's local control socket (`<state_dir>/vand.sock`): JSON lines for vanctl.
//!
//! One request per line, one answer per line:
//! - `{"cmd":"devices"}` → `{"devices":{"payment":{"state":"connected"},…}}`
//! - `{"cmd":"self_test"}` → `{"self_test":[{"device":"payment","ok":true,"lines":[…]},…]}`
//! - `{"cmd":"test","device":"card"}` → `{"test":{"device":"card","job":"job-…","outcome":"done","ok":true,"lines":[…]}}`
//!   (a technician test job: prints a test card or label, encodes a test tag, or asks the terminal
//!   for its diagnosis; see `techtest`)
//! - commands of a [`ControlExtra`] the daemon installs (the service desk's `import`, `bookings`,
//!   `officers`; see `office::refdata::OfficeControl`) and the uplink's `sync_status` and
//!   `sync_now` (`sync::SyncControl`), answered by them ([`Extras`] installs several);
//! - anything else → `{"error":"…"}` naming what was wrong; the connection stays usable.
//!
//! The socket is created with mode 0660 so only the daemon's user and group (technicians) can use it.
//!
//! Clients are bounded ([`Limits`], `[control]` in the configuration): at most `max_clients` are
//! served at once, a client beyond that is answered `{"error":"too many control clients (16); try
//! again"}` and closed at once, a client that sends no request for `idle_timeout_s` is told so and
//! closed, and a request line is at most [`MAX_LINE`] bytes, except a request for a
//! [`ControlExtra`] command (a bundle import carries a whole file), which may take up to
//! [`MAX_EXTRA_LINE`] bytes. The socket also never takes the
//! daemon's last [`FD_RESERVE`] file descriptors, so a device can always be reopened after a
//! replug; [`raise_fd_limit`] lifts the soft descriptor limit to the hard one at daemon start.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::config::ControlConfig;
use crate::devices::manager::Manager;

/// Longest request line accepted (a request is a few dozen bytes).
pub const MAX_LINE: usize = 64 * 1024;

/// Longest request line accepted for a [`ControlExtra`] command (a bundle of a day's bookings with
/// their dossiers is a few hundred KiB). Only read that far when an extra is installed.
pub const MAX_EXTRA_LINE: usize = 4 * 1024 * 1024;

/// The answer of a [`ControlExtra`]: the answer object, or the error text for `{"error": …}`.
pub type ExtraFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + 'a>>;

/// Commands the daemon adds to the control socket beyond the devices' (the service desk's
/// imports and lists), so this module does not depend on them.
pub trait ControlExtra: Send + Sync {
    /// The `cmd` values it answers (never `devices`, `self_test` or `test`).
    fn commands(&self) -> &[&'static str];
    /// Answers one request (the whole JSON object, `cmd` included).
    fn handle(&self, request: Value) -> ExtraFuture<'_>;
}

/// An installed [`ControlExtra`], shared by every connection.
pub type Extra = Arc<dyn ControlExtra>;

/// Several [`ControlExtra`]s installed as one: each request goes to the part that lists its `cmd`.
pub struct Extras {
    parts: Vec<Extra>,
    commands: Vec<&'static str>,
}

impl Extras {
    /// The parts, in order (a command two parts list goes to the first).
    pub fn new(parts: Vec<Extra>) -> Extras {
        let commands = parts.iter().flat_map(|p| p.commands().iter().copied()).collect();
        Extras { parts, commands }
    }
}

impl ControlExtra for Extras {
    fn commands(&self) -> &[&'static str] {
        &self.commands
    }

    fn handle(&self, request: Value) -> ExtraFuture<'_> {
        let cmd = request.get("cmd").and_then(Value::as_str).unwrap_or_default().to_owned();
        match self.parts.iter().find(|p| p.commands().contains(&cmd.as_str())) {
            Some(p) => p.handle(request),
            None => Box::pin(async move { Err(format!("unknown cmd {cmd:?}")) }),
        }
    }
}

/// File descriptors the control socket always leaves to the rest of the daemon (device ports, the
/// journal, logs): a client whose descriptor would fall into this reserve is refused.
pub const FD_RESERVE: u64 = 64;

/// How many clients the control socket serves and for how long an idle one may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Clients served at once; one more is refused with a reason.
    pub max_clients: usize,
    /// A client that sends no complete request for this long is closed (and an answer that
    /// cannot be written for this long ends the connection).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&ControlConfig::default())
    }
}

impl From<&ControlConfig> for Limits {
    fn from(c: &ControlConfig) -> Self {
        Limits {
            max_clients: c.max_clients.max(1),
            idle_timeout: Duration::from_secs(c.idle_timeout_s.max(1)),
        }
    }
}

/// Raises the soft limit on open file descriptors (`RLIMIT_NOFILE`) to the hard limit and returns
/// the soft limit before and after. Call once at daemon start: systemd's default soft limit
/// (1024) is far below its hard limit, and vand uses epoll, never `select`.
#[allow(clippy::unnecessary_cast)] // rlim_t is narrower than u64 on some targets
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur as u64;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur as u64))
}

/// The current soft limit on open file descriptors (`u64::MAX` if unknown or unlimited).
#[allow(clippy::unnecessary_cast)] // rlim_t is narrower than u64 on some targets
fn fd_soft_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    lim.rlim_cur as u64
}

/// Open descriptors of this process and its soft limit; `None` when they cannot be counted
/// (counting needs a descriptor itself, so the table is full). Without procfs nothing is known
/// and nothing is held back.
fn fd_headroom() -> Option<(u64, u64)> {
    match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => Some((dir.count() as u64, fd_soft_limit())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((0, u64::MAX)),
        Err(_) => None,
    }
}

/// File name of the socket inside the state directory.
pub const SOCKET_NAME: &str = "vand.sock";

/// The socket path for a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A control socket failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another daemon already answers on this socket.
    #[error("control socket {path}: another vand is already running")]
    InUse { path: String },
    /// The socket could not be created.
    #[error("control socket {path}: cannot listen: {source}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No daemon answers (socket missing or refused).
    #[error("control socket {path}: no daemon running ({source})")]
    NoDaemon {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon's answer was not a JSON line.
    #[error("control socket {path}: malformed answer: {detail}")]
    BadAnswer { path: String, detail: String },
    /// The daemon answered with an error.
    #[error("vand: {0}")]
    Remote(String),
}

/// Serves the control socket with the default [`Limits`]; see [`serve_with`].
pub async fn serve(
    path: &Path,
    manager: Arc<Manager>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    serve_with(path, manager, Limits::default(), shutdown).await
}

/// [`serve_with_extra`] without extra commands.
pub async fn serve_with(
    path: &Path,
    manager: Arc<Manager>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    serve_with_extra(path, manager, limits, None, shutdown).await
}

/// Serves the control socket until `shutdown` becomes true (or its sender is dropped), with at
/// most `limits.max_clients` clients at once, answering `extra`'s commands too. A stale socket
/// file from a crashed daemon is replaced; a live one is an error.
pub async fn serve_with_extra(
    path: &Path,
    manager: Arc<Manager>,
    limits: Limits,
    extra: Option<Extra>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    let shown = path.display().to_string();
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse { path: shown });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|source| ControlError::Bind { path: shown.clone(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|source| ControlError::Bind { path: shown.clone(), source })?;
    tracing::info!(
        "control socket listening on {shown} (at most {} clients, idle timeout {} s)",
        limits.max_clients,
        limits.idle_timeout.as_secs()
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_clients));
    let mut refused: u64 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() { break; }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let permit = match slots.clone().try_acquire_owned() {
                        Err(_) => Err(format!(
                            "too many control clients ({}); try again",
                            limits.max_clients
                        )),
                        Ok(permit) => match fd_headroom() {
                            Some((open, limit)) if open.saturating_add(FD_RESERVE) >= limit => Err(format!(
                                "vand is short of file descriptors ({open} of {limit} open); try again"
                            )),
                            None => Err("vand is short of file descriptors; try again".to_owned()),
                            Some(_) => Ok(permit),
                        },
                    };
                    match permit {
                        Ok(permit) => {
                            let m = manager.clone();
                            let sd = shutdown.clone();
                            let x = extra.clone();
                            tokio::spawn(connection(stream, m, x, sd, limits.idle_timeout, permit));
                        }
                        Err(reason) => {
                            refused += 1;
                            if refused.is_power_of_two() {
                                tracing::warn!("control socket {shown}: client refused: {reason} ({refused} so far)");
                            }
                            refuse(&stream, &reason);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("control socket {shown}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Answers a client that will not be served with one error line, without waiting (the line fits
/// in an empty socket buffer; if it does not, the client gets only the close), then closes it.
fn refuse(stream: &UnixStream, reason: &str) {
    let mut text = json!({ "error": reason }).to_string();
    text.push('\n');
    let _ = stream.try_write(text.as_bytes());
}

async fn connection(
    stream: UnixStream,
    manager: Arc<Manager>,
    extra: Option<Extra>,
    shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    serve_client(&mut reader, &mut write, &manager, extra.as_ref(), shutdown, idle_timeout).await;
    // The slot is free before the client sees the close, so it may connect again at once.
    drop(slot);
    drop(write);
    drop(reader);
}

/// Answers requests until the client leaves, idles out, sends a too-long line or stops reading.
async fn serve_client(
    reader: &mut tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    manager: &Manager,
    extra: Option<&Extra>,
    mut shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
) {
    let limit = if extra.is_some() { MAX_EXTRA_LINE } else { MAX_LINE };
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::select! {
            _ = shutdown.changed() => return,
            n = tokio::time::timeout(idle_timeout, read_line_limited(reader, &mut line, limit)) => match n {
                Ok(n) => n,
                Err(_) => {
                    let text = format!(
                        "{}\n",
                        json!({"error": format!("no request for {} s; closing", idle_timeout.as_secs())})
                    );
                    let _ = tokio::time::timeout(idle_timeout, write.write_all(text.as_bytes())).await;
                    return;
                }
            },
        };
        let answer = match n {
            Ok(0) => return,
            Ok(_) if line.len() > MAX_LINE && !is_extra(extra, &line) => {
                json!({"error": format!("request line longer than {MAX_LINE} bytes")})
            }
            Ok(_) => handle_request_with(manager, extra, &line).await,
            Err(LineError::TooLong) => {
                json!({"error": format!("request line longer than {limit} bytes")})
            }
            Err(LineError::Io) => return,
        };
        let mut text = answer.to_string();
        text.push('\n');
        // A client that does not read its answer must not keep its slot.
        if !matches!(tokio::time::timeout(idle_timeout, write.write_all(text.as_bytes())).await, Ok(Ok(()))) {
            return;
        }
        if matches!(n, Err(LineError::TooLong)) {
            return;
        }
    }
}

enum LineError {
    TooLong,
    Io,
}

/// Reads one `\n`-terminated line (without the newline) of at most `max` bytes.
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, LineError> {
    loop {
        let buf = r.fill_buf().await.map_err(|_| LineError::Io)?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        if out.len() > max + 1 {
            return Err(LineError::TooLong);
        }
        if done {
            let n = out.len();
            out.pop();
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(n);
        }
    }
}

/// A request understood by the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `{"cmd":"devices"}`: the health map.
    Devices,
    /// `{"cmd":"self_test"}`: safe self-test reports.
    SelfTest,
    /// `{"cmd":"test","device":"card"}`: a technician test job on one device.
    Test(crate::devices::DeviceId),
}

/// How long the control socket waits for a technician test job (a two-sided colour card is about
/// 2.2 MB, over three minutes at 115,200 baud); the job goes on and is journaled if it takes
/// longer.
pub const TEST_JOB_WAIT: Duration = Duration::from_secs(300);

/// Parses one request line; the error says what was wrong, for the `{"error": …}` answer.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let request: Value = serde_json::from_slice(line).map_err(|e| {
        format!(
            "malformed request (not JSON: {e}); send one JSON object per line, e.g. {{\"cmd\":\"devices\"}}"
        )
    })?;
    let Some(obj) = request.as_object() else {
        return Err("malformed request: expected a JSON object with a \"cmd\" field".into());
    };
    match obj.get("cmd") {
        Some(Value::String(s)) => match s.as_str() {
            "devices" => Ok(Request::Devices),
            "self_test" => Ok(Request::SelfTest),
            "test" => {
                let known = "payment, card, sticker, rfid";
                match obj.get("device").and_then(Value::as_str) {
                    Some(d) => match crate::devices::DeviceId::parse(d) {
                        Some(id) if id != crate::devices::DeviceId::Gpio => Ok(Request::Test(id)),
                        _ => Err(format!("unknown device {d:?} for test (known: {known})")),
                    },
                    None => Err(format!("cmd \"test\" needs a string field \"device\" ({known})")),
                }
            }
            other => Err(format!("unknown cmd {other:?} (known: devices, self_test, test)")),
        },
        Some(_) => Err("field \"cmd\" must be a string".into()),
        None => Err("missing field \"cmd\" (known: devices, self_test, test)".into()),
    }
}

/// The `cmd` of a request line, if it is a JSON object with a string `cmd`.
fn cmd_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Cmd {
        cmd: String,
    }
    serde_json::from_slice::<Cmd>(line).ok().map(|c| c.cmd)
}

/// Whether a line is a request for one of `extra`'s commands.
fn is_extra(extra: Option<&Extra>, line: &[u8]) -> bool {
    match (extra, cmd_of(line)) {
        (Some(x), Some(cmd)) => x.commands().contains(&cmd.as_str()),
        _ => false,
    }
}

/// Answers one request line, passing `extra`'s commands to it.
pub async fn handle_request_with(manager: &Manager, extra: Option<&Extra>, line: &[u8]) -> Value {
    if let Some(x) = extra {
        if let Some(cmd) = cmd_of(line) {
            if x.commands().contains(&cmd.as_str()) {
                let request: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                return match x.handle(request).await {
                    Ok(v) => v,
                    Err(e) => json!({"error": e}),
                };
            }
            if parse_request(line).is_err() && !matches!(cmd.as_str(), "devices" | "self_test" | "test") {
                return json!({"error": format!(
                    "unknown cmd {cmd:?} (known: devices, self_test, test, {})",
                    x.commands().join(", ")
                )});
            }
        }
    }
    handle_request(manager, line).await
}

/// Answers one request line. Public so the daemon can put the same handling behind other fronts.
pub async fn handle_request(manager: &Manager, line: &[u8]) -> Value {
    match parse_request(line) {
        Ok(Request::Devices) => json!({"devices": manager.health()}),
        Ok(Request::SelfTest) => json!({"self_test": manager.self_test().await}),
        Ok(Request::Test(device)) => {
            let stamp = crate::techtest::Stamp {
                van_id: manager.van_id().to_owned(),
                time_us: crate::clock::now_utc_us(),
            };
            match crate::techtest::run(manager, device, &stamp, TEST_JOB_WAIT).await {
                Ok(report) => json!({"test": report}),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        Err(e) => json!({"error": e}),
    }
}

/// Sends one request to a running daemon and returns its answer (blocking; for vanctl).
/// An answer `{"error": …}` becomes [`ControlError::Remote`].
pub fn request(path: &Path, req: &Value) -> Result<Value, ControlError> {
    let shown = path.display().to_string();
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|source| ControlError::NoDaemon { path: shown.clone(), source })?;
    let io = |source| ControlError::Io { path: shown.clone(), source };
    // Self-tests of four devices can take a while; a hung daemon must not hang vanctl forever.
    stream.set_read_timeout(Some(TEST_JOB_WAIT + Duration::from_secs(30))).map_err(io)?;
    let mut text = req.to_string();
    text.push('\n');
    // A daemon that refuses the client (too many clients) answers and closes before reading:
    // the write then fails, but its answer is still there to read.
    let written = stream.write_all(text.as_bytes());
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    if answer.is_empty() {
        written.map_err(io)?;
        read.map_err(io)?;
    }
    if answer.is_empty() {
        return Err(ControlError::BadAnswer {
            path: shown,
            detail: "connection closed without an answer".into(),
        });
    }
    let value: Value = serde_json::from_str(&answer)
        .map_err(|e| ControlError::BadAnswer { path: shown.clone(), detail: e.to_string() })?;
    if let Some(e) = value.get("error") {
        return Err(ControlError::Remote(e.as_str().map_or_else(|| e.to_string(), str::to_owned)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Named(&'static [&'static str], &'static str);

    impl ControlExtra for Named {
        fn commands(&self) -> &[&'static str] {
            self.0
        }
        fn handle(&self, request: Value) -> ExtraFuture<'_> {
            Box::pin(async move { Ok(json!({"by": self.1, "cmd": request["cmd"]})) })
        }
    }

    #[tokio::test]
    async fn extras_send_each_command_to_the_part_that_lists_it() {
        let x = Extras::new(vec![
            Arc::new(Named(&["import", "bookings"], "office")),
            Arc::new(Named(&["sync_status", "sync_now"], "sync")),
        ]);
        assert_eq!(x.commands(), ["import", "bookings", "sync_status", "sync_now"]);
        assert_eq!(x.handle(json!({"cmd": "sync_now"})).await.unwrap()["by"], "sync");
        assert_eq!(x.handle(json!({"cmd": "bookings"})).await.unwrap()["by"], "office");
        assert!(x.handle(json!({"cmd": "nope"})).await.unwrap_err().contains("unknown cmd"));
    }

    #[test]
    fn requests_parse_and_errors_say_what_is_wrong() {
        assert_eq!(parse_request(br#"{"cmd":"devices"}"#), Ok(Request::Devices));
        assert_eq!(parse_request(br#" {"cmd": "self_test", "extra": 1} "#), Ok(Request::SelfTest));
        assert!(parse_request(b"").unwrap_err().contains("not JSON"));
        assert!(parse_request(b"null").unwrap_err().contains("JSON object"));
        assert!(parse_request(br#"{"cmd":"DEVICES"}"#).unwrap_err().contains("unknown cmd \"DEVICES\""));
        assert_eq!(
            parse_request(br#"{"cmd":"test","device":"card"}"#),
            Ok(Request::Test(crate::devices::DeviceId::Card))
        );
        assert!(parse_request(br#"{"cmd":"test","device":"gpio"}"#).unwrap_err().contains("unknown device"));
        assert!(parse_request(br#"{"cmd":"test"}"#).unwrap_err().contains("needs a string field"));
    }

    #[test]
    #[allow(clippy::unnecessary_cast)] // rlim_t is narrower than u64 on some targets
    fn the_soft_descriptor_limit_is_raised_to_the_hard_limit() {
        let (before, after) = raise_fd_limit().unwrap();
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit on a struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(after, lim.rlim_max as u64);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert!(after >= before);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&line);
        }
    }
}
