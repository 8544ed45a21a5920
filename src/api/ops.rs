//! Health and metrics for the people and machines that run the van: `GET /healthz` and
//! `GET /metrics` (Prometheus text format 0.0.4), on the API's addresses, outside `/api/v1`,
//! without a session and without personal data (`docs/api.md`, "Health and metrics").
//!
//! The daemon is unhealthy when it cannot keep its record: the journal's writer is closed or
//! appends failed that are not on record yet, or no service desk answers. Faulted or missing
//! devices do not make it unhealthy (restarting vand does not mend a printer); they show in the
//! metrics and the console.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use super::desk::Desk;
use crate::journal::WriterHealth;

/// The device states a device can be in (`DeviceView::state`), one gauge each.
pub const DEVICE_STATES: [&str; 5] = ["absent", "connected", "busy", "fault", "disconnected"];

/// The media type of the Prometheus text exposition format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the daemon knows about itself, for health and metrics (no personal data).
#[derive(Debug, Clone)]
pub struct OpsSnapshot {
    /// The journal's writer.
    pub journal: WriterHealth,
    /// The uplink's status as `GET /api/v1/sync` shows it.
    pub sync: serde_json::Value,
    /// Each device's state name, by device name.
    pub devices: BTreeMap<String, String>,
    /// Transactions by (service kind, state name), counted over the journal's transactions.
    pub services: BTreeMap<(String, String), u64>,
    /// Transactions by (service kind, outcome) for each outcome the journal records once and for
    /// good (`completed`, `cancelled`, `voided`): a completed service voided later counts in both.
    pub outcomes: BTreeMap<(String, String), u64>,
}

/// Why the daemon is unhealthy: the part that fails, and in what way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// `journal` or `desk`.
    pub part: &'static str,
    /// What is wrong, for the technician.
    pub why: String,
}

/// Judges a snapshot (`None`: no service desk): the failing parts, empty when healthy.
pub fn failing(snapshot: Option<&OpsSnapshot>) -> Vec<Failing> {
    let Some(s) = snapshot else {
        return vec![Failing { part: "desk", why: "the service desk is not running".into() }];
    };
    let mut out = Vec::new();
    if !s.journal.open {
        out.push(Failing { part: "journal", why: "the journal's writer is closed".into() });
    } else if s.journal.failed_appends > 0 {
        out.push(Failing {
            part: "journal",
            why: format!(
                "{} journal appends failed and are not on record: {}",
                s.journal.failed_appends,
                s.journal.first_error.as_deref().unwrap_or("unknown error")
            ),
        });
    }
    out
}

/// The routes `/healthz` and `/metrics`.
pub(super) fn router<D: Desk>() -> Router<ApiState<D>> {
    Router::new().route("/healthz", get(healthz::<D>)).route("/metrics", get(metrics::<D>))
}

async fn healthz<D: Desk>(State(state): State<ApiState<D>>) -> Response {
    let snapshot = state.desk.ops().await;
    let failing = failing(snapshot.as_ref());
    if failing.is_empty() {
        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response()
    } else {
        let parts: Vec<_> =
            failing.iter().map(|f| serde_json::json!({"part": f.part, "why": f.why})).collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unhealthy", "failing": parts})),
        )
            .into_response()
    }
}

async fn metrics<D: Desk>(State(state): State<ApiState<D>>) -> Response {
    let snapshot = state.desk.ops().await;
    let body = render(snapshot.as_ref(), &Process::current());
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

/// The process's own facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Package version.
    pub version: &'static str,
    /// When the process started, unix seconds (`None` if `/proc` does not say).
    pub start_time: Option<f64>,
}

impl Process {
    /// This process.
    pub fn current() -> Process {
        Process { version: env!("CARGO_PKG_VERSION"), start_time: process_start_time() }
    }
}

/// The process's start from `/proc/self/stat` (field 22, clock ticks after boot) and the boot
/// time in `/proc/stat` (`btime`), as Prometheus's own process collector computes it.
fn process_start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| btime + ticks / hz as f64)
}

/// Escapes a label value (text format 0.0.4: backslash, double quote, line feed).
fn label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// One metric family being written: `# HELP`, `# TYPE`, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Unix seconds of a UTC time as the sync status writes it (`2026-12-01T10:00:00.000000Z`).
fn unix_seconds(text: &str) -> Option<f64> {
    let t: jiff::Timestamp = text.parse().ok()?;
    Some(t.as_microsecond() as f64 / 1e6)
}

/// The metrics page (text format 0.0.4) for a snapshot (`None`: no service desk, only the
/// process's own metrics and `mtu_healthy 0`).
pub fn render(snapshot: Option<&OpsSnapshot>, process: &Process) -> String {
    let mut o = Out(String::new());
    o.family("mtu_build_info", "gauge", "The daemon's version (always 1).");
    o.sample("mtu_build_info", &[("version", process.version)], 1.0);
    if let Some(start) = process.start_time {
        o.family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        o.sample("process_start_time_seconds", &[], start);
    }
    o.family("mtu_healthy", "gauge", "1 when GET /healthz answers 200, 0 when it answers 503.");
    o.sample("mtu_healthy", &[], if failing(snapshot).is_empty() { 1.0 } else { 0.0 });
    let Some(s) = snapshot else { return o.0 };

    o.family("mtu_journal_writer_open", "gauge", "1 while the journal's writer is open.");
    o.sample("mtu_journal_writer_open", &[], if s.journal.open { 1.0 } else { 0.0 });
    if let Some(head) = s.journal.head_seq {
        o.family("mtu_journal_head_seq", "gauge", "Sequence number of the journal's last record.");
        o.sample("mtu_journal_head_seq", &[], head as f64);
    }
    o.family(
        "mtu_journal_failed_appends",
        "gauge",
        "Journal appends that failed and are not on record yet (full disk, I/O error).",
    );
    o.sample("mtu_journal_failed_appends", &[], s.journal.failed_appends as f64);

    let sync = &s.sync;
    let enabled = sync.get("enabled").and_then(serde_json::Value::as_bool).unwrap_or(false);
    o.family("mtu_sync_enabled", "gauge", "1 when the van syncs its journal with HQ.");
    o.sample("mtu_sync_enabled", &[], if enabled { 1.0 } else { 0.0 });
    if enabled {
        let acked = sync.get("acked_seq").and_then(serde_json::Value::as_u64);
        let head = sync.get("head_seq").and_then(serde_json::Value::as_u64);
        o.family("mtu_sync_acked_seq", "gauge", "The last journal record HQ acknowledged (0: none yet).");
        o.sample("mtu_sync_acked_seq", &[], acked.unwrap_or(0) as f64);
        let pending = sync
            .get("pending")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| head.map(|h| h.saturating_sub(acked.unwrap_or(0))));
        if let Some(p) = pending {
            o.family("mtu_sync_unsynced_records", "gauge", "Journal records HQ has not acknowledged yet.");
            o.sample("mtu_sync_unsynced_records", &[], p as f64);
        }
        if let Some(t) = sync.get("last_success").and_then(serde_json::Value::as_str).and_then(unix_seconds) {
            o.family(
                "mtu_sync_last_success_timestamp_seconds",
                "gauge",
                "When the last sync session with HQ succeeded, unix seconds.",
            );
            o.sample("mtu_sync_last_success_timestamp_seconds", &[], t);
        }
        if let Some(f) = sync.get("failures").and_then(serde_json::Value::as_u64) {
            o.family("mtu_sync_failures", "gauge", "Sync attempts failed in a row since the last success.");
            o.sample("mtu_sync_failures", &[], f as f64);
        }
    }

    o.family(
        "mtu_device_state",
        "gauge",
        "1 for each device's current state (absent, connected, busy, fault, disconnected), 0 for the others.",
    );
    for (device, state) in &s.devices {
        for st in DEVICE_STATES {
            o.sample(
                "mtu_device_state",
                &[("device", device), ("state", st)],
                if st == state { 1.0 } else { 0.0 },
            );
        }
    }

    o.family(
        "mtu_service_outcomes_total",
        "counter",
        "Services that reached an outcome (completed, cancelled, voided), by service kind; a void counts after the completion.",
    );
    for ((service, outcome), n) in &s.outcomes {
        o.sample("mtu_service_outcomes_total", &[("service", service), ("outcome", outcome)], *n as f64);
    }

    o.family(
        "mtu_services",
        "gauge",
        "Transactions in the journal by service kind and current state (completed, cancelled, voided, …).",
    );
    for ((service, state), n) in &s.services {
        o.sample("mtu_services", &[("service", service), ("state", state)], *n as f64);
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> OpsSnapshot {
        OpsSnapshot {
            journal: WriterHealth { open: true, head_seq: Some(42), failed_appends: 0, first_error: None },
            sync: serde_json::json!({
                "enabled": true, "head_seq": 42, "acked_seq": 40, "pending": 2,
                "last_success": "2026-12-01T10:00:00.500000Z", "failures": 0
            }),
            devices: [("card".to_owned(), "fault".to_owned())].into(),
            services: [(("inspection".to_owned(), "completed".to_owned()), 3)].into(),
            outcomes: [(("inspection".to_owned(), "completed".to_owned()), 4)].into(),
        }
    }

    #[test]
    fn healthy_unless_the_journal_or_the_desk_fails() {
        let mut s = snapshot();
        // A faulted device is not a daemon failure.
        assert!(failing(Some(&s)).is_empty());
        s.journal.failed_appends = 2;
        s.journal.first_error = Some("database or disk is full".into());
        let f = failing(Some(&s));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].part, "journal");
        assert!(f[0].why.contains("2 journal appends failed") && f[0].why.contains("disk is full"), "{f:?}");
        s.journal = WriterHealth { open: false, head_seq: None, failed_appends: 0, first_error: None };
        assert_eq!(failing(Some(&s))[0].why, "the journal's writer is closed");
        assert_eq!(failing(None)[0].part, "desk");
    }

    #[test]
    fn renders_families_and_samples() {
        let text = render(Some(&snapshot()), &Process { version: "1.2.3", start_time: Some(1.5) });
        for line in [
            "# TYPE mtu_journal_head_seq gauge",
            "mtu_journal_head_seq 42",
            "mtu_sync_unsynced_records 2",
            "mtu_sync_acked_seq 40",
            "mtu_sync_last_success_timestamp_seconds 1796119200.5",
            "mtu_device_state{device=\"card\",state=\"fault\"} 1",
            "mtu_device_state{device=\"card\",state=\"connected\"} 0",
            "mtu_services{service=\"inspection\",state=\"completed\"} 3",
            "# TYPE mtu_service_outcomes_total counter",
            "mtu_service_outcomes_total{service=\"inspection\",outcome=\"completed\"} 4",
            "mtu_build_info{version=\"1.2.3\"} 1",
            "process_start_time_seconds 1.5",
            "mtu_healthy 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut o = Out(String::new());
        o.sample("m", &[("l", "x\"y")], 0.25);
        assert_eq!(o.0, "m{l=\"x\\\"y\"} 0.25\n");
    }

    #[test]
    fn reads_its_own_start_time() {
        let t = process_start_time().expect("/proc gives the start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(t <= now + 1.0 && t > now - 86_400.0 * 365.0, "{t} vs {now}");
    }

    #[test]
    fn docs_list_every_metric_with_its_type() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
        let text = render(Some(&snapshot()), &Process { version: "1", start_time: Some(1.0) });
        let families: Vec<_> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        assert!(families.len() >= 12, "{families:?}");
        for f in families {
            let (name, kind) = f.split_once(' ').unwrap();
            assert!(doc.contains(&format!("| `{name}` | {kind} |")), "docs/api.md lacks {name} ({kind})");
        }
    }
}
