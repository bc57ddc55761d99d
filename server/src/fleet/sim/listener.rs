//! The simulated gateways answer HTTP on real local sockets, so an endpoint probe (and a
//! synthetic check) measures a real request: `/healthz` answers 200 while a pod is ready,
//! a route's path answers with a status drawn from that route's last seconds of outcomes
//! after a latency drawn from its histogram, and any other path 404s, as a gateway with
//! no matching route does.

use super::SimFleet;
use super::histogram;
use crate::rng::SplitMix64;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest a simulated answer waits (a probe should not hang on a slow model).
const LATENCY_CAP_MS: f64 = 3_000.0;

/// What a simulated gateway answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// How long it takes, ms.
    pub latency_ms: f64,
    /// The service the route forwards to.
    pub upstream: Option<&'static str>,
}

impl SimFleet {
    /// What `gateway` answers to a request for `path`, drawn with `rng`; `None` when there
    /// is no such gateway.
    pub fn answer(&self, gateway: &str, path: &str, rng: &mut SplitMix64) -> Option<Answer> {
        let sim = self.lock();
        let gw = sim.gateways.iter().find(|g| g.id == gateway)?;
        let ready = gw.ready_pods(sim.t).count();
        if path == "/healthz" {
            let status = if ready > 0 { 200 } else { 503 };
            return Some(Answer { status, latency_ms: 0.5 + rng.f64(), upstream: None });
        }
        let Some((k, route)) = gw
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| path == r.path || path.strip_prefix(r.path).is_some_and(|rest| rest.starts_with('/')))
        else {
            return Some(Answer { status: 404, latency_ms: 0.3 + rng.f64() * 0.5, upstream: None });
        };
        let mut s = super::parts::Second::zero(sim.t);
        for second in &gw.route_recent {
            if let Some(r) = second.get(k) {
                s.add(r);
            }
        }
        if ready == 0 {
            return Some(Answer { status: 503, latency_ms: 0.5, upstream: Some(route.service) });
        }
        let weights = [s.c2xx, s.c4xx, s.c429, s.c5xx];
        let total: u64 = weights.iter().sum();
        let class = if total == 0 {
            0
        } else {
            let mut x = rng.below(total);
            weights.iter().position(|w| {
                if x < *w {
                    true
                } else {
                    x -= w;
                    false
                }
            })?
        };
        let failing = sim.services.iter().find(|x| x.name == route.service).map_or(0.0, |x| x.fail);
        let status = match class {
            0 => 200,
            1 if gw.auth_broken => 401,
            1 => 404,
            2 => 429,
            _ if failing > 0.2 => 504,
            _ => 502,
        };
        let latency_ms = match status {
            429 | 401 => 0.4 + rng.f64(),
            _ if s.buckets.iter().sum::<u64>() == 0 => route.latency_ms,
            _ => histogram::quantile(rng.f64().clamp(0.01, 0.99), &s.buckets),
        };
        Some(Answer { status, latency_ms: latency_ms.min(LATENCY_CAP_MS), upstream: Some(route.service) })
    }
}

struct Listener {
    fleet: Arc<SimFleet>,
    gateway: &'static str,
    draws: AtomicU64,
}

async fn handle(State(l): State<Arc<Listener>>, request: Request) -> Response {
    let seed = l.draws.fetch_add(1, Ordering::Relaxed) ^ crate::db::now_ms() as u64;
    let mut rng = SplitMix64::new(seed);
    let path = request.uri().path().to_string();
    let Some(answer) = l.fleet.answer(l.gateway, &path, &mut rng) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    tokio::time::sleep(Duration::from_secs_f64(answer.latency_ms / 1000.0)).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "gateway": l.gateway,
        "path": path,
        "upstream": answer.upstream,
        "status": answer.status,
    });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("server", HeaderValue::from_static("gatewarden-sim"));
    if let Ok(v) = HeaderValue::from_str(l.gateway) {
        headers.insert("x-gateway", v);
    }
    if let Some(v) = answer.upstream.and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert("x-upstream", v);
    }
    response
}

/// A simulated gateway's key paths for synthetic checks: health and its first two routes.
pub fn key_paths(gw: &super::parts::Gateway) -> Vec<String> {
    let mut paths = vec!["/healthz".to_string()];
    paths.extend(gw.routes.iter().take(2).map(|r| r.path.to_string()));
    paths
}

impl SimFleet {
    /// Starts every simulated gateway's listener on a free local port; the inventory then
    /// says where each answers. Returns the listeners' tasks.
    pub async fn serve_gateways(self: &Arc<Self>) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
        let ids: Vec<&'static str> = self.lock().gateways.iter().map(|g| g.id).collect();
        let mut tasks = Vec::new();
        for gateway in ids {
            let socket = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr: SocketAddr = socket.local_addr()?;
            let state = Arc::new(Listener { fleet: Arc::clone(self), gateway, draws: AtomicU64::new(0) });
            let app = Router::new().fallback(handle).with_state(state);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(socket, app).await {
                    tracing::warn!(gateway, error = %e, "simulated gateway listener stopped");
                }
            }));
            self.listeners.write().unwrap_or_else(|e| e.into_inner()).insert(gateway, format!("http://{addr}/"));
        }
        Ok(tasks)
    }
}

/// One downstream service's own listener: where its clients go while a DNS bypass sends
/// them around the gateway (its direct target).
struct ServiceListener {
    fleet: Arc<SimFleet>,
    service: String,
}

impl SimFleet {
    /// What `service` itself answers to `path`, without any gateway in front: `/healthz`
    /// is 200 while fewer than half its requests fail (503 otherwise), any other path 200
    /// or 503 by its current failure rate. `None`: no such service.
    pub fn service_answer(&self, service: &str, path: &str, rng: &mut SplitMix64) -> Option<u16> {
        let sim = self.lock();
        let s = sim.services.iter().find(|s| s.name == service)?;
        let up = if path == "/healthz" { s.fail < 0.5 } else { rng.f64() >= s.fail };
        Some(if up { 200 } else { 503 })
    }

    /// Starts a listener for each `(service, address)` on a free port of that address
    /// (loopback addresses such as 127.0.2.7 need no set-up on Linux). Returns the tasks
    /// and where each service answers.
    pub async fn serve_services(
        self: &Arc<Self>,
        at: &[(String, std::net::IpAddr)],
    ) -> std::io::Result<(Vec<tokio::task::JoinHandle<()>>, Vec<(String, SocketAddr)>)> {
        let (mut tasks, mut listening) = (Vec::new(), Vec::new());
        for (service, ip) in at {
            let socket = tokio::net::TcpListener::bind((*ip, 0)).await?;
            listening.push((service.clone(), socket.local_addr()?));
            let state = Arc::new(ServiceListener { fleet: Arc::clone(self), service: service.clone() });
            let app = Router::new().fallback(service_handle).with_state(state);
            let name = service.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(socket, app).await {
                    tracing::warn!(service = %name, error = %e, "simulated service listener stopped");
                }
            }));
        }
        Ok((tasks, listening))
    }
}

async fn service_handle(State(l): State<Arc<ServiceListener>>, request: Request) -> Response {
    let mut rng = SplitMix64::new(crate::db::now_ms() as u64);
    let path = request.uri().path().to_string();
    let Some(status) = l.fleet.service_answer(&l.service, &path, &mut rng) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "service": l.service, "path": path, "status": status.as_u16() });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert("server", HeaderValue::from_static("gatewarden-sim"));
    response
}
