//! Server-sent event streams: the live feed (`/api/v1/events`) and the log tail. Each
//! ends when its session signs out or could have gone idle, whichever comes first.

use super::extract::ApiQuery as Query;
use crate::auth::{self, AuthUser};
use crate::error::Result;
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;

/// `GET /api/v1/logs/tail?q=`: server-sent `line` events (a `LogHit` each) for every new
/// line matching `q`, and a `lagged` event (how many batches) when a slow client missed some.
pub(super) async fn tail_logs(
    State(state): State<AppState>,
    user: AuthUser,
    session: tower_sessions::Session,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let q = query.get("q").map(String::as_str).unwrap_or("");
    let end = session_end(&state, &session, user.id);
    let console = crate::console::ServerConsole::new(state, Some(user));
    let permit = console.stream_permit()?;
    let stream = console.tail_logs(q).await?.take_until(end).map(move |event| {
        let _held = &permit;
        Ok(match event {
            crate::logs::TailEvent::Line(hit) => {
                Event::default().event("line").data(serde_json::to_string(&hit).unwrap_or_default())
            }
            crate::logs::TailEvent::Lagged(n) => Event::default().event("lagged").data(n.to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Resolves when the session signs out (or all its account's sessions are ended), when the server stops, or once it has been open as long as a session may
/// sit idle (the browser then reconnects with its cookie, and is refused if that has
/// expired): an event stream never outlives the session that opened it.
fn session_end(
    state: &AppState,
    session: &tower_sessions::Session,
    user_id: i64,
) -> impl std::future::Future<Output = ()> + use<> {
    let tag = session.id().map(|id| crate::bus::session_tag(&id.to_string()));
    let account = crate::bus::account_tag(user_id);
    let mut sign_outs = state.bus.sign_outs();
    let mut stopping = state.stopping.subscribe();
    async move {
        let idle = tokio::time::sleep(std::time::Duration::from_secs(auth::IDLE_TIMEOUT_MINUTES as u64 * 60));
        let signed_out = async {
            loop {
                match sign_outs.recv().await {
                    Ok(t) if Some(&*t) == tag.as_deref() || *t == *account => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    _ => continue,
                }
            }
        };
        tokio::select! {
            _ = idle => {}
            _ = signed_out => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

/// `GET /api/v1/events`: a `snapshot` event with every gateway's numbers after each
/// fleet change (every simulated second), starting with the current one; an `action`
/// event with an action's record whenever it changes (progress, outcome, impact, undo);
/// an `audit` event with every new audit entry; an `approvals` event with how many
/// approval requests wait for the user, and a `break_glass` event with how many of them
/// are break-glass runs to review, now and when they change.
///
/// Action and audit events carry their outbox id; a client reconnecting with
/// `Last-Event-ID` (to this or another replica) first gets those it missed.
pub(super) async fn events(
    user: AuthUser,
    session: tower_sessions::Session,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // A replica that is stopping takes no new streams: the browser reconnects elsewhere.
    if *state.stopping.borrow() {
        return Err(crate::error::AppError::Unavailable("this replica is stopping; connect again".into()));
    }
    let waiting = waiting_for(state.open_approvals.clone(), user.username.clone(), user.role);
    let end = session_end(&state, &session, user.id);
    // Held as long as the stream is open: past the cap, 429 instead of one more stream.
    let permit = crate::console::ServerConsole::new(state.clone(), Some(user)).stream_permit()?;
    let snapshots = futures::stream::unfold((state.live.clone(), true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let json = rx.borrow_and_update().as_ref().map(|live| live.json.clone());
        Some((json, (rx, false)))
    })
    .filter_map(|json| async move { json.map(|j| Ok(Event::default().event("snapshot").data(&*j))) });
    // Subscribed before the missed ones are read, so nothing falls between the two.
    let live = state.bus.subscribe();
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0);
    let missed = match last_seen {
        Some(id) => state.bus.since(id).await?,
        None => Vec::new(),
    };
    let replayed_up_to = missed.last().map(|e| e.id).or(last_seen).unwrap_or(0);
    let missed = futures::stream::iter(missed.into_iter().filter_map(|e| event_of(&e)).map(Ok));
    let relayed = relay(live, replayed_up_to);
    let stream = futures::stream::select(futures::stream::select(snapshots, waiting), missed.chain(relayed))
        .take_until(end)
        .map(move |event| {
            let _held = &permit;
            event
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `approvals` events: how many approval requests and break-glass runs wait for `name`
/// (with `role`), first the number now, then each time it changes; and `break_glass`
/// events with how many of them are break-glass runs to review (the banner every page
/// shows), first and when that changes.
fn waiting_for(
    rx: tokio::sync::watch::Receiver<std::sync::Arc<[crate::actions::approval::Open]>>,
    name: String,
    role: app::dto::Role,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((rx, None::<(usize, usize)>), move |(mut rx, sent)| {
        let name = name.clone();
        async move {
            loop {
                if sent.is_some() && rx.changed().await.is_err() {
                    return None;
                }
                let (all, glass) = rx
                    .borrow_and_update()
                    .iter()
                    .filter(|o| o.waits_for(&name, role))
                    .fold((0, 0), |(all, glass), o| (all + 1, glass + usize::from(o.break_glass)));
                let mut events = Vec::new();
                if sent.map(|s| s.0) != Some(all) {
                    events.push(Ok(Event::default().event("approvals").data(all.to_string())));
                }
                if sent.map(|s| s.1) != Some(glass) {
                    events.push(Ok(Event::default().event("break_glass").data(glass.to_string())));
                }
                if !events.is_empty() {
                    return Some((futures::stream::iter(events), (rx, Some((all, glass)))));
                }
            }
        }
    })
    .flatten()
}

/// The SSE event of a bus event (none for sign-outs, which only end streams).
fn event_of(e: &crate::bus::BusEvent) -> Option<Event> {
    matches!(e.topic.as_str(), "action" | "audit" | "approval" | "incident")
        .then(|| Event::default().event(e.topic.clone()).id(e.id.to_string()).data(&*e.payload))
}

/// SSE events from the bus, after `after` (already replayed). A client too slow to keep
/// up skips what it missed: action events carry whole records, and the audit page
/// re-reads the trail when asked.
fn relay(
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::bus::BusEvent>>,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.id > after => match event_of(&e) {
                    Some(event) => return Some((Ok(event), rx)),
                    None => continue,
                },
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
