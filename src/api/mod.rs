//! The van's local HTTP API (`/api/v1`, JSON and server-sent events), documented in `docs/api.md`.
//!
//! The officer console and scripts use this API and nothing else. It does HTTP only: sessions,
//! roles, strict request parsing and error bodies; the service desk behind the [`desk::Desk`]
//! trait does the rest. The routes are the table [`ROUTES`], from which [`router`] is built, so
//! the table, the router and the document cannot drift apart (a test checks the document).

pub mod desk;
pub mod error;
pub mod extract;
mod handlers;
pub mod ops;
pub mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use desk::Desk;
use error::ErrorReply;

/// Every path below is under this prefix.
pub const BASE: &str = "/api/v1";

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the address (only the login).
    Public,
    /// Any logged-in officer or supervisor.
    Officer,
    /// A logged-in supervisor (officers get 403 `auth.role`).
    Supervisor,
}

/// One endpoint: method, path under [`BASE`] (`{name}` is a path parameter), access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path under [`BASE`].
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> Route {
    Route { method, path, access }
}

/// Every endpoint of the API. The router is built from this table.
pub const ROUTES: &[Route] = &[
    r("GET", "/van", Access::Public),
    r("POST", "/session", Access::Public),
    r("GET", "/session", Access::Officer),
    r("DELETE", "/session", Access::Officer),
    r("GET", "/bookings", Access::Officer),
    r("GET", "/bookings/{id}", Access::Officer),
    r("POST", "/bookings/{id}/state", Access::Officer),
    r("POST", "/import", Access::Supervisor),
    r("POST", "/validate", Access::Officer),
    r("GET", "/schedule", Access::Officer),
    r("GET", "/dossier", Access::Officer),
    r("POST", "/services", Access::Officer),
    r("GET", "/services", Access::Officer),
    r("GET", "/services/{txn}", Access::Officer),
    r("POST", "/services/{txn}/inspection", Access::Officer),
    r("POST", "/services/{txn}/override", Access::Supervisor),
    r("POST", "/services/{txn}/proceed", Access::Officer),
    r("POST", "/services/{txn}/cancel", Access::Officer),
    r("POST", "/services/{txn}/void", Access::Supervisor),
    r("POST", "/services/{txn}/reprint", Access::Officer),
    r("GET", "/services/{txn}/receipt", Access::Officer),
    r("GET", "/services/{txn}/records", Access::Officer),
    r("GET", "/shift", Access::Officer),
    r("POST", "/shift/open", Access::Officer),
    r("POST", "/shift/close", Access::Supervisor),
    r("GET", "/shift/{id}/report", Access::Officer),
    r("GET", "/devices", Access::Officer),
    r("GET", "/sync", Access::Officer),
    r("GET", "/events", Access::Officer),
    r("GET", "/alarms", Access::Officer),
    r("POST", "/tamper/clear", Access::Supervisor),
];

/// What every handler shares: the desk, and the server's closing signal (which ends event
/// streams so a graceful shutdown does not wait for them).
pub struct ApiState<D> {
    /// The service desk.
    pub desk: Arc<D>,
    /// Becomes `true` when the server stops.
    pub closing: watch::Receiver<bool>,
}

impl<D> Clone for ApiState<D> {
    fn clone(&self) -> Self {
        ApiState { desk: self.desk.clone(), closing: self.closing.clone() }
    }
}

/// The handler of one table row. Panics on a row without a handler: a programming error that
/// the test building the router catches.
fn handler<D: Desk>(route: &Route) -> MethodRouter<ApiState<D>> {
    use handlers as h;
    match (route.method, route.path) {
        ("POST", "/session") => post(h::login::<D>),
        ("GET", "/session") => get(h::session),
        ("DELETE", "/session") => delete(h::logout::<D>),
        ("GET", "/bookings") => get(h::bookings::<D>),
        ("GET", "/bookings/{id}") => get(h::booking::<D>),
        ("POST", "/bookings/{id}/state") => post(h::booking_state::<D>),
        ("POST", "/import") => post(h::import::<D>).layer(DefaultBodyLimit::max(extract::IMPORT_LIMIT)),
        ("POST", "/validate") => post(h::validate::<D>),
        ("GET", "/schedule") => get(h::schedule::<D>),
        ("GET", "/dossier") => get(h::dossier::<D>),
        ("POST", "/services") => post(h::open_service::<D>),
        ("GET", "/services") => get(h::services::<D>),
        ("GET", "/services/{txn}") => get(h::service::<D>),
        ("POST", "/services/{txn}/inspection") => post(h::inspect::<D>),
        ("POST", "/services/{txn}/override") => post(h::override_refusal::<D>),
        ("POST", "/services/{txn}/proceed") => post(h::proceed::<D>),
        ("POST", "/services/{txn}/cancel") => post(h::cancel::<D>),
        ("POST", "/services/{txn}/void") => post(h::void::<D>),
        ("POST", "/services/{txn}/reprint") => post(h::reprint::<D>),
        ("GET", "/services/{txn}/receipt") => get(h::receipt_pdf::<D>),
        ("GET", "/services/{txn}/records") => get(h::records::<D>),
        ("GET", "/shift") => get(h::shift::<D>),
        ("POST", "/shift/open") => post(h::open_shift::<D>),
        ("POST", "/shift/close") => post(h::close_shift::<D>),
        ("GET", "/shift/{id}/report") => get(h::shift_report::<D>),
        ("GET", "/devices") => get(h::devices::<D>),
        ("GET", "/van") => get(h::van::<D>),
        ("GET", "/sync") => get(h::sync::<D>),
        ("GET", "/events") => get(sse::events::<D>),
        ("GET", "/alarms") => get(h::alarms::<D>),
        ("POST", "/tamper/clear") => post(h::clear_tamper::<D>),
        (m, p) => panic!("api::ROUTES lists {m} {p} but no handler is wired for it"),
    }
}

async fn no_route(method: Method, uri: Uri) -> ErrorReply {
    ErrorReply::no_route(method.as_str(), uri.path())
}

async fn wrong_method(method: Method, uri: Uri) -> ErrorReply {
    ErrorReply::method(method.as_str(), uri.path())
}

/// Headers on every answer: replies hold citizens' data, so nothing is cached; bodies are what
/// their type says.
async fn common_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// Logs each request at debug level by its route template (`/api/v1/services/{txn}`), never its
/// raw path and query, which may hold a national ID or the event stream's token.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(
        %method,
        route = %route,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "api request"
    );
    resp
}

/// The API's router over `desk`, every route of [`ROUTES`] under [`BASE`]. Event streams end
/// when the desk's channel closes or their session ends; [`Server::run`] also ends them when it
/// stops.
pub fn router<D: Desk>(desk: Arc<D>) -> Router {
    // The sender is dropped: without a server, streams are not closed from here.
    let (_, closing) = watch::channel(false);
    router_with(ApiState { desk, closing })
}

fn router_with<D: Desk>(state: ApiState<D>) -> Router {
    let api =
        ROUTES.iter().fold(Router::new(), |router, route| router.route(route.path, handler::<D>(route)));
    Router::new()
        .nest(BASE, api)
        // The officer console's page and assets (`/`, `/console/…`), on the same addresses.
        .merge(crate::console::router())
        // Health and metrics (`/healthz`, `/metrics`): no session, no personal data.
        .merge(ops::router::<D>())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::map_response(common_headers))
        .route_layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No address to listen on was configured.
    #[error("the API has no address to listen on (set [api] listen)")]
    NoAddress,
    /// An address could not be bound.
    #[error("the API cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving on an address failed.
    #[error("the API on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The API's listening sockets, bound to exactly the configured addresses.
pub struct Server {
    listeners: Vec<(SocketAddr, TcpListener)>,
}

impl Server {
    /// Binds every address in `addrs` (and nothing else). Port 0 picks a free port: see
    /// [`Server::local_addrs`].
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Server, ServeError> {
        if addrs.is_empty() {
            return Err(ServeError::NoAddress);
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let listener =
                TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
            let local = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
            listeners.push((local, listener));
        }
        Ok(Server { listeners })
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(a, _)| *a).collect()
    }

    /// Serves `desk` until `shutdown` completes, then ends event streams, stops accepting and
    /// waits for the requests under way.
    pub async fn run<D: Desk>(
        self,
        desk: Arc<D>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop, closing) = watch::channel(false);
        let app = router_with(ApiState { desk, closing: closing.clone() });
        let mut tasks = tokio::task::JoinSet::new();
        for (addr, listener) in self.listeners {
            tracing::info!(%addr, "API listening on http://{addr}{BASE}");
            tracing::info!(%addr, "officer console on http://{addr}/");
            let mut closing = closing.clone();
            let serving = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
                let _ = closing.wait_for(|c| *c).await;
            });
            tasks.spawn(async move { serving.await.map_err(|source| ServeError::Serve { addr, source }) });
        }
        let mut result = Ok(());
        tokio::select! {
            () = shutdown => {}
            Some(joined) = tasks.join_next() => {
                // A listener failed before shutdown was asked: stop the others and report it.
                result = flatten(joined);
            }
        }
        let _ = stop.send(true);
        while let Some(joined) = tasks.join_next().await {
            if result.is_ok() {
                result = flatten(joined);
            }
        }
        result
    }
}

fn flatten(joined: Result<Result<(), ServeError>, tokio::task::JoinError>) -> Result<(), ServeError> {
    match joined {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

/// Binds exactly `addrs` and serves `desk` until `shutdown` completes.
pub async fn serve<D: Desk>(
    desk: Arc<D>,
    addrs: Vec<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(&addrs).await?.run(desk, shutdown).await
}
