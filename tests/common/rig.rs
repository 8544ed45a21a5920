//! A whole van on disk for whole-program tests: a `van-sim` process (devices and their ledger) and
//! `vand` started, killed and restarted at will, driven through the local HTTP API; and the check
//! of the journal against the simulators' ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtu::journal::JournalReader;
use mtu::sim::ledger::Ledger;
use serde_json::{Value, json};

/// One van on disk: a van-sim process (devices and ledger) and vand restarted at will.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    sim: Child,
    vand: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Rig {
    /// A van whose simulated devices answer at once.
    pub fn new() -> Rig {
        Rig::with_timing_scale("0")
    }

    /// A van whose simulated devices take `scale` × their realistic time (`[timing] scale` of a
    /// van-sim scenario), so progress can be watched.
    pub fn with_timing_scale(scale: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let root = env!("CARGO_MANIFEST_DIR");
        let port = free_port();
        let text = std::fs::read_to_string(Path::new(root).join("config/sim.toml"))
            .unwrap()
            .replace("\"var/", &format!("\"{d}/var/"))
            .replace("state_dir = \"var\"", &format!("state_dir = \"{d}/var\""))
            .replace("devices = true", "devices = false")
            .replace("listen = [\"127.0.0.1:8080\"]", &format!("listen = [\"127.0.0.1:{port}\"]"))
            + "\n[daemon]\nshutdown_budget_ms = 3000\n";
        assert!(text.contains(&format!("127.0.0.1:{port}")), "config/sim.toml names the API address");
        let config = dir.path().join("vand.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::create_dir_all(dir.path().join("var/dev")).unwrap();
        let scenario = dir.path().join("fast.toml");
        std::fs::write(
            &scenario,
            format!("[timing]\nscale = {scale}\nreplug_after_s = 0\n[payment]\n[card]\n[sticker]\n[rfid]\n"),
        )
        .unwrap();
        let sim = Command::new(env!("CARGO_BIN_EXE_van-sim"))
            .args(["--scenario", scenario.to_str().unwrap()])
            .args(["--dir", &format!("{d}/var/dev"), "--control", &format!("{d}/var/sim.sock")])
            .args(["--ledger", &format!("{d}/var/sim-ledger.jsonl")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !dir.path().join("var/sim.sock").exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "van-sim did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Rig { dir, config, port, sim, vand: None }
    }

    /// Starts vand (killing itself after `kill_after` transaction records, if given) and waits
    /// until its API answers.
    pub fn start(&mut self, kill_after: Option<u64>) {
        self.start_env(kill_after.map(|k| ("MTU_TEST_KILL_AFTER", k)));
    }

    pub fn start_env(&mut self, kill: Option<(&str, u64)>) {
        let vars: Vec<(String, String)> =
            kill.map(|(v, k)| (v.to_owned(), k.to_string())).into_iter().collect();
        self.start_with_env(&vars);
    }

    /// Starts vand with these environment variables and waits until its API answers.
    pub fn start_with_env(&mut self, vars: &[(String, String)]) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vand"));
        cmd.args(["--config", self.config.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::piped());
        for (var, value) in vars {
            cmd.env(var, value);
        }
        let mut vand = cmd.spawn().unwrap();
        let lines = BufReader::new(vand.stderr.take().unwrap()).lines();
        std::thread::spawn(move || lines.for_each(drop));
        self.vand = Some(vand);
        self.wait_up();
    }

    /// Starts vand with its log (stderr) going to `log`, without `RUST_LOG` (the configured
    /// level rules), and waits until its API answers.
    pub fn start_logged(&mut self, log: &Path) {
        let file = std::fs::File::create(log).unwrap();
        let vand = Command::new(env!("CARGO_BIN_EXE_vand"))
            .args(["--config", self.config.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        self.vand = Some(vand);
        self.wait_up();
    }

    /// vand's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.vand.as_ref().map(Child::id)
    }

    /// Whether vand is still running.
    pub fn running(&mut self) -> bool {
        self.vand.as_mut().is_some_and(|v| v.try_wait().unwrap().is_none())
    }

    fn wait_up(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) =
                self.http("POST", "/session", None, Some(&json!({"officer_id": "1001", "pin": "1234"})))
            {
                break;
            }
            if let Some(status) = self.vand.as_mut().unwrap().try_wait().unwrap() {
                panic!("vand exited at start: {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "vand API not up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for vand to die (it kills itself at its crash point) or kills it.
    pub fn wait_dead(&mut self, within: Duration) -> bool {
        let mut v = self.vand.take().unwrap();
        let started = Instant::now();
        while started.elapsed() < within {
            if v.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = v.kill();
        let _ = v.wait();
        false
    }

    /// Waits for vand to exit by itself within `within`: its exit status, or `None` (then it is
    /// killed).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut v = self.vand.take()?;
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = v.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = v.kill();
        let _ = v.wait();
        None
    }

    /// vand's process id, while it runs.
    pub fn vand_pid(&self) -> Option<u32> {
        self.vand.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut v) = self.vand.take() {
            let _ = v.kill();
            let _ = v.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut v) = self.vand.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(v.id() as i32, libc::SIGTERM) };
            let _ = v.wait();
        }
    }

    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(
            s,
            "{method} /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp);
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// A call whose answer is not JSON (a PDF): status and body bytes.
    pub fn raw(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return (0, Vec::new()) };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = write!(
            s,
            "GET /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
        let head = String::from_utf8_lossy(&resp[..split]);
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, resp[split..].to_vec())
    }

    pub fn login(&self, id: &str, pin: &str) -> String {
        let (code, v) =
            self.http("POST", "/session", None, Some(&json!({"officer_id": id, "pin": pin}))).unwrap();
        assert_eq!(code, 200, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// A call; `(0, null)` when vand is gone (killed mid-request).
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        self.http(method, path, Some(token), body).unwrap_or((0, Value::Null))
    }

    pub fn ensure_shift(&self, t: &str) {
        let (_, s) = self.call("GET", "/shift", t, None);
        if s.is_null() {
            let (code, v) = self.call(
                "POST",
                "/shift/open",
                t,
                Some(&json!({"stock": {"cards": 100, "labels": 100, "tags": 100}})),
            );
            assert!((200..300).contains(&code), "{code} {v}");
        }
    }

    /// Opens a service for today's sample booking `nn` (`B-YYYYMMDD-nn`); `None` if vand died
    /// while opening it.
    pub fn try_open_booking(&self, t: &str, nn: u32) -> Option<String> {
        let (_, list) = self.call("GET", "/bookings", t, None);
        let b = list
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["booking"]["id"].as_str().unwrap().ends_with(&format!("-{nn:02}")))
            .unwrap_or_else(|| panic!("no booking {nn}: {list}"))
            .clone();
        let bk = &b["booking"];
        let mut req = json!({"service": bk["service"], "booking_id": bk["id"], "citizen": bk["citizen"]});
        if !bk["dossier"]["vehicle"].is_null() {
            req["vehicle"] = bk["dossier"]["vehicle"].clone();
        }
        let (code, v) = self.call("POST", "/services", t, Some(&req));
        if code == 0 {
            return None;
        }
        assert_eq!(code, 201, "{v}");
        Some(v["txn"].as_str().unwrap().to_owned())
    }

    /// The newest transaction opened for booking `nn`.
    pub fn newest_txn_for(&self, t: &str, nn: u32) -> Option<String> {
        let (_, list) = self.call("GET", "/services?state=today", t, None);
        list.as_array()?
            .iter()
            .find(|v| v["booking_id"].as_str().is_some_and(|b| b.ends_with(&format!("-{nn:02}"))))
            .and_then(|v| v["txn"].as_str().map(str::to_owned))
    }

    /// Drives a transaction to a final state (proceeding after each failure or restart).
    pub fn finish(&self, t: &str, txn: &str) -> Value {
        let started = Instant::now();
        loop {
            let (_, v) = self.call("GET", &format!("/services/{txn}"), t, None);
            let state = v["state"].as_str().unwrap_or_default().to_owned();
            if ["completed", "voided", "reversed", "cancelled", "held"].contains(&state.as_str()) {
                return v;
            }
            let next: Vec<&str> = v["next"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if next.contains(&"proceed") {
                self.call("POST", &format!("/services/{txn}/proceed"), t, None);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{txn} stuck in {state}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn var(&self) -> PathBuf {
        self.dir.path().join("var")
    }
}

/// One POST with a JSON body to a vand on `port`, ignoring the answer (vand may die meanwhile).
pub fn post_once(port: u16, path: &str, token: &str, body: &Value) {
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
        let body = body.to_string();
        let _ = write!(
            s,
            "POST /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.read_to_end(&mut Vec::new());
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kill();
        let _ = self.sim.kill();
        let _ = self.sim.wait();
    }
}

/// What the journal says, per transaction, against the ledger of what happened.
pub fn check_against_ledger(rig: &Rig) {
    let reader = JournalReader::open(&rig.var().join("journal.db")).unwrap();
    reader.verify_all(None).expect("the journal verifies");
    let mut approved: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut reversed: BTreeSet<String> = BTreeSet::new();
    let mut completed: BTreeSet<String> = BTreeSet::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let (mut cards_used, mut tags_used, mut labels_used) = (0u32, 0u32, 0u32);
    let (mut cards_issued, mut tags_issued, mut labels_issued) = (0u32, 0u32, 0u32);
    let mut tids: BTreeSet<String> = BTreeSet::new();
    reader
        .for_each(1, u64::MAX, |r| {
            let p: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
            let txn = p["txn"].as_str().unwrap_or_default().to_owned();
            match r.kind.as_str() {
                "payment.result" | "payment.recovery" if p["outcome"] == "approved" => {
                    approved
                        .entry(txn)
                        .or_default()
                        .push(p["approval"]["receipt_no"].as_u64().unwrap() as u32);
                }
                "payment.reversal" if p["outcome"] == "approved" => {
                    reversed.insert(txn);
                }
                "payment.hold" => {
                    held.insert(txn);
                }
                "service.complete" => {
                    completed.insert(txn);
                }
                "card.result" | "tag.result" | "label.result" => {
                    let used = p["stock"] != "none";
                    let issued = p["stock"] == "issued";
                    let (u, i) = match r.kind.as_str() {
                        "card.result" => (&mut cards_used, &mut cards_issued),
                        "tag.result" => (&mut tags_used, &mut tags_issued),
                        _ => (&mut labels_used, &mut labels_issued),
                    };
                    *u += u32::from(used);
                    *i += u32::from(issued);
                    if let Some(tid) = p["tid"].as_str() {
                        tids.insert(tid.to_uppercase());
                    }
                }
                _ => {}
            }
            Ok(true)
        })
        .unwrap();
    let ledger = Ledger::read(&rig.var().join("sim-ledger.jsonl")).unwrap();
    let mut charges = BTreeMap::new();
    let mut reversals = 0;
    let (mut printed, mut written_tids, mut labels) = (0u32, BTreeSet::new(), 0u32);
    for e in &ledger {
        let v = serde_json::to_value(e).unwrap();
        match (v["device"].as_str().unwrap_or_default(), v["event"].as_str().unwrap_or_default()) {
            ("payment", "charge") => {
                charges.insert(v["receipt_no"].as_u64().unwrap() as u32, v["amount"].as_u64().unwrap());
            }
            ("payment", "reversal") => reversals += 1,
            ("card", "card_printed" | "card_spoiled") => printed += 1,
            ("rfid", "tag_written") if v["locked"] == true => {
                written_tids.insert(v["tid"].as_str().unwrap().to_uppercase());
            }
            ("sticker", "label_printed") => labels += 1,
            _ => {}
        }
    }
    // No payment charged twice: one approval per transaction, and each a distinct terminal charge.
    for (txn, receipts) in &approved {
        assert_eq!(receipts.len(), 1, "{txn} approved more than once: {receipts:?}");
        assert!(
            charges.contains_key(&receipts[0]),
            "{txn}: receipt {} is not a charge at the terminal",
            receipts[0]
        );
    }
    // Every charge at the terminal is in the journal (approved or held), and none is left
    // without a document or a reversal.
    let journal_receipts: BTreeSet<u32> = approved.values().flatten().copied().collect();
    let unexplained: Vec<_> = charges.keys().filter(|r| !journal_receipts.contains(r)).collect();
    assert!(
        unexplained.len() <= held.len(),
        "terminal charges not in the journal: {unexplained:?} (held: {held:?})"
    );
    for txn in approved.keys() {
        assert!(
            completed.contains(txn) || reversed.contains(txn),
            "{txn} was charged but has neither a completed document nor a reversal"
        );
    }
    assert_eq!(reversals, reversed.len(), "reversals at the terminal vs the journal");
    // Every card, tag and label that physically came out is accounted for (issued or spoiled);
    // none is counted issued that did not come out.
    assert!(printed <= cards_used, "cards out {printed} > journaled {cards_used}");
    assert!(cards_issued <= printed, "cards issued {cards_issued} > printed {printed}");
    assert!(labels <= labels_used, "labels out {labels} > journaled {labels_used}");
    assert!(labels_issued <= labels, "labels issued {labels_issued} > printed {labels}");
    assert!(
        written_tids.len() as u32 <= tags_used,
        "tags written {} > journaled {tags_used}",
        written_tids.len()
    );
    assert!(tags_issued <= written_tids.len() as u32);
    for tid in &tids {
        assert!(written_tids.contains(tid), "journal names tag {tid} the encoder never locked");
    }
}
