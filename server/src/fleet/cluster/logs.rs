//! Gateway pod logs the way `kubectl logs -l SELECTOR` reads them: each pod's default
//! container (the `kubectl.kubernetes.io/default-container` annotation, else the first),
//! 10 lines per pod unless told otherwise, at most 5 requests at a time; following
//! reopens a stream 1 s after it ends, from where it stopped.

use super::KubeFleet;
use super::ops::{CALL_TIMEOUT, error};
use crate::fleet::{FleetError, FleetResult};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// kubectl's `--tail` when a selector is given.
pub const DEFAULT_TAIL_LINES: i64 = 10;
/// kubectl's `--max-log-requests`.
pub const MAX_LOG_REQUESTS: usize = 5;
/// kubectl's pause before reopening a followed stream.
pub const FOLLOW_RETRY: Duration = Duration::from_secs(1);

/// One line of a pod's log.
pub type LogLine = app::dto::PodLogLine;

/// A pod and the container to read.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// Pod name.
    pub pod: String,
    /// Container (kubectl's default container).
    pub container: String,
}

/// How many bytes one request may read from pod logs: at most `per_pod` from each pod,
/// and `total` over all of them (each pod then gets an equal share).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes per pod (`limitBytes`).
    pub per_pod: i64,
    /// Bytes over every pod of one request.
    pub total: i64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { per_pod: 256 * 1024, total: 4 * 1024 * 1024 }
    }
}

impl Budget {
    /// How many pods one request reads at most: each gets at least 1 KiB of the total.
    pub fn max_pods(self) -> usize {
        (self.total / 1024).max(1) as usize
    }

    /// `limitBytes` for each of `pods` pods: the per-pod limit or an equal share of the
    /// total, whichever is smaller (at least 1 KiB, so every pod shows something).
    pub fn per_pod_of(self, pods: usize) -> i64 {
        let share = self.total / pods.max(1) as i64;
        self.per_pod.min(share).max(1024)
    }
}

/// The last `tail` lines (optionally only those of the last `since_seconds`) of every
/// source, pod by pod in the order given, with at most [`MAX_LOG_REQUESTS`] requests in
/// flight and at most `limit_bytes` read from each (`None`: no limit).
pub async fn recent(
    api: &Api<Pod>,
    sources: &[Source],
    tail: i64,
    since_seconds: Option<i64>,
    limit_bytes: Option<i64>,
) -> FleetResult<Vec<LogLine>> {
    let requests = sources.iter().cloned().map(|s| {
        let api = api.clone();
        async move { read(api, s, tail, since_seconds, limit_bytes).await }
    });
    let results: Vec<FleetResult<Vec<LogLine>>> =
        futures::stream::iter(requests).buffered(MAX_LOG_REQUESTS).collect().await;
    let mut lines = Vec::new();
    for r in results {
        lines.extend(r?);
    }
    Ok(lines)
}

async fn read(
    api: Api<Pod>,
    s: Source,
    tail: i64,
    since_seconds: Option<i64>,
    limit_bytes: Option<i64>,
) -> FleetResult<Vec<LogLine>> {
    {
        let lp = LogParams {
            container: Some(s.container.clone()),
            tail_lines: Some(tail),
            since_seconds,
            limit_bytes,
            ..Default::default()
        };
        let what = format!("logs of {}", s.pod);
        let text = tokio::time::timeout(CALL_TIMEOUT, api.logs(&s.pod, &lp))
            .await
            .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
            .map_err(|e| error(&what, e))?;
        Ok(text
            .lines()
            .map(|line| LogLine { pod: s.pod.clone(), container: s.container.clone(), line: line.to_string() })
            .collect())
    }
}

/// Follows `source`'s log into `tx` until `tx` closes: a stream that ends or fails is
/// reopened after [`FOLLOW_RETRY`], asking only for what came after the last line read.
pub async fn follow(api: Api<Pod>, source: Source, tx: mpsc::Sender<LogLine>) {
    let mut since_seconds: Option<i64> = None;
    let mut tail_lines = Some(DEFAULT_TAIL_LINES);
    loop {
        let lp = LogParams {
            container: Some(source.container.clone()),
            follow: true,
            tail_lines,
            since_seconds,
            ..Default::default()
        };
        let mut last_line_at = None;
        if let Ok(stream) = api.log_stream(&source.pod, &lp).await {
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                last_line_at = Some(tokio::time::Instant::now());
                let out = LogLine { pod: source.pod.clone(), container: source.container.clone(), line };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
        if tx.is_closed() {
            return;
        }
        // Resume from about where it stopped, without replaying the tail.
        tail_lines = None;
        since_seconds = Some(last_line_at.map_or(1, |t| t.elapsed().as_secs().max(1) as i64));
    }
}

/// A followed line as a log record of `gateway`, read the way gateways write them:
/// an access line (`"GET /path HTTP/1.1" 503 ...`) gives its route and status, and a
/// level from the status; other lines are errors or warnings by their words.
pub fn to_record(gateway: Arc<str>, line: LogLine, ts_ms: i64) -> crate::logs::LogRecord {
    use crate::logs::query::Level;
    static ACCESS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#""[A-Z]+ (\S+) HTTP/[0-9.]+" ([1-5][0-9][0-9]) "#).expect("a valid pattern")
    });
    let (route, status) = ACCESS
        .captures(&line.line)
        .and_then(|c| Some((c.get(1)?.as_str().split('?').next()?.to_string(), c.get(2)?.as_str().parse().ok()?)))
        .unwrap_or_default();
    let lower = line.line.to_ascii_lowercase();
    let level = match status {
        500.. => Level::Error,
        400.. => Level::Warn,
        100.. => Level::Info,
        _ if ["error", "panic", "fatal", "exception", "failed"].iter().any(|w| lower.contains(w)) => Level::Error,
        _ if lower.contains("warn") => Level::Warn,
        _ => Level::Info,
    };
    crate::logs::LogRecord {
        ts_ms,
        gateway,
        instance: line.pod.into(),
        level,
        route: route.into(),
        status,
        message: line.line,
    }
}

impl KubeFleet {
    /// Follows the gateway pods' logs into `store` with kubectl's defaults (default
    /// container, the last 10 lines first, reopened after a second), at most
    /// `max_streams` pods at once (kubectl's `--max-log-requests`), following pods as
    /// they come and go. Lines are stamped when they arrive and stored in batches.
    pub fn spawn_log_feed(self: &Arc<Self>, store: Arc<crate::logs::LogStore>, max_streams: usize) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(Arc<str>, LogLine)>(4096);
            let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        let Some(fleet) = weak.upgrade() else { return };
                        let wanted = fleet.log_sources(max_streams);
                        let keys: Vec<String> = wanted.iter().map(|(_, ns, s)| format!("{ns}/{}", s.pod)).collect();
                        running.retain(|key, task| {
                            let keep = keys.contains(key);
                            if !keep {
                                task.abort();
                            }
                            keep
                        });
                        for ((gateway, ns, source), key) in wanted.into_iter().zip(keys) {
                            if running.contains_key(&key) {
                                continue;
                            }
                            let api: Api<Pod> = Api::namespaced(fleet.client.clone(), &ns);
                            let (line_tx, mut line_rx) = tokio::sync::mpsc::channel(256);
                            let out = tx.clone();
                            let follower = tokio::spawn(follow(api, source, line_tx));
                            running.insert(key, tokio::spawn(async move {
                                while let Some(line) = line_rx.recv().await {
                                    if out.send((gateway.clone(), line)).await.is_err() {
                                        break;
                                    }
                                }
                                follower.abort();
                            }));
                        }
                    }
                    Some(first) = rx.recv() => {
                        let now = crate::db::now_ms();
                        let mut batch = vec![to_record(first.0, first.1, now)];
                        while batch.len() < 4096 {
                            match rx.try_recv() {
                                Ok((gateway, line)) => batch.push(to_record(gateway, line, now)),
                                Err(_) => break,
                            }
                        }
                        store.extend(batch);
                    }
                }
            }
        })
    }
}
