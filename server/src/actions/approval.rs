//! Two-person approval (issue 18). Which kinds of action need a second person is
//! configuration (`--require-approval`; `scale-down` is a scale to below half the
//! current count). Such a request changes nothing: it waits, bound to a hash of the exact
//! change and of the gateway state it was planned against, until someone else who may
//! run the action approves it (then it runs as planned, or is refused if the gateway
//! moved since), denies it, or it lapses. Break-glass runs it at once, on the record,
//! and leaves it waiting for review (and an incident's follow-up open) until someone
//! reviews it. Every step is a ledger entry that names the incident.

use super::plan::{ActionName, Envelope, Plan, envelope};
use super::{Caller, Engine};
use crate::audit::{Actor, Kind, NewEntry, Outcome};
use crate::db::now_ms;
use crate::error::{AppError, Result};
use crate::fleet::{Change, GatewayState};
use app::dto::{Approval, ApprovalList, Role};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// `--require-approval` and `--approval-expiry-seconds`.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Action names (and `scale-down`) that need a second person.
    pub kinds: Vec<String>,
    /// How long a request waits.
    pub expiry: Duration,
}

impl Rules {
    /// Whether `action` can need approval at all (so a caller below its role may ask).
    pub fn may_apply_to(&self, action: ActionName) -> bool {
        self.kinds.iter().any(|k| k == action.as_str() || (k == "scale-down" && action == ActionName::Scale))
    }
}

/// What a planned change's approval is bound to: the change and the state it was
/// planned against, canonical JSON (sorted keys), SHA-256.
fn plan_hash(change: &Change, state: &GatewayState) -> String {
    let canonical = serde_json::to_value(json!({ "change": change, "state": state })).unwrap_or_default().to_string();
    data_encoding::HEXLOWER.encode(&Sha256::digest(canonical.as_bytes()))
}

const COLUMNS: &str = "id, gateway, action, kind, reason, incident, requester, status, preview, created_at_ms, \
                       expires_at_ms, decided_by, decided_at_ms, decision_reason, action_id";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Approval> {
    Ok(Approval {
        id: row.try_get("id")?,
        gateway: row.try_get("gateway")?,
        action: row.try_get("action")?,
        kind: row.try_get("kind")?,
        reason: row.try_get("reason")?,
        incident: row.try_get("incident")?,
        requester: row.try_get("requester")?,
        status: row.try_get("status")?,
        preview: serde_json::from_str(&row.try_get::<String, _>("preview")?)
            .map_err(|e| AppError::Internal(format!("approval preview: {e}")))?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        decided_by: row.try_get("decided_by")?,
        decided_at_ms: row.try_get("decided_at_ms")?,
        decision_reason: row.try_get("decision_reason")?,
        action_id: row.try_get("action_id")?,
    })
}

/// Requests one person may have waiting at once.
pub const OPEN_REQUESTS_MAX: i64 = 20;

/// The approval kind of `change` (made by `action`) on a gateway running `replicas`: a
/// scale to below half of them is `scale-down`, whether it sets the count or caps the
/// autoscaler (`maxReplicas` below half forces the same cut).
pub fn kind_of(change: &Change, action: ActionName, replicas: u32) -> &'static str {
    match change {
        Change::Scale { replicas: to } | Change::Autoscale { max_replicas: to, .. }
            if to.saturating_mul(2) < replicas =>
        {
            "scale-down"
        }
        _ => action.as_str(),
    }
}

impl Engine {
    /// The kind of approval `plan` needs, if it needs one.
    pub(super) fn needs_approval(&self, action: ActionName, plan: &Plan, state: &GatewayState) -> Option<&'static str> {
        let kind = kind_of(&plan.change, action, state.replicas);
        self.approvals.kinds.iter().any(|k| k == kind).then_some(kind)
    }

    /// A ledger entry about approval `id` of `action` on `gateway`.
    fn approval_entry(actor: Actor, outcome: Outcome, step: &str, a: &Approval, reason: &str) -> NewEntry {
        let mut entry = NewEntry::new(actor, Kind::Approval, outcome);
        entry.action = a.action.clone();
        entry.target = a.gateway.clone();
        entry.incident = a.incident.clone();
        entry.reason = reason.into();
        entry.params = json!({ "approval": a.id, "step": step, "kind": a.kind, "requester": a.requester,
                               "action_id": a.action_id });
        entry
    }

    /// Sent whether or not a stream is open: each replica's count of open approvals
    /// (`spawn_open_watch`) follows these, and they are rare.
    async fn publish_approval(&self, approval: &Approval) {
        if let Ok(json) = serde_json::to_string(approval) {
            self.bus.publish("approval", &json).await;
        }
    }

    /// Stores a request for approval of `plan` (nothing changes) and puts it on the record.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn request_approval(
        &self,
        requester: &Actor,
        gateway: &str,
        action: ActionName,
        kind: &str,
        request: &Envelope,
        plan: &Plan,
        state: &GatewayState,
    ) -> Result<Approval> {
        let now = now_ms();
        let hash = plan_hash(&plan.change, state);
        // The same change asked for again by the same person while it waits is that
        // request, not another row (each stores the gateway's state and a signed entry).
        let waiting: Option<i64> = sqlx::query_scalar(
            "select id from approvals where requester = $1 and status = 'awaiting_approval' \
             and expires_at_ms > $2 and gateway = $3 and action = $4 and plan_hash = $5 limit 1",
        )
        .bind(&requester.name)
        .bind(now)
        .bind(gateway)
        .bind(action.as_str())
        .bind(&hash)
        .fetch_optional(&self.db)
        .await?;
        if let Some(id) = waiting {
            return self.approval(id).await;
        }
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from approvals where requester = $1 and status = 'awaiting_approval' and expires_at_ms > $2",
        )
        .bind(&requester.name)
        .bind(now)
        .fetch_one(&self.db)
        .await?;
        if waiting >= OPEN_REQUESTS_MAX {
            return Err(AppError::TooManyRequests {
                reason: format!("{waiting} of your requests already wait for approval (at most {OPEN_REQUESTS_MAX})"),
                retry_after_s: 60,
            });
        }
        let mut body = Value::Object(request.params.clone());
        body["reason"] = json!(request.reason);
        body["incident"] = json!(request.incident);
        if let Some(confirm) = &request.confirm {
            body["confirm"] = json!(confirm);
        }
        let row = sqlx::query(
            "insert into approvals (gateway, action, kind, body, reason, incident, requester, requester_role, plan_hash, \
             preview, status, created_at_ms, expires_at_ms, decided_by, decided_at_ms, decision_reason, action_id) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'awaiting_approval', $11, $12, '', null, '', null) \
             returning id",
        )
        .bind(gateway)
        .bind(action.as_str())
        .bind(kind)
        .bind(body.to_string())
        .bind(&request.reason)
        .bind(&request.incident)
        .bind(&requester.name)
        .bind(&requester.role)
        .bind(&hash)
        .bind(json!(plan.preview).to_string())
        .bind(now)
        .bind(now + self.approvals.expiry.as_millis() as i64)
        .fetch_one(&self.db)
        .await?;
        let approval = self.approval(row.try_get("id")?).await?;
        let mut entry =
            Self::approval_entry(requester.clone(), Outcome::Pending, "request", &approval, &request.reason);
        entry.after = Some(json!(plan.preview));
        entry.before = Some(json!(state));
        self.ledger.append(entry).await?;
        self.publish_approval(&approval).await;
        Ok(approval)
    }

    /// Records a break-glass run (action `action_id`): waiting for review, an open
    /// follow-up on its incident, an event for everyone who could have approved it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_break_glass(
        &self,
        actor: &Actor,
        gateway: &str,
        action: ActionName,
        kind: &str,
        request: &Envelope,
        plan: &Plan,
        action_id: i64,
    ) -> Result<()> {
        let now = now_ms();
        let row = sqlx::query(
            "insert into approvals (gateway, action, kind, body, reason, incident, requester, requester_role, plan_hash, \
             preview, status, created_at_ms, expires_at_ms, decided_by, decided_at_ms, decision_reason, action_id) \
             values ($1, $2, $3, '{}', $4, $5, $6, $7, '', $8, 'break_glass', $9, $9, '', null, '', $10) returning id",
        )
        .bind(gateway)
        .bind(action.as_str())
        .bind(kind)
        .bind(&request.reason)
        .bind(&request.incident)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(json!(plan.preview).to_string())
        .bind(now)
        .bind(action_id)
        .fetch_one(&self.db)
        .await?;
        let id: i64 = row.try_get("id")?;
        if !request.incident.is_empty() {
            sqlx::query(
                "insert into followups (incident, text, approval_id, open, created_at_ms, closed_by, closed_at_ms) \
                 values ($1, $2, $3, 1, $4, '', null)",
            )
            .bind(&request.incident)
            .bind(format!(
                "review break-glass action #{action_id} ({} on {gateway} by {})",
                action.as_str(),
                actor.name
            ))
            .bind(id)
            .bind(now)
            .execute(&self.db)
            .await?;
        }
        let approval = self.approval(id).await?;
        let entry = Self::approval_entry(actor.clone(), Outcome::Succeeded, "break_glass", &approval, &request.reason);
        self.ledger.append(entry).await?;
        self.publish_approval(&approval).await;
        Ok(())
    }

    /// One approval, or 404.
    pub async fn approval(&self, id: i64) -> Result<Approval> {
        let row = sqlx::query(&format!("select {COLUMNS} from approvals where id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no approval {id}")))?;
        from_row(&row)
    }

    /// `GET /api/v1/approvals`: the newest 200 (of `status`, if given); with `for_me`,
    /// only what waits for `caller`: requests they may decide and break-glass runs they
    /// may review (not their own).
    pub async fn approvals(&self, caller: &Caller, status: Option<&str>, for_me: bool) -> Result<ApprovalList> {
        // For the inbox, only open ones are read, so a long history never hides one.
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from approvals where ($1 = '' or status = $1) \
             and ($2 = 0 or status in ('awaiting_approval', 'break_glass')) order by id desc limit 200"
        ))
        .bind(status.unwrap_or(""))
        .bind(i64::from(for_me))
        .fetch_all(&self.db)
        .await?;
        let mut approvals = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        if for_me {
            approvals.retain(|a| {
                Open::of(&a.status, &a.requester, &a.action)
                    .is_some_and(|o| o.waits_for(&caller.actor.name, caller.role))
            });
        }
        Ok(ApprovalList { approvals })
    }

    /// Refuses `caller` deciding `a` (on the record) unless they may run its action and
    /// did not ask for it themselves.
    async fn may_decide(&self, caller: &Caller, a: &Approval, step: &str) -> Result<ActionName> {
        let action = ActionName::parse(&a.action).ok_or_else(|| AppError::Internal(format!("action {}", a.action)))?;
        // An account made after the request cannot be its second person: otherwise an
        // admin could create one and approve their own request with it.
        let created: Option<i64> = sqlx::query_scalar("select created_at from users where username = $1")
            .bind(&caller.actor.name)
            .fetch_optional(&self.db)
            .await?;
        let refusal = if caller.actor.name == a.requester {
            Some(AppError::Forbidden(format!("a second person must {step} it: {} asked for it", a.requester)))
        } else if created.is_none_or(|at| at >= a.created_at_ms) {
            Some(AppError::Forbidden(format!(
                "your account was created after this request was made; an account that existed before it must \
                 {step} it"
            )))
        } else if caller.role < action.role() {
            Some(AppError::Forbidden(format!(
                "deciding a {} needs the {} role; you are {}",
                a.action,
                action.role(),
                caller.role
            )))
        } else {
            None
        };
        if let Some(e) = refusal {
            let mut entry = Self::approval_entry(caller.actor.clone(), Outcome::Denied, step, a, "");
            entry.params["refused"] = json!(e.to_api().message);
            self.ledger.refuse(entry).await?;
            return Err(e);
        }
        Ok(action)
    }

    /// Settles approval `a` as `status` (only from `from`), by `by` with `reason`.
    async fn settle(
        &self,
        a: &Approval,
        from: &str,
        status: &str,
        by: &str,
        reason: &str,
        action_id: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "update approvals set status = $1, decided_by = $2, decided_at_ms = $3, decision_reason = $4, \
             action_id = coalesce($5, action_id) where id = $6 and status = $7",
        )
        .bind(status)
        .bind(by)
        .bind(now_ms())
        .bind(reason)
        .bind(action_id)
        .bind(a.id)
        .bind(from)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A waiting request, still open: 409 when it was decided or has lapsed (a lapse
    /// found here is settled and put on the record).
    async fn still_waiting(&self, id: i64) -> Result<Approval> {
        let a = self.approval(id).await?;
        if a.status != "awaiting_approval" {
            return Err(AppError::Conflict(format!("approval {id} is {} already; nothing was done", a.status)));
        }
        if now_ms() >= a.expires_at_ms {
            self.expire(&a).await?;
            return Err(AppError::Conflict(format!("approval {id} lapsed before it was decided; nothing was done")));
        }
        Ok(a)
    }

    async fn expire(&self, a: &Approval) -> Result<()> {
        if self.settle(a, "awaiting_approval", "expired", "system", "nobody decided in time", None).await? {
            let entry = Self::approval_entry(Actor::system(), Outcome::Failed, "expire", a, "nobody decided in time");
            self.ledger.append(entry).await?;
            self.publish_approval(&self.approval(a.id).await?).await;
        }
        Ok(())
    }

    /// On the leader: settles the requests that lapsed. Returns how many.
    pub async fn expire_approvals(&self) -> Result<usize> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from approvals where status = 'awaiting_approval' and expires_at_ms <= $1"
        ))
        .bind(now_ms())
        .fetch_all(&self.db)
        .await?;
        for row in &rows {
            self.expire(&from_row(row)?).await?;
        }
        Ok(rows.len())
    }

    /// `POST /api/v1/approvals/{id}/approve`: runs the request as planned, as the
    /// requester, if the gateway is still as it was planned against.
    pub async fn approve(self: &Arc<Self>, caller: Caller, id: i64, body: Value) -> Result<Approval> {
        let reason = decision_reason(body, false)?;
        let a = self.still_waiting(id).await?;
        let action = self.may_decide(&caller, &a, "approve").await?;
        // What the request was bound to: its body, the requester's role, the plan's hash.
        let (body, requester_role, bound_to): (String, String, String) =
            sqlx::query_as("select body, requester_role, plan_hash from approvals where id = $1")
                .bind(id)
                .fetch_one(&self.db)
                .await?;
        let request = envelope(serde_json::from_str(&body).unwrap_or_default())?;
        let planned = self.plan_now(action, &a.gateway, &request.params, false).await;
        let (state, plan) = match planned {
            Ok((state, plan)) if plan_hash(&plan.change, &state) == bound_to => (state, plan),
            other => {
                let why = match other {
                    Err(e) => format!("it cannot be planned now: {}", e.to_api().message),
                    Ok(_) => format!("{} changed since the preview it was asked for", a.gateway),
                };
                if self.settle(&a, "awaiting_approval", "refused", &caller.actor.name, &why, None).await? {
                    let entry = Self::approval_entry(caller.actor.clone(), Outcome::Denied, "refuse", &a, &why);
                    self.ledger.append(entry).await?;
                    self.publish_approval(&self.approval(id).await?).await;
                }
                return Err(AppError::Conflict(format!("approval {id} was not run: {why}; nothing was done")));
            }
        };
        // Claimed before anything changes, so two approvers cannot both run it.
        if !self.settle(&a, "awaiting_approval", "approved", &caller.actor.name, &reason, None).await? {
            return Err(AppError::Conflict(format!("approval {id} was decided at the same moment; nothing was done")));
        }
        let approved = self.approval(id).await?;
        let entry = Self::approval_entry(caller.actor.clone(), Outcome::Succeeded, "approve", &approved, &reason);
        self.ledger.append(entry).await?;
        let requester = Actor {
            name: a.requester.clone(),
            role: requester_role,
            request_id: caller.actor.request_id.clone(),
            ..Default::default()
        };
        let mut params = Value::Object(request.params.clone());
        params["approval"] = json!(id);
        params["approved_by"] = json!(caller.actor.name);
        let ran = self
            .execute(
                requester,
                Kind::ActionIntent,
                &a.gateway,
                action,
                &params,
                &request.reason,
                &request.incident,
                plan,
                None,
                &state,
            )
            .await;
        // A change that fails is on the record (its intent names this approval) and the
        // approver hears why.
        let action_id = ran?;
        sqlx::query("update approvals set action_id = $1 where id = $2")
            .bind(action_id)
            .bind(id)
            .execute(&self.db)
            .await?;
        let approval = self.approval(id).await?;
        self.publish_approval(&approval).await;
        Ok(approval)
    }

    /// `POST /api/v1/approvals/{id}/deny`: with a reason.
    pub async fn deny(&self, caller: Caller, id: i64, body: Value) -> Result<Approval> {
        let reason = decision_reason(body, true)?;
        let a = self.still_waiting(id).await?;
        self.may_decide(&caller, &a, "deny").await?;
        if !self.settle(&a, "awaiting_approval", "denied", &caller.actor.name, &reason, None).await? {
            return Err(AppError::Conflict(format!("approval {id} was decided at the same moment")));
        }
        let denied = self.approval(id).await?;
        self.ledger.append(Self::approval_entry(caller.actor, Outcome::Denied, "deny", &denied, &reason)).await?;
        self.publish_approval(&denied).await;
        Ok(denied)
    }

    /// `POST /api/v1/approvals/{id}/review`: a second person has looked at a break-glass
    /// run; its incident's follow-up closes.
    pub async fn review(&self, caller: Caller, id: i64, body: Value) -> Result<Approval> {
        let reason = decision_reason(body, true)?;
        let a = self.approval(id).await?;
        if a.status != "break_glass" {
            return Err(AppError::Conflict(format!("approval {id} is {}, not a break-glass run to review", a.status)));
        }
        self.may_decide(&caller, &a, "review").await?;
        if !self.settle(&a, "break_glass", "reviewed", &caller.actor.name, &reason, None).await? {
            return Err(AppError::Conflict(format!("approval {id} was reviewed at the same moment")));
        }
        sqlx::query("update followups set open = 0, closed_by = $1, closed_at_ms = $2 where approval_id = $3")
            .bind(&caller.actor.name)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db)
            .await?;
        let reviewed = self.approval(id).await?;
        self.ledger
            .append(Self::approval_entry(caller.actor, Outcome::Succeeded, "review", &reviewed, &reason))
            .await?;
        self.publish_approval(&reviewed).await;
        Ok(reviewed)
    }
}

/// The approvals (and break-glass runs) for incident `key`, oldest first.
pub async fn for_incident(db: &crate::db::Db, key: &str) -> Result<Vec<Approval>> {
    let rows = sqlx::query(&format!("select {COLUMNS} from approvals where incident = $1 order by id limit 500"))
        .bind(key)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Incident `key`'s follow-ups, oldest first.
pub async fn followups(db: &crate::db::Db, key: &str) -> Result<Vec<app::dto::Followup>> {
    let rows = sqlx::query(
        "select id, text, open, created_at_ms, closed_by, closed_at_ms from followups where incident = $1 order by id \
         limit 500",
    )
    .bind(key)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(app::dto::Followup {
                id: r.try_get("id")?,
                text: r.try_get("text")?,
                open: r.try_get::<i64, _>("open")? == 1,
                created_at_ms: r.try_get("created_at_ms")?,
                closed_by: r.try_get("closed_by")?,
                closed_at_ms: r.try_get("closed_at_ms")?,
            })
        })
        .collect()
}

/// The `{reason}` of a decision (`required` for a denial or a review), at most 1,000
/// characters; nothing else.
fn decision_reason(body: Value, required: bool) -> Result<String> {
    let mut body = crate::params::Body::parse(body)?;
    let reason = body.text("reason", app::dto::Reason::MAX_CHARS)?.unwrap_or_default();
    body.done()?;
    let checked = if required {
        app::dto::Reason::parse(&reason).map(app::dto::Reason::into_string)
    } else {
        app::dto::Reason::optional(&reason)
    };
    checked.map_err(|why| AppError::invalid("reason", why))
}

/// Whether `role` may ask for (not run) an action: a responder may ask for one that
/// needs approval even if only an admin may run it.
pub fn may_request(role: Role) -> bool {
    role >= REQUESTER
}

/// The lowest role that may ask for an action it may not run itself.
pub const REQUESTER: Role = Role::Responder;

/// A request or break-glass run that waits for someone: for a decision or a review.
#[derive(Clone, Debug, PartialEq)]
pub struct Open {
    requester: String,
    /// The role that may run (so decide or review) the action.
    role: Role,
    /// A break-glass run waiting for review (else a request waiting for a decision).
    pub break_glass: bool,
}

impl Open {
    /// The open item of an approval in `status`, if it is one.
    fn of(status: &str, requester: &str, action: &str) -> Option<Open> {
        let role = ActionName::parse(action)?.role();
        ["awaiting_approval", "break_glass"].contains(&status).then(|| Open {
            requester: requester.into(),
            role,
            break_glass: status == "break_glass",
        })
    }

    /// Whether it waits for `name` with `role`: anyone else who may run the action.
    pub fn waits_for(&self, name: &str, role: Role) -> bool {
        self.requester != name && role >= self.role
    }
}

/// Everything open now, for the header's count of what waits for each person
/// (`GET /api/v1/events` sends each stream its own). At most [`OPEN_READ_MAX`].
pub async fn open(db: &crate::db::Db) -> Result<Vec<Open>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select status, requester, action from approvals where (status = 'awaiting_approval' and expires_at_ms > $1) \
         or status = 'break_glass' order by id desc limit $2",
    )
    .bind(now_ms())
    .bind(OPEN_READ_MAX)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().filter_map(|(status, requester, action)| Open::of(status, requester, action)).collect())
}

/// The most open items read for the count (a count shown as "1000+" past it would be
/// no less useful than the exact number).
pub const OPEN_READ_MAX: i64 = 1000;

/// The open items, re-read after every approval event from any replica (and every
/// 30 s, for one a lost notification hid), published to this replica's event streams.
pub fn spawn_open_watch(
    db: crate::db::Db,
    bus: Arc<crate::bus::Bus>,
) -> (tokio::sync::watch::Receiver<Arc<[Open]>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(Arc::<[Open]>::from(Vec::new()));
    let mut events = bus.subscribe_internal();
    let task = tokio::spawn(async move {
        let every_30s = Duration::from_secs(30);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + every_30s, every_30s);
        loop {
            match open(&db).await {
                Ok(list) => {
                    tx.send_if_modified(|now| {
                        let changed = **now != *list;
                        if changed {
                            *now = list.into();
                        }
                        changed
                    });
                }
                Err(e) => tracing::warn!(error = ?e, "could not read the open approvals"),
            }
            // Waits for the next approval event (or the timer); a burst is read once.
            loop {
                tokio::select! {
                    _ = every.tick() => break,
                    got = events.recv() => match got {
                        Ok(e) if e.topic == "approval" => break,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
            while events.try_recv().is_ok() {}
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_the_autoscaler_far_below_todays_replicas_is_a_scale_down() {
        let scale = |to| Change::Scale { replicas: to };
        let cap = |min, max| Change::Autoscale { min_replicas: min, max_replicas: max };
        assert_eq!(kind_of(&scale(1), ActionName::Scale, 8), "scale-down");
        assert_eq!(kind_of(&scale(6), ActionName::Scale, 8), "scale");
        assert_eq!(kind_of(&cap(1, 2), ActionName::Scale, 8), "scale-down", "max 2 under 8 running");
        assert_eq!(kind_of(&cap(1, 20), ActionName::Scale, 8), "scale");
        assert_eq!(kind_of(&cap(4, 4), ActionName::Scale, 8), "scale", "exactly half is not below half");
    }
}
