//! `GET /events`: the desk's events as server-sent events, with keep-alive comments, ended when
//! the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::ApiState;
use super::desk::{Desk, DeskEvent};
use super::extract::StreamAuthed;

/// How often an idle stream gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The SSE event for a desk event.
fn sse_event(ev: &DeskEvent) -> Event {
    Event::default().event(ev.name()).data(ev.data().to_string())
}

/// Waits until `closing` says true; forever if its sender is gone without saying so.
async fn closed(closing: &mut watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The stream of SSE events from `rx` until the desk's channel closes or the server stops. A
/// receiver that fell behind gets `event: lagged` with `{"missed": n}` and carries on.
fn stream(
    rx: broadcast::Receiver<DeskEvent>,
    closing: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    futures_util::stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        let event = tokio::select! {
            biased;
            _ = closed(&mut closing) => return None,
            r = rx.recv() => match r {
                Ok(ev) => sse_event(&ev),
                Err(RecvError::Lagged(missed)) => {
                    Event::default().event("lagged").data(serde_json::json!({ "missed": missed }).to_string())
                }
                Err(RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), (rx, closing)))
    })
}

/// `GET /events`.
pub async fn events<D: Desk>(
    State(st): State<ApiState<D>>,
    StreamAuthed(_who): StreamAuthed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    // Subscribed before the response headers go out: a client that has the headers gets every
    // event from then on.
    let rx = st.desk.events();
    Sse::new(stream(rx, st.closing.clone())).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
