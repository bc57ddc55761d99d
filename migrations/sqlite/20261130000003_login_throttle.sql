-- Failed sign-in counters shared by every replica (issue 16): per (account, address)
-- pair, per address and per account, each over a 15-minute window. Only PostgreSQL uses
-- it (with SQLite there is one replica and the counters stay in its memory). The leader
-- deletes rows whose window has passed.
create table login_throttle (
    key text primary key,
    first_ms bigint not null,
    last_ms bigint not null,
    failures bigint not null
);
