//! The simulated gateways' logs: a sample of access lines per route and second whose
//! status codes follow the route's counted outcomes, and an error line for each sampled
//! failure whose text names its cause as the model sees it (a bad revision panics, a
//! failing service refuses or times out, no ready pod means no live upstream, a broken
//! auth layer rejects tokens). Drawn from their own random stream, so logging never
//! changes the numbers.

use super::histogram::{BOUNDS_MS, Buckets};
use super::parts::{Gateway, Second, Service};
use crate::logs::LogRecord;
use crate::logs::query::Level;
use crate::rng::SplitMix64;
use std::sync::Arc;

/// Access lines sampled per route and second (a real gateway logs every request; the
/// simulator keeps the volume to what a demo needs).
pub const ACCESS_PER_ROUTE: u64 = 3;

fn pick_weighted(rng: &mut SplitMix64, weights: &[u64]) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.below(total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return Some(i);
        }
        x -= w;
    }
    None
}

fn latency_ms(rng: &mut SplitMix64, buckets: &Buckets) -> f64 {
    match pick_weighted(rng, buckets) {
        None => 1.0,
        Some(i) => {
            let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
            let upper = BOUNDS_MS.get(i).copied().unwrap_or(lower * 1.5);
            lower + (upper - lower) * rng.f64()
        }
    }
}

const STACK: &str = "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6f2a1c]\n\n\
goroutine 4127 [running]:\n\
gateway/internal/route.(*Table).Match(0x0, {0xc0001a2f00, 0x12})\n\
\t/src/internal/route/table.go:88 +0x1c\n\
gateway/internal/proxy.(*Handler).ServeHTTP(0xc00012e0a0, {0x9b3f40, 0xc0004f21c0}, 0xc000512000)\n\
\t/src/internal/proxy/handler.go:212 +0x2f7\n\
net/http.serverHandler.ServeHTTP({0xc0001b4000}, {0x9b3f40, 0xc0004f21c0}, 0xc000512000)\n\
\t/usr/local/go/src/net/http/server.go:3210 +0x8e";

/// Appends second `t`'s lines of `gw` (outcomes per route in `routes`) to `out`.
pub fn emit(
    gw: &Gateway,
    services: &[Service],
    routes: &[Second],
    t: i64,
    ts_ms: i64,
    rng: &mut SplitMix64,
    out: &mut Vec<LogRecord>,
) {
    let gateway: Arc<str> = gw.id.into();
    let ready: Vec<_> = gw.pods.iter().filter(|p| p.ready_at <= t).collect();
    let pod_names: Vec<Arc<str>> = ready.iter().map(|p| Arc::<str>::from(p.name.as_str())).collect();
    for (route, s) in gw.routes.iter().zip(routes) {
        let path: Arc<str> = route.path.into();
        let service = services.iter().find(|x| x.name == route.service);
        let failing = service.map_or(0.0, |x| x.fail);
        for _ in 0..s.total.min(ACCESS_PER_ROUTE) {
            let Some(class) = pick_weighted(rng, &[s.c2xx, s.c4xx, s.c429, s.c5xx]) else { break };
            let ts = ts_ms - 1000 + rng.below(1000) as i64;
            let pod = (!ready.is_empty()).then(|| rng.below(ready.len() as u64) as usize);
            let instance = pod.map_or_else(|| Arc::<str>::from("-"), |i| pod_names[i].clone());
            let bad_revision = pod.and_then(|i| gw.revision(ready[i].revision)).filter(|r| r.error_prob > 0.0);
            let (status, cause): (u16, Option<String>) = match class {
                0 => (200, None),
                1 if gw.auth_broken => (
                    401,
                    Some(
                        "auth: token validation failed: dial tcp auth.internal:443: connect: connection refused".into(),
                    ),
                ),
                1 => (404, None),
                2 => (429, None),
                _ if pod.is_none() => {
                    (503, Some(format!("no live upstreams while connecting to upstream \"{}\"", route.service)))
                }
                _ if bad_revision.is_some() => {
                    let version = bad_revision.map(|r| r.version.clone()).unwrap_or_default();
                    (
                        500,
                        Some(format!(
                            "panic: runtime error: invalid memory address or nil pointer dereference (gateway {version})\n{STACK}"
                        )),
                    )
                }
                _ if failing > 0.2 && rng.below(2) == 0 => (
                    504,
                    Some(format!(
                        "upstream timed out (110: Connection timed out) while reading response header from upstream, \
                         upstream: \"http://{}:8080{}\"",
                        route.service, route.path
                    )),
                ),
                _ => (
                    502,
                    Some(format!(
                        "connect() failed (111: Connection refused) while connecting to upstream, upstream: \
                         \"http://{}:8080{}\"",
                        route.service, route.path
                    )),
                ),
            };
            let ms = if status == 429 || status == 401 { 0.4 + rng.f64() } else { latency_ms(rng, &s.buckets) };
            let client = format!("10.{}.{}.{}", rng.below(256), rng.below(256), 1 + rng.below(254));
            let method = if rng.below(4) == 0 { "POST" } else { "GET" };
            let level = match status {
                500.. => Level::Error,
                400.. => Level::Warn,
                _ => Level::Info,
            };
            out.push(LogRecord {
                ts_ms: ts,
                gateway: gateway.clone(),
                instance: instance.clone(),
                level,
                route: path.clone(),
                status,
                message: format!(
                    "{client} \"{method} {} HTTP/1.1\" {status} {ms:.1}ms upstream={}",
                    route.path, route.service
                ),
            });
            if let Some(cause) = cause {
                out.push(LogRecord {
                    ts_ms: ts,
                    gateway: gateway.clone(),
                    instance: instance.clone(),
                    level: if status >= 500 { Level::Error } else { Level::Warn },
                    route: path.clone(),
                    status: 0,
                    message: cause,
                });
            }
        }
    }
}
