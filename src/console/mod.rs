//! The officer console: a touch web app (HTML, CSS, one JavaScript module, an Arabic and an
//! English message catalogue) that `vand` serves at `/` next to the API. It talks to the van only
//! through the local API (`docs/api.md`), so anything it does a script can do too; see
//! `docs/console.md`.
//!
//! The assets live in the top-level `console/` folder and are embedded with `include_bytes!`:
//! a handful of fixed files needs no crate (rust-embed would add a proc-macro and a walk of the
//! folder for the same result), the binary carries them so the van needs no files beside it and
//! no network, and cargo rebuilds when one changes. The font is a WOFF2 subset (122 KB, against
//! 563 KB of TTF) of the Amiri the documents embed, made by `tools/make-console-font` (fontTools)
//! and committed; `tests/console_assets.rs` reads it back with fontTools and checks it covers
//! every character of the catalogues.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The console's Content-Security-Policy: everything from the van itself, no inline script or
/// style, no plugins, not framed by another page. `blob:` frames show a receipt or shift report
/// PDF the console fetched with its token.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
font-src 'self'; connect-src 'self'; frame-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type and its bytes.
pub struct Asset {
    /// Name under `/console/` (`app.js`).
    pub name: &'static str,
    /// Media type sent as `Content-Type`.
    pub media_type: &'static str,
    /// The file.
    pub bytes: &'static [u8],
}

/// The page every console URL starts from.
pub static INDEX_HTML: &[u8] = include_bytes!("../../console/index.html");

/// The files under `/console/`.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../console/app.css"),
    },
    Asset {
        name: "messages/ar.json",
        media_type: "application/json; charset=utf-8",
        bytes: include_bytes!("../../console/messages/ar.json"),
    },
    Asset {
        name: "messages/en.json",
        media_type: "application/json; charset=utf-8",
        bytes: include_bytes!("../../console/messages/en.json"),
    },
    Asset {
        name: "fonts/amiri-console.woff2",
        media_type: "font/woff2",
        bytes: include_bytes!("../../console/fonts/amiri-console.woff2"),
    },
    Asset {
        name: "fonts/OFL.txt",
        media_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../console/fonts/OFL.txt"),
    },
];

fn page(media_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => page(a.media_type, a.bytes),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], "no such console file")
            .into_response(),
    }
}

/// The console's routes: `/` (the page) and `/console/{file}` (its assets). Merged into the API's
/// router, so it is served on exactly the API's addresses.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/console/{*name}", get(asset))
}
