-- Two-person approval (issue 18): a request that needs a second person waits here,
-- bound to the exact change and the state it was planned against (plan_hash); the
-- ledger records every step. Break-glass runs are here too, until someone reviews them.
create table approvals (
    id bigint generated always as identity primary key,
    gateway text not null,
    action text not null,
    kind text not null,
    body text not null,
    reason text not null,
    incident text not null,
    requester text not null,
    requester_role text not null,
    plan_hash text not null,
    preview text not null,
    status text not null,
    created_at_ms bigint not null,
    expires_at_ms bigint not null,
    decided_by text not null,
    decided_at_ms bigint,
    decision_reason text not null,
    action_id bigint
);
create index approvals_status on approvals (status, id);

-- Follow-ups an incident must not forget (a break-glass action to review).
create table followups (
    id bigint generated always as identity primary key,
    incident text not null,
    text text not null,
    approval_id bigint,
    open bigint not null,
    created_at_ms bigint not null,
    closed_by text not null,
    closed_at_ms bigint
);
create index followups_incident on followups (incident, id);
