-- Events every replica's streams carry (issue 16): action updates, audit entries and
-- sign-outs (as a hash of the session id). NOTIFY carries only the id; the rows make
-- lost notifications and reconnecting browsers (Last-Event-ID) recoverable for 15 minutes.
create table event_outbox (
    id bigserial primary key,
    ts_ms bigint not null,
    topic text not null,
    payload text not null
);
create index event_outbox_ts on event_outbox (ts_ms);
