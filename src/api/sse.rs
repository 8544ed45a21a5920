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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::desk::TxnState;
    use futures_util::StreamExt;

    fn txn(i: usize) -> DeskEvent {
        DeskEvent::Txn { txn: format!("T-{i}"), state: TxnState::Paying }
    }

    /// The SSE wire text of an event.
    fn text(ev: Event) -> String {
        use axum::response::IntoResponse;
        let body =
            Sse::new(futures_util::stream::iter([Ok::<_, Infallible>(ev)])).into_response().into_body();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt.block_on(axum::body::to_bytes(body, 1 << 16)).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_lagging_receiver_is_told_how_many_events_it_missed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = broadcast::channel(4);
        let (_stop, closing) = watch::channel(false);
        for i in 0..10 {
            tx.send(txn(i)).unwrap();
        }
        drop(tx);
        let events: Vec<Event> = rt.block_on(stream(rx, closing).map(|e| e.unwrap()).collect());
        let texts: Vec<String> = events.into_iter().map(text).collect();
        assert_eq!(texts[0], "event: lagged\ndata: {\"missed\":6}\n\n");
        assert_eq!(texts[1], "event: txn\ndata: {\"state\":\"paying\",\"txn\":\"T-6\"}\n\n");
        assert_eq!(
            texts.len(),
            5,
            "the four kept, after the notice; then the closed channel ends the stream"
        );
    }

    #[test]
    fn closing_ends_the_stream() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = broadcast::channel(4);
        let (stop, closing) = watch::channel(false);
        stop.send(true).unwrap();
        tx.send(txn(1)).unwrap();
        let events: Vec<_> = rt.block_on(stream(rx, closing).collect());
        assert!(events.is_empty(), "closing wins over pending events");
    }
}
