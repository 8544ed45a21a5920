//! `vanctl sync now|status`: the uplink to HQ, asked over vand's control socket.

use serde_json::{Value, json};

use crate::config::Config;
use crate::control;

/// `vanctl sync …`.
#[derive(Debug, clap::Subcommand)]
pub enum SyncCmd {
    /// Tries now (skipping any backoff) and waits until the van has caught up or the try failed.
    Now {
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Records not yet acknowledged by HQ, the last acknowledgement, the last error, the next try.
    Status {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `vanctl sync` command; exit code 0, or 1 when the uplink is not running or its last
/// try failed.
pub fn run(cmd: &SyncCmd, config: &Config) -> anyhow::Result<u8> {
    let socket = control::socket_path(&config.paths.state_dir);
    let (req, json_out) = match cmd {
        SyncCmd::Now { wait, json } => (json!({"cmd": "sync_now", "wait_s": wait}), *json),
        SyncCmd::Status { json } => (json!({"cmd": "sync_status"}), *json),
    };
    let answer = control::request(&socket, &req)?;
    let s = answer.get("sync").cloned().unwrap_or(Value::Null);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    let failed = s.get("enabled") == Some(&Value::Bool(false)) || !s["last_error"].is_null();
    Ok(u8::from(failed))
}

/// The status as lines for a person.
pub fn render(s: &Value) -> String {
    if s.get("enabled") == Some(&Value::Bool(false)) {
        return format!("sync: off ({})\n", s["why"].as_str().unwrap_or("disabled"));
    }
    let text = |k: &str| match &s[k] {
        Value::Null => "-".to_owned(),
        Value::String(t) => t.clone(),
        v => v.to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!("HQ:            {}\n", text("url")));
    out.push_str(&format!("pending:       {} (journal head {})\n", text("pending"), text("head_seq")));
    out.push_str(&format!("last ack:      record {} at {}\n", text("acked_seq"), text("acked_at")));
    out.push_str(&format!("last success:  {}\n", text("last_success")));
    out.push_str(&format!("last error:    {}\n", text("last_error")));
    out.push_str(&format!("failures:      {}\n", text("failures")));
    out.push_str(&format!("next try:      {}\n", text("next_try")));
    out
}
