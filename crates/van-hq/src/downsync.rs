//! Down-sync at HQ (docs/sync.md, "Down-sync"): publishing reference-data bundles for one van or
//! every van, serving them to a van after its cursor with HQ's signature, importing citizens'
//! dossiers and answering a van's live dossier lookup, signed. Plain functions over a [`Store`];
//! the HTTP layer only moves bytes.

use std::io::BufRead;

use ed25519_dalek::SigningKey;
use mtu_sync::bundle::{
    self, DossierQuery, MAX_ANSWER_BUNDLE_BYTES, MAX_BUNDLE_BYTES, MAX_BUNDLES_PER_ANSWER,
};
use serde_json::{Value, json};

use crate::ingest::Rejection;
use crate::store::{PublishOutcome, PublishedBundle, Store, StoreError};

/// The bundle kinds a van applies, with the body field each must carry and its JSON type.
pub const KINDS: [(&str, &str, bool); 5] = [
    ("bookings", "items", true),
    ("roster", "officers", true),
    ("schedule", "schedule", false),
    ("blocklist", "blocklist", false),
    ("settings", "settings", false),
];

/// Target of a bundle for every van.
pub const EVERY_VAN: &str = "*";

/// Why a bundle was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("bundle file: {0}")]
    Shape(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a bundle file's header and body shape as HQ can without the van's rules: a JSON object
/// with `bundle` (one of [`KINDS`]), `version` (1 … 2^63−1), `van_id` (the target van; for a fleet
/// bundle any string, replaced when served), `issued_at` (RFC 3339) and the kind's body field.
/// Returns (kind, version).
pub fn check_bundle(bytes: &[u8], van: Option<&str>) -> Result<(String, u64), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let kind = obj.get("bundle").and_then(Value::as_str).ok_or("field \"bundle\" missing or not a string")?;
    let Some((_, body, is_array)) = KINDS.iter().find(|k| k.0 == kind) else {
        return Err(format!(
            "unknown bundle {kind:?} (known: bookings, roster, schedule, blocklist, settings)"
        ));
    };
    let version = obj
        .get("version")
        .and_then(Value::as_u64)
        .filter(|v| *v >= 1 && i64::try_from(*v).is_ok())
        .ok_or("field \"version\" must be an integer from 1 to 2^63-1")?;
    let van_id =
        obj.get("van_id").and_then(Value::as_str).ok_or("field \"van_id\" missing or not a string")?;
    if let Some(van) = van
        && van_id != van
    {
        return Err(format!("van_id is {van_id:?} but the bundle is published for van {van:?}"));
    }
    obj.get("issued_at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .ok_or("field \"issued_at\" missing or not an RFC 3339 time")?;
    let ok = match obj.get(*body) {
        Some(Value::Array(_)) => *is_array,
        Some(Value::Object(_)) => !*is_array,
        _ => false,
    };
    if !ok {
        return Err(format!(
            "a {kind} bundle needs field {body:?} ({})",
            if *is_array { "an array" } else { "an object" }
        ));
    }
    Ok((kind.to_owned(), version))
}

/// Publishes a bundle file for `van` (or every van with `None`): checked, stored once.
pub fn publish<S: Store>(
    store: &S,
    bytes: &[u8],
    van: Option<&str>,
    now_us: i64,
) -> Result<PublishOutcome, PublishError> {
    if let Some(v) = van {
        mtu_journal::rules::check_van_id(v).map_err(|e| PublishError::Shape(format!("--van: {e}")))?;
    }
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(PublishError::Shape(format!(
            "{} bytes; a bundle is at most {MAX_BUNDLE_BYTES} bytes (split the bookings into several bundles)",
            bytes.len()
        )));
    }
    let (kind, version) = check_bundle(bytes, van).map_err(PublishError::Shape)?;
    Ok(store.publish_bundle(van.unwrap_or(EVERY_VAN), &kind, version, bytes, now_us)?)
}

/// The bytes `van` receives for a published bundle: as published for a bundle of its own; a
/// fleet bundle with `van_id` set to `van` (re-serialised JSON).
pub fn served_bytes(b: &PublishedBundle, van: &str) -> Result<Vec<u8>, String> {
    if b.target != EVERY_VAN {
        return Ok(b.body.clone());
    }
    let mut v: Value = serde_json::from_slice(&b.body).map_err(|e| format!("stored bundle {}: {e}", b.id))?;
    v["van_id"] = Value::String(van.to_owned());
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

fn bad_query(message: String) -> Rejection {
    Rejection { status: 400, code: "sync.bad_query", message, details: None }
}

fn storage(e: impl std::fmt::Display) -> Rejection {
    Rejection { status: 500, code: "sync.storage", message: e.to_string(), details: None }
}

/// `GET /v1/bundles?after=<cursor>` for an authenticated van: up to 50 bundles after the cursor,
/// each signed for this van, and whether more follow.
pub fn bundles<S: Store>(
    store: &S,
    key: &SigningKey,
    van: &str,
    query: Option<&str>,
) -> Result<Vec<u8>, Rejection> {
    let mut after = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k != "after" || after.is_some() {
            return Err(bad_query(format!("unexpected query parameter {k:?}; expected after=<cursor> once")));
        }
        after = Some(
            v.parse::<u64>()
                .map_err(|_| bad_query(format!("after={v:?} is not a cursor (an unsigned integer)")))?,
        );
    }
    let after = after.ok_or_else(|| bad_query("query parameter after=<cursor> is required".into()))?;
    let rows = store.bundles_after(van, after, MAX_BUNDLES_PER_ANSWER + 1)?;
    let mut more = rows.len() > MAX_BUNDLES_PER_ANSWER;
    let mut out = Vec::with_capacity(rows.len().min(MAX_BUNDLES_PER_ANSWER));
    let mut bytes_in_answer = 0usize;
    for b in rows.iter().take(MAX_BUNDLES_PER_ANSWER) {
        let bytes = served_bytes(b, van).map_err(storage)?;
        // Bounded by bytes as well as by count; the first bundle always goes (publish bounds it).
        if !out.is_empty() && bytes_in_answer + bytes.len() > MAX_ANSWER_BUNDLE_BYTES {
            more = true;
            break;
        }
        bytes_in_answer += bytes.len();
        out.push(bundle::sign_bundle(key, van, b.id, &b.kind, b.version, &bytes).map_err(storage)?);
    }
    Ok(bundle::bundles_answer(out, more))
}

/// `GET /v1/dossier?national_id=…[&plate_letters=…&plate_digits=…]`: the citizen's dossier,
/// signed over this van, the query string exactly as received and HQ's time; 404
/// `sync.no_dossier` when HQ holds none.
pub fn dossier<S: Store>(
    store: &S,
    key: &SigningKey,
    van: &str,
    query: Option<&str>,
    now_us: i64,
) -> Result<Vec<u8>, Rejection> {
    let query = query.unwrap_or_default();
    let q = DossierQuery::parse(query).map_err(|e| bad_query(e.to_string()))?;
    let Some(d) = store.dossier(&q.national_id)? else {
        return Err(Rejection {
            status: 404,
            code: "sync.no_dossier",
            message: format!("HQ holds no dossier for national id {}", q.national_id),
            details: None,
        });
    };
    bundle::sign_dossier(key, van, query, now_us, d.as_bytes()).map_err(|e| bad_query(e.to_string()))
}

/// Imports dossiers from JSON Lines, one `{"national_id":"<14 digits>","dossier":{…}}` a line
/// (blank lines skipped); each replaces the stored one. Stops at the first bad line, naming it;
/// lines before it stay imported. Returns how many were stored.
pub fn import_dossiers<S: Store>(store: &S, input: impl BufRead, now_us: i64) -> Result<usize, String> {
    let mut n = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        let nid = v.get("national_id").and_then(Value::as_str).unwrap_or_default();
        if nid.len() != 14 || !nid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("line {}: national_id must be 14 digits", i + 1));
        }
        let Some(d @ Value::Object(_)) = v.get("dossier") else {
            return Err(format!("line {}: field \"dossier\" must be an object", i + 1));
        };
        if v.as_object().is_some_and(|o| o.len() != 2) {
            return Err(format!("line {}: only national_id and dossier are allowed", i + 1));
        }
        store.put_dossier(nid, &d.to_string(), now_us).map_err(|e| format!("line {}: {e}", i + 1))?;
        n += 1;
    }
    Ok(n)
}

/// What `van-hq publish` prints.
pub fn outcome_json(o: PublishOutcome) -> Value {
    match o {
        PublishOutcome::Stored(id) => json!({"stored": id}),
        PublishOutcome::AlreadyStored(id) => json!({"already_stored": id}),
    }
}
