//! Endpoint tests: the runbook's `curl -v` against a gateway path or an allowed URL,
//! with timings, and scheduled synthetic checks of each gateway's key paths.//! Every request goes through the SSRF guard in [`guard`] first.

pub mod guard;

use crate::error::{AppError, Result};
use app::dto::{CheckResult, ProbeRequest, ProbeResult, ProbeTimings, SyntheticHistory};
pub use guard::{Allowed, Guard, Own, Target, forbidden};
use reqwest::Url;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// A probe gives up after this long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Body bytes read at most.
const BODY_MAX: usize = 64 * 1024;
/// Body bytes shown.
const EXCERPT_MAX: usize = 2048;
/// Checks kept per gateway and path.
pub const HISTORY_MAX: usize = 60;
/// Synthetic checks in flight at once.
pub const CHECKS_AT_ONCE: usize = 16;

/// A tower layer that measures how long reqwest's connector takes (TCP, and TLS for https).
#[derive(Clone)]
struct TimeConnect(Arc<Mutex<Option<Duration>>>);

impl<S> tower::Layer<S> for TimeConnect {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner, spent: self.0.clone() }
    }
}

#[derive(Clone)]
struct Timed<S> {
    inner: S,
    spent: Arc<Mutex<Option<Duration>>>,
}

impl<R, S> tower::Service<R> for Timed<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let started = Instant::now();
        let spent = self.spent.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let out = future.await;
            *spent.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
            out
        })
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

/// One request to a checked target, without following redirects.
async fn fetch(target: &Target) -> (ProbeResult, Option<String>) {
    let spent = Arc::new(Mutex::new(None));
    let host = target.url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROBE_TIMEOUT)
        .resolve(&host, target.addr)
        .connector_layer(TimeConnect(spent.clone()))
        .user_agent(concat!("gatewarden-probe/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut result =
        ProbeResult { url: target.url.to_string(), address: Some(target.addr.to_string()), ..Default::default() };
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(format!("could not set up the request: {e}"));
            return (result, None);
        }
    };
    // The TLS handshake is the connector's time beyond a bare TCP handshake to the same
    // address (measured just before).
    let tcp = if target.url.scheme() == "https" {
        let started = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(target.addr)).await {
            Ok(Ok(_)) => Some(started.elapsed()),
            _ => None,
        }
    } else {
        None
    };
    let started = Instant::now();
    let response = client.get(target.url.clone()).send().await;
    let ttfb = started.elapsed();
    let connector = spent.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or_default();
    let (connect, tls) = match tcp {
        Some(tcp) => (tcp, connector.saturating_sub(tcp)),
        None => (connector, Duration::ZERO),
    };
    let mut timings = ProbeTimings {
        dns_ms: ms(target.dns),
        connect_ms: ms(connect),
        tls_ms: ms(tls),
        ttfb_ms: ms(target.dns + ttfb),
        total_ms: 0.0,
    };
    let mut location = None;
    match response {
        Err(e) => {
            result.error = Some(describe(&e));
        }
        Ok(mut r) => {
            result.status = Some(r.status().as_u16());
            result.headers = r
                .headers()
                .iter()
                .take(50)
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            if r.status().is_redirection() {
                location = r.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
            }
            let mut body = Vec::new();
            while body.len() < BODY_MAX {
                match r.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(e) => {
                        result.error = Some(format!("the body broke off: {}", describe(&e)));
                        break;
                    }
                }
            }
            body.truncate(EXCERPT_MAX);
            result.body_excerpt = String::from_utf8_lossy(&body).into_owned();
        }
    }
    timings.total_ms = ms(target.dns + started.elapsed());
    result.timings = timings;
    (result, location)
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Where each gateway answers, the guard, and the synthetic checks' history.
pub struct Probes {
    guard: Guard,
    /// Gateway id → base URL (its own address).
    gateways: RwLock<HashMap<String, Url>>,
    /// Key paths checked per gateway.
    paths: RwLock<HashMap<String, Vec<String>>>,
    history: Mutex<HashMap<(String, String), VecDeque<CheckResult>>>,
}

impl Probes {
    /// Probes allowed by `guard`, no gateways known yet.
    pub fn new(guard: Guard) -> Self {
        Probes {
            guard,
            gateways: RwLock::new(HashMap::new()),
            paths: RwLock::new(HashMap::new()),
            history: Mutex::new(HashMap::new()),
        }
    }

    /// Registers the gateways whose inventory says where they answer (the simulator's
    /// listeners; in Kubernetes, annotations), replacing what an earlier call registered;
    /// bad URLs are logged.
    pub fn sync(&self, inventory: &[crate::fleet::GatewayInventory]) {
        let mut gateways = self.gateways.write().unwrap_or_else(|e| e.into_inner());
        let mut paths = self.paths.write().unwrap_or_else(|e| e.into_inner());
        gateways.clear();
        paths.clear();
        // Gateways that are gone (or no longer say where they answer) lose their history.
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(g, _), _| inventory.iter().any(|inv| inv.id == *g && inv.probe.is_some()));
        for inv in inventory {
            let Some((url, key_paths)) = &inv.probe else { continue };
            match Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.username().is_empty() && u.host().is_some() => {
                    gateways.insert(inv.id.clone(), u);
                    paths.insert(inv.id.clone(), key_paths.clone());
                }
                _ => tracing::warn!(gateway = %inv.id, url, "ignoring a probe URL that is not http(s)://host[:port]"),
            }
        }
    }

    /// The URL of `path` on `gateway`, checked to stay on the gateway.
    fn gateway_url(&self, gateway: &str, path: &str) -> Result<(Url, Own)> {
        let base = self.gateways.read().unwrap_or_else(|e| e.into_inner()).get(gateway).cloned().ok_or_else(|| {
            AppError::NotFound(format!("no gateway '{gateway}' to probe (or no address known for it)"))
        })?;
        if !path.starts_with('/')
            || path.starts_with("//")
            || path.len() > 2048
            || path.chars().any(|c| c.is_control() || c == '\\' || c == '#')
        {
            return Err(AppError::invalid(
                "path",
                "must start with a single '/' and hold no control characters, '\\' or '#'",
            ));
        }
        let url = base.join(path).map_err(|e| AppError::invalid("path", format!("not a path: {e}")))?;
        let port = base.port_or_known_default().unwrap_or(80);
        let own = match base.host() {
            Some(url::Host::Ipv4(ip)) => Own::Addr(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => Own::Addr(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(name)) => Own::Name(name.trim_end_matches('.').to_string(), port),
            None => return Err(AppError::Internal(format!("gateway {gateway} has no address: {base}"))),
        };
        if url.host_str() != base.host_str() || url.port_or_known_default() != base.port_or_known_default() {
            return Err(AppError::invalid("path", "must stay on the gateway"));
        }
        Ok((url, own))
    }

    /// Runs a probe: `{gateway, path}` or `{url}`.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeResult> {
        let (mut url, own) = match (&request.gateway, &request.path, &request.url) {
            (Some(g), Some(p), None) => {
                let (url, own) = self.gateway_url(g, p)?;
                (url, Some(own))
            }
            (None, None, Some(u)) => {
                let url = Url::parse(u).map_err(|e| AppError::invalid("url", format!("not a URL: {e}")))?;
                (url, None)
            }
            _ => return Err(AppError::invalid("gateway", "give either a gateway and a path, or a url")),
        };
        let mut redirects = Vec::new();
        loop {
            let target = self.guard.check(&url, own.as_ref()).await.map_err(|e| match e {
                AppError::Forbidden(m) if !redirects.is_empty() => {
                    AppError::Forbidden(format!("redirect to {url} refused: {m}"))
                }
                e => e,
            })?;
            let (mut result, location) = fetch(&target).await;
            match location {
                Some(next) if redirects.len() < MAX_REDIRECTS => {
                    let next = url
                        .join(&next)
                        .map_err(|e| AppError::invalid("url", format!("the redirect to '{next}' is not a URL: {e}")))?;
                    redirects.push(next.to_string());
                    url = next;
                }
                _ => {
                    result.redirects = redirects;
                    return Ok(result);
                }
            }
        }
    }

    /// A DNS bypass's preflight: `GET url` (the service's health path on its public name)
    /// sent to `target` (the direct RRset's first value: an address, or a name resolved
    /// here), so https is checked against the public name's certificate. `Ok` with a
    /// sentence when it answers 2xx, `Err` with one saying what it did instead.
    pub async fn preflight(&self, url: &str, target: &str) -> std::result::Result<String, String> {
        let url = Url::parse(url).map_err(|e| format!("the health URL {url} is not a URL: {e}"))?;
        // The request goes to `target`'s address whatever the URL says only when the URL
        // names a host: with an address literal (a Service annotation can hold anything)
        // the client would connect to the literal, unchecked (cloud metadata, loopback),
        // while the preview and the ledger named the checked address.
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the health URL {url} is not http or https"));
        }
        if !matches!(url.host(), Some(url::Host::Domain(_))) {
            return Err(format!("the health URL {url} must name the service's public host, not an address"));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = target.trim_end_matches('.');
        let started = Instant::now();
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| format!("resolving the direct target {host} took longer than 5 s"))?
                .map_err(|e| format!("the direct target {host} does not resolve: {e}"))?
                .next()
                .ok_or_else(|| format!("the direct target {host} has no address"))?,
        };
        self.guard.check_direct(addr).map_err(|e| e.to_api().message)?;
        let (result, _) = fetch(&Target { url: url.clone(), addr, dns: started.elapsed() }).await;
        let asked = format!("GET {url} at {addr}");
        match (result.status, result.error) {
            (Some(status), None) if (200..300).contains(&status) => {
                Ok(format!("Preflight passed: {asked} answered {status} in {:.0} ms.", result.timings.total_ms))
            }
            (Some(status), _) => Err(format!("{asked} answered {status}, not 2xx")),
            (None, error) => Err(format!("{asked} failed: {}", error.unwrap_or_else(|| "no answer".into()))),
        }
    }

    /// The latest check of each key path, per gateway: [passing, checked].
    pub fn tallies(&self) -> HashMap<String, [u32; 2]> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: HashMap<String, [u32; 2]> = HashMap::new();
        for ((gateway, _), h) in history.iter() {
            if let Some(last) = h.back() {
                let t = out.entry(gateway.clone()).or_default();
                t[0] += u32::from(last.ok);
                t[1] += 1;
            }
        }
        out
    }

    /// Every gateway's recent checks, by gateway and path.
    pub fn history(&self) -> Vec<SyntheticHistory> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<SyntheticHistory> = history
            .iter()
            .map(|((gateway, path), results)| SyntheticHistory {
                gateway: gateway.clone(),
                path: path.clone(),
                results: results.iter().cloned().collect(),
            })
            .collect();
        out.sort_by(|a, b| (&a.gateway, &a.path).cmp(&(&b.gateway, &b.path)));
        out
    }

    /// One round of synthetic checks. Alone (`shared` none) or leading: checks every key
    /// path now (and, shared, writes the results for the other replicas). Not leading:
    /// reads the leader's results instead, so every replica shows the same strip and the
    /// gateways are checked once, not once per replica.
    pub async fn round(&self, now_ms: i64, shared: Option<&Shared>) {
        match shared {
            None => {
                self.check_all(now_ms).await;
            }
            Some(s) if s.replicas.is_leader() => {
                let fresh = self.check_all(now_ms).await;
                if let Err(e) = s.write(&fresh, now_ms).await {
                    tracing::warn!(error = ?e, "could not share the synthetic checks' results");
                }
            }
            Some(s) => match s.read(now_ms).await {
                Ok(rows) => self.replace_history(rows),
                Err(e) => tracing::warn!(error = ?e, "could not read the synthetic checks' results"),
            },
        }
    }

    /// The history becomes `rows` (oldest first), for the gateways still known.
    fn replace_history(&self, rows: Vec<((String, String), CheckResult)>) {
        let known = self.paths.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut history: HashMap<(String, String), VecDeque<CheckResult>> = HashMap::new();
        for (key, check) in rows {
            if !known.get(&key.0).is_some_and(|paths| paths.contains(&key.1)) {
                continue;
            }
            let h = history.entry(key).or_default();
            if h.len() == HISTORY_MAX {
                h.pop_front();
            }
            h.push_back(check);
        }
        *self.history.lock().unwrap_or_else(|e| e.into_inner()) = history;
    }

    /// Checks every gateway's key paths once, now; returns the new results.
    pub async fn check_all(&self, now_ms: i64) -> Vec<((String, String), CheckResult)> {
        let paths: Vec<(String, String)> = self
            .paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(g, ps)| ps.iter().map(move |p| (g.clone(), p.clone())))
            .collect();
        use futures::StreamExt;
        // At most CHECKS_AT_ONCE requests in flight, however large the fleet.
        let results: Vec<_> = futures::stream::iter(paths.into_iter().map(|(gateway, path)| async move {
            let request =
                ProbeRequest { gateway: Some(gateway.clone()), path: Some(path.clone()), url: None, incident: None };
            let check = match self.probe(&request).await {
                Ok(r) => CheckResult {
                    ts: now_ms,
                    status: r.status,
                    total_ms: r.timings.total_ms,
                    ok: r.status.is_some_and(|s| (200..400).contains(&s)),
                    error: r.error,
                },
                Err(e) => {
                    CheckResult { ts: now_ms, status: None, total_ms: 0.0, ok: false, error: Some(e.to_string()) }
                }
            };
            ((gateway, path), check)
        }))
        .buffer_unordered(CHECKS_AT_ONCE)
        .collect()
        .await;
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        for (key, check) in &results {
            let h = history.entry(key.clone()).or_default();
            if h.len() == HISTORY_MAX {
                h.pop_front();
            }
            h.push_back(check.clone());
        }
        results
    }

    /// A round every `interval`, for as long as the console runs.
    pub fn spawn_checks(self: &Arc<Self>, interval: Duration, shared: Option<Shared>) -> tokio::task::JoinHandle<()> {
        let probes = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                probes.round(crate::db::now_ms(), shared.as_ref()).await;
            }
        })
    }
}

/// A `synthetic_checks` row: gateway, path, ts_ms, status, total_ms, ok, error.
type CheckRow = (String, String, i64, Option<i32>, f64, i32, Option<String>);

/// Synthetic check results shared through the database by several replicas.
pub struct Shared {
    /// The shared database.
    pub db: crate::db::Db,
    /// Whether this replica leads (and so checks).
    pub replicas: Arc<crate::replicas::Replicas>,
    /// How long results are kept: the strip's span.
    pub keep: Duration,
}

impl Shared {
    async fn write(&self, fresh: &[((String, String), CheckResult)], now_ms: i64) -> Result<()> {
        for ((gateway, path), c) in fresh {
            sqlx::query(
                "insert into synthetic_checks (gateway, path, ts_ms, status, total_ms, ok, error) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(gateway)
            .bind(path)
            .bind(c.ts)
            .bind(c.status.map(i32::from))
            .bind(c.total_ms)
            .bind(i32::from(c.ok))
            .bind(c.error.as_deref())
            .execute(&self.db)
            .await?;
        }
        sqlx::query("delete from synthetic_checks where ts_ms < $1")
            .bind(now_ms - self.keep.as_millis() as i64)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    async fn read(&self, now_ms: i64) -> Result<Vec<((String, String), CheckResult)>> {
        let rows: Vec<CheckRow> = sqlx::query_as(
            "select gateway, path, ts_ms, status, total_ms, ok, error from synthetic_checks \
             where ts_ms >= $1 order by ts_ms",
        )
        .bind(now_ms - self.keep.as_millis() as i64)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(gateway, path, ts, status, total_ms, ok, error)| {
                let status = status.and_then(|s| u16::try_from(s).ok());
                ((gateway, path), CheckResult { ts, status, total_ms, ok: ok != 0, error })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_preflight_connects_only_to_the_checked_address_never_to_a_literal_in_the_url() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Something on loopback that must never be reached: it counts connections.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reached = Arc::new(AtomicUsize::new(0));
        let counter = reached.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            }
        });
        let probes = Probes::new(Guard::default());
        // The checked target is a public address; the URL's literal is loopback.
        for url in [format!("http://127.0.0.1:{port}/healthz"), format!("http://[::1]:{port}/healthz")] {
            let said = probes.preflight(&url, "192.0.2.10").await.unwrap_err();
            assert!(said.contains("not an address"), "{said}");
        }
        let said = probes.preflight("ftp://payments.example.com/healthz", "192.0.2.10").await.unwrap_err();
        assert!(said.contains("not http or https"), "{said}");
        // A loopback target itself is refused by the guard (not the simulator's).
        let said = probes.preflight(&format!("http://payments.example.com:{port}/"), "127.0.0.1").await.unwrap_err();
        assert!(said.contains("127.0.0.1"), "{said}");
        assert_eq!(reached.load(Ordering::SeqCst), 0, "nothing connected to loopback");
    }

    #[tokio::test]
    async fn checks_of_a_gateway_that_leaves_the_inventory_are_forgotten() {
        let probes = Probes::new(Guard::default());
        let inventory = |probe: Option<(String, Vec<String>)>| crate::fleet::GatewayInventory {
            id: "prod:edge".into(),
            name: "edge".into(),
            namespace: "prod".into(),
            desired: 1,
            version: "1.0".into(),
            instances: vec![],
            probe,
        };
        // Nothing listens on the discard port: the check fails, and says so.
        probes.sync(&[inventory(Some(("http://localhost:9".into(), vec!["/healthz".into()])))]);
        probes.check_all(1).await;
        let history = probes.history();
        assert_eq!((history.len(), history[0].results[0].ok), (1, false), "{history:?}");
        assert!(history[0].results[0].error.is_some());
        assert_eq!(probes.tallies().get("prod:edge"), Some(&[0, 1]));
        probes.sync(&[inventory(None)]);
        assert!(probes.history().is_empty() && probes.tallies().is_empty());
    }
}
