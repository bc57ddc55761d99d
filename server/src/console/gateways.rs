//! Gateways and what is seen of them: health, logs, the map, probes, checks, the backend.

use super::ServerConsole;
use crate::error::{AppError, Result};
use crate::limits::Work;
use crate::params::Params;
use app::dto::*;

impl ServerConsole {
    /// Every gateway (viewer).
    pub async fn gateways(&self) -> Result<Vec<GatewaySummary>> {
        self.caller(Role::Viewer)?;
        self.state.health.gateways().await
    }

    /// One gateway (viewer).
    pub async fn gateway(&self, id: &str) -> Result<GatewayDetail> {
        self.caller(Role::Viewer)?;
        let mut detail = self.state.health.gateway(id).await?;
        if let Some(first) = detail.series.first() {
            detail.marks = self.state.engine.chart_marks(id, first.ts_ms).await?;
        }
        Ok(detail)
    }

    /// `kubectl logs -l <gateway selector> --tail=N [--since=Ns]` for one gateway: `tail`
    /// 1 to 10,000 (default 10, kubectl's with a selector), `since_seconds` 1 to 86,400.
    pub async fn gateway_logs(&self, id: &str, params: &Params) -> Result<PodLogs> {
        let user = self.caller(Role::Viewer)?;
        let tail = params.whole("tail", 1..=10_000)?.unwrap_or(crate::fleet::cluster::logs::DEFAULT_TAIL_LINES);
        let since = params.whole("since_seconds", 1..=86_400)?;
        let _running = self.state.caps.enter(Work::PodLogs, user.id)?;
        Ok(PodLogs { lines: self.state.health.logs(id, tail, since).await? })
    }

    /// `GET /api/v1/logs`: a page of the lines matching `q` (the query language of
    /// `logs::query`), newest first. A syntax error in `q` is a 400 that says where.
    pub async fn search_logs(&self, params: &Params) -> Result<LogSearch> {
        use crate::logs::time_param;
        self.caller(Role::Viewer)?;
        let get = |k: &str| params.text(k);
        let now = crate::db::now_ms();
        let time = |field: &'static str| -> Result<Option<i64>> {
            get(field)
                .map(|v| {
                    time_param(v).map(|b| b.resolve(now)).ok_or_else(|| {
                        AppError::invalid(field, "a time (RFC 3339, Unix ms, now) or an age (15m, 2h, 7d)")
                    })
                })
                .transpose()
        };
        let (since, until) = (time("since")?, time("until")?);
        let limit = params.whole("limit", 1..=1000)?.unwrap_or(100) as usize;
        let cursor = params.cursor("cursor")?.map(|c| c as u64);
        let _running = self.state.caps.enter(Work::Search, self.user_id())?;
        let started = std::time::Instant::now();
        let matcher = compile_log_query(get("q").unwrap_or("").to_string(), now).await?;
        // A scan of millions of lines takes a few hundred milliseconds on every core: off
        // the async workers, so other requests and live streams are not held up.
        let store = self.state.logs.clone();
        let (matcher, page) = tokio::task::spawn_blocking(move || {
            let page = store.search(&matcher, since, until, limit, cursor);
            (matcher, page)
        })
        .await
        .map_err(|e| AppError::Internal(format!("log search: {e}")))?;
        Ok(LogSearch {
            hits: page.hits.iter().map(|h| h.record.hit(&matcher)).collect(),
            total: page.total,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
            next_cursor: page.next_cursor.map(|c| c.to_string()),
            histogram: page
                .histogram
                .into_iter()
                .map(|(start, width, count)| HistogramBar { start, width, count })
                .collect(),
            oldest_kept: page.oldest,
            dropped: page.dropped,
        })
    }

    /// A live tail of the new lines matching `q`. A syntax error is a 400, as for a search.
    pub async fn tail_logs(&self, q: &str) -> Result<impl futures::Stream<Item = crate::logs::TailEvent> + use<>> {
        self.caller(Role::Viewer)?;
        let matcher = compile_log_query(q.to_string(), crate::db::now_ms()).await?;
        Ok(crate::logs::follow_matches(self.state.logs.subscribe(), matcher))
    }

    /// `GET /api/v1/dependencies` (viewer).
    pub async fn dependencies(&self) -> Result<DependencyGraph> {
        self.caller(Role::Viewer)?;
        self.state.health.dependencies().await
    }

    /// `POST /api/v1/probe`: one request to a gateway path or an allowed URL (viewer);
    /// anything that could reach elsewhere is refused before a packet leaves.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeResult> {
        let user = self.caller(Role::Viewer)?;
        let _in_flight = self.state.caps.enter(Work::Probe, user.id)?;
        // An incident named must be open before anything is asked (bad input does nothing),
        // and a probe put on its timeline counts as a change to it (the per-user cap).
        if let Some(key) = request.incident.as_deref() {
            crate::incidents::open_named(&self.state.db, key).await?;
            self.state.caps.incident_write(user.id, crate::db::now_ms())?;
        }
        let result = self.state.probes.probe(request).await;
        if let Err(e) = &result {
            tracing::warn!(user = %user.username, request = ?request, error = %e, "probe refused");
        }
        // A probe for an incident is on its timeline (and is someone acting on it).
        if let (Some(incident), Ok(probed)) = (request.incident.as_deref(), &result) {
            let actor = self.client.actor(&user.username, user.role.as_str());
            self.state.incidents.record_probe(actor, incident, probed).await?;
        }
        result
    }

    /// `GET /api/v1/synthetics`: the recent scheduled checks of every gateway (viewer).
    pub async fn synthetics(&self) -> Result<Vec<SyntheticHistory>> {
        self.caller(Role::Viewer)?;
        Ok(self.state.probes.history())
    }

    /// The backend, and the training scenario for the simulator.
    pub async fn fleet(&self) -> Result<FleetInfo> {
        self.caller(Role::Viewer)?;
        let mut info = self.state.fleet_info.clone();
        info.problem = self.state.health.problem();
        info.replica = self.state.replicas.id.clone();
        // As counted at the last heartbeat: no query per page.
        info.replicas = self.state.replicas.running() as u32;
        Ok(info)
    }

    /// The console's replicas running now, oldest first, and which one leads (viewer).
    pub async fn replicas(&self) -> Result<Vec<crate::replicas::ReplicaInfo>> {
        self.caller(Role::Viewer)?;
        self.state.replicas.list().await
    }
}

/// Parses a log query and compiles its matcher, off the async workers (regexes take
/// time to compile); a syntax error or a crossed bound is a 400 that says which and where.
async fn compile_log_query(q: String, now_ms: i64) -> Result<crate::logs::Matcher> {
    tokio::task::spawn_blocking(move || {
        let expr = crate::logs::query::parse(&q).map_err(|e| AppError::BadRequest {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: format!("q: {e}"),
        })?;
        Ok(crate::logs::Matcher::new(&expr, now_ms))
    })
    .await
    .map_err(|e| AppError::Internal(format!("log query: {e}")))?
}
