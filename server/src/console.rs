//! The server's implementation of the console interface: the real services, bound to
//! the caller. The `/api/v1` handlers and server-side rendering both go through it, so
//! every role check and rule lives here or below, once.

use crate::accounts::store as users;
use crate::actions::Caller;
use crate::audit::Client;
use crate::auth::AuthUser;
use crate::error::{AppError, Result};
use crate::limits::Work;
use crate::params::Params;
use crate::state::AppState;

mod accounts;
use app::console::{ApiFuture, Console, Operations};
use app::dto::*;

/// The console as seen by one caller (or by nobody, for anonymous requests).
#[derive(Clone)]
pub struct ServerConsole {
    state: AppState,
    user: Option<AuthUser>,
    client: Client,
}

impl ServerConsole {
    /// Binds the services to `user`.
    pub fn new(state: AppState, user: Option<AuthUser>) -> Self {
        Self { state, user, client: Client::default() }
    }

    /// Records where the caller's requests come from, for the audit trail.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The caller, if they hold at least `role`.
    fn caller(&self, role: Role) -> Result<&AuthUser> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        user.require(role)?;
        Ok(user)
    }

    /// The signed-in caller as the mitigation engine sees them: a role to check and an
    /// actor to record (the engine checks the role itself, so refusals are audited).
    fn acting(&self) -> Result<Caller> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        Ok(Caller { role: user.role, actor: self.client.actor(&user.username, user.role.as_str()) })
    }

    /// The caller's account id (0 for anonymous, who is refused before any capped work).
    fn user_id(&self) -> i64 {
        self.user.as_ref().map_or(0, |u| u.id)
    }

    /// A place among the open event streams and log tails, held as long as the stream.
    pub fn stream_permit(&self) -> Result<crate::limits::Permit> {
        let user = self.caller(Role::Viewer)?;
        self.state.caps.enter(Work::Stream, user.id)
    }

    /// The signed-in user.
    pub async fn session(&self) -> Result<SessionInfo> {
        Ok(self.caller(Role::Viewer)?.info())
    }

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
        self.caller(Role::Viewer)?;
        let tail = params.whole("tail", 1..=10_000)?.unwrap_or(crate::fleet::cluster::logs::DEFAULT_TAIL_LINES);
        let since = params.whole("since_seconds", 1..=86_400)?;
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
        // An incident named must exist before anything is asked (bad input does nothing).
        if let Some(key) = request.incident.as_deref() {
            let id = crate::incidents::id_of(key)
                .ok_or_else(|| AppError::invalid("incident", "must be an incident key, INC-<id>"))?;
            self.state.incidents.plain(id).await?;
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

    /// `POST /api/v1/incidents/{id}/pins` (responder): a log line on the timeline.
    pub async fn pin_line(&self, id: i64, body: serde_json::Value) -> Result<app::dto::AuditEntry> {
        let actor = self.acting_at_least(Role::Responder, "pin", &crate::incidents::key(id)).await?;
        self.state.incidents.pin(actor, id, body).await
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

    /// Runs or previews a mitigation (role checks inside the engine, audited).
    pub async fn act(&self, gateway: &str, action: &str, body: serde_json::Value) -> Result<ActionResponse> {
        let incident = body.get("incident").and_then(serde_json::Value::as_str).map(str::to_string);
        let response = self.state.engine.run(self.acting()?, gateway, action, body).await?;
        // An action (or a request for one) for an incident is someone acting on it.
        if let Some(incident) = incident.filter(|_| response.id.is_some() || response.approval.is_some()) {
            self.state.incidents.acknowledge(&incident, crate::db::now_ms()).await?;
        }
        Ok(response)
    }

    /// `GET /api/v1/approvals` (viewer): `status`, and `for=me` for what waits for the
    /// caller.
    pub async fn approvals(&self, q: &Params) -> Result<app::dto::ApprovalList> {
        self.caller(Role::Viewer)?;
        let status = q.text("status");
        const STATUSES: [&str; 7] =
            ["awaiting_approval", "approved", "denied", "expired", "refused", "break_glass", "reviewed"];
        if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
            return Err(AppError::invalid("status", format!("no status '{}'", s.chars().take(32).collect::<String>())));
        }
        let for_me = match q.text("for") {
            None => false,
            Some("me") => true,
            Some(_) => return Err(AppError::invalid("for", "must be 'me'")),
        };
        self.state.engine.approvals(&self.acting()?, status, for_me).await
    }

    /// `GET /api/v1/approvals/{id}` (viewer).
    pub async fn approval(&self, id: i64) -> Result<app::dto::Approval> {
        self.caller(Role::Viewer)?;
        self.state.engine.approval(id).await
    }

    /// `POST /api/v1/approvals/{id}/approve | deny | review` (responder; the engine checks
    /// the action's role and that the caller is not the requester).
    pub async fn decide(&self, id: i64, how: &str, body: serde_json::Value) -> Result<app::dto::Approval> {
        self.caller(Role::Responder)?;
        let caller = self.acting()?;
        let decided = match how {
            "approve" => self.state.engine.approve(caller, id, body).await?,
            "deny" => self.state.engine.deny(caller, id, body).await?,
            _ => self.state.engine.review(caller, id, body).await?,
        };
        self.state.incidents.acknowledge(&decided.incident, crate::db::now_ms()).await?;
        Ok(decided)
    }

    /// `POST /api/v1/incidents` (responder).
    pub async fn declare_incident(&self, body: serde_json::Value) -> Result<app::dto::Incident> {
        let actor = self.acting_at_least(Role::Responder, "declare", "incident").await?;
        self.state.incidents.declare(actor, body).await
    }

    /// `GET /api/v1/incidents` (viewer).
    pub async fn incidents(&self, q: &Params) -> Result<app::dto::IncidentList> {
        self.caller(Role::Viewer)?;
        let filter = crate::incidents::ListFilter {
            status: q.text("status").map(str::to_string),
            severity: q.text("severity").map(str::to_string),
            gateway: q.text("gateway").map(str::to_string),
            open: match q.text("open") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(AppError::invalid("open", "must be true or false")),
            },
        };
        if let Some(s) = filter.status.as_deref().filter(|s| !crate::incidents::STATUSES.contains(s)) {
            return Err(AppError::invalid("status", format!("no status '{}'", s.chars().take(32).collect::<String>())));
        }
        if let Some(s) = filter.severity.as_deref().filter(|s| !crate::incidents::SEVERITIES.contains(s)) {
            return Err(AppError::invalid(
                "severity",
                format!("no severity '{}'", s.chars().take(32).collect::<String>()),
            ));
        }
        Ok(app::dto::IncidentList { incidents: self.state.incidents.list(&filter).await? })
    }

    /// `GET /api/v1/incidents/{id}` (viewer).
    pub async fn incident(&self, id: i64) -> Result<app::dto::Incident> {
        self.caller(Role::Viewer)?;
        self.state.incidents.get(id).await
    }

    /// `PATCH /api/v1/incidents/{id}` (responder).
    pub async fn update_incident(&self, id: i64, body: serde_json::Value) -> Result<app::dto::Incident> {
        let actor = self.acting_at_least(Role::Responder, "update", &crate::incidents::key(id)).await?;
        self.state.incidents.update(actor, id, body).await
    }

    /// `POST /api/v1/incidents/{id}/notes` (responder).
    pub async fn note_incident(&self, id: i64, body: serde_json::Value) -> Result<app::dto::AuditEntry> {
        let actor = self.acting_at_least(Role::Responder, "note", &crate::incidents::key(id)).await?;
        self.state.incidents.note(actor, id, body).await
    }

    /// `PUT` / `DELETE /api/v1/incidents/{id}/timeline/{entry}/star` (responder).
    pub async fn star_incident_entry(&self, id: i64, entry: i64, starred: bool) -> Result<()> {
        let actor = self.acting_at_least(Role::Responder, "star", &crate::incidents::key(id)).await?;
        self.state.incidents.star(&actor, id, entry, starred).await
    }

    /// `GET /api/v1/incidents/{id}/checklist` (viewer).
    pub async fn checklist(&self, id: i64) -> Result<app::dto::Checklist> {
        self.caller(Role::Viewer)?;
        self.state.incidents.checklist(id).await
    }

    /// `POST /api/v1/incidents/{id}/checklist/{step}` (responder).
    pub async fn mark_step(&self, id: i64, step: &str, body: serde_json::Value) -> Result<app::dto::Checklist> {
        let actor = self.acting_at_least(Role::Responder, "step", &crate::incidents::key(id)).await?;
        self.state.incidents.mark_step(actor, id, step, body).await
    }

    /// `GET /api/v1/incidents/{id}/postmortem.json` and `.md` (viewer).
    pub async fn postmortem(&self, id: i64) -> Result<app::dto::Postmortem> {
        self.caller(Role::Viewer)?;
        self.state.incidents.postmortem(id).await
    }

    /// `GET /api/v1/incidents/{id}/timeline` (viewer).
    pub async fn incident_timeline(&self, id: i64) -> Result<app::dto::Timeline> {
        self.caller(Role::Viewer)?;
        self.state.incidents.timeline(id).await
    }

    /// The caller as an audit actor, if they hold `role` and have not made
    /// `--max-incident-writes-per-minute` incident writes this minute (every caller of
    /// this is one); a refusal is on the record.
    async fn acting_at_least(&self, role: Role, action: &str, target: &str) -> Result<crate::audit::Actor> {
        let caller = self.acting()?;
        let refusal = match crate::auth::require_role(caller.role, role) {
            Err(refused) => Some((refused, format!("role {} below {role}", caller.role))),
            Ok(()) => self.state.caps.incident_write(self.user_id(), crate::db::now_ms()).err().map(|throttled| {
                let why = throttled.to_api().message;
                (throttled, why)
            }),
        };
        if let Some((error, why)) = refusal {
            let mut entry = crate::audit::NewEntry::new(
                caller.actor.clone(),
                crate::audit::Kind::Incident,
                crate::audit::Outcome::Denied,
            );
            entry.action = action.into();
            entry.target = target.into();
            entry.params = serde_json::json!({ "refused": why });
            self.state.ledger.refuse(entry).await?;
            return Err(error);
        }
        Ok(caller.actor)
    }

    /// The mitigations offered, with their fields and bounds (viewer).
    pub fn catalogue(&self) -> Result<app::dto::Catalogue> {
        self.caller(Role::Viewer)?;
        Ok(self.state.engine.catalogue())
    }

    /// Recent actions on `gateway` (viewer).
    pub async fn actions(&self, gateway: Option<&str>) -> Result<Vec<ActionRecord>> {
        self.caller(Role::Viewer)?;
        self.state.engine.list(gateway, 100).await
    }

    /// One action (viewer).
    pub async fn action(&self, id: i64) -> Result<ActionRecord> {
        self.caller(Role::Viewer)?;
        self.state.engine.get(id).await
    }

    /// A page of the audit trail for query parameters `q` (viewer).
    pub async fn audit_page(&self, q: &Params) -> Result<AuditPage> {
        self.caller(Role::Viewer)?;
        let (filter, limit, cursor) = crate::audit::page_request(q)?;
        self.state.ledger.search(&filter, limit, cursor).await
    }

    /// One audit entry with its linked entries (viewer).
    pub async fn audit_entry(&self, id: i64) -> Result<AuditEntryDetail> {
        self.caller(Role::Viewer)?;
        let (entry, linked) = self.state.ledger.entry(id).await?;
        Ok(AuditEntryDetail { entry, linked })
    }

    /// Recomputes the audit chain (viewer).
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let user = self.caller(Role::Viewer)?;
        let _running = self.state.caps.enter(Work::Verify, user.id)?;
        self.state.ledger.verify().await
    }

    /// The format asked for, and every entry matching the query's filter, oldest first,
    /// for export (viewer).
    pub fn audit_export(
        &self,
        q: &Params,
    ) -> Result<(crate::audit::Format, impl futures::Stream<Item = Result<AuditEntry>> + Send + 'static)> {
        self.caller(Role::Viewer)?;
        let filter = crate::audit::Filter::from_query(q)?;
        let format = crate::audit::Format::parse(q.text("format"))?;
        Ok((format, self.state.ledger.stream(filter)))
    }

    /// The console's replicas running now, oldest first, and which one leads (viewer).
    pub async fn replicas(&self) -> Result<Vec<crate::replicas::ReplicaInfo>> {
        self.caller(Role::Viewer)?;
        self.state.replicas.list().await
    }

    /// Undoes action `id` (the original action's role, audited).
    pub async fn undo(&self, id: i64, body: serde_json::Value) -> Result<ActionResponse> {
        self.state.engine.undo(self.acting()?, id, body).await
    }

    /// Every account (admin).
    pub async fn users(&self) -> Result<Vec<UserSummary>> {
        self.caller(Role::Admin)?;
        users::list(&self.state.db).await
    }
}

/// A page's typed request as the JSON the console's rules read (they parse it after the
/// role check, as for `/api/v1`).
fn as_value<T: serde::Serialize>(body: &T) -> Result<serde_json::Value> {
    serde_json::to_value(body).map_err(|e| AppError::Internal(format!("request encode: {e}")))
}

/// Runs `f` on a clone of the console and converts its error to the wire type.
fn run<T, F, Fut>(console: &ServerConsole, f: F) -> ApiFuture<T>
where
    T: Send + 'static,
    F: FnOnce(ServerConsole) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let console = console.clone();
    Box::pin(async move { f(console).await.map_err(|e| e.to_api()) })
}

impl Console for ServerConsole {
    /// The session as a rendered page sees it: without its CSRF token. Pages go out
    /// compressed, so they carry no secret (BREACH); the browser asks `GET /session`
    /// for the token at its first write.
    fn session(&self) -> ApiFuture<SessionInfo> {
        run(self, |c| async move { Ok(SessionInfo { csrf_token: String::new(), ..c.session().await? }) })
    }
    fn gateways(&self) -> ApiFuture<Vec<GatewaySummary>> {
        run(self, |c| async move { c.gateways().await })
    }
    fn fleet(&self) -> ApiFuture<FleetInfo> {
        run(self, |c| async move { c.fleet().await })
    }
}

impl Operations for ServerConsole {
    fn gateway(&self, id: String) -> ApiFuture<GatewayDetail> {
        run(self, |c| async move { c.gateway(&id).await })
    }
    fn act(&self, gateway: String, action: String, body: app::dto::ActionRequest) -> ApiFuture<ActionResponse> {
        run(self, |c| async move { c.act(&gateway, &action, as_value(&body)?).await })
    }
    fn actions(&self, gateway: String) -> ApiFuture<Vec<ActionRecord>> {
        run(self, |c| async move { c.actions(Some(&gateway)).await })
    }
    fn undo(&self, id: i64, body: app::dto::UndoRequest) -> ApiFuture<ActionResponse> {
        run(self, move |c| async move { c.undo(id, as_value(&body)?).await })
    }
    fn audit(&self, query: String) -> ApiFuture<AuditPage> {
        run(self, |c| async move { c.audit_page(&Params::from_query(&query)).await })
    }
    fn verify_audit(&self) -> ApiFuture<AuditVerification> {
        run(self, |c| async move { c.verify_audit().await })
    }
    fn search_logs(&self, query: String) -> ApiFuture<LogSearch> {
        run(self, |c| async move { c.search_logs(&Params::from_query(&query)).await })
    }
    fn audit_entry(&self, id: i64) -> ApiFuture<AuditEntryDetail> {
        run(self, move |c| async move { c.audit_entry(id).await })
    }
    fn dependencies(&self) -> ApiFuture<DependencyGraph> {
        run(self, |c| async move { c.dependencies().await })
    }
    fn incidents(&self, query: String) -> ApiFuture<IncidentList> {
        run(self, |c| async move { c.incidents(&Params::from_query(&query)).await })
    }
    fn incident(&self, id: i64) -> ApiFuture<Incident> {
        run(self, move |c| async move { c.incident(id).await })
    }
    fn timeline(&self, id: i64) -> ApiFuture<Timeline> {
        run(self, move |c| async move { c.incident_timeline(id).await })
    }
    fn checklist(&self, id: i64) -> ApiFuture<Checklist> {
        run(self, move |c| async move { c.checklist(id).await })
    }
    fn approvals(&self, query: String) -> ApiFuture<ApprovalList> {
        run(self, |c| async move { c.approvals(&Params::from_query(&query)).await })
    }
    fn catalogue(&self) -> ApiFuture<app::dto::Catalogue> {
        run(self, |c| async move { c.catalogue() })
    }
    fn send(&self, _method: String, path: String, _body: String) -> ApiFuture<String> {
        // Rendering reads; writes come from the browser, over /api/v1.
        run(self, |_| async move { Err(AppError::NotImplemented(format!("{path}: pages write through /api/v1"))) })
    }
    fn probe(&self, body: ProbeRequest) -> ApiFuture<ProbeResult> {
        run(self, |c| async move { c.probe(&body).await })
    }
    fn synthetics(&self) -> ApiFuture<Vec<SyntheticHistory>> {
        run(self, |c| async move { c.synthetics().await })
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
