//! An independent check of the signed bytes of docs/sync.md: Python scripts written from the
//! document rebuild a real request's, acknowledgement's, served bundle's and dossier answer's
//! signed bytes and verify the signatures with the `cryptography` package (not our code). Python comes from `MTU_TEST_PYTHON`
//! (set by `tools/test`, which installs `cryptography` from tools/test-requirements.txt), else
//! `python3`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Van, auth, batch, hq, http, nonce, now_text, serve};

const SCRIPT: &str = r#"
import hashlib, json, struct, sys, datetime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
c = json.load(sys.stdin)
def lp(b, n=1):
    return len(b).to_bytes(n, "big") + b
req = (b"mtu.sync.request.v1\x00" + lp(c["van"].encode()) + lp(c["method"].encode())
       + lp(c["path"].encode(), 2) + lp(c["time"].encode()) + bytes.fromhex(c["nonce"])
       + hashlib.sha256(bytes.fromhex(c["body"])).digest())
Ed25519PublicKey.from_public_bytes(bytes.fromhex(c["van_key"])).verify(bytes.fromhex(c["signature"]), req)
a = c["answer"]["ack"]
t = datetime.datetime.strptime(a["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
us = (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds
ack = (b"mtu.sync.ack.v1\x00" + lp(a["van"].encode()) + struct.pack(">Q", a["seq"])
       + bytes.fromhex(a["head_hash"]) + struct.pack(">q", us))
Ed25519PublicKey.from_public_bytes(bytes.fromhex(c["hq_key"])).verify(bytes.fromhex(c["answer"]["sig"]), ack)
print("ok", a["seq"])
"#;

#[test]
fn python_cryptography_verifies_a_real_request_and_acknowledgement() {
    let mut van = Van::new("MTU-CAI-0001", 3);
    van.append_n(4);
    let hq = hq();
    van_hq::ingest::enroll(&hq.store, &van.id, &van.public_hex(), common::NOW).unwrap();
    let (addr, hq_pub, _dir) = serve(hq);
    let body = batch(&van.records);
    let (time, n) = (now_text(), nonce());
    let mut h = auth(&van, "POST", "/v1/records", &time, n, &body);
    let signature = h.iter().find(|(k, _)| k.eq_ignore_ascii_case("X-MTU-Signature")).unwrap().1.clone();
    h.push(("Content-Encoding", "zstd".into()));
    let a = http(addr, "POST", "/v1/records", &h, &body);
    assert_eq!(a.status, 200, "{}", a.body);
    let input = serde_json::json!({
        "van": van.id, "method": "POST", "path": "/v1/records", "time": time, "nonce": hex::encode(n),
        "body": hex::encode(&body), "van_key": van.public_hex(), "signature": signature,
        "hq_key": hex::encode(hq_pub.as_bytes()), "answer": a.body,
    });
    assert_eq!(run_python(SCRIPT, &input), "ok 5");
}

/// Runs `script` with `input` as JSON on stdin; returns its trimmed stdout.
fn run_python(script: &str, input: &serde_json::Value) -> String {
    let python = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} not runnable ({e}): run tools/test, which installs Python and cryptography")
        });
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'cryptography'"),
        "Python lacks the cryptography package: run tools/test, which installs it (tools/test-requirements.txt)"
    );
    assert!(out.status.success(), "Python's check failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const DOWN_SCRIPT: &str = r#"
import base64, hashlib, json, struct, sys, datetime, urllib.parse
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
c = json.load(sys.stdin)
hq = Ed25519PublicKey.from_public_bytes(bytes.fromhex(c["hq_key"]))
van = c["van"].encode()
def lp(b, n=1):
    return len(b).to_bytes(n, "big") + b
for e in c["bundles"]["bundles"]:
    body = base64.b64decode(e["bundle"], validate=True)
    assert json.loads(body)["van_id"] == c["van"], "fleet bundle not addressed to the van"
    msg = (b"mtu.sync.bundle.v1\x00" + lp(van) + struct.pack(">Q", e["id"]) + lp(e["kind"].encode())
           + struct.pack(">Q", e["version"]) + hashlib.sha256(body).digest())
    hq.verify(bytes.fromhex(e["sig"]), msg)
d = c["dossier"]
assert d["query"] == urllib.parse.urlencode([tuple(p) for p in c["query_params"]]), (d["query"], urllib.parse.urlencode([tuple(p) for p in c["query_params"]]))
t = datetime.datetime.strptime(d["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
us = (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds
dossier = base64.b64decode(d["dossier"], validate=True)
msg = (b"mtu.sync.dossier.v1\x00" + lp(van) + lp(d["query"].encode(), 2) + struct.pack(">q", us)
       + hashlib.sha256(dossier).digest())
hq.verify(bytes.fromhex(d["sig"]), msg)
print("ok", len(c["bundles"]["bundles"]), json.loads(dossier)["citizen"]["name_ar"])
"#;

#[test]
fn python_cryptography_verifies_real_down_sync_answers() {
    let van = Van::new("MTU-CAI-0001", 3);
    let hq = hq();
    van_hq::ingest::enroll(&hq.store, &van.id, &van.public_hex(), common::NOW).unwrap();
    let fleet = br#"{"bundle":"blocklist","version":2,"van_id":"*","issued_at":"2026-12-01T08:00:00Z","blocklist":{"vehicles":[]}}"#;
    van_hq::downsync::publish(&hq.store, fleet, None, common::NOW).unwrap();
    let own = br#"{"bundle":"roster","version":3,"van_id":"MTU-CAI-0001","issued_at":"2026-12-01T08:00:00Z","officers":[]}"#;
    van_hq::downsync::publish(&hq.store, own, Some(&van.id), common::NOW).unwrap();
    let line = r#"{"national_id":"29001011234567","dossier":{"citizen":{"national_id":"29001011234567","name_ar":"منى"}}}"#;
    van_hq::downsync::import_dossiers(&hq.store, line.as_bytes(), common::NOW).unwrap();
    let (addr, hq_pub, _dir) = serve(hq);
    let h = auth(&van, "GET", "/v1/bundles", &now_text(), nonce(), b"");
    let bundles = http(addr, "GET", "/v1/bundles?after=0", &h, b"");
    assert_eq!(bundles.status, 200, "{}", bundles.body);
    let params = [("national_id", "29001011234567"), ("plate_letters", "أ ب ج"), ("plate_digits", "123")];
    let q = mtu_sync::bundle::DossierQuery {
        national_id: params[0].1.into(),
        plate: Some((params[1].1.into(), params[2].1.into())),
    }
    .to_query();
    let h = auth(&van, "GET", "/v1/dossier", &now_text(), nonce(), b"");
    let dossier = http(addr, "GET", &format!("/v1/dossier?{q}"), &h, b"");
    assert_eq!(dossier.status, 200, "{}", dossier.body);
    let input = serde_json::json!({
        "van": van.id, "hq_key": hex::encode(hq_pub.as_bytes()), "bundles": bundles.body,
        "dossier": dossier.body, "query_params": params,
    });
    assert_eq!(run_python(DOWN_SCRIPT, &input), "ok 2 منى");
}
