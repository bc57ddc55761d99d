//! The mitigation engine: every runbook button goes through [`Engine::run`].
//!
//! Order, always: role check (refusals are audited) → validate (422, nothing changes) →
//! preview → confirmation → audit intent (fail closed) → apply → audit outcome → track
//! progress and impact. Inverses are recorded for undo; time-limited changes revert by
//! themselves, audited as `system`. At start-up, intents left without an outcome (a
//! crash between the two) are reconciled against the fleet's actual state.
//!
//! `plan` is pure (validation, preview, inverse); `store` is the `actions` table;
//! `track` follows running actions and reverts expired ones; `reconcile` settles
//! interrupted intents at start-up.

pub mod approval;
pub mod catalogue;
pub mod plan;
mod reconcile;
mod request;
pub mod store;
mod track;

use crate::audit::{Actor, Kind, Ledger, NewEntry, Outcome};
use crate::db::Db;
use crate::error::{AppError, Result};
use crate::fleet::{Change, Fleet, GatewayState};
use crate::health::HealthService;
use app::dto::{ActionRecord, ActionResponse, ImpactReading, Role};
pub use plan::{ActionName, Plan, plan};
use plan::{envelope, in_force, inverse_plan, no_more};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
pub use track::ORPHANS_EVERY;

/// Backend seconds between the two impact readings.
pub const IMPACT_AFTER_S: i64 = 60;

/// Runs, tracks, undoes and reverts mitigations.
pub struct Engine {
    db: Db,
    /// Every change to an action goes out on it, as JSON, for `GET /api/v1/events`.
    bus: Arc<crate::bus::Bus>,
    ledger: Arc<Ledger>,
    fleet: Arc<dyn Fleet>,
    health: Arc<HealthService>,
    /// Test hook: pause between the audit intent and the change (crash-safety tests).
    pause_after_intent: Option<Duration>,
    /// Largest replica count `scale` may set.
    max_replicas: u32,
    /// This console replica: its id goes into every intent, and only the leader reverts
    /// expired changes and settles dead replicas' intents. `None`: one process, leading.
    replica: Option<Arc<crate::replicas::Replicas>>,
    /// Actions this process is following (progress, impact), so the leader does not adopt
    /// one twice.
    tracked: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Where a DNS bypass's preflight goes through the probe guard (none: not checked).
    probes: Option<Arc<crate::probe::Probes>>,
    /// Kinds of action that need a second person (`--require-approval`), and how long a
    /// request waits for one.
    approvals: approval::Rules,
}

/// Changes that replace pods: their action runs until the rollout is done.
fn replaces_pods(change: &Change) -> bool {
    matches!(change, Change::Restart | Change::Rollback { .. } | Change::Scale { .. })
}

/// Who asks: the role the server checks, and the actor the audit trail records.
pub struct Caller {
    /// The caller's current role.
    pub role: Role,
    /// Who and where from.
    pub actor: Actor,
}

impl Caller {
    /// `Ok` when the caller holds at least `role`, else 403.
    fn require(&self, role: Role) -> Result<()> {
        crate::auth::require_role(self.role, role)
    }
}

impl Engine {
    /// An engine over these services.
    pub fn new(
        db: Db,
        bus: Arc<crate::bus::Bus>,
        ledger: Arc<Ledger>,
        fleet: Arc<dyn Fleet>,
        health: Arc<HealthService>,
        max_replicas: u32,
    ) -> Self {
        let pause_after_intent = std::env::var("GATEWARDEN_FAULT_PAUSE_AFTER_INTENT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        Engine {
            db,
            bus,
            ledger,
            fleet,
            health,
            pause_after_intent,
            max_replicas,
            replica: None,
            tracked: Default::default(),
            probes: None,
            approvals: approval::Rules::default(),
        }
    }

    /// Requires a second person's approval for `kinds` (action names, or `scale-down`),
    /// requests lapsing after `expiry`.
    pub fn with_approvals(mut self, kinds: Vec<String>, expiry: Duration) -> Self {
        self.approvals = approval::Rules { kinds, expiry };
        self
    }

    /// Checks DNS bypasses' direct targets with `probes` before clients are sent there.
    pub fn with_probes(mut self, probes: Arc<crate::probe::Probes>) -> Self {
        self.probes = Some(probes);
        self
    }

    /// A DNS bypass's preflight, when `change` sends a service's clients to its direct
    /// target: `Ok(sentence)` when the target answers its health path, `Err(why)` when not.
    /// `None`: nothing to check (no bypass towards the service, or no way to check it).
    async fn preflight(&self, change: &Change, state: &GatewayState) -> Option<std::result::Result<String, String>> {
        let Change::DnsRecord { service, to, .. } = change else { return None };
        let record = state.dns.iter().find(|r| &r.service == service && &r.direct == to)?;
        let probes = self.probes.as_ref()?;
        let Some(url) = &record.health else {
            return Some(Err(format!("{service} has no health URL configured for its direct target")));
        };
        let target = to.values.first()?;
        Some(probes.preflight(url, target).await)
    }

    /// Runs as `replica` (see the field).
    pub fn with_replica(mut self, replica: Arc<crate::replicas::Replicas>) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The mitigations as this console runs them: `scale`'s bound, which need approval.
    pub fn catalogue(&self) -> app::dto::Catalogue {
        catalogue::catalogue(self.max_replicas, |action| self.approvals.may_apply_to(action), approval::REQUESTER)
    }

    /// This process does the singleton work now.
    pub fn leads(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.is_leader())
    }

    /// The replicas that may still be working on an intent (this one included).
    pub(crate) async fn alive_replicas(&self) -> Result<std::collections::HashSet<String>> {
        match &self.replica {
            Some(r) => r.alive().await,
            None => Ok(Default::default()),
        }
    }

    /// Tells every replica's subscribers about action `id`'s current record.
    async fn publish(&self, id: i64) {
        if !self.bus.wanted() {
            return;
        }
        match self.get(id).await {
            Ok(record) => {
                if let Ok(json) = serde_json::to_string(&record) {
                    self.bus.publish("action", &json).await;
                }
            }
            Err(e) => tracing::warn!(error = ?e, action = id, "could not publish an action update"),
        }
    }

    /// The gateway's numbers now, and for a bypass the bypassed service's own (its
    /// clients through the gateway and around it).
    async fn reading(&self, gateway: &str, change: &Change) -> Option<ImpactReading> {
        let list = self.health.gateways().await.ok()?;
        let g = list.into_iter().find(|g| g.id == gateway)?;
        let service = match change {
            Change::Bypass { service, .. } | Change::DnsRecord { service, .. } => {
                self.fleet.service_impact(gateway, service)
            }
            _ => None,
        };
        // Blind: no reading, so nothing is credited to (or blamed on) the change.
        Some(ImpactReading {
            clock_s: self.fleet.clock_s(),
            rps: g.rps?,
            error_rate_5xx: g.error_rate_5xx?,
            throttle_rate_429: g.throttle_rate_429?,
            p99_ms: g.latency_ms?.p99,
            service,
        })
    }

    /// `POST /api/v1/gateways/{gateway}/actions/{name}`.
    pub async fn run(
        self: &Arc<Self>,
        caller: Caller,
        gateway: &str,
        name: &str,
        body: Value,
    ) -> Result<ActionResponse> {
        let action = ActionName::parse(name).ok_or_else(|| AppError::NotFound(format!("no action '{name}'")))?;
        // A caller below the action's role may still ask for it when it needs a second
        // person (who must hold the role); that is decided once it is planned.
        let may_run = caller.require(action.role()).is_ok();
        let may_ask = self.approvals.may_apply_to(action) && approval::may_request(caller.role);
        let asked_why: String = body.get("reason").and_then(Value::as_str).unwrap_or("").chars().take(1000).collect();
        let refuse_role = |why: String| {
            let mut entry = NewEntry::new(caller.actor.clone(), Kind::ActionIntent, Outcome::Denied);
            entry.action = action.as_str().into();
            entry.target = gateway.into();
            entry.reason = asked_why.clone();
            entry.params = json!({ "refused": why });
            entry
        };
        if !may_run && !may_ask {
            self.ledger.refuse(refuse_role(format!("role {} below {}", caller.role, action.role()))).await?;
            return Err(caller.require(action.role()).expect_err("below the role"));
        }
        let request = envelope(body)?;
        if !request.incident.is_empty() {
            crate::incident_keys::open_named(&self.db, &request.incident).await?;
        }
        let (state, mut plan) = match self.plan_now(action, gateway, &request.params, request.dry_run).await {
            Ok(planned) => planned,
            // Bad input changes nothing and is not a refusal; anything else refused after
            // the role check (a paused rollout, an autoscaler in charge, the cluster's dry
            // run saying no, the backend unreachable) is on the record with its reason.
            Err(e @ (AppError::Validation { .. } | AppError::BadRequest { .. })) => return Err(e),
            Err(e) => {
                let mut entry = NewEntry::new(caller.actor.clone(), Kind::ActionIntent, Outcome::Denied);
                entry.action = action.as_str().into();
                entry.target = gateway.into();
                entry.reason = request.reason.clone();
                entry.params = json!({ "refused": e.to_api().message, "code": e.code(), "dry_run": request.dry_run });
                self.ledger.refuse(entry).await?;
                return Err(e);
            }
        };
        let needs_approval = self.needs_approval(action, &plan, &state);
        if !may_run && (needs_approval.is_none() || request.break_glass) {
            let why = if request.break_glass { "break-glass by a role that may not run it" } else { "role below" };
            self.ledger.refuse(refuse_role(format!("{why}: {} below {}", caller.role, action.role()))).await?;
            return Err(caller.require(action.role()).expect_err("below the role"));
        }
        if request.dry_run {
            if let Some(kind) = needs_approval {
                plan.preview.warnings.push(format!(
                    "A {kind} needs a second person: running it asks for their approval, and nothing changes until \
                     they give it (or set break_glass to run it now, on the record for review)."
                ));
            }
            return Ok(ActionResponse { id: None, status: "preview".into(), preview: plan.preview, approval: None });
        }
        if plan.preview.confirm_required {
            self.confirmed(gateway, request.confirm.as_deref(), "this change").await?;
        }
        if let Some(kind) = needs_approval
            && !request.break_glass
        {
            let approval = self.request_approval(&caller.actor, gateway, action, kind, &request, &plan, &state).await?;
            return Ok(ActionResponse {
                id: None,
                status: "awaiting_approval".into(),
                preview: plan.preview,
                approval: Some(approval),
            });
        }
        let break_glass = needs_approval.filter(|_| request.break_glass);
        let mut params = Value::Object(request.params.clone());
        if break_glass.is_some() {
            params["break_glass"] = json!(true);
        }
        let actor = caller.actor.clone();
        let id = self
            .execute(
                caller.actor,
                Kind::ActionIntent,
                gateway,
                action,
                &params,
                &request.reason,
                &request.incident,
                plan.clone(),
                None,
                &state,
            )
            .await?;
        if let Some(kind) = break_glass {
            self.record_break_glass(&actor, gateway, action, kind, &request, &plan, id).await?;
        }
        let record = self.get(id).await?;
        Ok(ActionResponse { id: Some(id), status: record.status, preview: plan.preview, approval: None })
    }

    /// Reads the gateway and plans `action` with `params` against it: validation, the
    /// preflight of a DNS bypass, and with `dry_run` the backend's own check.
    async fn plan_now(
        &self,
        action: ActionName,
        gateway: &str,
        params: &serde_json::Map<String, Value>,
        dry_run: bool,
    ) -> Result<(GatewayState, Plan)> {
        let state = self.fleet.state(gateway).await?;
        let mut plan = plan(action, gateway, params.clone(), &state, self.max_replicas)?;
        // Clients are sent to a direct target only if it answers (or an admin says why
        // to go ahead anyway); the result is in the preview, and so in the intent.
        if let Some(checked) = self.preflight(&plan.change, &state).await {
            let force = params.get("force").and_then(Value::as_str).map(str::trim);
            let line = match (checked, force) {
                (Ok(passed), _) => passed,
                (Err(why), Some(force)) => format!("Preflight failed and is overridden (force: {force}): {why}."),
                (Err(why), None) => {
                    return Err(AppError::Conflict(format!(
                        "preflight failed: {why}; nothing was changed (an admin may set force, saying why, to go \
                         ahead anyway)"
                    )));
                }
            };
            plan.preview.warnings.insert(0, line);
        }
        if dry_run {
            // The backend validates the change too (Kubernetes: dryRun=All), so a
            // preview fails the way the real change would.
            self.fleet.check(gateway, &plan.change, &state).await?;
        }
        Ok((state, plan))
    }

    /// Audits the intent, applies the change, audits the outcome, stores the action and
    /// starts tracking it. Returns the action id.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        self: &Arc<Self>,
        actor: Actor,
        kind: Kind,
        gateway: &str,
        action: ActionName,
        params: &Value,
        reason: &str,
        incident: &str,
        plan: Plan,
        undo_of: Option<i64>,
        before: &GatewayState,
    ) -> Result<i64> {
        let mut intent = NewEntry::new(actor.clone(), kind, Outcome::Pending);
        intent.action = action.as_str().into();
        intent.target = gateway.into();
        intent.params = json!({
            "params": params,
            "change": plan.change,
            "replica": self.replica.as_ref().map(|r| r.id.as_str()),
        });
        intent.reason = reason.into();
        intent.incident = incident.into();
        intent.before = Some(json!(before));
        intent.after = Some(json!(plan.preview));
        // Fail closed: no record, no change.
        let intent = self.ledger.record_first(intent, "nothing was changed").await?;
        let impact_before = self.reading(gateway, &plan.change).await;
        let expires_at_s = plan.ttl_s.map(|t| self.fleet.clock_s() + t);
        let id = store::insert(
            &self.db,
            store::NewAction {
                gateway,
                action: action.as_str(),
                params: params.to_string(),
                change: &plan.change,
                inverse: plan.inverse.as_ref(),
                actor: &actor.name,
                actor_role: &actor.role,
                reason,
                incident,
                preview: &plan.preview,
                impact_before,
                undo_of,
                expires_at_s,
                intent_id: intent.id,
            },
        )
        .await?;
        if let Some(pause) = self.pause_after_intent {
            tokio::time::sleep(pause).await;
        }
        let mut outcome = NewEntry::new(actor, Kind::ActionOutcome, Outcome::Succeeded);
        outcome.action = action.as_str().into();
        outcome.target = gateway.into();
        outcome.intent_id = Some(intent.id);
        outcome.incident = incident.into();
        match self.fleet.apply(gateway, &plan.change, before).await {
            Ok(after) => {
                outcome.after = Some(json!(after));
                self.ledger.append(outcome).await?;
                let replaces_pods = replaces_pods(&plan.change);
                // A change others still have to pick up (a DNS record) runs until they do.
                let propagation = self.fleet.propagation(gateway, &plan.change);
                let status = if replaces_pods || propagation.is_some() { "running" } else { "succeeded" };
                store::set_applied(&self.db, id, status).await?;
                self.publish(id).await;
                self.track(id, gateway.to_string(), plan.change.clone(), propagation, self.fleet.clock_s());
                Ok(id)
            }
            Err(e) => {
                let err = AppError::from(e);
                outcome.outcome = Outcome::Failed;
                outcome.params = json!({ "error": err.to_string() });
                self.ledger.append(outcome).await?;
                store::set_failed(&self.db, id, &err.to_string()).await?;
                self.publish(id).await;
                Err(err)
            }
        }
    }

    /// `Ok` when `typed` names `gateway`: its id, or the name the pages show for it.
    async fn confirmed(&self, gateway: &str, typed: Option<&str>, what: &str) -> Result<()> {
        let typed = typed.map(str::trim).unwrap_or_default();
        let name = self
            .fleet
            .inventory()
            .await
            .ok()
            .and_then(|list| list.iter().find(|g| g.id == gateway).map(|g| g.name.clone()));
        if typed == gateway || name.as_deref() == Some(typed) {
            return Ok(());
        }
        let name = name.filter(|n| n != gateway).map(|n| format!(" or its name '{n}'")).unwrap_or_default();
        Err(AppError::invalid("confirm", format!("type '{gateway}'{name} to confirm {what}")))
    }

    /// One action.
    pub async fn get(&self, id: i64) -> Result<ActionRecord> {
        Ok(store::load(&self.db, id).await?.record)
    }

    /// Recent actions, newest first, optionally for one gateway.
    pub async fn list(&self, gateway: Option<&str>, limit: i64) -> Result<Vec<ActionRecord>> {
        store::list(&self.db, gateway, limit).await
    }

    /// What to mark on a gateway's charts from `since_ms` on: revisions created (from the
    /// fleet) and actions started (the newest 100), oldest first, on the charts' clock.
    pub async fn chart_marks(&self, gateway: &str, since_ms: i64) -> Result<Vec<app::dto::ChartMark>> {
        let mut marks: Vec<app::dto::ChartMark> = self
            .fleet
            .revision_times(gateway)
            .into_iter()
            .filter(|(ts_ms, _, _)| *ts_ms >= since_ms)
            .map(|(ts_ms, n, version)| app::dto::ChartMark {
                ts_ms,
                label: format!("rev {n} ({version})"),
                action: None,
            })
            .collect();
        for a in store::list(&self.db, Some(gateway), 100).await? {
            // The backend's clock when it ran, as the charts plot it.
            let ts_ms = a.impact_before.map_or(a.created_at_ms, |r| self.fleet.ts_ms_of(r.clock_s));
            if ts_ms >= since_ms {
                marks.push(app::dto::ChartMark { ts_ms, label: a.action, action: Some(a.id) });
            }
        }
        marks.sort_by_key(|m| m.ts_ms);
        Ok(marks)
    }

    /// `POST /api/v1/actions/{id}/undo`: runs the recorded inverse as a new action.
    pub async fn undo(self: &Arc<Self>, caller: Caller, id: i64, body: Value) -> Result<ActionResponse> {
        let stored = store::load(&self.db, id).await?;
        let action = catalogue::action_of(&stored.change);
        if let Err(refused) = caller.require(action.role()) {
            let mut entry = NewEntry::new(caller.actor.clone(), Kind::Undo, Outcome::Denied);
            entry.action = action.as_str().into();
            entry.target = stored.record.gateway.clone();
            entry.params = json!({ "undo_of": id, "refused": format!("role {} below {}", caller.role, action.role()) });
            self.ledger.refuse(entry).await?;
            return Err(refused);
        }
        let request = envelope(body)?;
        no_more(&request.params)?;
        let refuse = |why: &'static str| {
            let mut entry = NewEntry::new(caller.actor.clone(), Kind::Undo, Outcome::Denied);
            entry.action = action.as_str().into();
            entry.target = stored.record.gateway.clone();
            entry.reason = request.reason.clone();
            entry.params = json!({ "undo_of": id, "refused": why });
            entry
        };
        if !stored.record.undo_available {
            self.ledger.refuse(refuse("no inverse, already undone or reverted")).await?;
            return Err(AppError::Conflict(format!(
                "action {id} cannot be undone (no inverse, already undone or reverted)"
            )));
        }
        let inverse = stored.inverse.clone().expect("undo_available implies an inverse");
        let gateway = stored.record.gateway.clone();
        let state = self.fleet.state(&gateway).await?;
        // Undo restores what was there before only if what the action set is still there:
        // otherwise it would silently overwrite someone else's later change.
        let sets_a_value = !matches!(stored.change, Change::Restart | Change::Rollback { .. });
        match in_force(&stored.change, &state) {
            Err(problem) => {
                self.ledger.refuse(refuse("what it set cannot be read")).await?;
                return Err(AppError::BadGateway(format!(
                    "action {id} cannot be undone now: {problem}; nothing was done"
                )));
            }
            Ok(false) if sets_a_value => {
                self.ledger.refuse(refuse("changed since; undoing would overwrite that change")).await?;
                return Err(AppError::Conflict(format!(
                    "{gateway} no longer has what action {id} set: it was changed since, and undoing would \
                     overwrite that change; nothing was done"
                )));
            }
            _ => {}
        }
        let mut plan = inverse_plan(&stored.record, inverse);
        // Undoing a rollback or a bypass (or anything that needed a typed confirmation)
        // needs the same confirmation; a dry run previews the exact change.
        plan.preview.confirm_required =
            matches!(action, ActionName::Rollback | ActionName::Bypass) || stored.record.preview.confirm_required;
        if request.dry_run {
            self.fleet.check(&gateway, &plan.change, &state).await?;
            return Ok(ActionResponse { id: None, status: "preview".into(), preview: plan.preview, approval: None });
        }
        if plan.preview.confirm_required {
            self.confirmed(&gateway, request.confirm.as_deref(), &format!("undoing action {id}")).await?;
        }
        // Claimed before anything changes: of two undos racing past the checks above,
        // exactly one gets here; the other is refused, on the record.
        if !store::claim_undo(&self.db, id).await? {
            self.ledger.refuse(refuse("no inverse, already undone or reverted")).await?;
            return Err(AppError::Conflict(format!("action {id} is already being undone (or was); nothing was done")));
        }
        let undone = self
            .execute(
                caller.actor,
                Kind::Undo,
                &gateway,
                action,
                &json!({ "undo_of": id }),
                &request.reason,
                &stored.record.incident,
                plan.clone(),
                Some(id),
                &state,
            )
            .await;
        let new_id = match undone {
            Ok(new_id) => new_id,
            Err(e) => {
                // Nothing changed (the intent could not be written, or the change failed):
                // the action may be undone again.
                store::release_undo(&self.db, id).await?;
                return Err(e);
            }
        };
        store::set_undone_by(&self.db, id, new_id).await?;
        self.publish(id).await;
        let record = self.get(new_id).await?;
        Ok(ActionResponse { id: Some(new_id), status: record.status, preview: plan.preview, approval: None })
    }
}
