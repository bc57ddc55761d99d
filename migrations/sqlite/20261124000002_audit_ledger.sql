-- The audit ledger: append-only and hash-chained. Ids are assigned by the appender
-- (previous id + 1) so the chain order is the id order; `prev_hash` is unique so two
-- appenders can never fork the chain, even from different replicas.
create table audit_log (
    id integer primary key,
    ts_ms bigint not null,
    actor text not null,
    actor_role text not null,
    client_addr text not null,
    user_agent text not null,
    request_id text not null,
    kind text not null,
    action text not null,
    target text not null,
    params text not null,
    reason text not null,
    incident text not null,
    outcome text not null,
    intent_id bigint,
    before_state text not null,
    after_state text not null,
    prev_hash text not null unique,
    hash text not null unique
);

create index audit_log_actor on audit_log (actor, id);
create index audit_log_action on audit_log (action, id);
create index audit_log_target on audit_log (target, id);
create index audit_log_outcome on audit_log (outcome, id);
create index audit_log_incident on audit_log (incident, id);
create index audit_log_ts on audit_log (ts_ms, id);
create index audit_log_intent on audit_log (intent_id);

-- The database itself refuses to rewrite history.
create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;

create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;
