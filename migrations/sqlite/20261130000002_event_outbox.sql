-- Kept for the same schema in both dialects; with SQLite (one replica) events go from
-- the process to its own streams and nothing is written here.
create table event_outbox (
    id integer primary key autoincrement,
    ts_ms bigint not null,
    topic text not null,
    payload text not null
);
create index event_outbox_ts on event_outbox (ts_ms);
