//! The HTTP face of HQ (axum): three routes over [`crate::ingest`]. Plain HTTP/1.1 for now; TLS
//! wraps the same router later without changing the protocol.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::SigningKey;

use crate::ingest::{self, AuthHeaders, Rejection};
use crate::protocol::{self, MAX_BATCH_BYTES, SignedAck};
use crate::store::Store;

/// Largest request body read (compressed batches are far smaller than this).
const MAX_BODY: usize = MAX_BATCH_BYTES + 64 * 1024;

/// What the handlers share.
pub struct Hq<S> {
    /// The database.
    pub store: S,
    /// HQ's signing key (acknowledgements).
    pub key: SigningKey,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = protocol::error_body(self.code, &self.message, self.details);
        (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A JSON answer body already rendered.
struct JsonBytes(Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

impl IntoResponse for SignedAck {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.json).into_response()
    }
}

/// The router of protocol v1.
pub fn router<S: Store>(hq: Arc<Hq<S>>) -> Router {
    Router::new()
        .route(protocol::PATH_RECORDS, post(post_records::<S>))
        .route(protocol::PATH_CHECKPOINT, post(post_checkpoint::<S>))
        .route(protocol::PATH_ACK, get(get_ack::<S>))
        .route(mtu_sync::bundle::PATH_BUNDLES, get(get_down::<S>))
        .route(mtu_sync::bundle::PATH_DOSSIER, get(get_down::<S>))
        .with_state(hq)
}

/// Serves `router` on `listener` until the future ends (Ctrl-C in the binary).
pub async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    hq: Arc<Hq<S>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(hq)).with_graceful_shutdown(shutdown).await
}

async fn read_body(body: Body) -> Result<Bytes, Rejection> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| Rejection {
        status: 413,
        code: "sync.batch_too_large",
        message: format!("request body unreadable or larger than {MAX_BODY} bytes: {e}"),
        details: None,
    })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Authenticates, then runs `f` with the van id on the blocking pool (SQLite blocks).
async fn authed<S: Store, T: Send + 'static>(
    hq: Arc<Hq<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&Hq<S>, &str, &[u8], i64) -> Result<T, Rejection> + Send + 'static,
) -> Result<T, Rejection> {
    tokio::task::spawn_blocking(move || {
        let now = ingest::now_us();
        let auth = AuthHeaders {
            van: header(&headers, protocol::HEADER_VAN),
            time: header(&headers, protocol::HEADER_TIME),
            nonce: header(&headers, protocol::HEADER_NONCE),
            signature: header(&headers, protocol::HEADER_SIGNATURE),
        };
        // Only an upload may carry the van's key rotation (docs/sync.md).
        let handover = || {
            if uri.path() == protocol::PATH_RECORDS { ingest::rotation_keys(&body) } else { Vec::new() }
        };
        let van =
            ingest::authenticate_with(&hq.store, &auth, method.as_str(), uri.path(), &body, now, &handover)?;
        f(&hq, &van, &body, now)
    })
    .await
    .map_err(|e| Rejection {
        status: 500,
        code: "sync.storage",
        message: e.to_string(),
        details: None,
    })?
}

async fn post_records<S: Store>(
    State(hq): State<Arc<Hq<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<SignedAck, Rejection> {
    let encoding = header(&headers, "content-encoding").map(str::to_owned);
    let body = read_body(body).await?;
    let ack = authed(hq, method, uri, headers, body, move |hq, van, body, now| {
        if !encoding.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case("zstd")) {
            return Err(Rejection {
                status: 415,
                code: "sync.bad_batch",
                message: format!("Content-Encoding must be zstd, got {:?}", encoding.unwrap_or_default()),
                details: None,
            });
        }
        let batch = ingest::decompress(body)?;
        ingest::ingest(&hq.store, &hq.key, van, &batch, now)
    })
    .await?;
    Ok(ack)
}

async fn post_checkpoint<S: Store>(
    State(hq): State<Arc<Hq<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<SignedAck, Rejection> {
    let body = read_body(body).await?;
    let ack = authed(hq, method, uri, headers, body, |hq, van, body, now| {
        ingest::checkpoint(&hq.store, &hq.key, van, body, now)
    })
    .await?;
    Ok(ack)
}

async fn get_ack<S: Store>(
    State(hq): State<Arc<Hq<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<SignedAck, Rejection> {
    let body = read_body(body).await?;
    let ack = authed(hq, method, uri, headers, body, |hq, van, _body, now| {
        ingest::current_ack(&hq.store, &hq.key, van, now)
    })
    .await?;
    Ok(ack)
}

/// `GET /v1/bundles` and `GET /v1/dossier`: authenticated like every request (the signed path
/// has no query string), answered with HQ's signed envelope.
async fn get_down<S: Store>(
    State(hq): State<Arc<Hq<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<JsonBytes, Rejection> {
    let body = read_body(body).await?;
    let query = uri.query().map(str::to_owned);
    let bundles = uri.path() == mtu_sync::bundle::PATH_BUNDLES;
    authed(hq, method, uri, headers, body, move |hq, van, _body, now| {
        let q = query.as_deref();
        if bundles {
            crate::downsync::bundles(&hq.store, &hq.key, van, q)
        } else {
            crate::downsync::dossier(&hq.store, &hq.key, van, q, now)
        }
        .map(JsonBytes)
    })
    .await
}
