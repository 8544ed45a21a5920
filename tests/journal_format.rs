//! The journal's format rules, strict signatures and kinds catalogue, from both sides: the van's
//! writer refuses a record that breaks a rule, and `vanctl journal verify` and the independent
//! Python verifier (tools/verify_journal.py) refuse a journal that contains one. The catalogue in
//! the code and the table in docs/journal-format.md are compared.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mtu::journal::kinds::{self, CATALOGUE, HealthState, JobOutcome, PreviousStop, RunMode, StopReason};
use mtu::journal::record::Record;
use mtu::journal::rules::RuleError;
use mtu::journal::{
    ChainVerifier, Journal, JournalError, JournalOptions, JournalReader, VerifyError, export,
};
use mtu::keys::{VanKey, key_id_of};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

const VAN: &str = "MTU-T-1";

fn opts() -> JournalOptions {
    JournalOptions { van_id: VAN.into(), checkpoint_every: 50, max_pages: None }
}

fn seed_key() -> VanKey {
    VanKey::from_seed(&[42u8; 32])
}

/// A van state folder with a configuration, its key file and a journal of genesis + 2 records.
struct Van {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Van {
    fn new() -> Van {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let state = root.join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            root.join("vand.toml"),
            format!(
                "mode = \"simulation\"\n[van]\nid = \"{VAN}\"\n[paths]\nstate_dir = \"{}\"\n[log]\nformat = \"text\"\n",
                state.display()
            ),
        )
        .unwrap();
        seed_key().save_new(&state.join("van.key")).unwrap();
        let (j, _) = Journal::open(&state.join("journal.db"), seed_key(), &opts()).unwrap();
        j.append("test.append", &serde_json::json!({"n": 1})).unwrap();
        j.append("test.append", &serde_json::json!({"n": 2})).unwrap();
        j.close();
        Van { _dir: dir, root }
    }

    fn db(&self) -> PathBuf {
        self.root.join("state/journal.db")
    }

    fn vanctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vanctl"))
            .arg("--config")
            .arg(self.root.join("vand.toml"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Appends a record behind the writer's back, chained and signed by `key` with the given
    /// key id and signature (None: a real signature), as a forger or a buggy writer would.
    fn insert_raw(&self, kind: &str, payload: &[u8], key: &VanKey, forged: Option<([u8; 8], [u8; 64])>) {
        let conn = Connection::open(self.db()).unwrap();
        let (seq, prev): (i64, Vec<u8>) = conn
            .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let rec = raw_record(seq as u64 + 1, prev.try_into().unwrap(), kind, payload, key, forged);
        conn.execute(
            "INSERT INTO records (seq, van_id, key_id, time_us, boot_id, boot_us, kind, payload, prev_hash, hash, sig)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![
                rec.seq as i64,
                rec.van_id,
                &rec.key_id[..],
                rec.time_us,
                &rec.boot_id[..],
                rec.boot_us as i64,
                rec.kind,
                rec.payload,
                &rec.prev_hash[..],
                &rec.hash[..],
                &rec.sig[..],
            ],
        )
        .unwrap();
    }

    /// The export lines, written record by record (stops before a record that cannot be exported).
    fn export_file(&self) -> PathBuf {
        let mut out = Vec::new();
        JournalReader::open(&self.db())
            .unwrap()
            .for_each(1, u64::MAX, |r| Ok(export::write_line(&mut out, &r).is_ok()))
            .unwrap();
        let path = self.root.join("export.jsonl");
        std::fs::write(&path, out).unwrap();
        path
    }
}

fn raw_record(
    seq: u64,
    prev_hash: [u8; 32],
    kind: &str,
    payload: &[u8],
    key: &VanKey,
    forged: Option<([u8; 8], [u8; 64])>,
) -> Record {
    let mut rec = Record {
        seq,
        van_id: VAN.into(),
        key_id: forged.map_or(key.key_id(), |f| f.0),
        time_us: 1_795_464_000_000_000 + seq as i64,
        boot_id: [7; 16],
        boot_us: seq,
        kind: kind.into(),
        payload: payload.to_vec(),
        prev_hash,
        hash: [0; 32],
        sig: [0; 64],
    };
    let body = rec.signed_bytes();
    rec.hash = Sha256::digest(&body).into();
    rec.sig = forged.map_or_else(|| key.sign(&body).to_bytes(), |f| f.1);
    rec
}

fn python() -> String {
    let py = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import the `cryptography` package that tools/verify_journal.py needs: run tools/test \
         (it installs tools/test-requirements.txt into target/test-venv and sets MTU_TEST_PYTHON)"
    );
    py
}

fn python_verify(export: &Path, pubkey: Option<&str>) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_journal.py");
    let mut c = Command::new(python());
    c.arg(script).arg(export);
    if let Some(k) = pubkey {
        c.args(["--pubkey", k]);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The encoding of the identity point (0, 1): a public key of order 1.
fn identity() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
}

/// R = identity, S = 0: under a small-order public key this "verifies" for every message with a
/// cofactorless check that does not reject small-order points ([0]B = R + [k]A = identity).
fn universal_signature() -> [u8; 64] {
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(&identity());
    s
}

#[test]
fn forged_rotation_to_a_small_order_key_is_refused_by_both_verifiers() {
    let van = Van::new();
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity()).unwrap();
    let weak_id = key_id_of(&weak);
    // Record 4: key.rotate signed by the real key, naming the identity point, with a fake proof.
    let rotate = serde_json::json!({
        "new_key_id": hex::encode(weak_id),
        "new_public_key": hex::encode(identity()),
        "old_key_id": hex::encode(seed_key().key_id()),
        "proof": hex::encode(universal_signature()),
    });
    van.insert_raw(kinds::KEY_ROTATE, rotate.to_string().as_bytes(), &seed_key(), None);
    // Records 5 and 6: anything at all, "signed" by the weak key with the same signature.
    for text in [r#"{"paid_piastres":0}"#, r#"{"licence":"forged"}"#] {
        van.insert_raw("service.issue", text.as_bytes(), &seed_key(), Some((weak_id, universal_signature())));
    }

    let out = van.vanctl(&["journal", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAILED at record 4"), "{}", text(&out));
    assert!(text(&out).contains("small-order"), "{}", text(&out));

    let export = van.export_file();
    let pubkey = hex::encode(seed_key().verifying_key().as_bytes());
    let out = python_verify(&export, Some(&pubkey));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("FAILED at record 4: rotation's new public key is a small-order"),
        "{}",
        text(&out)
    );

    // The enrolled key itself is held to the same rule.
    let out = van.vanctl(&["journal", "verify", "--pubkey", &hex::encode(identity())]);
    assert!(!out.status.success());
    assert!(text(&out).contains("small-order"), "{}", text(&out));
    let out = python_verify(&export, Some(&hex::encode(identity())));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn non_canonical_s_is_refused_by_both_verifiers() {
    let van = Van::new();
    // A real signature with S replaced by S + L: the same value mod L, a second encoding.
    let conn = Connection::open(van.db()).unwrap();
    let (seq, prev): (i64, Vec<u8>) = conn
        .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    drop(conn);
    let honest =
        raw_record(seq as u64 + 1, prev.try_into().unwrap(), "test.append", b"{}", &seed_key(), None);
    let mut sig = honest.sig;
    let l: [u8; 32] = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
        .unwrap()
        .try_into()
        .unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    van.insert_raw("test.append", b"{}", &seed_key(), Some((seed_key().key_id(), sig)));

    let out = van.vanctl(&["journal", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAILED at record 4"), "{}", text(&out));
    let out = python_verify(&van.export_file(), None);
    assert!(
        text(&out).contains("FAILED at record 4: signature: S is not below the group order"),
        "{}",
        text(&out)
    );
}

/// Every format rule: the writer refuses the record, and a journal holding one (inserted behind the
/// writer's back, correctly chained and signed) fails `vanctl journal verify` and the Python
/// verifier at that record.
#[test]
fn each_format_rule_is_enforced_by_the_writer_and_both_verifiers() {
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(262_144));
    let genesis = serde_json::json!({
        "format": 1,
        "public_key": hex::encode(seed_key().verifying_key().as_bytes()),
        "van_id": VAN,
    })
    .to_string();
    let long_kind = "k".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        ("Bad.Kind", "{}".into(), "kind \"Bad.Kind\" must be 1–64 bytes"),
        (&long_kind, "{}".into(), "must be 1–64 bytes"),
        ("test.append", big, "payload is 262152 bytes; the limit is 262144"),
        ("test.append", "{\"a\":".into(), "not valid UTF-8 JSON"),
        (kinds::GENESIS, genesis, "\"journal.genesis\" is allowed only as record 1"),
        (
            kinds::DAEMON_STOP,
            r#"{"reason":"SIGKILL","interrupted_jobs":0,"stop_ms":1}"#.into(),
            "daemon.stop payload does not match the catalogue",
        ),
        (kinds::POWER_FAIL, r#"{"active":1}"#.into(), "power.fail payload does not match the catalogue"),
    ];
    for (kind, payload, message) in &cases {
        // The writer refuses it and stays usable.
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(&dir.path().join("j.db"), seed_key(), &opts()).unwrap();
        let value = serde_json::from_str::<serde_json::Value>(payload).unwrap_or(serde_json::Value::Null);
        if !value.is_null() {
            let err = j.append(kind, &value).unwrap_err();
            assert!(matches!(err, JournalError::Field(_)), "{kind}: {err}");
            assert!(err.to_string().contains(message), "{kind}: {err}");
        }
        assert_eq!(j.append("test.append", &serde_json::json!({})).unwrap().seq, 2);
        j.close();

        // The verifiers refuse a journal that holds it.
        let van = Van::new();
        van.insert_raw(kind, payload.as_bytes(), &seed_key(), None);
        let out = van.vanctl(&["journal", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", text(&out));
        assert!(text(&out).contains("FAILED at record 4"), "{kind}: {}", text(&out));
        assert!(text(&out).contains(message), "{kind}: {}", text(&out));
        let out = python_verify(&van.export_file(), None);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", text(&out));
        assert!(text(&out).contains("FAILED at record 4"), "{kind}: {}", text(&out));
    }
    // Rule 4, UTF-8: the van cannot even be asked to write it (payloads are JSON values), but a
    // stored one fails verification and cannot be exported silently altered.
    let van = Van::new();
    van.insert_raw("test.append", b"\"\xff\"", &seed_key(), None);
    let out = van.vanctl(&["journal", "verify"]);
    assert!(text(&out).contains("FAILED at record 4"), "{}", text(&out));
    assert!(text(&out).contains("payload is not valid UTF-8 JSON: not UTF-8 at byte 1"), "{}", text(&out));
    let out = van.vanctl(&["journal", "export"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("record 4: payload is not UTF-8"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_honest_journal_passes_both_verifiers_including_every_catalogued_kind() {
    let van = Van::new();
    let journal = |k| Journal::open(&van.db(), k, &opts()).unwrap().0;
    let j = journal(seed_key());
    let health = HealthState::Fault { fault: "card.ribbon_ended".into(), detail: "ribbon out".into() };
    let payloads = [
        (
            kinds::DEVICES_HEALTH,
            serde_json::json!({"devices": {"card": health, "rfid": HealthState::Absent}}),
        ),
        (
            kinds::DEVICE_HEALTH,
            serde_json::json!({"device": "card", "health": HealthState::Connected, "changes": 2}),
        ),
        (
            kinds::DEVICE_JOB,
            serde_json::json!({"job": 3, "device": "payment", "what": "purchase", "outcome": "unknown",
                "fault": "payment.timeout", "may_have_acted": true, "ms": 30_000}),
        ),
        (kinds::GPIO_TAMPER, serde_json::json!({"active": true})),
        (kinds::POWER_FAIL, serde_json::json!({"active": false})),
        (
            kinds::DAEMON_STOP,
            serde_json::json!({"reason": StopReason::PowerFail, "interrupted_jobs": 0, "stop_ms": 12}),
        ),
    ];
    for (kind, payload) in &payloads {
        j.append(kind, payload).unwrap();
    }
    j.rotate_key(VanKey::from_seed(&[43; 32])).unwrap();
    j.close();
    // As `vanctl key rotate` leaves it: the key file holds the new key.
    let key_file = van.root.join("state/van.key");
    std::fs::remove_file(&key_file).unwrap();
    VanKey::from_seed(&[43; 32]).save_new(&key_file).unwrap();
    let out =
        van.vanctl(&["journal", "verify", "--pubkey", &hex::encode(seed_key().verifying_key().as_bytes())]);
    assert!(out.status.success(), "{}", text(&out));
    let out = python_verify(&van.export_file(), Some(&hex::encode(seed_key().verifying_key().as_bytes())));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK: 10 records", "{}", text(&out));
}

#[test]
fn export_to_before_since_is_an_error() {
    let van = Van::new();
    let out = van.vanctl(&["journal", "export", "--since", "5", "--to", "3"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to 3 is before --since 5"), "{}", text(&out));
    let out = van.vanctl(&["journal", "export", "--since", "1", "--to", "2"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

/// The rule checks accept exactly what the verifier accepts, record by record.
#[test]
fn verifier_reports_the_rule_as_a_rule_error() {
    let van = Van::new();
    van.insert_raw(kinds::GENESIS, b"{}", &seed_key(), None);
    let mut v = ChainVerifier::from_genesis(None);
    let reader = JournalReader::open(&van.db()).unwrap();
    let mut first_err = None;
    reader
        .for_each(1, u64::MAX, |r| {
            if let Err(e) = v.check(&r) {
                first_err = Some(e);
                return Ok(false);
            }
            Ok(true)
        })
        .unwrap();
    assert_eq!(first_err, Some(VerifyError::Rule { seq: 4, error: RuleError::SecondGenesis }));
}

/// The table "Record kinds (the catalogue)" in docs/journal-format.md and the code's catalogue
/// name the same kinds, the same payload fields and the same enumerated values.
#[test]
fn doc_table_and_code_catalogue_agree() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/journal-format.md")).unwrap();
    let section = doc
        .split("## Record kinds (the catalogue)")
        .nth(1)
        .expect("catalogue section")
        .split("\n## ")
        .next()
        .unwrap();
    let field = regex_lite_fields;
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let kind = cells[0].trim_start_matches("| ").trim_matches('`').to_owned();
        rows.push((kind, cells[1].to_owned()));
    }
    let doc_kinds: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let code_kinds: Vec<&str> = CATALOGUE.iter().map(|s| s.kind).collect();
    assert_eq!(doc_kinds, code_kinds, "the doc's table and kinds::CATALOGUE list different kinds");
    for ((kind, cell), spec) in rows.iter().zip(CATALOGUE) {
        let doc_fields = field(cell);
        let code_fields: BTreeSet<String> = (spec.fields)().iter().map(|s| s.to_string()).collect();
        assert_eq!(doc_fields, code_fields, "{kind}: payload fields differ between doc and code");
    }
    let cell = |k: &str| rows.iter().find(|(kind, _)| kind == k).map(|(_, c)| c.clone()).unwrap();
    for r in StopReason::ALL {
        assert!(cell(kinds::DAEMON_STOP).contains(&format!("\"{}\"", r.as_str())), "daemon.stop {r:?}");
    }
    for p in PreviousStop::ALL {
        let v = serde_json::to_string(&p).unwrap();
        assert!(cell(kinds::DAEMON_START).contains(&v), "daemon.start previous_stop {v}");
    }
    for o in JobOutcome::ALL {
        let v = serde_json::to_string(&o).unwrap();
        assert!(cell(kinds::DEVICE_JOB).contains(&v), "device.job outcome {v}");
    }
    for m in [RunMode::Production, RunMode::Simulation] {
        let v = serde_json::to_string(&m).unwrap();
        assert!(cell(kinds::DAEMON_START).contains(&v), "daemon.start mode {v}");
    }
    let healths = [
        HealthState::Absent,
        HealthState::Connected,
        HealthState::Busy { what: "…".into() },
        HealthState::Fault { fault: "…".into(), detail: "…".into() },
        HealthState::Disconnected { why: "…".into() },
    ];
    for h in healths {
        let v = serde_json::to_string(&h).unwrap();
        assert!(section.contains(&format!("`{v}`")), "the doc does not show the health value {v}");
    }
}

/// The `"name":` (or optional `"name"?:`) keys of a payload sketch such as
/// `{"reason":"SIGTERM"\|"SIGINT"}`.
fn regex_lite_fields(cell: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = cell.as_bytes();
    let mut i = 0;
    while let Some(start) = cell[i..].find('"').map(|p| p + i) {
        let Some(end) = cell[start + 1..].find('"').map(|p| p + start + 1) else { break };
        let name = &cell[start + 1..end];
        let key = b.get(end + 1) == Some(&b':') || b.get(end + 1..end + 3) == Some(b"?:");
        if key && name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') {
            out.insert(name.to_owned());
        }
        i = end + 1;
    }
    out
}

/// The payloads the daemon builds from the devices' own types (the job recorder, the health
/// recorder) are what the catalogue says: otherwise the writer would refuse them at run time.
#[test]
fn device_records_built_from_the_device_types_fit_the_catalogue() {
    use mtu::devices::manager::{JobId, JobRecord};
    use mtu::devices::{DeviceId, Fault, Health};
    use mtu::journal::rules::check_appended;
    let job = JobRecord {
        job: JobId(9),
        device: DeviceId::Payment,
        what: "purchase".into(),
        outcome: "unknown",
        fault: Some(Fault::Config),
        may_have_acted: true,
        detail: Some("no answer".into()),
        data: Some(serde_json::json!({"receipt": 12})),
        ms: 40,
    };
    check_appended(kinds::DEVICE_JOB, &serde_json::to_vec(&job).unwrap()).unwrap();
    let healths = [
        Health::Absent,
        Health::Connected,
        Health::Busy { what: "print card".into() },
        Health::Fault { fault: Fault::Config, detail: String::new() },
        Health::Disconnected { why: "unplugged".into() },
    ];
    for h in &healths {
        let one = serde_json::json!({"device": DeviceId::Card, "health": h, "changes": 1});
        check_appended(kinds::DEVICE_HEALTH, one.to_string().as_bytes()).unwrap();
    }
    let all: std::collections::BTreeMap<DeviceId, &Health> =
        DeviceId::ALL.into_iter().zip(&healths).collect();
    let all = serde_json::json!({ "devices": all });
    check_appended(kinds::DEVICES_HEALTH, all.to_string().as_bytes()).unwrap();
}

/// The strict public-key rule on fixed vectors: the 8 small-order points (canonical encodings), a
/// non-canonical encoding (y = p + 1) and an ordinary key, judged the same by the shared crate and by
/// tools/verify_journal.py.
#[test]
fn both_verifiers_judge_public_keys_alike() {
    const SMALL_ORDER: [&str; 8] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];
    const NON_CANONICAL: &str = "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
    let good = hex::encode(seed_key().verifying_key().as_bytes());
    let mut cases: Vec<(String, &str)> = SMALL_ORDER.iter().map(|h| (h.to_string(), "small-order")).collect();
    cases.push((NON_CANONICAL.into(), "non-canonical"));
    cases.push((good, "ok"));

    let judge_rust = |h: &str| {
        use mtu_journal::keys::{PublicKeyError, strict_public_key};
        match strict_public_key(&hex::decode(h).unwrap().try_into().unwrap()) {
            Ok(_) => "ok",
            Err(PublicKeyError::SmallOrder) => "small-order",
            Err(PublicKeyError::NonCanonical | PublicKeyError::NotOnCurve) => "non-canonical",
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_journal.py");
    let program = format!(
        "import importlib.util, sys\n\
         spec = importlib.util.spec_from_file_location('vj', {script:?})\n\
         vj = importlib.util.module_from_spec(spec); spec.loader.exec_module(vj)\n\
         for h in sys.argv[1:]:\n\
         \x20   try:\n\
         \x20       vj.strict_key(bytes.fromhex(h), 'key'); print('ok')\n\
         \x20   except vj.Failure as e:\n\
         \x20       print('small-order' if 'small-order' in str(e) else 'non-canonical')\n"
    );
    let out = Command::new(python())
        .arg("-c")
        .arg(program)
        .args(cases.iter().map(|(h, _)| h.as_str()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let python_says: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    for ((h, want), py) in cases.iter().zip(&python_says) {
        assert_eq!(judge_rust(h), *want, "Rust on {h}");
        assert_eq!(py, want, "Python on {h}");
    }
    assert_eq!(python_says.len(), cases.len());
}
