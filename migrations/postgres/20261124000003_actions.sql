-- Mitigations as operational state (status, progress, impact, undo); the audit ledger
-- holds the tamper-evident record of each one.
create table actions (
    id bigint generated always as identity primary key,
    gateway text not null,
    action text not null,
    params text not null,
    change text not null,
    inverse text,
    actor text not null,
    actor_role text not null,
    reason text not null,
    incident text not null,
    status text not null,
    detail text not null,
    preview text not null,
    progress text,
    impact_before text,
    impact_after text,
    undone_by bigint,
    undo_of bigint,
    expires_at_s bigint,
    reverted bigint not null,
    intent_id bigint not null,
    created_at_ms bigint not null
);

create index actions_gateway on actions (gateway, id);
create index actions_expiry on actions (expires_at_s);
