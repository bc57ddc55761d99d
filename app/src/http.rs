//! Browser side of the [`Console`]: a small client for `/api/v1`, plus the live feed.

use crate::console::{ApiFuture, Console, Operations};
use crate::dto::*;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, Headers, MessageEvent, RequestCredentials, RequestInit, Response};

thread_local! {
    /// The session's CSRF token, fetched once and reused for every state-changing call.
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// `/api/v1` over `fetch`, with the session cookie.
pub struct HttpConsole;

/// A request that never got an answer: said as a sentence (the browser's error object,
/// e.g. `TypeError: Failed to fetch`, says nothing a person can act on).
fn js_error(_: JsValue) -> ApiError {
    ApiError::new("network", "The console could not be reached; try again in a moment.")
}

/// A successful answer decoded as `T` by the browser's parser ([`crate::json`]): what the
/// first page reads (the session, the gateways, the fleet).
async fn fetch_json<T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<String>,
    csrf: Option<String>,
) -> ApiResult<T> {
    decoded(fetch_text(method, url, body, csrf).await?, crate::json::from_str)
}

/// [`fetch_json`] decoded by serde_json: what the lazily loaded pages read (its code then
/// stays out of the first download; some of their types need it, see [`crate::json`]).
async fn fetch_serde<T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<String>,
    csrf: Option<String>,
) -> ApiResult<T> {
    decoded(fetch_text(method, url, body, csrf).await?, |text| serde_json::from_str(text).map_err(|e| e.to_string()))
}

fn decoded<T>(text: String, parse: impl FnOnce(&str) -> Result<T, String>) -> ApiResult<T> {
    // `null` stands in for an empty body (e.g. 204) when T is `()`.
    let text = if text.is_empty() { "null" } else { text.as_str() };
    parse(text).map_err(|e| ApiError::new("decode", format!("unexpected response: {e}")))
}

/// The body of a successful answer, or the server's error.
async fn fetch_text(method: &str, url: &str, body: Option<String>, csrf: Option<String>) -> ApiResult<String> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = Headers::new().map_err(js_error)?;
    headers.set("Accept", "application/json").map_err(js_error)?;
    if let Some(body) = &body {
        headers.set("Content-Type", "application/json").map_err(js_error)?;
        init.set_body(&JsValue::from_str(body));
    }
    if let Some(token) = &csrf {
        headers.set("X-CSRF-Token", token).map_err(js_error)?;
    }
    init.set_headers(&headers);
    let window = web_sys::window().ok_or_else(|| ApiError::new("network", "no window"))?;
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    let text =
        JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?.as_string().unwrap_or_default();
    // A read refused for want of a session (signed out by idleness, or elsewhere): the
    // page cannot show anything true any more, so it goes to sign-in and back here after.
    if response.status() == 401 && method == "GET" {
        to_sign_in();
    }
    if response.ok() {
        Ok(text)
    } else {
        Err(crate::json::from_str::<ApiError>(&text)
            .unwrap_or_else(|_| ApiError::new("http", format!("the server answered {}", response.status()))))
    }
}

async fn csrf_token() -> ApiResult<String> {
    if let Some(token) = CSRF.with(|c| c.borrow().clone()) {
        return Ok(token);
    }
    let session: SessionInfo = fetch_json("GET", "/api/v1/session", None, None).await?;
    remember(&session);
    Ok(session.csrf_token)
}

fn remember(session: &SessionInfo) {
    // A rendered page's session has no token (pages carry no secret): never kept.
    if !session.csrf_token.is_empty() {
        CSRF.with(|c| *c.borrow_mut() = Some(session.csrf_token.clone()));
    }
}

/// A browser future marked `Send` for the bound the interface shares with SSR.
///
/// `send_wrapper` would do the same with a thread check on every poll; in the browser
/// there is only one thread, so the check can never fire and only costs bundle size.
struct SingleThreaded<F>(F);

// SAFETY: this module is compiled only for the browser (`hydrate`), where wasm32 runs on
// one thread: the future is created, polled and dropped on that thread.
unsafe impl<F> Send for SingleThreaded<F> {}

impl<F: std::future::Future> std::future::Future for SingleThreaded<F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

fn boxed<T: 'static>(f: impl std::future::Future<Output = ApiResult<T>> + 'static) -> ApiFuture<T> {
    Box::pin(SingleThreaded(f))
}

impl Console for HttpConsole {
    fn session(&self) -> ApiFuture<SessionInfo> {
        boxed(async {
            let s: SessionInfo = fetch_json("GET", "/api/v1/session", None, None).await?;
            remember(&s);
            Ok(s)
        })
    }
    fn gateways(&self) -> ApiFuture<Vec<GatewaySummary>> {
        boxed(fetch_json("GET", "/api/v1/gateways", None, None))
    }
    fn fleet(&self) -> ApiFuture<FleetInfo> {
        boxed(fetch_json("GET", "/api/v1/fleet", None, None))
    }
}

impl Operations for HttpConsole {
    fn gateway(&self, id: String) -> ApiFuture<GatewayDetail> {
        boxed(async move {
            let url = format!("/api/v1/gateways/{}", js_sys::encode_uri_component(&id));
            fetch_serde("GET", &url, None, None).await
        })
    }
    fn act(&self, gateway: String, action: String, body: String) -> ApiFuture<ActionResponse> {
        boxed(async move {
            let url = format!(
                "/api/v1/gateways/{}/actions/{}",
                js_sys::encode_uri_component(&gateway),
                js_sys::encode_uri_component(&action)
            );
            fetch_serde("POST", &url, Some(body), Some(csrf_token().await?)).await
        })
    }
    fn actions(&self, gateway: String) -> ApiFuture<Vec<ActionRecord>> {
        boxed(async move {
            let url = format!("/api/v1/actions?gateway={}", js_sys::encode_uri_component(&gateway));
            fetch_serde("GET", &url, None, None).await
        })
    }
    fn undo(&self, id: i64, body: String) -> ApiFuture<ActionResponse> {
        boxed(async move {
            fetch_serde("POST", &format!("/api/v1/actions/{id}/undo"), Some(body), Some(csrf_token().await?)).await
        })
    }
    fn audit(&self, query: String) -> ApiFuture<AuditPage> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/audit?{query}"), None, None).await })
    }
    fn verify_audit(&self) -> ApiFuture<AuditVerification> {
        boxed(fetch_serde("GET", "/api/v1/audit/verify", None, None))
    }
    fn audit_entry(&self, id: i64) -> ApiFuture<AuditEntryDetail> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/audit/{id}"), None, None).await })
    }
    fn search_logs(&self, query: String) -> ApiFuture<LogSearch> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/logs?{query}"), None, None).await })
    }
    fn dependencies(&self) -> ApiFuture<DependencyGraph> {
        boxed(async move { fetch_serde("GET", "/api/v1/dependencies", None, None).await })
    }
    fn probe(&self, body: String) -> ApiFuture<ProbeResult> {
        boxed(async move { fetch_serde("POST", "/api/v1/probe", Some(body), Some(csrf_token().await?)).await })
    }
    fn synthetics(&self) -> ApiFuture<Vec<SyntheticHistory>> {
        boxed(async move { fetch_serde("GET", "/api/v1/synthetics", None, None).await })
    }
    fn incidents(&self, query: String) -> ApiFuture<IncidentList> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/incidents?{query}"), None, None).await })
    }
    fn incident(&self, id: i64) -> ApiFuture<Incident> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/incidents/{id}"), None, None).await })
    }
    fn timeline(&self, id: i64) -> ApiFuture<Timeline> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/incidents/{id}/timeline"), None, None).await })
    }
    fn checklist(&self, id: i64) -> ApiFuture<Checklist> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/incidents/{id}/checklist"), None, None).await })
    }
    fn approvals(&self, query: String) -> ApiFuture<ApprovalList> {
        boxed(async move { fetch_serde("GET", &format!("/api/v1/approvals?{query}"), None, None).await })
    }
    fn send(&self, method: String, path: String, body: String) -> ApiFuture<String> {
        boxed(
            // A GET (a page reading through `send`) carries no body.
            async move {
                let body = Some(body).filter(|_| method != "GET");
                fetch_text(&method, &format!("/api/v1{path}"), body, Some(csrf_token().await?)).await
            },
        )
    }
}

/// Signs out and forgets the CSRF token.
pub async fn logout() -> ApiResult<()> {
    let token = csrf_token().await?;
    let result: ApiResult<()> = fetch_json("DELETE", "/api/v1/session", None, Some(token)).await;
    CSRF.with(|c| *c.borrow_mut() = None);
    result
}

/// Full page load of `path`, so the server renders it with the current session.
/// Shows times in this browser's local offset (`local`) or UTC from now on: kept in the
/// `gw_tz` cookie (a year), which the server reads too; then reloads the page.
pub fn choose_zone(local: bool) {
    use wasm_bindgen::JsCast;
    let minutes = if local { -(js_sys::Date::new_0().get_timezone_offset() as i32) } else { 0 };
    if let Some(window) = web_sys::window() {
        if let Some(d) = window.document() {
            let _ = d
                .unchecked_into::<web_sys::HtmlDocument>()
                .set_cookie(&format!("gw_tz={minutes}; path=/; max-age=31536000; samesite=lax"));
        }
        let _ = window.location().reload();
    }
}

pub fn navigate_hard(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}

/// Writes how many approvals wait for the user (the `approvals` event) into the header's
/// badge, an element the server rendered empty: one number needs no reactive view, and
/// the first download stays small. "0" empties it (the style hides an empty badge).
fn show_waiting(count: &str) {
    let badge = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("approvals-badge"));
    if let Some(badge) = badge {
        badge.set_text_content(Some(if count == "0" { "" } else { count }));
    }
}

/// Shows the banner about break-glass runs waiting for this person's review (the
/// `break_glass` event's count; static text the server rendered hidden) or hides it.
fn show_break_glass(count: &str) {
    let banner = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("break-glass-banner"));
    if let Some(banner) = banner {
        let _ = if count == "0" { banner.set_attribute("hidden", "") } else { banner.remove_attribute("hidden") };
    }
}

/// What the live feed calls, for [`subscribe`].
pub struct Feed {
    /// Gateway numbers, every second (JSON text, decoded by the pages that show them).
    pub on_snapshot: Box<dyn Fn(String)>,
    /// An action changed (JSON text, decoded by the pages that show it).
    pub on_action: Box<dyn Fn(String)>,
    /// A new audit entry (JSON text).
    pub on_audit: Box<dyn Fn(String)>,
    /// The stream was refused or closed and the browser will not retry by itself; it is
    /// opened again here.
    pub on_closed: Box<dyn Fn()>,
    /// Every second, whatever arrives (the clock staleness is judged by).
    pub on_tick: Box<dyn Fn()>,
}

/// Seconds until a refused stream is opened again (0: none waiting), and the wait after
/// the next refusal.
type Retry = std::rc::Rc<std::cell::Cell<(u32, u32)>>;

/// Subscribes to `GET /api/v1/events` for the life of the page. While the connection
/// drops and comes back, the browser's EventSource reconnects by itself; when the server
/// answers with an error (401, 429, 503 ...), the EventSource gives up, so it is opened
/// again here, after 1 s, then twice as long each time up to 30 s. One timer serves both
/// the clock and the retries.
pub fn subscribe(feed: Feed) {
    let (feed, retry): (std::rc::Rc<Feed>, Retry) = (std::rc::Rc::new(feed), Default::default());
    retry.set((0, 1));
    open_feed(feed.clone(), retry.clone());
    let mut ticks = 0u32;
    let tick = Closure::<dyn FnMut()>::new(move || {
        (feed.on_tick)();
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(KEEP_ALIVE_TICKS) {
            leptos::task::spawn_local(async {
                let _ = fetch_text("GET", "/api/v1/session", None, None).await;
            });
        }
        match retry.get() {
            (1, wait) => {
                retry.set((0, wait));
                open_feed(feed.clone(), retry.clone());
            }
            (left, wait) if left > 1 => retry.set((left - 1, wait)),
            _ => {}
        }
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 1000);
    }
    tick.forget();
}

/// To the sign-in page, which comes back to this page after (`next`).
fn to_sign_in() {
    if let Some(location) = web_sys::window().map(|w| w.location()) {
        let here = format!("{}{}", location.pathname().unwrap_or_default(), location.search().unwrap_or_default());
        let next: String = js_sys::encode_uri_component(&here).into();
        let _ = location.assign(&format!("/login?next={next}"));
    }
}

/// Every 5 minutes of watching, the session is used once, so a live page (a wall display)
/// keeps it past the 30-minute idle timeout, up to its 12-hour absolute limit.
const KEEP_ALIVE_TICKS: u32 = 300;

fn open_feed(feed: std::rc::Rc<Feed>, retry: Retry) {
    let refused = {
        let (feed, retry) = (feed.clone(), retry.clone());
        move || {
            let (_, wait) = retry.get();
            retry.set((wait, (wait * 2).min(30)));
            (feed.on_closed)();
            // An EventSource hides its status: ask whether the session still stands (a
            // 401 there takes the page to sign-in).
            leptos::task::spawn_local(async {
                let _ = fetch_text("GET", "/api/v1/session", None, None).await;
            });
        }
    };
    let Ok(source) = EventSource::new("/api/v1/events") else {
        refused();
        return;
    };
    let handler = {
        let (feed, retry) = (feed.clone(), retry.clone());
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                retry.set((0, 1));
                (feed.on_snapshot)(text);
            }
        })
    };
    let _ = source.add_event_listener_with_callback("snapshot", handler.as_ref().unchecked_ref());
    // One listener for the events that carry text: the action and audit JSON (decoded
    // where shown) and the count of approvals waiting.
    let texts = {
        let feed = feed.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                match event.type_().as_str() {
                    "action" => (feed.on_action)(text),
                    "audit" => (feed.on_audit)(text),
                    "break_glass" => show_break_glass(&text),
                    _ => show_waiting(&text),
                }
            }
        })
    };
    for kind in ["action", "audit", "approvals", "break_glass"] {
        let _ = source.add_event_listener_with_callback(kind, texts.as_ref().unchecked_ref());
    }
    let errors = {
        let source = source.clone();
        let mut refused = Some(refused);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if source.ready_state() == EventSource::CLOSED
                && let Some(refused) = refused.take()
            {
                source.close();
                refused();
            }
        })
    };
    let _ = source.add_event_listener_with_callback("error", errors.as_ref().unchecked_ref());
    // Each opened stream keeps its three small closures (a few per reconnection).
    handler.forget();
    texts.forget();
    errors.forget();
    std::mem::forget(source);
}

/// A live tail of `GET /api/v1/logs/tail`; the stream closes when this is dropped.
pub struct LogTail {
    source: EventSource,
    _handler: Closure<dyn FnMut(MessageEvent)>,
}

impl Drop for LogTail {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Follows the new lines matching `query` (a URL query: `q=...`), calling `on_line` for each.
pub fn tail_logs(query: &str, on_line: impl Fn(LogHit) + 'static) -> Option<LogTail> {
    let source = EventSource::new(&format!("/api/v1/logs/tail?{query}")).ok()?;
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string()
            && let Ok(hit) = serde_json::from_str::<LogHit>(&text)
        {
            on_line(hit);
        }
    });
    let _ = source.add_event_listener_with_callback("line", handler.as_ref().unchecked_ref());
    Some(LogTail { source, _handler: handler })
}
