//! The `van-hq` binary: keygen, pubkey, enroll, serve, vans, verify, publish, dossiers import;
//! with `--db PATH` (SQLite) and with `--database postgres://…` on a real PostgreSQL.

mod common;

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use common::{Backend, Van, auth, batch, http, nonce, now_text, on_both_stores};

fn van_hq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_van-hq")).args(args).output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn keygen_enroll_serve_upload_vans_and_verify(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hq.key");
    let k = key.to_str().unwrap();
    // SQLite through the historical `--db PATH`, PostgreSQL through `--database URL`.
    let (opt, spec) = match b {
        Backend::Sqlite => ("--db", dir.path().join("hq.db").to_str().unwrap().to_owned()),
        Backend::Postgres => ("--database", common::pg::fresh_database()),
    };
    let d = spec.as_str();
    let out = van_hq(&["keygen", "--key", k]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let printed = String::from_utf8(out.stdout).unwrap();
    let out = van_hq(&["pubkey", "--key", k]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);
    assert!(!van_hq(&["keygen", "--key", k]).status.success(), "keygen must not overwrite");
    let hq_pub = van_hq::store::public_key_from_hex(printed.trim()).unwrap();

    let mut van = Van::new("MTU-CAI-0001", 1);
    van.append_n(30);
    let out = van_hq(&["enroll", opt, d, "--van", &van.id, "--public-key", &van.public_hex()]);
    assert!(out.status.success(), "{}", text(&out));

    let mut child = Command::new(env!("CARGO_BIN_EXE_van-hq"))
        .args(["serve", opt, d, "--key", k, "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line.trim().rsplit("http://").next().unwrap().parse().unwrap();
    let body = batch(&van.records);
    let mut h = auth(&van, "POST", "/v1/records", &now_text(), nonce(), &body);
    h.push(("Content-Encoding", "zstd".into()));
    let a = http(addr, "POST", "/v1/records", &h, &body);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(a.status, 200, "{}", a.body);
    let ack = van_hq::protocol::verify_ack(a.body.to_string().as_bytes(), &hq_pub).unwrap();
    assert_eq!(ack.seq, 31);

    let out = van_hq(&["vans", opt, d, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let vans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vans[0]["van"], "MTU-CAI-0001");
    assert_eq!(vans[0]["last_seq"], 31);
    assert!(vans[0]["last_ack"].is_string());
    let out = van_hq(&["vans", opt, d]);
    assert!(text(&out).contains("MTU-CAI-0001"), "{}", text(&out));

    let out = van_hq(&["verify", opt, d, "MTU-CAI-0001"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("31 records verified"), "{}", text(&out));
    // An altered stored record fails verification, naming it.
    common::execute_sql(
        &spec,
        "UPDATE records SET line = replace(line, '\"boot_us\":7000', '\"boot_us\":7001') WHERE seq = 7",
    );
    let out = van_hq(&["verify", opt, d, "MTU-CAI-0001"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("stored record 7"), "{}", text(&out));
}

#[test]
fn publish_and_dossier_import_from_the_command_line() {
    use van_hq::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hq.db");
    let d = db.to_str().unwrap();
    let file = dir.path().join("roster.json");
    std::fs::write(
        &file,
        r#"{"bundle":"roster","version":3,"van_id":"MTU-CAI-0001","issued_at":"2026-12-01T08:00:00Z","officers":[]}"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = van_hq(&["publish", "--db", d, "--van", "MTU-CAI-0001", f]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"stored":1}"#);
    let out = van_hq(&["publish", "--db", d, "--van", "MTU-CAI-0001", f]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"already_stored":1}"#);
    // For another van the file's van_id is wrong; fleet-wide it is stored (served per van).
    let out = van_hq(&["publish", "--db", d, "--van", "MTU-CAI-0002", f]);
    assert!(!out.status.success() && text(&out).contains("MTU-CAI-0002"), "{}", text(&out));
    assert!(van_hq(&["publish", "--db", d, f]).status.success());
    let lines = dir.path().join("dossiers.jsonl");
    std::fs::write(
        &lines,
        "{\"national_id\":\"29001011234567\",\"dossier\":{\"citizen\":{}}}\n\n{\"national_id\":\"x\",\"dossier\":{}}\n",
    )
    .unwrap();
    let out = van_hq(&["dossiers", "import", "--db", d, lines.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("line 3"), "{}", text(&out));
    let store = van_hq::sqlite::SqliteStore::open(&db).unwrap();
    assert_eq!(store.dossier("29001011234567").unwrap().as_deref(), Some(r#"{"citizen":{}}"#));
    assert_eq!(store.bundles_after("MTU-CAI-0001", 0, 10).unwrap().len(), 2);
}

/// `--database PATH` is SQLite too, and the two options exclude each other.
#[test]
fn database_option_takes_a_sqlite_path_and_excludes_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hq.db");
    let d = db.to_str().unwrap();
    let van = Van::new("MTU-CAI-0002", 2);
    let out = van_hq(&["enroll", "--database", d, "--van", &van.id, "--public-key", &van.public_hex()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = van_hq(&["vans", "--db", d, "--json"]);
    let vans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vans[0]["van"], "MTU-CAI-0002");
    let out = van_hq(&["vans", "--db", d, "--database", d]);
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot be used with"), "{}", text(&out));
    let out = van_hq(&["vans"]);
    assert!(!out.status.success());
    // A PostgreSQL server that is not there: a clear error naming host, port and database, never
    // the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://hq:s3cret@127.0.0.1:{port}/fleet");
    let out = van_hq(&["vans", "--database", &url]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains(&format!("127.0.0.1:{port}/fleet")), "{t}");
    assert!(!t.contains("s3cret"), "{t}");
}

on_both_stores!(keygen_enroll_serve_upload_vans_and_verify);
