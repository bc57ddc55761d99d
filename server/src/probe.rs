//! Endpoint tests: the runbook's `curl -v` against a gateway path or an allowed URL,
//! with timings, and scheduled synthetic checks of each gateway's key paths.
//!
//! The console sits inside the network, so a probe that went wherever it was told would
//! be a server-side request forgery tool. Every request, and every redirect it would
//! follow, goes through [`Guard::check`] before a packet leaves:
//! - only `http` and `https`, no user-info, no other host than a gateway's own address
//!   (for `{gateway, path}`) or one on `--probe-allow` (for `{url}`);
//! - names are resolved here, every address they resolve to must be public (no loopback,
//!   private, link-local / cloud metadata, shared, multicast or reserved ranges, in IPv4,
//!   IPv6 and IPv4-mapped form), and the connection is pinned to the address that was
//!   checked, so a second lookup cannot rebind the name;
//! - addresses written out (`http://10.0.0.5:8080/`) pass only when the allow-list names
//!   that exact address and port, or when they are a gateway's own; metadata addresses
//!   never pass;
//! - redirects are followed by hand, at most five, each checked the same way.

use crate::error::{AppError, Result};
use app::dto::{CheckResult, ProbeRequest, ProbeResult, ProbeTimings, SyntheticHistory};
use reqwest::Url;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// Why an address may not be probed, if it may not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: the IPv4 address inside decides.
                forbidden_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("a documentation address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if ip.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a shared (carrier-grade NAT) address")
    } else if o[0] == 0 {
        Some("a 'this network' address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast or reserved address")
    } else if (o[0], o[1], o[2]) == (192, 0, 0) || (o[0] == 198 && (18..20).contains(&o[1])) {
        Some("a reserved address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else {
        None
    }
}

/// Link-local addresses (where cloud metadata services answer): never probed, whatever
/// the allow-list says.
fn metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local()) || v6.segments()[0] & 0xffc0 == 0xfe80
        }
    }
}

/// One `--probe-allow` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    /// A host name (`api.example.com`) or every name under a domain (`*.example.com`),
    /// optionally on one port; they must resolve to public addresses.
    Name {
        /// Lower case; a leading `*.` matches any subdomain.
        pattern: String,
        /// Only this port.
        port: Option<u16>,
    },
    /// Exactly this address and port (may be private: the operator said so).
    Addr(SocketAddr),
}

impl Allowed {
    /// Parses `host`, `*.domain`, `host:port` or `ip:port` (`[v6]:port`).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if metadata(addr.ip()) {
                return Err(format!(
                    "'{s}' is a link-local address (cloud metadata lives there); it cannot be allowed"
                ));
            }
            return Ok(Allowed::Addr(addr));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("'{s}': '{p}' is not a port"))?)),
            None => (s, None),
        };
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let valid = !bare.is_empty()
            && bare.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid || bare.parse::<IpAddr>().is_ok() {
            return Err(format!("'{s}' is neither a host name, '*.domain' nor an address with a port"));
        }
        Ok(Allowed::Name { pattern: host.to_ascii_lowercase(), port })
    }

    fn allows_name(&self, host: &str, port: u16) -> bool {
        match self {
            Allowed::Name { pattern, port: p } => {
                let host = host.to_ascii_lowercase();
                let name_ok = match pattern.strip_prefix("*.") {
                    Some(domain) => host.ends_with(&format!(".{domain}")),
                    None => host == *pattern,
                };
                name_ok && p.is_none_or(|p| p == port)
            }
            Allowed::Addr(_) => false,
        }
    }
}

/// Decides where probes may go.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<Allowed>,
}

/// A gateway's own address: the one non-public place a `{gateway, path}` probe may go.
#[derive(Clone, Debug, PartialEq)]
pub enum Own {
    /// An address (the simulator's listeners).
    Addr(SocketAddr),
    /// A name and port (a Deployment's `gatewarden.io/probe-url`, usually a Service's
    /// cluster name): whatever it resolves to, except link-local (metadata) addresses.
    Name(String, u16),
}

/// A checked request target: connect only to `addr`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The URL.
    pub url: Url,
    /// The checked address to connect to.
    pub addr: SocketAddr,
    /// Time spent resolving the name.
    pub dns: Duration,
}

fn refuse(message: String) -> AppError {
    AppError::Forbidden(message)
}

impl Guard {
    /// A guard allowing `allow` (besides gateways' own addresses).
    pub fn new(allow: Vec<Allowed>) -> Self {
        Guard { allow }
    }

    /// Checks `url` for a probe; `own` is the gateway's own address when probing a gateway
    /// (the only non-public address besides those listed exactly).
    pub async fn check(&self, url: &Url, own: Option<&Own>) -> Result<Target> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!("only http and https can be probed, not '{}'", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials in the URL are not allowed".into()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(h) => h,
            None => return Err(refuse("the URL has no host".into())),
        };
        let literal: Option<IpAddr> = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            let addr = SocketAddr::new(ip, port);
            let listed = own == Some(&Own::Addr(addr)) || self.allow.contains(&Allowed::Addr(addr));
            if metadata(ip) {
                return Err(refuse(format!(
                    "{addr} is a link-local address (cloud metadata lives there); never probed"
                )));
            }
            if !listed {
                return Err(refuse(match forbidden(ip) {
                    Some(why) => format!("{addr} is {why} and not on the allow-list"),
                    None => format!("{addr} is not on the allow-list (--probe-allow)"),
                }));
            }
            return Ok(Target { url: url.clone(), addr, dns: Duration::ZERO });
        }
        let name = url.host_str().unwrap_or_default().trim_end_matches('.').to_string();
        let own_name = matches!(own, Some(Own::Name(n, p)) if n.eq_ignore_ascii_case(&name) && *p == port);
        if !own_name && (own.is_some() || !self.allow.iter().any(|a| a.allows_name(&name, port))) {
            return Err(refuse(format!("{name}:{port} is not on the allow-list (--probe-allow)")));
        }
        let started = Instant::now();
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| AppError::invalid("url", format!("resolving {name} took longer than 5 s")))?
                .map_err(|e| AppError::invalid("url", format!("{name} does not resolve: {e}")))?
                .collect();
        let dns = started.elapsed();
        // Every address must be public: a name that also resolves inside would let a
        // later lookup choose the inside one.
        for a in &addrs {
            if metadata(a.ip()) {
                return Err(refuse(format!("{name} resolves to {}, a link-local (metadata) address", a.ip())));
            }
            if let Some(why) = forbidden(a.ip()).filter(|_| !own_name) {
                return Err(refuse(format!("{name} resolves to {}, {why}", a.ip())));
            }
        }
        let addr = *addrs.first().ok_or_else(|| AppError::invalid("url", format!("{name} has no address")))?;
        Ok(Target { url: url.clone(), addr, dns })
    }
}

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

    /// Checks every gateway's key paths once, now.
    pub async fn check_all(&self, now_ms: i64) {
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
            let request = ProbeRequest { gateway: Some(gateway.clone()), path: Some(path.clone()), url: None };
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
        for (key, check) in results {
            let h = history.entry(key).or_default();
            if h.len() == HISTORY_MAX {
                h.pop_front();
            }
            h.push_back(check);
        }
    }

    /// Checks every `interval`, for as long as the console runs.
    pub fn spawn_checks(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let probes = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                probes.check_all(crate::db::now_ms()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_forbidden_in_every_spelling() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.170",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
        ] {
            assert!(forbidden(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(forbidden(good.parse().unwrap()), None, "{good}");
        }
    }

    #[test]
    fn allow_list_entries_parse_and_match_names_ports_and_subdomains() {
        let a = Allowed::parse("*.example.com").unwrap();
        assert!(a.allows_name("api.example.com", 443) && a.allows_name("A.B.EXAMPLE.COM", 80));
        assert!(!a.allows_name("example.com", 443) && !a.allows_name("evilexample.com", 443));
        let b = Allowed::parse("status.example.org:8443").unwrap();
        assert!(b.allows_name("status.example.org", 8443) && !b.allows_name("status.example.org", 443));
        assert_eq!(Allowed::parse("10.0.0.5:8080").unwrap(), Allowed::Addr("10.0.0.5:8080".parse().unwrap()));
        assert!(Allowed::parse("169.254.169.254:80").is_err(), "metadata can never be allowed");
        assert!(Allowed::parse("10.0.0.5").is_err(), "an address needs its port");
        assert!(Allowed::parse("bad host").is_err() && Allowed::parse("x:notaport").is_err());
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

    fn url_of(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn the_guard_refuses_before_connecting() {
        let guard = Guard::new(vec![
            Allowed::parse("localhost").unwrap(),
            Allowed::parse("10.0.0.5:8080").unwrap(),
            Allowed::parse("*.example.com").unwrap(),
        ]);
        let check = |u: &str| {
            let guard = guard.clone();
            let url = Url::parse(u).unwrap();
            async move { guard.check(&url, None).await }
        };
        let refused = |r: Result<Target>| match r {
            Err(AppError::Forbidden(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused(check("http://169.254.169.254/latest/meta-data/").await).contains("link-local"));
        assert!(refused(check("http://[::ffff:169.254.169.254]/").await).contains("link-local"));
        assert!(refused(check("http://127.0.0.1:5432/").await).contains("loopback"));
        assert!(refused(check("http://10.0.0.5:22/").await).contains("private"), "only the listed port");
        assert!(check("http://10.0.0.5:8080/health").await.is_ok(), "listed exactly");
        assert!(refused(check("http://localhost:5432/").await).contains("resolves to"), "a name that resolves inside");
        assert!(refused(check("http://elsewhere.org/").await).contains("allow-list"));
        assert!(refused(check("file:///etc/passwd").await).contains("http"));
        assert!(refused(check("http://user:pw@api.example.com/").await).contains("credentials"));
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let own = Own::Addr(addr);
        let url = Url::parse("http://127.0.0.1:4000/healthz").unwrap();
        assert_eq!(guard.check(&url, Some(&own)).await.unwrap().addr, addr, "a gateway's own address");
        let other = Url::parse("http://127.0.0.1:4001/").unwrap();
        assert!(guard.check(&other, Some(&own)).await.is_err(), "not the port next to it");
        // A gateway known by name (a Service's cluster name) may resolve inside.
        let named = Own::Name("localhost".into(), 4000);
        let target = guard.check(&url_of("http://localhost:4000/healthz"), Some(&named)).await.unwrap();
        assert!(target.addr.ip().is_loopback() && target.addr.port() == 4000, "{target:?}");
        assert!(guard.check(&url_of("http://localhost:4001/"), Some(&named)).await.is_err(), "its port only");
        assert!(guard.check(&url_of("http://127.0.0.1:4000/"), Some(&named)).await.is_err(), "its name only");
    }
}
