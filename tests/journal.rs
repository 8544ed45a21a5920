//! Whole-journal tests: round trip, tamper detection, concurrency, crash safety, storage faults,
//! and the daemon's start/stop records.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mtu::journal::{Journal, JournalError, JournalOptions, JournalReader, VerifyError, export, kinds};
use mtu::keys::VanKey;
use proptest::prelude::*;
use rusqlite::Connection;

fn opts() -> JournalOptions {
    JournalOptions { van_id: "MTU-T-1".into(), checkpoint_every: 50, max_pages: None }
}

fn key() -> VanKey {
    VanKey::from_seed(&[42u8; 32])
}

/// A journal with `n` appended records after genesis.
fn journal_with(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("j.db");
    let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
    for i in 0..n {
        j.append("test.append", &serde_json::json!({"i": i, "name": "محمد"})).unwrap();
    }
    j.close();
    path
}

#[test]
fn append_verify_round_trip_with_rotation_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let (j, report) = Journal::open(&path, key(), &opts()).unwrap();
    assert!(report.created);
    let a = j.append("test.append", &serde_json::json!({"x": 1})).unwrap();
    assert_eq!(a.seq, 2);
    let new_key = VanKey::from_seed(&[43u8; 32]);
    let new_public = new_key.verifying_key();
    let r = j.rotate_key(new_key).unwrap();
    assert_eq!(r.seq, 3);
    let b = j.append("test.append", &serde_json::json!({"x": 2})).unwrap();
    assert_eq!(b.seq, 4);
    j.close();

    let reader = JournalReader::open(&path).unwrap();
    assert_eq!(reader.verify_all(Some(key().verifying_key())).unwrap(), 4);
    // Trusting the wrong key fails at record 1.
    let err = reader.verify_all(Some(new_public)).unwrap_err();
    assert!(
        matches!(err, JournalError::Integrity { error: VerifyError::WrongKey { seq: 1, .. }, .. }),
        "{err}"
    );
    assert_eq!(reader.get(3).unwrap().kind, kinds::KEY_ROTATE);
    assert_eq!(reader.get(4).unwrap().key_id, mtu::keys::key_id_of(&new_public));

    // Export → parse → verify with a fresh verifier gives the same chain.
    let mut out = Vec::new();
    reader.for_each(1, u64::MAX, |r| Ok(export::write_line(&mut out, &r).is_ok())).unwrap();
    let mut v = mtu::journal::ChainVerifier::from_genesis(Some(key().verifying_key()));
    for (i, line) in std::str::from_utf8(&out).unwrap().lines().enumerate() {
        v.check(&export::parse_line(line, i + 1).unwrap()).unwrap();
    }
    assert_eq!(v.state().seq, 4);

    // Reopening needs the new key now; the old one is refused by name.
    let err = Journal::open(&path, key(), &opts()).err().unwrap();
    assert!(matches!(err, JournalError::KeyMismatch { .. }), "{err}");
    let (j, report) = Journal::open(&path, VanKey::from_seed(&[43u8; 32]), &opts()).unwrap();
    assert_eq!(report.records, 4);
    j.close();
}

#[test]
fn database_refuses_update_delete_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), 3);
    let conn = Connection::open(&path).unwrap();
    let e = conn.execute("UPDATE records SET kind = 'x' WHERE seq = 2", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn.execute("DELETE FROM records WHERE seq = 4", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn
        .execute(
            "INSERT INTO records SELECT seq + 10, van_id, key_id, time_us, boot_id, boot_us, kind, payload, hash, hash, sig
             FROM records WHERE seq = 4",
            [],
        )
        .unwrap_err();
    // Both the gapless and the chain trigger refuse this row; either message will do.
    assert!(e.to_string().contains("without gaps") || e.to_string().contains("chain"), "{e}");
    let e = conn
        .execute(
            "INSERT INTO records SELECT seq + 1, van_id, key_id, time_us, boot_id, boot_us, kind, payload, prev_hash, hash, sig
             FROM records WHERE seq = 4",
            [],
        )
        .unwrap_err();
    assert!(e.to_string().contains("chain"), "{e}");
}

/// Columns of a stored record and how to flip one bit in each.
const COLUMNS: [&str; 10] =
    ["van_id", "key_id", "time_us", "boot_id", "boot_us", "kind", "payload", "prev_hash", "hash", "sig"];

fn flip(conn: &Connection, seq: u64, column: &str, byte: usize, bit: u8) {
    let seq = seq as i64;
    conn.execute_batch("DROP TRIGGER IF EXISTS records_no_update").unwrap();
    match column {
        "time_us" | "boot_us" => {
            let v: i64 = conn
                .query_row(&format!("SELECT {column} FROM records WHERE seq = ?1"), [seq], |r| r.get(0))
                .unwrap();
            let v = v ^ (1i64 << ((byte % 8) * 8 + bit as usize % 8));
            conn.execute(
                &format!("UPDATE records SET {column} = ?1 WHERE seq = ?2"),
                rusqlite::params![v, seq],
            )
            .unwrap();
        }
        "van_id" | "kind" => {
            let v: String = conn
                .query_row(&format!("SELECT {column} FROM records WHERE seq = ?1"), [seq], |r| r.get(0))
                .unwrap();
            let mut b = v.into_bytes();
            let i = byte % b.len();
            // Stay within ASCII so the column still holds text; still a different byte.
            b[i] ^= 1 << (bit % 7);
            let v = String::from_utf8(b).unwrap();
            conn.execute(
                &format!("UPDATE records SET {column} = ?1 WHERE seq = ?2"),
                rusqlite::params![v, seq],
            )
            .unwrap();
        }
        _ => {
            let mut v: Vec<u8> = conn
                .query_row(&format!("SELECT {column} FROM records WHERE seq = ?1"), [seq], |r| r.get(0))
                .unwrap();
            let i = byte % v.len();
            v[i] ^= 1 << (bit % 8);
            conn.execute(
                &format!("UPDATE records SET {column} = ?1 WHERE seq = ?2"),
                rusqlite::params![v, seq],
            )
            .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    /// Flipping any bit of any stored field of any record is reported at that record.
    #[test]
    fn any_flipped_byte_is_detected(seq in 1u64..=6, column in 0usize..COLUMNS.len(), byte in 0usize..512, bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_with(dir.path(), 5);
        {
            let conn = Connection::open(&path).unwrap();
            flip(&conn, seq, COLUMNS[column], byte, bit);
        }
        let reader = JournalReader::open(&path).unwrap();
        match reader.verify_all(None) {
            Err(JournalError::Integrity { error, .. }) => prop_assert_eq!(error.seq(), seq, "{}", error),
            other => prop_assert!(false, "flip in {} of record {} not detected: {:?}", COLUMNS[column], seq, other.map(|_| ())),
        }
        // The daemon refuses to continue a damaged journal (the flip is after the checkpoint? then
        // it is caught at open; before it, `journal verify` catches it as above).
    }
}

#[test]
fn tampered_tail_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), 3);
    // The last clean close checkpointed at the tail; add a forged record after it (signed with a
    // different key) and the next open must refuse, naming the record.
    {
        let conn = Connection::open(&path).unwrap();
        let tail: Vec<u8> =
            conn.query_row("SELECT hash FROM records WHERE seq = 4", [], |r| r.get(0)).unwrap();
        let forged = mtu::journal::record::Draft {
            seq: 5,
            van_id: "MTU-T-1",
            time_us: 0,
            boot_id: [0; 16],
            boot_us: 0,
            kind: "test.append",
            payload: b"{}",
            prev_hash: tail.try_into().unwrap(),
        }
        .seal(&VanKey::from_seed(&[9u8; 32]))
        .unwrap();
        conn.execute(
            "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![
                5,
                forged.van_id,
                &forged.key_id[..],
                0,
                &forged.boot_id[..],
                0,
                forged.kind,
                forged.payload,
                &forged.prev_hash[..],
                &forged.hash[..],
                &forged.sig[..]
            ],
        )
        .unwrap();
    }
    let err = Journal::open(&path, key(), &opts()).err().unwrap();
    match err {
        JournalError::Integrity { error, .. } => assert_eq!(error.seq(), 5, "{error}"),
        e => panic!("{e}"),
    }
}

#[test]
fn gapless_under_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = (*j).clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| j.append("test.append", &serde_json::json!({"t": t, "i": i})).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    j.close();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=801).collect::<Vec<_>>());
    assert_eq!(JournalReader::open(&path).unwrap().verify_all(None).unwrap(), 801);
}

#[test]
fn disk_full_reports_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let small = JournalOptions { max_pages: Some(40), ..opts() };
    let (j, _) = Journal::open(&path, key(), &small).unwrap();
    let big = "x".repeat(3000);
    let mut acked = Vec::new();
    let err = loop {
        match j.append("test.append", &serde_json::json!({"n": acked.len(), "pad": big})) {
            Ok(a) => acked.push(a.seq),
            Err(e) => break e,
        }
        assert!(acked.len() < 1000, "quota never hit");
    };
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("NOT written"), "{err}");
    // Another failed attempt, then space is freed: the next record is a storage-fault marker.
    assert!(j.append("test.append", &serde_json::json!({"n": "lost", "pad": big})).is_err());
    // Meanwhile the daemon is unhealthy (GET /healthz answers 503 naming the journal).
    let h = j.writer_health();
    assert_eq!((h.open, h.head_seq, h.failed_appends), (true, acked.last().copied(), 2), "{h:?}");
    let snapshot = |journal| mtu::api::ops::OpsSnapshot {
        journal,
        sync: serde_json::json!({"enabled": false}),
        devices: Default::default(),
        services: Default::default(),
        outcomes: Default::default(),
    };
    let failing = mtu::api::ops::failing(Some(&snapshot(h)));
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].part, "journal");
    assert!(failing[0].why.contains("2 journal appends failed"), "{failing:?}");
    j.set_max_pages(None).unwrap();
    let next = j.append("test.append", &serde_json::json!({"n": "after"})).unwrap();
    let h = j.writer_health();
    assert_eq!((h.head_seq, h.failed_appends), (Some(next.seq), 0), "recorded and healthy again: {h:?}");
    assert!(mtu::api::ops::failing(Some(&snapshot(h))).is_empty());
    let handle = (*j).clone();
    j.close();
    assert!(!handle.writer_health().open, "closed");
    let reader = JournalReader::open(&path).unwrap();
    reader.verify_all(None).unwrap();
    let marker = reader.get(next.seq - 1).unwrap();
    assert_eq!(marker.kind, kinds::FAULT_STORAGE);
    assert_eq!(marker.payload_json()["failed_appends"], 2);
    for seq in acked {
        assert_eq!(reader.get(seq).unwrap().kind, "test.append");
    }
}

fn write_config(dir: &Path, mode: &str) -> PathBuf {
    let cfg = dir.join("vand.toml");
    std::fs::write(
        &cfg,
        format!(
            "mode = \"{mode}\"\n[van]\nid = \"MTU-T-1\"\n[paths]\nstate_dir = \"{}\"\n[log]\nformat = \"text\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

fn vanctl(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vanctl"));
    c.arg("--config").arg(cfg);
    c
}

/// SIGKILL an appending process at random moments; every acknowledged append must survive and
/// the chain must verify after each restart.
#[test]
fn crash_safety_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..12 {
        let mut child = vanctl(&cfg)
            .args(["journal", "append-loop"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut it = l.split_whitespace().skip(1).map(|x| x.parse::<u64>().ok());
                    Some((it.next()??, it.next()??))
                })
                .collect::<Vec<_>>()
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(60 + rng % 200));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        assert!(!got.is_empty() || round > 0, "the appender never acknowledged anything");
        acked.extend(got);
        let journal = JournalReader::open(&dir.path().join("state/journal.db")).unwrap();
        journal.verify_all(None).unwrap();
    }
    let journal = JournalReader::open(&dir.path().join("state/journal.db")).unwrap();
    assert!(acked.len() > 20, "too few appends to mean anything: {}", acked.len());
    for (seq, n) in &acked {
        let rec = journal.get(*seq).unwrap_or_else(|e| panic!("acknowledged record {seq} lost: {e}"));
        assert_eq!(rec.payload_json()["n"], *n, "record {seq} differs from what was acknowledged");
    }
}

#[test]
fn read_only_journal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    let out = vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = dir.path().join("state");
    let mut cmd = vanctl(&cfg);
    cmd.args(["journal", "append-loop", "--count", "1"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root ignores file modes: run as `nobody`, who may read but not write the journal.
        for p in [dir.path(), state.as_path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(state.join("van.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        // nobody cannot read root's key either: give it a copy it owns, so the journal is the fault.
        let key = dir.path().join("nobody.key");
        std::fs::copy(state.join("van.key"), &key).unwrap();
        std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("[log]", &format!("key_file = \"{}\"\n[log]", key.display()));
        std::fs::write(&cfg, text).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    } else {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("read-only") && stderr.contains("journal.db"), "{stderr}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn foreign_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0xA5u8; 8192]).unwrap();
    let err = Journal::open(&junk, key(), &opts()).err().unwrap();
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
    assert!(err.to_string().contains("junk.db"));

    let other = dir.path().join("other.db");
    Connection::open(&other).unwrap().execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
    let err = Journal::open(&other, key(), &opts()).err().unwrap();
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");

    let path = journal_with(dir.path(), 1);
    let other_van = JournalOptions { van_id: "MTU-OTHER".into(), ..opts() };
    let err = Journal::open(&path, key(), &other_van).err().unwrap();
    assert!(matches!(err, JournalError::ForeignVan { .. }), "{err}");

    let (_held, _) = Journal::open(&path, key(), &opts()).unwrap();
    let err = Journal::open(&path, key(), &opts()).err().unwrap();
    assert!(matches!(err, JournalError::InUse { .. }), "{err}");
}

#[test]
fn open_verifies_only_since_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), 120);
    let (j, report) = Journal::open(&path, key(), &opts()).unwrap();
    assert_eq!(report.records, 121);
    assert_eq!(report.verified, 0, "a clean close checkpoints the tail");
    j.close();
}

#[test]
fn daemon_records_start_and_stop_and_flags_unclean_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    for expect_previous in ["none", "clean"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vand"))
            .arg("--config")
            .arg(&cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = Instant::now();
        loop {
            let line = lines.next().expect("vand exited before ready").unwrap();
            if line.contains("ready") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60));
        }
        // SAFETY: kill with a valid pid of our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        let journal = JournalReader::open(&dir.path().join("state/journal.db")).unwrap();
        let tail = journal.tail().unwrap().unwrap();
        assert_eq!(tail.kind, kinds::DAEMON_STOP);
        assert_eq!(tail.payload_json()["reason"], "SIGTERM");
        let mut start = None;
        journal
            .for_each(1, tail.seq, |r| {
                if r.kind == kinds::DAEMON_START {
                    start = Some(r);
                }
                Ok(true)
            })
            .unwrap();
        assert_eq!(start.unwrap().payload_json()["previous_stop"], expect_previous);
    }
    let mode = std::fs::metadata(dir.path().join("state/van.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn production_refuses_missing_or_exposed_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "production");
    let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("--config").arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not exist") && stderr.contains("vanctl keygen"), "{stderr}");

    let out = vanctl(&cfg).arg("keygen").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = dir.path().join("state/van.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("--config").arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // keygen never overwrites.
    let out = vanctl(&cfg).arg("keygen").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "mode = \"production\"\n[van]\nid = \"MTU-1\"\n[paths]\nstate_dir = 7\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vand")).arg("check-config").arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml:5:") && stderr.contains("paths.state_dir"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_vand"))
        .arg("check-config")
        .arg("config/vand.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vanctl_verify_names_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    let out = vanctl(&cfg).args(["journal", "append-loop", "--count", "5"]).output().unwrap();
    assert!(out.status.success());
    let db = dir.path().join("state/journal.db");
    flip(&Connection::open(&db).unwrap(), 4, "payload", 2, 1);
    let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("FAILED at record 4"), "{stdout}");
    let out = vanctl(&cfg).args(["journal", "export", "--since", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 4);
    assert!(text.starts_with("{\"seq\":3,"));
}

/// The Python verifier in tools/ was written from docs/journal-format.md alone; it must accept an
/// export with a key rotation and reject a tampered one. Python comes from `MTU_TEST_PYTHON` (set
/// by tools/test), else `python3`; without its `cryptography` package the test fails, naming the fix.
#[test]
fn independent_python_verifier_agrees() {
    let python = std::env::var("MTU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import `cryptography` (needed by tools/verify_journal.py): run tools/test, \
         which installs tools/test-requirements.txt into target/test-venv and sets MTU_TEST_PYTHON"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
    j.append("test.append", &serde_json::json!({"name": "محمد \"الأول\""})).unwrap();
    j.rotate_key(VanKey::from_seed(&[44u8; 32])).unwrap();
    j.append("test.append", &serde_json::json!({"after": true})).unwrap();
    j.close();
    let mut out = Vec::new();
    JournalReader::open(&path)
        .unwrap()
        .for_each(1, u64::MAX, |r| Ok(export::write_line(&mut out, &r).is_ok()))
        .unwrap();
    let export_path = dir.path().join("export.jsonl");
    std::fs::write(&export_path, &out).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_journal.py");
    let pubkey = hex::encode(key().verifying_key().as_bytes());
    let run =
        |p: &Path| Command::new(&python).arg(script).arg(p).args(["--pubkey", &pubkey]).output().unwrap();
    let good = run(&export_path);
    assert!(
        good.status.success(),
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "OK: 4 records");
    let tampered = String::from_utf8(out).unwrap().replace("\\\"after\\\":true", "\\\"after\\\":false");
    std::fs::write(&export_path, tampered).unwrap();
    let bad = run(&export_path);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("FAILED at record 4"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}

#[test]
fn key_rotation_from_the_cli_and_interrupted_rotation_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    let state = dir.path().join("state");
    assert!(vanctl(&cfg).args(["journal", "append-loop", "--count", "2"]).status().unwrap().success());
    let old = std::fs::read(state.join("van.key")).unwrap();
    let out = vanctl(&cfg).args(["key", "rotate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rotated at record 4"));
    assert_ne!(std::fs::read(state.join("van.key")).unwrap(), old);
    assert!(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]).status().unwrap().success());

    // Interrupted: the rotation record committed but the new key is still staged as van.key.new.
    let out = vanctl(&cfg).args(["key", "rotate"]).output().unwrap();
    assert!(out.status.success());
    std::fs::rename(state.join("van.key"), state.join("van.key.new")).unwrap();
    let prev = dir.path().join("prev.key");
    std::fs::write(&prev, &old).unwrap(); // any key other than the journal's
    std::fs::set_permissions(&prev, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&prev, state.join("van.key")).unwrap();
    let out = vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!state.join("van.key.new").exists());
    let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Starts vand with `cfg`, waits for "ready", stops it with SIGTERM and returns its `daemon.start`
/// record's `previous_stop`.
fn run_vand_once(dir: &Path, cfg: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vand"))
        .arg("--config")
        .arg(cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("vand exited before ready").unwrap();
        if line.contains("ready") {
            break;
        }
    }
    // SAFETY: kill with a valid pid of our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let journal = JournalReader::open(&dir.join("state/journal.db")).unwrap();
    let tail = journal.tail().unwrap().unwrap();
    let mut start = None;
    journal
        .for_each(1, tail.seq, |r| {
            if r.kind == kinds::DAEMON_START {
                start = Some(r);
            }
            Ok(true)
        })
        .unwrap();
    start.unwrap().payload_json()["previous_stop"].as_str().unwrap().to_owned()
}

/// Runs a command that is expected to exit (a refusing vand); one still running after 20 s has
/// started when it should not have: it is killed and reported as started.
fn output_within(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("still running after 20 s (it started): {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Finding 1: verify reads one snapshot, so a writer appending meanwhile never causes a false gap.
#[test]
fn verify_while_appending_never_fails_falsely() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]));
    let mut child = vanctl(&cfg)
        .args(["journal", "append-loop"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acks = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..20 {
        acks.next().unwrap().unwrap();
    }
    let drain = std::thread::spawn(move || for _ in acks {});
    let mut failures = Vec::new();
    for _ in 0..15 {
        let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drain.join().unwrap();
    assert!(failures.is_empty(), "{} of 15 runs failed while appending: {}", failures.len(), failures[0]);
}

/// Finding 2: a removed last record is found from the checkpoint vand keeps.
#[test]
fn verify_finds_a_deleted_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "5"]));
    let conn = Connection::open(dir.path().join("state/journal.db")).unwrap();
    conn.execute_batch("DROP TRIGGER records_no_delete; DELETE FROM records WHERE seq = 6;").unwrap();
    drop(conn);
    let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("FAILED") && stdout.contains("record 6"), "{stdout}");
}

/// Finding 3: a journal next to another van's key, or under another van's id, fails.
#[test]
fn verify_uses_the_key_file_and_van_id() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "2"]));
    let key = dir.path().join("state/van.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    VanKey::from_seed(&[77u8; 32]).save_new(&key).unwrap();
    let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("FAILED") && stdout.contains("key"), "{stdout}");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, saved).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    run_ok(vanctl(&cfg).args(["journal", "verify"]));
    let text = std::fs::read_to_string(&cfg).unwrap().replace("MTU-T-1", "MTU-T-2");
    std::fs::write(&cfg, text).unwrap();
    let out = vanctl(&cfg).args(["journal", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("MTU-T-2"), "{stdout}");
}

/// Finding 4: a `vanctl key rotate` between two runs is not an unclean stop.
#[test]
fn key_rotate_is_not_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    assert_eq!(run_vand_once(dir.path(), &cfg), "none");
    run_ok(vanctl(&cfg).args(["key", "rotate"]));
    assert_eq!(run_vand_once(dir.path(), &cfg), "clean");
    // A killed writer is still unclean.
    let mut child = vanctl(&cfg).args(["journal", "append-loop"]).stdout(Stdio::piped()).spawn().unwrap();
    BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(run_vand_once(dir.path(), &cfg), "unclean");
}

/// Finding 5: HQ enrolls the genesis key; `pubkey` keeps printing it after a rotation and
/// `verify --pubkey` accepts it, and explains when given the rotated key instead.
#[test]
fn enrolment_is_the_genesis_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]));
    let before = run_ok(vanctl(&cfg).arg("pubkey"));
    let genesis = before.split_whitespace().nth(2).unwrap().to_owned();
    let rotated = run_ok(vanctl(&cfg).args(["key", "rotate"]));
    assert!(rotated.contains("genesis") && !rotated.contains("enroll it"), "{rotated}");
    assert_eq!(run_ok(vanctl(&cfg).arg("pubkey")), before);
    run_ok(vanctl(&cfg).args(["journal", "verify", "--pubkey", &genesis]));
    let tail = JournalReader::open(&dir.path().join("state/journal.db")).unwrap().tail().unwrap().unwrap();
    assert_eq!(tail.kind, kinds::KEY_ROTATE);
    let new_key = tail.payload_json()["new_public_key"].as_str().unwrap().to_owned();
    let out = vanctl(&cfg).args(["journal", "verify", "--pubkey", &new_key]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("genesis key") && stdout.contains(&genesis), "{stdout}");
}

/// Finding 6: a key left staged by a rotation that never committed does not block the next one.
#[test]
fn interrupted_rotation_never_blocks_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]));
    let staged = dir.path().join("state/van.key.new");
    VanKey::from_seed(&[78u8; 32]).save_new(&staged).unwrap();
    let out = run_ok(vanctl(&cfg).args(["key", "rotate"]));
    assert!(out.contains("rotated at record"), "{out}");
    assert!(!staged.exists());
    run_ok(vanctl(&cfg).args(["journal", "verify"]));
}

/// Finding 7: with the key present, a deleted or emptied journal stops the daemon with what to
/// restore; a deleted key with a journal present is never replaced by a new key.
#[test]
fn lost_journal_or_key_is_never_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "2"]));
    let state = dir.path().join("state");
    let db = state.join("journal.db");
    let saved = std::fs::read(&db).unwrap();
    for damage in ["delete", "empty"] {
        match damage {
            "delete" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, b"").unwrap(),
        }
        for cmd in [&mut Command::new(env!("CARGO_BIN_EXE_vand")), &mut vanctl(&cfg)] {
            if cmd.get_program().to_string_lossy().ends_with("vand") {
                cmd.arg("--config").arg(&cfg);
            } else {
                cmd.args(["journal", "append-loop", "--count", "1"]);
            }
            let out = output_within(cmd);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{damage}: started on a lost journal");
            assert!(stderr.contains("restore the journal") && stderr.contains("journal.db"), "{stderr}");
            assert!(
                std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) == 0,
                "{damage}: journal re-created"
            );
        }
    }
    std::fs::write(&db, &saved).unwrap();
    let key = state.join("van.key");
    std::fs::remove_file(&key).unwrap();
    let out = output_within(Command::new(env!("CARGO_BIN_EXE_vand")).arg("--config").arg(&cfg));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("restore the van's key, never create a new one")
            || stderr.contains("restore the van's key (never create a new one"),
        "{stderr}"
    );
    assert!(!key.exists(), "a new key was created for an existing journal");
    let out = vanctl(&cfg).arg("keygen").output().unwrap();
    assert!(!out.status.success());
    assert!(!key.exists(), "keygen created a new key for an existing journal");
}

/// Finding 7, production: `vanctl keygen` is the first start: it creates key and journal together.
#[test]
fn keygen_creates_key_and_journal_together() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "production");
    let out = run_ok(vanctl(&cfg).arg("keygen"));
    assert!(out.contains("journal"), "{out}");
    let reader = JournalReader::open(&dir.path().join("state/journal.db")).unwrap();
    assert_eq!(reader.get(1).unwrap().kind, kinds::GENESIS);
    let pubkey = run_ok(vanctl(&cfg).arg("pubkey"));
    assert!(out.contains(pubkey.split_whitespace().nth(2).unwrap()), "{out} vs {pubkey}");
}

/// Finding 8: appends that failed on a full disk are counted across a restart, and written as
/// `fault.storage` once space is back; the message never says nothing was lost.
#[test]
fn disk_full_failures_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let small = JournalOptions { max_pages: Some(40), ..opts() };
    let (j, _) = Journal::open(&path, key(), &small).unwrap();
    let big = "x".repeat(3000);
    let err = loop {
        if let Err(e) = j.append("test.append", &serde_json::json!({"pad": big})) {
            break e;
        }
    };
    assert!(!err.to_string().contains("nothing was lost"), "{err}");
    // Fill the last page with small records until they fail too (second failure).
    let mut n = 0;
    while j.append("test.fill", &serde_json::json!({"n": n})).is_ok() {
        n += 1;
        assert!(n < 1000, "quota never hit");
    }
    // The stop record is lost to the full disk (third failure), yet the close is clean.
    let stop = serde_json::json!({"reason": "SIGTERM", "interrupted_jobs": 0, "stop_ms": 3});
    let err = j.append(kinds::DAEMON_STOP, &stop).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    j.close();
    // Restarted, still full: the count keeps growing.
    // (The first failure may already be on record: a small record and its marker can still fit.)
    let (j, report) = Journal::open(&path, key(), &small).unwrap();
    let before = report.unrecorded_failures;
    assert!(before >= 2, "the lost stop record and the failed fill were forgotten: {before}");
    let err = j.append("test.append", &serde_json::json!({"pad": big})).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    j.close();
    // Space is back. Both writers closed cleanly although their last records were not written.
    let (j, report) = Journal::open(&path, key(), &opts()).unwrap();
    assert_eq!(report.previous_stop, mtu::journal::kinds::PreviousStop::Clean);
    assert_eq!(report.unrecorded_failures, before + 1);
    let next = j.append("test.append", &serde_json::json!({"after": true})).unwrap();
    j.close();
    let reader = JournalReader::open(&path).unwrap();
    reader.verify_all(None).unwrap();
    let marker = reader.get(next.seq - 1).unwrap();
    assert_eq!(marker.kind, kinds::FAULT_STORAGE);
    assert_eq!(marker.payload_json()["failed_appends"], before + 1, "{:?}", marker.payload_json());
    assert_eq!(marker.payload_json()["failed_kinds"][kinds::DAEMON_STOP], 1);
    let (j, report) = Journal::open(&path, key(), &opts()).unwrap();
    assert_eq!(report.unrecorded_failures, 0, "the marker is written once");
    j.close();
}

/// Finding 9: an auditor's read-only copy can be verified, exported and shown.
#[test]
fn read_only_copy_verifies_exports_and_shows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "3"]));
    let genesis = run_ok(vanctl(&cfg).arg("pubkey")).split_whitespace().nth(2).unwrap().to_owned();
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(dir.path().join("state/journal.db"), copy.join("journal.db")).unwrap();
    let audit = dir.path().join("audit.toml");
    std::fs::write(
        &audit,
        format!(
            "mode = \"simulation\"\n[van]\nid = \"MTU-T-1\"\n[paths]\nstate_dir = \"{}\"\njournal = \"{}\"\nkey_file = \"{}\"\n[log]\nformat = \"text\"\n",
            copy.display(),
            copy.join("journal.db").display(),
            copy.join("no.key").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(copy.join("journal.db"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555)).unwrap();
    for p in [dir.path(), audit.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_auditor = |args: &[&str]| {
        let mut c = vanctl(&audit);
        c.args(args);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Root writes anywhere: run as `nobody`, for whom the copy is read-only.
            std::os::unix::process::CommandExt::uid(&mut c, 65534);
        }
        c
    };
    let out = run_ok(&mut as_auditor(&["journal", "verify", "--pubkey", &genesis]));
    assert!(out.starts_with("OK: 4 records"), "{out}");
    let out = run_ok(&mut as_auditor(&["journal", "export"]));
    assert_eq!(out.lines().count(), 4);
    let out = run_ok(&mut as_auditor(&["journal", "show", "1"]));
    assert!(out.contains(kinds::GENESIS), "{out}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Finding 12: files vanctl creates get the daemon's modes whatever the caller's umask.
#[test]
fn vanctl_creates_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]));
    let state = dir.path().join("state");
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o750);
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o027, 0, "{} has mode {mode:o}", entry.path().display());
    }
    assert_eq!(std::fs::metadata(state.join("journal.db")).unwrap().permissions().mode() & 0o777, 0o640);
}

/// Finding 12: a journal from a newer schema says so.
#[test]
fn newer_schema_names_a_newer_vand() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "simulation");
    run_ok(vanctl(&cfg).args(["journal", "append-loop", "--count", "1"]));
    Connection::open(dir.path().join("state/journal.db"))
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    for args in [&["journal", "append-loop", "--count", "1"][..], &["journal", "verify"]] {
        let out = vanctl(&cfg).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("made by a newer vand"), "{args:?}: {stderr}");
    }
}

/// The transaction index answers "records of X" and "last state of X" from the index, in the
/// same transaction as the record; a journal from before the index is indexed by the migration.
#[test]
fn transaction_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
    let a1 = j.append("service.step", &serde_json::json!({"txn": "DL-1", "step": "opened"})).unwrap();
    j.append("service.step", &serde_json::json!({"txn": "DL-2", "step": "opened"})).unwrap();
    j.append("test.append", &serde_json::json!({"note": "no txn", "inner": {"txn": "DL-1"}})).unwrap();
    let a3 = j.append("payment.done", &serde_json::json!({"txn": "DL-1", "step": "paid"})).unwrap();
    for bad in [
        serde_json::json!({"txn": 7}),
        serde_json::json!({"txn": ""}),
        serde_json::json!({"txn": "x".repeat(65)}),
    ] {
        let err = j.append("service.step", &bad).unwrap_err();
        assert!(matches!(err, JournalError::Txn(_)), "{err}");
    }
    let seqs = |recs: Vec<mtu::journal::Record>| recs.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(j.txn_records("DL-1").unwrap()), vec![a1.seq, a3.seq]);
    assert_eq!(j.txn_last("DL-1").unwrap().unwrap().kind, "payment.done");
    assert!(j.txn_last("DL-9").unwrap().is_none());
    j.close();
    let reader = JournalReader::open(&path).unwrap();
    assert_eq!(reader.tail().unwrap().unwrap().seq, a3.seq, "refused appends wrote nothing");
    assert_eq!(seqs(reader.txn_records("DL-2").unwrap()), vec![a1.seq + 1]);
    // Lookups search the index; they never scan the records.
    let conn = Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT r.seq FROM txn_index t JOIN records r ON r.seq = t.seq WHERE t.txn = 'DL-1' ORDER BY t.seq DESC LIMIT 1")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(plan.iter().all(|p| p.starts_with("SEARCH")), "{plan:?}");
    // The index is append-only like the records.
    assert!(conn.execute("DELETE FROM txn_index", []).unwrap_err().to_string().contains("append-only"));
    // A journal made before the index: the migration fills it from the payloads.
    conn.execute_batch("DROP TABLE txn_index; PRAGMA user_version = 1;").unwrap();
    drop(conn);
    let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
    assert_eq!(seqs(j.txn_records("DL-1").unwrap()), vec![a1.seq, a3.seq]);
    j.close();
}

/// One signer: documents are signed by the journal writer with the key it holds, domain-separated
/// from records; after a rotation, with the new key.
#[test]
fn journal_signs_documents_with_the_key_it_holds() {
    use mtu::keys::{DomainSigner, RESERVED_DOMAINS};
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(&dir.path().join("j.db"), key(), &opts()).unwrap();
    let s = j.sign_domain(b"EG-MTU-QR\0", b"receipt 4711").unwrap();
    assert_eq!(s.public_key, key().verifying_key());
    key().verifying_key().verify_strict(b"EG-MTU-QR\0receipt 4711", &s.signature).unwrap();
    for reserved in RESERVED_DOMAINS {
        assert!(j.sign_domain(reserved, b"x").is_err());
    }
    let new_key = VanKey::from_seed(&[43u8; 32]);
    let new_public = new_key.verifying_key();
    j.rotate_key(new_key).unwrap();
    let s = j.sign_domain(b"EG-MTU-QR\0", b"after").unwrap();
    assert_eq!(s.public_key, new_public);
    new_public.verify_strict(b"EG-MTU-QR\0after", &s.signature).unwrap();
    j.close();
}

/// Documents' QR codes are signed through the journal's signer (vand never loads the key file a
/// second time): the same text as signing with the key itself, naming the key after a rotation.
#[test]
fn document_qr_codes_are_signed_through_the_journal() {
    use mtu::render::documents::sample;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(&dir.path().join("j.db"), key(), &opts()).unwrap();
    let payload = sample::receipt(&sample::issuer()).qr_payload();
    let through_journal = payload.clone().sign(&*j).unwrap();
    assert_eq!(through_journal, payload.clone().sign(&key()).unwrap(), "Ed25519 is deterministic");
    let verify = |text: &str, k: &ed25519_dalek::VerifyingKey| {
        let (p, sig, body) = mtu::render::qr::QrPayload::parse(text).unwrap();
        p.verify(&body, &sig, k)
    };
    verify(&through_journal, &key().verifying_key()).unwrap();
    let new_key = VanKey::from_seed(&[44u8; 32]);
    let new_public = new_key.verifying_key();
    j.rotate_key(new_key).unwrap();
    let after = payload.sign(&*j).unwrap();
    verify(&after, &new_public).unwrap();
    assert!(verify(&after, &key().verifying_key()).is_err());
    j.close();
}

/// The checkpoint re-reads what this writer sealed and finds a record altered in storage since
/// (its bytes or only its signature).
#[test]
fn checkpoint_finds_own_records_altered_in_storage() {
    for column in ["payload", "sig", "prev_hash"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let (j, _) = Journal::open(&path, key(), &opts()).unwrap();
        for i in 0..10 {
            j.append("test.append", &serde_json::json!({"i": i})).unwrap();
        }
        flip(&Connection::open(&path).unwrap(), 6, column, 3, 2);
        let err = j.checkpoint().unwrap_err();
        match err {
            JournalError::Integrity { error, .. } => assert_eq!(error.seq(), 6, "{column}: {error}"),
            e => panic!("{column}: {e}"),
        }
    }
}

proptest! {
    /// The transaction-id probe never panics: any bytes give a txn, none, or a refusal.
    #[test]
    fn txn_probe_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in ".{0,80}") {
        let _ = mtu::journal::store::txn_of(&bytes);
        let _ = mtu::journal::store::txn_of(format!("{{\"txn\":{text}}}").as_bytes());
    }
}
