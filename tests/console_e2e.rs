//! The officer console end to end in a real headless Chromium (Debian's `chromium` package),
//! driven over the DevTools protocol, against the real `vand` and `van-sim`: log in, open the
//! shift, serve a booked vehicle licence renewal with its inspection and e-sticker, meet a card
//! printer fault injected with `van-sim ctl fault` and recover, reload mid-service and continue,
//! meet a mains loss and an opened equipment box (the simulated GPIO's state file) with their
//! live banners, refusals and the supervisor's clear, a supervisor voids a service and closes
//! the shift. Every screen is photographed in Arabic and
//! English under `target/console-screenshots/`; right-to-left layout and the display order of
//! national IDs, plates and transaction numbers are checked in the rendered page.
//!
//! One browser for the whole binary (one test), with its own profile in a temporary directory.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::rig::Rig;
use mtu::devices::gpio::{Input, write_sim_state};
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A headless Chromium with its own profile, killed on drop.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let exe = std::env::var("MTU_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--headless",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-port=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: prctl only, between fork and exec: the browser dies with this test even when
        // the test is killed before its Drop runs.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start `{exe}` ({e}): run tools/test, which installs the Debian package chromium")
        });
        let mut child = child;
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = Instant::now();
        let port = loop {
            let line = lines.next().unwrap_or_else(|| panic!("chromium exited before listening")).unwrap();
            if let Some(rest) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                break rest.split('/').next().unwrap().parse::<u16>().unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(60), "chromium did not start");
        };
        std::thread::spawn(move || lines.for_each(drop));
        Browser { child, port, _profile: profile }
    }

    fn page(&self) -> Page {
        let list = http_get(self.port, "/json/list");
        let targets: Value = serde_json::from_slice(&list).unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tungstenite::connect(url.as_str()).unwrap();
        let mut p = Page { ws, next: 0, shots: shots_dir() };
        p.call("Page.enable", json!({}));
        p.call("Runtime.enable", json!({}));
        // Every document of this tab records script errors and Content-Security-Policy violations
        // in its session storage (which survives reloads); the test ends by reading them.
        p.call("Page.addScriptToEvaluateOnNewDocument", json!({"source": PROBLEM_LOG}));
        p.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        );
        p
    }
}

const PROBLEM_LOG: &str = "(() => {
  const log = (kind, what) => { try {
    const a = JSON.parse(sessionStorage.getItem('test.problems') || '[]');
    a.push(kind + ': ' + what + ' @ ' + location.hash);
    sessionStorage.setItem('test.problems', JSON.stringify(a));
  } catch (e) { /* about:blank has no storage */ } };
  document.addEventListener('securitypolicyviolation', (e) => log('csp', e.violatedDirective + ' ' + e.blockedURI));
  window.addEventListener('error', (e) => log('error', e.message));
  window.addEventListener('unhandledrejection', (e) => log('unhandled rejection', String(e.reason)));
})()";

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> Vec<u8> {
    let (head, body) = http_raw(port, path);
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body
}

/// One GET; the body is read up to its `Content-Length` (Chromium's DevTools server keeps the
/// connection open whatever the request says).
fn http_raw(port: u16, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&resp[..split]).into_owned();
            let len = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if len.is_some_and(|n| resp.len() >= split + n) {
                return (head, resp[split..split + len.unwrap()].to_vec());
            }
        }
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            let split = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
            return (String::from_utf8_lossy(&resp[..split]).into_owned(), resp[split..].to_vec());
        }
        resp.extend_from_slice(&buf[..n]);
    }
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots");
    // This run's screens only.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One tab, spoken to over its DevTools WebSocket.
struct Page {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    shots: PathBuf,
}

const WAIT: Duration = Duration::from_secs(60);

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws
            .send(Message::text(json!({"id": id, "method": method, "params": params}).to_string()))
            .unwrap();
        loop {
            let msg = self.ws.read().unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page (promises awaited) and answers its JSON value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy; on timeout saves a screenshot and fails with the page's text.
    fn wait(&mut self, expr: &str) {
        let started = Instant::now();
        loop {
            let v = self.eval(&format!("!!({expr})"));
            if v == json!(true) {
                return;
            }
            if started.elapsed() > WAIT {
                self.shot("FAILED");
                let text = self.eval("document.body.innerText");
                panic!("waited {WAIT:?} for `{expr}`; the page says:\n{}", text.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reloads the page and waits until the new document has rendered.
    fn reload(&mut self) {
        self.eval("window.__stale = true");
        self.call("Page.reload", json!({}));
        self.wait("!window.__stale && document.readyState === 'complete' && document.body.dataset.ready");
    }

    fn screen(&mut self, name: &str) {
        self.wait(&format!(
            "document.body.dataset.screen === '{name}' && !document.querySelector('#main:empty')"
        ));
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait("document.readyState === 'complete' && document.body.dataset.ready");
    }

    /// A real mouse click in the middle of the first element matching `sel` (scrolled into
    /// view); buttons must be touch-sized (at least 44 × 44 CSS pixels).
    fn click(&mut self, sel: &str) {
        // The element must be the one under the pointer (not covered, not being replaced).
        let started = Instant::now();
        let r = loop {
            self.wait(&format!("document.querySelector({sel:?})"));
            let r = self.eval(&format!(
                "(() => {{ const e = document.querySelector({sel:?}); e.scrollIntoView({{block: 'center'}});
                   const r = e.getBoundingClientRect(); const x = r.x + r.width / 2, y = r.y + r.height / 2;
                   const h = document.elementFromPoint(x, y);
                   return [x, y, r.width, r.height, e.tagName, !!h && (h === e || e.contains(h)) && !e.disabled]; }})()"
            ));
            if r[5] == json!(true) {
                break r;
            }
            if started.elapsed() > WAIT {
                self.shot("FAILED");
                panic!("{sel} never became clickable: {r}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (x, y, w, h) =
            (r[0].as_f64().unwrap(), r[1].as_f64().unwrap(), r[2].as_f64().unwrap(), r[3].as_f64().unwrap());
        if r[4] == "BUTTON" {
            assert!(w >= 44.0 && h >= 44.0, "{sel} is {w}×{h} px, too small to touch");
        }
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Types `text` into the input `sel` as a keyboard would (replacing what was there), then
    /// leaves the field (which fires `change`).
    fn type_in(&mut self, sel: &str, text: &str) {
        self.wait(&format!("document.querySelector({sel:?})"));
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel:?}); e.focus(); e.select(); }})()"
        ));
        self.call("Input.insertText", json!({"text": text}));
        self.eval("document.activeElement.blur()");
    }

    /// Clicks `sel` and waits until the console has rendered again.
    fn click_render(&mut self, sel: &str) {
        let before = self.eval("document.body.dataset.ready");
        self.click(sel);
        self.wait(&format!("document.body.dataset.ready !== {before}"));
    }

    fn text(&mut self, sel: &str) -> String {
        self.wait(&format!("document.querySelector({sel:?})"));
        self.eval(&format!("document.querySelector({sel:?}).innerText")).as_str().unwrap().to_owned()
    }

    fn shot(&mut self, name: &str) {
        // The whole page: the window is made as tall as the page for the picture (capturing
        // beyond the viewport draws right-to-left pages shifted), then set back to the tablet's.
        let h = self.eval("document.documentElement.scrollHeight").as_f64().unwrap().max(800.0);
        let metrics = |h: f64| json!({"width": 1280, "height": h, "deviceScaleFactor": 1, "mobile": false});
        self.call("Emulation.setDeviceMetricsOverride", metrics(h));
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        self.call("Emulation.setDeviceMetricsOverride", metrics(800.0));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Photographs the current screen in Arabic, then in English (checking the direction flips),
    /// and returns to Arabic.
    fn shots(&mut self, name: &str) {
        self.shots_checked(name, |_, _| {});
    }

    /// As [`Page::shots`], running `check` on the screen in each language (`"ar"`, `"en"`) first.
    fn shots_checked(&mut self, name: &str, mut check: impl FnMut(&mut Page, &str)) {
        self.wait("document.documentElement.lang === 'ar'");
        check(self, "ar");
        self.shot_checked(&format!("{name}-ar"));
        self.click_render("#lang");
        self.wait("document.documentElement.lang === 'en' && document.documentElement.dir === 'ltr'");
        check(self, "en");
        self.shot_checked(&format!("{name}-en"));
        self.click_render("#lang");
        self.wait("document.documentElement.lang === 'ar' && document.documentElement.dir === 'rtl'");
    }

    /// One photograph of the screen as it is, after the checks every screen gets.
    fn shot_checked(&mut self, name: &str) {
        self.assert_fits(name);
        self.assert_touch_sized(name);
        self.shot(name);
    }

    /// Nothing sticks out sideways: the tablet never scrolls horizontally.
    fn assert_fits(&mut self, name: &str) {
        let w = self.eval("[document.documentElement.scrollWidth, window.innerWidth]");
        if w[0].as_f64() > w[1].as_f64() {
            self.shot(&format!("{name}-TOO-WIDE"));
            panic!("{name}: the page is {} px wide in a {} px window", w[0], w[1]);
        }
    }

    /// Every button shown is touch-sized (at least 44 × 44 CSS pixels), tapped or not.
    fn assert_touch_sized(&mut self, name: &str) {
        let small = self.eval(
            "[...document.querySelectorAll('button')].filter((b) => b.getClientRects().length)
               .map((b) => [b.dataset.act || b.id, b.getBoundingClientRect()])
               .filter(([, r]) => r.width < 44 || r.height < 44)
               .map(([a, r]) => `${a} ${r.width}×${r.height}`)",
        );
        assert_eq!(small, json!([]), "{name}: buttons too small to touch");
    }

    /// The alarm banner's line `which` (`power`, `tamper`, `tamper-open`) reads the catalogue's
    /// message `key` in the page's language.
    fn assert_alarm_reads(&mut self, which: &str, key: &str) {
        let lang = self.eval("document.documentElement.lang").as_str().unwrap().to_owned();
        let sel = format!("#alarm:not([hidden]) [data-alarm={which}]");
        self.wait(&format!("document.querySelector('{sel}')"));
        let want = message(&lang, key);
        // The banner is redrawn with the language: wait for it rather than for GET /alarms.
        self.wait(&format!("document.querySelector('{sel}').innerText.trim() === {want:?}"));
    }

    /// The characters of the first element matching `sel` appear left to right on screen in the
    /// order they were typed (no bidi reordering), judged by each character's rendered box.
    fn assert_shows_as_typed(&mut self, sel: &str, typed: &str) {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel:?}); const n = e.firstChild; const out = [];
               for (let i = 0; i < n.length; i++) {{ const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
                 const b = r.getBoundingClientRect(); out.push([n.data[i], b.left, b.width]); }}
               return [e.innerText, out]; }})()"
        ));
        let shown = v[0].as_str().unwrap();
        let latin = latin_digits(shown);
        assert_eq!(latin, typed, "{sel} reads {shown:?}");
        // Each visible character starts to the right of the previous one.
        let boxes: Vec<(String, f64)> = v[1]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[0] != " " && c[2].as_f64().unwrap() > 0.0)
            .map(|c| (c[0].as_str().unwrap().to_owned(), c[1].as_f64().unwrap()))
            .collect();
        assert!(boxes.len() >= 3, "{sel}: {v}");
        for w in boxes.windows(2) {
            assert!(w[1].1 > w[0].1, "{sel} ({typed}) is reordered on screen: {:?} then {:?}", w[0], w[1]);
        }
    }
}

/// `text` with Arabic-Indic digits written as ASCII digits.
fn latin_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            c => c,
        })
        .collect()
}

/// The console's message `key` in `lang`, as its catalogue writes it (these have no digits).
fn message(lang: &str, key: &str) -> String {
    let text = match lang {
        "ar" => include_str!("../console/messages/ar.json"),
        "en" => include_str!("../console/messages/en.json"),
        other => panic!("no catalogue {other}"),
    };
    let v: Value = serde_json::from_str(text).unwrap();
    v[key].as_str().unwrap_or_else(|| panic!("{key} not in {lang}.json")).to_owned()
}

/// Sets a simulated GPIO input through the state file vand reads (`van-sim gpio` writes it).
fn gpio(rig: &Rig, line: Input, active: bool) {
    write_sim_state(&rig.var().join("gpio-sim.json"), line, active).unwrap();
}

fn sim_ctl(rig: &Rig, line: &[&str]) {
    let sock = rig.var().join("sim.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_van-sim"))
        .args(["--control", sock.to_str().unwrap(), "ctl"])
        .args(line)
        .output()
        .unwrap();
    assert!(out.status.success(), "van-sim ctl {line:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn login(p: &mut Page, id: &str, pin: &str) {
    p.screen("login");
    p.type_in("input[name=officer_id]", id);
    p.type_in("input[name=pin]", pin);
    p.click("[data-act=login]");
    p.screen("bookings");
}

fn logout(p: &mut Page) {
    p.click("#logout");
    p.screen("login");
}

/// Opens the service for booking `nn` from the bookings screen and records a passing inspection
/// if asked; answers the transaction id once fees are quoted.
fn open_booking(p: &mut Page, nn: &str) -> String {
    p.click("[data-nav=bookings]");
    p.screen("bookings");
    p.click(&format!("[data-booking$='-{nn}'] [data-act=serve]"));
    p.screen("new");
    p.click("[data-act=open-service]");
    p.screen("txn");
    p.wait("document.querySelector('[data-txn-state]')");
    if p.eval("document.querySelector('[data-txn-state]').dataset.txnState") == "open" {
        p.wait("document.querySelector('[data-form=inspection] input[name=check]')");
        p.shots("07-inspection");
        p.click("[data-act=inspect]");
    }
    p.wait("document.querySelector('[data-txn-state=quoted]')");
    p.eval("decodeURIComponent(location.hash.split('/')[2])").as_str().unwrap().to_owned()
}

#[test]
fn the_console_serves_a_day_in_a_real_browser() {
    // Devices at a fifth of their real pace: payment prompts and print progress can be seen.
    let mut rig = Rig::with_timing_scale("0.2");
    // A mains loss is ridden through for as long as the screens below take (docs/config.md):
    // vand must refuse new services, not stop.
    let text = std::fs::read_to_string(&rig.config).unwrap();
    assert!(
        text.contains("hold_up_s = 60") && text.contains("ride_through_s = 10"),
        "config/sim.toml has [power]"
    );
    let text = text
        .replace("hold_up_s = 60", "hold_up_s = 900")
        .replace("ride_through_s = 10", "ride_through_s = 600");
    std::fs::write(&rig.config, text).unwrap();
    rig.start(None);
    let base = format!("http://127.0.0.1:{}/", rig.port);

    // The page carries its Content-Security-Policy; the API does not serve the console's files elsewhere.
    let (head, body) = http_raw(rig.port, "/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("<html dir=\"rtl\" lang=\"ar\">"));
    let (head, _) = http_raw(rig.port, "/console/nope.js");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    let browser = Browser::launch();
    let mut p = browser.page();
    p.goto(&base);
    p.screen("login");
    println!("first screen usable after {} ms", p.eval("document.body.dataset.firstScreenMs"));
    // Right to left by default.
    assert_eq!(
        p.eval("[document.documentElement.dir, document.documentElement.lang, getComputedStyle(document.body).direction]"),
        json!(["rtl", "ar", "rtl"])
    );
    // A training van lists its sample officers on the login screen (GET /van says training).
    p.wait("document.querySelector('[data-role=sample-officers]')");
    p.shots("01-login");

    // A wrong PIN: the API's own Arabic words, not a generic failure.
    p.type_in("input[name=officer_id]", "1001");
    p.type_in("input[name=pin]", "0000");
    p.click("[data-act=login]");
    p.wait("document.querySelector('[data-form=login] .field-error:not([hidden]), [data-form=login] [data-role=error]:not([hidden])')");
    let (_, wrong) =
        rig.http("POST", "/session", None, Some(&json!({"officer_id": "1002", "pin": "0000"}))).unwrap();
    let shown = latin_digits(&p.text("[data-form=login]"));
    assert!(shown.contains(wrong["error"]["ar"].as_str().unwrap()), "{shown} vs {wrong}");
    p.shots("02-login-error");
    p.type_in("input[name=officer_id]", "1001");
    p.type_in("input[name=pin]", "1234");
    p.click("[data-act=login]");
    p.screen("bookings");
    p.wait("document.querySelectorAll('[data-list=bookings] > li').length >= 9");
    p.wait("document.querySelector('[data-role=no-shift]')");
    p.shots("03-bookings-no-shift");

    // National IDs and plates show as typed, in either digit style.
    let t = rig.login("1001", "1234");
    let (_, bookings) = rig.call("GET", "/bookings", &t, None);
    let b01 = bookings
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["booking"]["id"].as_str().unwrap().ends_with("-01"))
        .unwrap();
    let nid = b01["booking"]["citizen"]["national_id"].as_str().unwrap().to_owned();
    let digits = b01["booking"]["dossier"]["vehicle"]["plate"]["digits"].as_str().unwrap().to_owned();
    let row = "[data-booking$='-01']";
    p.assert_shows_as_typed(&format!("{row} .nid"), &nid);
    p.click_render("#digits");
    p.wait(&format!("!/[٠-٩]/.test(document.querySelector(\"{row} .nid\").innerText)"));
    p.assert_shows_as_typed(&format!("{row} .nid"), &nid);
    p.assert_shows_as_typed(&format!("{row} .plate-digits"), &digits);
    assert!(p.text(&format!("{row} .plate")).ends_with(&digits));
    p.click_render("#digits");
    p.wait(&format!("/[٠-٩]/.test(document.querySelector(\"{row} .nid\").innerText)"));
    // The line reads name, then national ID: from the right in Arabic, from the left in English.
    let order = format!(
        "(() => {{ const x = (s) => document.querySelector(\"{row} \" + s).getBoundingClientRect().left;
           return [x('.what bdi'), x('.nid')]; }})()"
    );
    let xs = p.eval(&order);
    assert!(xs[0].as_f64() > xs[1].as_f64(), "Arabic line order: {xs}");
    p.click_render("#lang");
    let xs = p.eval(&order);
    assert!(xs[0].as_f64() < xs[1].as_f64(), "English line order: {xs}");
    p.click_render("#lang");

    // A citizen arrives; another does not come (a reason is asked for).
    p.click("[data-booking$='-02'] [data-act=arrived]");
    p.wait("document.querySelector(\"[data-booking$='-02'] [data-state=arrived]\")");
    p.click("[data-booking$='-11'] [data-act=no-show]");
    p.wait("document.querySelector('dialog[open] textarea[name=reason]')");
    p.type_in("dialog textarea[name=reason]", "لم يحضر حتى نهاية الموعد");
    p.click("dialog [data-act=confirm]");
    p.wait("document.querySelector(\"[data-booking$='-11'] [data-state=no_show]\")");
    let (_, b11) = rig.call("GET", "/bookings", &t, None);
    let b11 = b11
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["booking"]["id"].as_str().unwrap().ends_with("-11"))
        .unwrap()
        .clone();
    assert_eq!(b11["state"], "no_show", "{b11}");

    // Open the shift: a count that is not a number is refused next to its field.
    p.click("[data-act=go-shift]");
    p.screen("shift");
    p.type_in("input[name=cards]", "خمسون");
    p.type_in("input[name=labels]", "٥٠");
    p.type_in("input[name=tags]", "50");
    p.click("[data-act=shift-open]");
    p.wait("document.querySelector('.field-error[data-for=\"stock.cards\"]:not([hidden])')");
    p.shots("04-shift-open-error");
    p.type_in("input[name=cards]", "50");
    p.type_in("input[name=labels]", "٥٠");
    p.type_in("input[name=tags]", "50");
    p.click("[data-act=shift-open]");
    p.wait("document.querySelector('#main dl')");
    p.shots("05-shift-open");

    // Booking 01, a vehicle licence renewal: the form, with a bad national ID caught inline.
    p.click("[data-nav=bookings]");
    p.screen("bookings");
    p.click("[data-booking$='-01'] [data-act=serve]");
    p.screen("new");
    p.type_in("input[name=national_id]", "29002300101234");
    p.wait("document.querySelector('.field-error[data-for=\"citizen.national_id\"]:not([hidden])')");
    let err = p.text(".field-error[data-for=\"citizen.national_id\"]");
    assert!(err.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)), "Arabic field error: {err}");
    p.shots("06-service-form-error");
    p.type_in("input[name=national_id]", &nid);
    p.wait("document.querySelector('.field-error[data-for=\"citizen.national_id\"][hidden]')");

    // Mains is lost (the UPS's power-fail input): the banner comes over the event stream, with
    // no reload and no re-render, and the van's refusal of a new service shows in its own words.
    let mut req = json!({"service": b01["booking"]["service"], "booking_id": b01["booking"]["id"],
        "citizen": b01["booking"]["citizen"], "vehicle": b01["booking"]["dossier"]["vehicle"]});
    req["citizen"]["national_id"] = json!(nid);
    let booking_id = b01["booking"]["id"].as_str().unwrap().to_owned();
    let ready = p.eval("window.__sameDocument = true; document.body.dataset.ready");
    gpio(&rig, Input::PowerFail, true);
    p.assert_alarm_reads("power", "alarm.power_failing");
    assert_eq!(p.eval("[window.__sameDocument, document.body.dataset.ready]"), json!([true, ready]));
    let (code, refusal) = rig.call("POST", "/services", &t, Some(&req));
    assert_eq!((code, refusal["error"]["code"].as_str()), (503, Some("power.failing")), "{refusal}");
    for lang in ["ar", "en"] {
        if lang == "en" {
            p.click_render("#lang");
            p.wait("document.documentElement.lang === 'en' && document.documentElement.dir === 'ltr'");
            p.assert_alarm_reads("power", "alarm.power_failing");
        }
        p.click("[data-act=open-service]");
        p.wait("document.querySelector('[data-form=service] [data-role=error]:not([hidden]) .code')");
        let shown = latin_digits(&p.text("[data-form=service] [data-role=error]"));
        let said = refusal["error"][lang].as_str().unwrap();
        assert!(shown.contains(said) && shown.contains("power.failing"), "{lang}: {shown:?} vs {said:?}");
        assert_eq!(p.eval("location.hash.startsWith('#/new/')"), json!(true), "no service opened");
        p.assert_shows_as_typed(".booking-id", &booking_id);
        p.shot_checked(&format!("06b-power-fail-{lang}"));
    }
    p.click_render("#lang");
    p.wait("document.documentElement.lang === 'ar' && document.documentElement.dir === 'rtl'");
    // Mains is back within the ride-through: the banner goes, live, and the service opens.
    gpio(&rig, Input::PowerFail, false);
    p.wait("document.getElementById('alarm').hidden && !document.querySelector('[data-alarm]')");
    p.click("[data-act=open-service]");
    p.screen("txn");
    // Its inspection is on record (10 days old): fees are quoted at once.
    p.wait("document.querySelector('[data-txn-state=quoted] [data-role=total]')");
    let txn = p.eval("decodeURIComponent(location.hash.split('/')[2])").as_str().unwrap().to_owned();
    assert!(txn.contains('-'), "{txn}");
    p.assert_shows_as_typed(".txn-head .txn-id", &txn);
    p.shots("08-quote");

    // The card printer's ribbon ends: the devices screen shows it live, with what to do.
    sim_ctl(&rig, &["fault", "card", "ribbon_ended"]);
    p.click("[data-nav=devices]");
    p.screen("devices");
    p.wait("document.querySelector('[data-device=card] [data-fault=\"card.ribbon_ended\"]')");
    p.wait("document.querySelector('[data-nav=devices].alert')");
    p.shots("09-devices-fault");
    // Paying now: the van refuses before charging or the card step fails after payment;
    // either way the console says which device and what to do.
    p.call("Page.navigate", json!({"url": format!("{base}#/txn/{txn}")}));
    p.screen("txn");
    p.click("[data-act=proceed]");
    p.wait(
        "document.querySelector('[data-role=error]:not([hidden]) .code') \
         || document.querySelector('[data-step=card] [data-fault]')",
    );
    let shown = p.eval("document.querySelector('#main').innerText").as_str().unwrap().to_owned();
    assert!(shown.contains("ribbon") || shown.contains("شريط"), "{shown}");
    p.shots("10-txn-fault");
    sim_ctl(&rig, &["clear", "card"]);
    p.click("[data-nav=devices]");
    p.screen("devices");
    p.wait("document.querySelector('[data-device=card][data-device-state=connected]')");
    p.shots("11-devices");
    p.call("Page.navigate", json!({"url": format!("{base}#/txn/{txn}")}));
    p.screen("txn");
    p.wait("document.querySelector('[data-act=proceed]')");
    p.click("[data-act=proceed]");
    // Live: the page follows the workflow over server-sent events to the end, no reload.
    p.wait("document.querySelector('[data-txn-state=completed] [data-role=receipt][data-pdf-bytes]')");
    let v = rig.call("GET", &format!("/services/{txn}"), &t, None).1;
    assert_eq!(v["state"], "completed", "{v}");
    let steps: Vec<&str> =
        v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["payment", "card"], "{v}");
    let receipt = v["receipt_no"].as_str().unwrap();
    p.assert_shows_as_typed("[data-role=receipt] .receipt-no", receipt);
    // A masked card number between Arabic-Indic digits is the classic bidi trap.
    p.assert_shows_as_typed("[data-role=steps] .pan", v["payment"]["masked_pan"].as_str().unwrap());
    // An officer is not offered the void.
    assert_eq!(p.eval("!!document.querySelector('[data-act=void]')"), json!(false));
    // Chromium's PDF viewer draws the receipt (with its QR code) a moment after the frame loads.
    std::thread::sleep(Duration::from_millis(1500));
    p.shots("12-done-receipt");
    // Re-drawing the screen (the language switch above) does not ask the van for a second copy.
    assert_eq!(
        p.eval("!!document.querySelector('[data-role=receipt] .error, [data-role=receipt] .notice')"),
        json!(false)
    );

    // Reload mid-service: the workflow lives in the daemon, the page picks it up again.
    // Booking 04, the same vehicle's e-sticker: the tag is encoded and its label printed.
    let txn_sticker = open_booking(&mut p, "04");
    let seen = p.eval("Number(document.body.dataset.progressEvents || 0)").as_u64().unwrap();
    p.click("[data-act=proceed]");
    // The terminal's prompts arrive over the event stream and are shown in the payment step.
    p.wait("document.querySelector('[data-step=payment][data-step-state=running] [data-progress]')?.innerText.length > 0");
    p.shots("13-payment-progress");
    p.wait(&format!("Number(document.body.dataset.progressEvents || 0) > {seen}"));
    p.wait("document.querySelector('[data-txn-state=completed] [data-role=receipt][data-pdf-bytes]')");
    p.wait("document.querySelector('[data-step=tag][data-step-state=done]') && document.querySelector('[data-step=label][data-step-state=done]')");
    let v = rig.call("GET", &format!("/services/{txn_sticker}"), &t, None).1;
    assert_eq!(v["state"], "completed", "{v}");
    p.shots("14-e-sticker-done");
    let shown = p.eval("Number(document.body.dataset.progressEvents)").as_u64().unwrap();
    assert!(shown > seen + 2, "progress events reached the page: {seen} then {shown}");

    // Booking 09, a technical inspection: the checklist, then the fees.
    let txn2 = open_booking(&mut p, "09");
    let v2 = rig.call("GET", &format!("/services/{txn2}"), &t, None).1;
    assert_eq!(v2["inspection"]["passed"], true, "{v2}");
    p.reload();
    p.screen("txn");
    p.wait("document.querySelector('[data-txn-state=quoted]')");
    assert_eq!(p.eval("decodeURIComponent(location.hash.split('/')[2])"), json!(txn2));
    p.click("[data-act=proceed]");
    p.wait("!document.querySelector('[data-txn-state=quoted]')");
    p.reload();
    p.screen("txn");
    p.wait("document.querySelector('[data-txn-state=completed]')");

    p.click("[data-nav=services]");
    p.screen("services");
    p.wait(&format!("document.querySelector('[data-txn=\"{txn}\"]')"));
    p.shots("15-services");
    p.click("[data-nav=sync]");
    p.screen("sync");
    // The training van syncs with its local HQ: the screen shows the uplink, not "unavailable".
    p.wait("document.querySelector('[data-role=sync]')");
    assert!(p.text("[data-role=sync]").len() > 10, "{}", p.text("[data-role=sync]"));
    p.shots("16-sync");

    // The equipment box is opened: the tamper banner comes live (no reload, no re-render), and
    // an ordinary officer is not offered to clear it.
    let ready = p.eval("window.__sameDocument = true; document.body.dataset.ready");
    gpio(&rig, Input::Tamper, true);
    p.assert_alarm_reads("tamper", "alarm.tamper");
    p.assert_alarm_reads("tamper-open", "alarm.tamper_open");
    assert_eq!(p.eval("[window.__sameDocument, document.body.dataset.ready]"), json!([true, ready]));
    p.shots_checked("16b-tamper-officer", |p, _| {
        p.assert_alarm_reads("tamper", "alarm.tamper");
        assert_eq!(p.eval("!!document.querySelector('[data-act=tamper-clear]')"), json!(false), "officer");
    });

    // A supervisor: supervisor functions are refused with the tamper message until the alarm
    // is cleared, and clearing it is refused while the box is still open.
    logout(&mut p);
    assert_eq!(p.eval("document.getElementById('alarm').hidden"), json!(true), "no alarm shown logged out");
    login(&mut p, "9001", "9999");
    let sup = rig.login("9001", "9999");
    p.call("Page.navigate", json!({"url": format!("{base}#/txn/{txn}")}));
    p.screen("txn");
    p.shots_checked("17a-tamper-supervisor", |p, _| {
        p.assert_alarm_reads("tamper", "alarm.tamper");
        p.assert_alarm_reads("tamper-open", "alarm.tamper_open");
        p.wait("document.querySelector('#alarm [data-act=tamper-clear]')");
        p.assert_shows_as_typed(".txn-head .txn-id", &txn);
    });
    let void = json!({"reason": "خطأ في بيانات المواطن"});
    let (code, latched) = rig.call("POST", &format!("/services/{txn}/void"), &sup, Some(&void));
    assert_eq!((code, latched["error"]["code"].as_str()), (409, Some("tamper.latched")), "{latched}");
    let clear = json!({"reason": "الختم سليم"});
    let (code, open) = rig.call("POST", "/tamper/clear", &sup, Some(&clear));
    assert_eq!((code, open["error"]["code"].as_str()), (409, Some("tamper.switch_open")), "{open}");
    // Each refusal in the dialog, in the van's words, in Arabic then English.
    let refused = |p: &mut Page, tap: &str, name: &str, refusal: &Value| {
        for lang in ["ar", "en"] {
            if lang == "en" {
                p.click_render("#lang");
                p.wait("document.documentElement.lang === 'en' && document.documentElement.dir === 'ltr'");
            }
            p.click(tap);
            p.type_in("dialog textarea[name=reason]", "الختم سليم");
            p.click("dialog [data-act=confirm]");
            p.wait("document.querySelector('dialog[open] [data-role=error]:not([hidden]) .code')");
            let shown = latin_digits(&p.text("dialog[open] [data-role=error]"));
            let said = refusal["error"][lang].as_str().unwrap();
            let code = refusal["error"]["code"].as_str().unwrap();
            assert!(shown.contains(said) && shown.contains(code), "{lang}: {shown:?} vs {said:?}");
            p.shot_checked(&format!("{name}-{lang}"));
            p.click("dialog [data-act=dismiss]");
        }
        p.click_render("#lang");
        p.wait("document.documentElement.lang === 'ar' && document.documentElement.dir === 'rtl'");
    };
    refused(&mut p, "[data-act=void]", "17b-tamper-void-refused", &latched);
    refused(&mut p, "#alarm [data-act=tamper-clear]", "17c-tamper-clear-open", &open);
    // The box is closed: the banner says so live; the supervisor clears the alarm with what the
    // check found, and the banner goes.
    gpio(&rig, Input::Tamper, false);
    p.wait("document.querySelector('[data-alarm=tamper]') && !document.querySelector('[data-alarm=tamper-open]')");
    p.click("#alarm [data-act=tamper-clear]");
    p.type_in("dialog textarea[name=reason]", "الختم سليم");
    p.click("dialog [data-act=confirm]");
    p.wait("!document.querySelector('dialog[open]') && document.getElementById('alarm').hidden && !document.querySelector('[data-alarm]')");
    let (_, alarms) = rig.call("GET", "/alarms", &sup, None);
    assert_eq!(alarms["tamper"]["latched"], false, "{alarms}");

    // The supervisor voids the first service; the refund follows live.
    p.click("[data-act=void]");
    p.wait("document.querySelector('dialog[open]')");
    p.click("dialog [data-act=confirm]");
    p.wait("document.querySelector('dialog[open] [data-role=error]:not([hidden])')");
    // A modal dialog makes the page behind it inert: photograph it once per language.
    p.shot("17-void-reason-ar");
    p.click("dialog [data-act=dismiss]");
    p.click_render("#lang");
    p.click("[data-act=void]");
    p.click("dialog [data-act=confirm]");
    p.wait("document.querySelector('dialog[open] [data-role=error]:not([hidden])')");
    p.shot("17-void-reason-en");
    p.click("dialog [data-act=dismiss]");
    p.click_render("#lang");
    p.click("[data-act=void]");
    p.type_in("dialog textarea[name=reason]", "خطأ في بيانات المواطن");
    p.click("dialog [data-act=confirm]");
    p.wait("document.querySelector('[data-txn-state=reversed]') || document.querySelector('[data-txn-state=voided]')");
    p.shots("18-voided");
    let v = rig.call("GET", &format!("/services/{txn}"), &t, None).1;
    assert!(["reversed", "voided"].contains(&v["state"].as_str().unwrap()), "{v}");

    // Booking 02 owes fines: refused; the supervisor overrides each refusal with a reason, then
    // the citizen leaves and the service is cancelled (with its reason).
    p.click("[data-nav=bookings]");
    p.screen("bookings");
    p.click("[data-booking$='-02'] [data-act=serve]");
    p.screen("new");
    p.click("[data-act=open-service]");
    p.wait("document.querySelector('[data-txn-state=refused] [data-refusal]')");
    p.shots("19-refused");
    while p.eval("!!document.querySelector('[data-act=override]')") == json!(true) {
        let before = p.eval("document.querySelectorAll('[data-act=override]').length");
        p.click("[data-act=override]");
        p.type_in("dialog textarea[name=reason]", "سدد المخالفات في وحدة المرور (تدريب)");
        p.click("dialog [data-act=confirm]");
        p.wait(&format!("document.querySelectorAll('[data-act=override]').length < {before}"));
    }
    p.wait("document.querySelector('[data-txn-state=quoted]')");
    p.click("[data-act=cancel]");
    p.type_in("dialog textarea[name=reason]", "غادر المواطن");
    p.click("dialog [data-act=confirm]");
    p.wait("document.querySelector('[data-txn-state=cancelled]')");

    // The e-sticker's receipt is printed again.
    p.call("Page.navigate", json!({"url": format!("{base}#/txn/{txn_sticker}")}));
    p.screen("txn");
    p.click("[data-act=reprint]");
    p.type_in("dialog textarea[name=reason]", "طلب المواطن نسخة");
    p.click("dialog [data-act=confirm]");
    p.wait("!document.querySelector('dialog[open]')");
    let (_, records) = rig.call("GET", &format!("/services/{txn_sticker}/records"), &t, None);
    let last = records.as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "receipt.print", "{last}");
    assert!(last["payload"].as_str().unwrap().contains("\"officer\":\"9001\""), "{last}");

    // The supervisor closes the shift and sees the report.
    p.click("[data-nav=shift]");
    p.screen("shift");
    p.type_in("input[name=cards]", "48");
    p.type_in("input[name=labels]", "48");
    p.type_in("input[name=tags]", "48");
    p.click("[data-act=shift-close]");
    p.wait("document.querySelector('[data-role=report]')");
    p.shots("20-shift-report");

    // No script error and no Content-Security-Policy violation on any screen of the day.
    let problems = p.eval("sessionStorage.getItem('test.problems') || '[]'");
    assert_eq!(problems, json!("[]"), "the console logged problems");
}
