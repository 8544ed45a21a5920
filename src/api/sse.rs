//! `GET /events`: the desk's events as server-sent events, with keep-alive comments, ended when
//! the server shuts down.

use std::convert::Infallible;
use std::future::Future;
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

/// How often an open stream checks that its session is still valid.
pub const SESSION_RECHECK: Duration = Duration::from_secs(60);

/// The stream of SSE events from `rx` until the desk's channel closes, the server stops, or
/// `still_valid` (asked every `recheck`) says the session has ended. A receiver that fell behind
/// gets `event: lagged` with `{"missed": n}` and carries on.
fn stream<C, F>(
    rx: broadcast::Receiver<DeskEvent>,
    closing: watch::Receiver<bool>,
    recheck: Duration,
    still_valid: C,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    C: FnMut() -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    let first_check = tokio::time::Instant::now() + recheck;
    futures_util::stream::unfold(
        (rx, closing, first_check, still_valid),
        move |(mut rx, mut closing, mut next_check, mut still_valid)| async move {
            loop {
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
                    _ = tokio::time::sleep_until(next_check) => {
                        if !still_valid().await {
                            return None;
                        }
                        next_check = tokio::time::Instant::now() + recheck;
                        continue;
                    }
                };
                return Some((Ok(event), (rx, closing, next_check, still_valid)));
            }
        },
    )
}

/// `GET /events`.
pub async fn events<D: Desk>(
    State(st): State<ApiState<D>>,
    StreamAuthed(who): StreamAuthed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    // Subscribed before the response headers go out: a client that has the headers gets every
    // event from then on.
    let rx = st.desk.events();
    let desk = st.desk.clone();
    let still_valid = move || {
        let (desk, token) = (desk.clone(), who.token.clone());
        async move { desk.session_valid(&token).await }
    };
    Sse::new(stream(rx, st.closing.clone(), SESSION_RECHECK, still_valid))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
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
        let events: Vec<Event> = rt.block_on(
            stream(rx, closing, Duration::from_secs(3600), || async { true }).map(|e| e.unwrap()).collect(),
        );
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
        let events: Vec<_> =
            rt.block_on(stream(rx, closing, Duration::from_secs(3600), || async { true }).collect());
        assert!(events.is_empty(), "closing wins over pending events");
    }

    #[test]
    fn an_ended_session_ends_the_stream_at_the_next_check() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = broadcast::channel(4);
        let (_stop, closing) = watch::channel(false);
        let valid = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let checks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (v, c) = (valid.clone(), checks.clone());
        let still_valid = move || {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ok = v.load(std::sync::atomic::Ordering::SeqCst);
            async move { ok }
        };
        let mut s = Box::pin(stream(rx, closing, Duration::from_millis(20), still_valid));
        rt.block_on(async {
            tx.send(txn(1)).unwrap();
            assert!(s.next().await.is_some());
            valid.store(false, std::sync::atomic::Ordering::SeqCst);
            // Nothing more is sent; the stream ends by itself once the check says no.
            let end = tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("ended");
            assert!(end.is_none());
        });
        assert!(checks.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        drop(tx);
    }
}
