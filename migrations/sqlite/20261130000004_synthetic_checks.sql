-- Synthetic check results (issue 16): the leader checks and writes them here, every
-- replica reads them, so all show the same strip. Used with PostgreSQL (with SQLite one
-- process keeps them in memory). Rows older than the strip's span are deleted.
create table synthetic_checks (
    gateway text not null,
    path text not null,
    ts_ms bigint not null,
    status integer,
    total_ms double precision not null,
    ok integer not null,
    error text
);
create index synthetic_checks_ts on synthetic_checks (ts_ms);
