//! An independent check of the signed bytes of docs/sync.md: a Python script written from the
//! document rebuilds a real request's and a real acknowledgement's signed bytes and verifies both
//! signatures with the `cryptography` package (not our code). Python comes from `MTU_TEST_PYTHON`
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
    let python = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
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
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 5");
}
