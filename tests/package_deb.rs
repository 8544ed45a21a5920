//! The van's Debian package (docs/install.md) as dpkg sees it.
//!
//! cargo-deb packages the `vand` and `vanctl` this test run built (debug, default features: no
//! release build in the suite) with the metadata in Cargo.toml; dpkg-deb reads the package back
//! (files, modes, owners, control fields, conffiles); the maintainer scripts pass `sh -n` and
//! shellcheck; then dpkg installs it into a throwaway root (`--root` with chrootless scripts, the
//! way `DPKG_ROOT` bootstraps work): the user and groups, the enabled unit, the udev rule, no key
//! while the van id is the template's placeholder, the key (0600, owned by mtu) once it is set,
//! and a purge that keeps the journal.
//!
//! What the throwaway root does not show: starting vand and reloading udev (postinst skips both
//! under `DPKG_ROOT`; there is no systemd or udev in it), and `runuser -u mtu` (under `DPKG_ROOT`
//! the key is made as the caller, then handed to mtu). Run as a user other than root, owners are
//! not checked (postinst cannot chown; it says so).
//!
//! Opt-in (`cargo test --test package_deb -- --ignored`): the real package (`cargo deb -p mtu`: a release build
//! without the training HQ, several minutes) and checks it the same way, plus that its vand holds
//! no HQ code and refuses `[sync.training_hq]`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The version tools/test installs when cargo-deb is missing.
const CARGO_DEB: &str = "3.8.0";

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    text(&out)
}

/// `cargo deb …`; fails naming what to install when cargo-deb is missing.
fn cargo_deb() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo).args(["deb", "--version"]).output().unwrap();
    assert!(
        out.status.success(),
        "cargo-deb is missing: run tools/test, which installs it (cargo install --locked cargo-deb \
         --version {CARGO_DEB}):\n{}",
        text(&out)
    );
    let mut cmd = Command::new(cargo);
    cmd.arg("deb").current_dir(ROOT);
    cmd
}

/// Builds a package with cargo-deb from `vand` and `vanctl` copied into `dir/release/` (cargo-deb's
/// `--no-build` looks there when `CARGO_TARGET_DIR` is `dir`); `--fast` compression.
fn package_from(dir: &Path, vand: &Path, vanctl: &Path) -> PathBuf {
    let release = dir.join("release");
    std::fs::create_dir_all(&release).unwrap();
    for (from, name) in [(vand, "vand"), (vanctl, "vanctl")] {
        // A hard link where it can (the same target folder): no 100 MB copy per run.
        if std::fs::hard_link(from, release.join(name)).is_err() {
            std::fs::copy(from, release.join(name)).unwrap();
        }
    }
    let deb = dir.join("mtu.deb");
    ok(cargo_deb()
        .env("CARGO_TARGET_DIR", dir)
        .args(["-p", "mtu", "--no-build", "--fast", "--output"])
        .arg(&deb));
    deb
}

/// The package of this test run's binaries, built once for all tests in this file.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package_deb");
        let _ = std::fs::remove_dir_all(&dir);
        package_from(&dir, Path::new(env!("CARGO_BIN_EXE_vand")), Path::new(env!("CARGO_BIN_EXE_vanctl")))
    })
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = common::tool("dpkg-deb", "dpkg").args(args).arg(deb).output().unwrap();
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Every file and directory in the package: path → (`ls`-style mode, owner/group).
fn contents(deb: &Path) -> std::collections::BTreeMap<String, (String, String)> {
    dpkg_deb(&["--contents"], deb)
        .lines()
        .map(|l| {
            // "-rwxr-xr-x 0/0   16997656 2026-12-01 00:00 ./usr/bin/vand"
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].trim_start_matches('.').trim_end_matches('/').to_owned();
            (if path.is_empty() { "/".to_owned() } else { path }, (f[0].to_owned(), f[1].to_owned()))
        })
        .collect()
}

/// The files (not directories) the package must hold, with their modes; nothing else.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/vand", "-rwxr-xr-x"),
    ("/usr/bin/vanctl", "-rwxr-xr-x"),
    ("/etc/mtu/vand.toml", "-rw-r--r--"),
    ("/usr/lib/systemd/system/vand.service", "-rw-r--r--"),
    ("/usr/lib/udev/rules.d/99-mtu-van.rules", "-rw-r--r--"),
    ("/usr/lib/sysusers.d/mtu.conf", "-rw-r--r--"),
    ("/usr/share/doc/mtu/README.md", "-rw-r--r--"),
    ("/usr/share/doc/mtu/install.md", "-rw-r--r--"),
    ("/usr/share/doc/mtu/config.md", "-rw-r--r--"),
    ("/usr/share/doc/mtu/hardware.md", "-rw-r--r--"),
    ("/usr/share/doc/mtu/copyright", "-rw-r--r--"),
];

/// Package files that are copies of the repository's.
const COPIES: &[(&str, &str)] = &[
    ("/etc/mtu/vand.toml", "config/vand.toml"),
    ("/usr/lib/systemd/system/vand.service", "systemd/vand.service"),
    ("/usr/lib/udev/rules.d/99-mtu-van.rules", "hw/udev/99-mtu-van.rules"),
    ("/usr/lib/sysusers.d/mtu.conf", "pkg/debian/mtu.sysusers"),
    ("/usr/share/doc/mtu/install.md", "docs/install.md"),
];

fn check_contents(deb: &Path) {
    let all = contents(deb);
    let files: Vec<(&str, &str)> = all
        .iter()
        .filter(|(_, (m, _))| !m.starts_with('d'))
        .map(|(p, (m, _))| (p.as_str(), m.as_str()))
        .collect();
    let mut want = FILES.to_vec();
    want.sort();
    assert_eq!(files, want, "the package's files and modes");
    for (path, (mode, owner)) in &all {
        assert_eq!(owner, "0/0", "{path} is not root's");
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{path}");
        }
    }
    // No key, no HQ, no simulator (see the comment in Cargo.toml).
    assert!(!all.keys().any(|p| p.contains("van.key") || p.contains("van-hq") || p.contains("van-sim")));

    let dir = tempfile::tempdir().unwrap();
    ok(common::tool("dpkg-deb", "dpkg").arg("-x").arg(deb).arg(dir.path()));
    for (inside, repo) in COPIES {
        let got = std::fs::read(dir.path().join(inside.trim_start_matches('/'))).unwrap();
        assert!(got == std::fs::read(Path::new(ROOT).join(repo)).unwrap(), "{inside} differs from {repo}");
    }
    let copyright = std::fs::read_to_string(dir.path().join("usr/share/doc/mtu/copyright")).unwrap();
    assert!(copyright.contains("Apache-2.0"), "{copyright}");
}

fn check_control(deb: &Path) {
    let get = |name: &str| {
        let out = common::tool("dpkg-deb", "dpkg").arg("--field").arg(deb).arg(name).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(get("Package"), "mtu");
    assert_eq!(get("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let arch = ok(common::tool("dpkg", "dpkg").arg("--print-architecture"));
    assert_eq!(get("Architecture"), arch.trim());
    let depends = get("Depends");
    // cargo-deb's $auto (dpkg-shlibdeps on the binaries) plus systemd.
    assert!(depends.contains("libc6 (>= ") && depends.split(", ").any(|d| d == "systemd"), "{depends}");
    assert!(get("Maintainer").contains('<'), "a Maintainer with an address");
    assert!(get("Description").starts_with("Onboard software"));

    let info = dpkg_deb(&["--info"], deb);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(
            info.lines().any(|l| l.contains(" * ") && l.contains(script)),
            "{script} executable:\n{info}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    ok(common::tool("dpkg-deb", "dpkg").arg("-e").arg(deb).arg(dir.path()));
    // /etc files are conffiles: dpkg keeps a technician's edits on upgrades.
    assert_eq!(std::fs::read_to_string(dir.path().join("conffiles")).unwrap(), "/etc/mtu/vand.toml\n");
    for script in ["postinst", "prerm", "postrm"] {
        let path = dir.path().join(script);
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(!body.contains("#DEBHELPER#"), "{script}: cargo-deb left the token");
        assert!(body.contains("Automatically added by cargo-deb"), "{script}: no systemd fragment");
        ok(Command::new("sh").arg("-n").arg(&path));
        ok(common::tool("shellcheck", "shellcheck").args(["--shell=sh", "--severity=style"]).arg(&path));
    }
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    let sysusers =
        postinst.find("systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} mtu.conf").expect("sysusers");
    let enable = postinst.find("deb-systemd-helper enable vand.service").expect("enable");
    let keygen = postinst.find("elif keygen; then").expect("keygen");
    assert!(sysusers < enable && enable < keygen, "the user exists before the key is made");
    // Upgrades restart a running vand (no stop in prerm then); removal stops it; purge forgets it.
    assert!(postinst.contains("deb-systemd-invoke try-restart vand.service"));
    let prerm = std::fs::read_to_string(dir.path().join("prerm")).unwrap();
    assert!(prerm.contains("[ \"$1\" = remove ]; then\n\tdeb-systemd-invoke stop vand.service"), "{prerm}");
    let postrm = std::fs::read_to_string(dir.path().join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge vand.service"), "{postrm}");
}

#[test]
fn package_holds_what_it_should() {
    check_contents(deb());
}

#[test]
fn control_fields_conffiles_and_scripts() {
    check_control(deb());
}

/// A throwaway root dpkg can install into.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("var/lib/dpkg");
        std::fs::create_dir_all(db.join("info")).unwrap();
        std::fs::create_dir_all(db.join("updates")).unwrap();
        std::fs::write(db.join("status"), "").unwrap();
        std::fs::write(db.join("available"), "").unwrap();
        Root { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    /// `dpkg --root … <args>`, scripts run chrootless with `DPKG_ROOT` set; returns the output.
    fn dpkg(&self, args: &[&str]) -> String {
        let root = self.dir.path();
        let path = format!("/usr/sbin:/usr/bin:/sbin:/bin:{}", std::env::var("PATH").unwrap_or_default());
        let mut cmd = common::tool("dpkg", "dpkg");
        cmd.env("PATH", path)
            .env("DPKG_ROOT", root)
            .arg(format!("--root={}", root.display()))
            .args(["--log=/dev/null", "--force-script-chrootless", "--force-not-root", "--force-depends"])
            .args(args);
        for (tool, package) in
            [("systemd-sysusers", "systemd"), ("deb-systemd-helper", "init-system-helpers")]
        {
            let _ = common::tool(tool, package); // fail early, naming the package
        }
        ok(&mut cmd)
    }

    fn install(&self, deb: &Path) -> String {
        self.dpkg(&["--install", deb.to_str().unwrap()])
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn mode(&self, p: &str) -> u32 {
        std::fs::metadata(self.path(p)).unwrap().permissions().mode() & 0o7777
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn installs_into_a_throwaway_root_and_purge_keeps_the_journal() {
    let deb = deb();
    let root = Root::new();

    // 1. The template's placeholder id: the user, the unit and the rule, but no key.
    let out = root.install(deb);
    assert!(out.contains("NOT started") && out.contains("\"CHANGE-ME\""), "{out}");
    assert!(
        out.contains("dpkg-reconfigure mtu") && out.contains("vanctl --config /etc/mtu/vand.toml pubkey"),
        "{out}"
    );
    let passwd = root.read("/etc/passwd");
    let user =
        passwd.lines().find(|l| l.starts_with("mtu:")).unwrap_or_else(|| panic!("no mtu in\n{passwd}"));
    let f: Vec<&str> = user.split(':').collect();
    assert_eq!(
        (f[4], f[5], f[6]),
        ("Mobile traffic unit daemon", "/var/lib/mtu", "/usr/sbin/nologin"),
        "{user}"
    );
    let (uid, gid): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    assert!(uid < 1000, "a system user: {user}");
    let group = root.read("/etc/group");
    let members = |g: &str| {
        group
            .lines()
            .find(|l| l.starts_with(&format!("{g}:")))
            .map(|l| l.rsplit(':').next().unwrap().to_owned())
    };
    assert_eq!(members("mtu").as_deref(), Some(""), "{group}");
    assert!(group.contains(&format!("mtu:x:{gid}:")), "{group}");
    assert_eq!(members("dialout").as_deref(), Some("mtu"), "{group}");
    assert_eq!(members("gpio").as_deref(), Some("mtu"), "{group}");
    let wants = root.path("/etc/systemd/system/multi-user.target.wants/vand.service");
    assert_eq!(std::fs::read_link(&wants).unwrap(), Path::new("/usr/lib/systemd/system/vand.service"));
    assert_eq!(
        root.read("/usr/lib/udev/rules.d/99-mtu-van.rules"),
        std::fs::read_to_string(Path::new(ROOT).join("hw/udev/99-mtu-van.rules")).unwrap()
    );
    assert_eq!(root.mode("/etc/mtu"), 0o750);
    assert_eq!(root.mode("/etc/mtu/vand.toml"), 0o640);
    assert_eq!(root.mode("/var/lib/mtu"), 0o750);
    if is_root() {
        let conf = std::fs::metadata(root.path("/etc/mtu/vand.toml")).unwrap();
        assert_eq!((conf.uid(), conf.gid()), (0, gid), "root:mtu");
        let state = std::fs::metadata(root.path("/var/lib/mtu")).unwrap();
        assert_eq!((state.uid(), state.gid()), (uid, gid));
    }
    assert!(!root.path("/var/lib/mtu/van.key").exists(), "a key for the placeholder van");

    // 2. The technician sets the id and reinstalls (as `dpkg-reconfigure mtu` would run postinst):
    // the edit survives (a conffile) and the key and journal are made, 0600, owned by mtu.
    let conf = root.read("/etc/mtu/vand.toml").replace("id = \"CHANGE-ME\"", "id = \"MTU-GIZ-0042\"");
    std::fs::write(root.path("/etc/mtu/vand.toml"), &conf).unwrap();
    let out = root.install(deb);
    assert!(!out.contains("NOT started"), "{out}");
    assert!(out.contains("public key: "), "keygen's answer:\n{out}");
    assert!(root.read("/etc/mtu/vand.toml").contains("id = \"MTU-GIZ-0042\""), "the edit was kept");
    let key = root.path("/var/lib/mtu/van.key");
    assert_eq!(root.mode("/var/lib/mtu/van.key"), 0o600);
    assert!(root.path("/var/lib/mtu/journal.db").is_file());
    if is_root() {
        let m = std::fs::metadata(&key).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "the key is mtu's");
        let j = std::fs::metadata(root.path("/var/lib/mtu/journal.db")).unwrap();
        assert_eq!(j.uid(), uid, "the journal is mtu's");
    }
    let key_bytes = std::fs::read(&key).unwrap();

    // 3. An upgrade (the same package again) keeps the key.
    let out = root.install(deb);
    assert!(!out.contains("public key: "), "a second key:\n{out}");
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);

    // 4. Purge: the conffile, the unit's enable link and the package's files go; the journal,
    // the key and the user stay.
    let out = root.dpkg(&["--purge", "mtu"]);
    assert!(out.contains("kept /var/lib/mtu"), "{out}");
    assert!(!root.path("/etc/mtu/vand.toml").exists());
    assert!(!root.path("/usr/bin/vand").exists());
    assert!(std::fs::symlink_metadata(&wants).is_err(), "vand.service still enabled");
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    assert!(root.path("/var/lib/mtu/journal.db").is_file());
    assert!(root.read("/etc/passwd").contains("mtu:x:"));
}

/// The real package (release, no training HQ) checked like the test one: opt-in, a release build.
#[test]
#[ignore = "a release build (minutes): cargo test --test package_deb -- --ignored"]
fn release_package_without_the_training_hq() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package_deb-release");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let deb = dir.join("mtu.deb");
    // Built as docs/install.md says, in a target folder of its own (this test's `cargo test` may
    // hold the lock of the normal one), kept between runs so later ones are incremental.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package_deb-release-target");
    ok(cargo_deb().env("CARGO_TARGET_DIR", &target).args(["-p", "mtu", "--locked", "--output"]).arg(&deb));
    check_contents(&deb);
    check_control(&deb);

    let x = dir.join("x");
    ok(common::tool("dpkg-deb", "dpkg").arg("-x").arg(&deb).arg(&x));
    let vand = x.join("usr/bin/vand");
    // No HQ code: van-hq's source paths (in its panic locations) appear in a default build's vand.
    let bytes = std::fs::read(&vand).unwrap();
    assert!(!bytes.windows(14).any(|w| w == b"crates/van-hq/"), "van-hq code in the package's vand");
    let default_build = std::fs::read(env!("CARGO_BIN_EXE_vand")).unwrap();
    assert!(default_build.windows(14).any(|w| w == b"crates/van-hq/"), "the check above cannot fail");

    // The embedded simulation config has [sync.training_hq]: this vand refuses it, naming the key,
    // and does not start (an error, not a panic).
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(&vand)
        .current_dir(work.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) if line.contains("sync.training_hq: this build of vand has no training HQ") => {
                break true;
            }
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(found, "no training-HQ error from the package's vand:\n{}", seen.join("\n"));
    assert_eq!(status.code(), Some(2), "the package's vand must stop with an error: {status:?}");
    assert!(!seen.iter().any(|l| l.contains("panicked")), "{}", seen.join("\n"));
}
