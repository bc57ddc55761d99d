-- Console replicas sharing this database (issue 16). Each registers at start, heartbeats
-- every 2 s and removes itself on a clean stop. With PostgreSQL, `backend_pid` is the
-- server process of the replica's own connection (the one that holds leadership), so a
-- replica is alive exactly while that connection is: a killed process is seen at once.
create table replicas (
    id text primary key,
    version text not null,
    fleet text not null,
    started_at_ms bigint not null,
    last_seen_ms bigint not null,
    leader integer not null default 0,
    backend_pid bigint not null default 0
);
