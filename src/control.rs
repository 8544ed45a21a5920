//! The daemon's local control socket (`<state_dir>/vand.sock`): JSON lines for vanctl.
//!
//! One request per line, one answer per line:
//! - `{"cmd":"devices"}` → `{"devices":{"payment":{"state":"connected"},…}}`
//! - `{"cmd":"self_test"}` → `{"self_test":[{"device":"payment","ok":true,"lines":[…]},…]}`
//! - `{"cmd":"test","device":"card"}` → `{"test":{"device":"card","job":"job-…","outcome":"done","ok":true,"lines":[…]}}`
//!   (a technician test job: prints a test card or label, encodes a test tag, or asks the terminal
//!   for its diagnosis; see `techtest`)
//! - anything else → `{"error":"…"}` naming what was wrong; the connection stays usable.
//!
//! The socket is created with mode 0660 so only the daemon's user and group (technicians) can use it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::devices::manager::Manager;

/// Longest request line accepted (a request is a few dozen bytes).
pub const MAX_LINE: usize = 64 * 1024;

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

/// Serves the control socket until `shutdown` becomes true (or its sender is dropped). A stale
/// socket file from a crashed daemon is replaced; a live one is an error.
pub async fn serve(
    path: &Path,
    manager: Arc<Manager>,
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
    tracing::info!("control socket listening on {shown}");
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
                    let m = manager.clone();
                    let sd = shutdown.clone();
                    tokio::spawn(async move { connection(stream, m, sd).await });
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

async fn connection(stream: UnixStream, manager: Arc<Manager>, mut shutdown: watch::Receiver<bool>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::select! {
            _ = shutdown.changed() => return,
            n = read_line_limited(&mut reader, &mut line) => n,
        };
        let answer = match n {
            Ok(0) => return,
            Ok(_) => handle_request(&manager, &line).await,
            Err(LineError::TooLong) => {
                json!({"error": format!("request line longer than {MAX_LINE} bytes")})
            }
            Err(LineError::Io) => return,
        };
        let mut text = answer.to_string();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
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

/// Reads one `\n`-terminated line (without the newline) of at most [`MAX_LINE`] bytes.
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
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
        if out.len() > MAX_LINE + 1 {
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

/// How long the control socket waits for a technician test job (a colour card takes about a
/// minute on the wire); the job goes on and is journaled if it takes longer.
pub const TEST_JOB_WAIT: Duration = Duration::from_secs(180);

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
    stream.write_all(text.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&line);
        }
    }
}
