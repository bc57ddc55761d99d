-- Incidents (issue 18): operational state; every change to one is also a ledger entry
-- whose `incident` is the incident's key (`INC-<id>`), and the timeline is read from there.
create table incidents (
    id integer primary key autoincrement,
    title text not null,
    severity text not null,
    summary text not null,
    status text not null,
    gateways text not null,
    commander text not null,
    scribe text not null,
    declared_by text not null,
    declared_at_ms bigint not null,
    acknowledged_at_ms bigint,
    milestones text not null
);
create index incidents_status on incidents (status, id);

-- Timelines read the ledger by incident (the index audit_log_incident serves them).

-- Timeline entries starred for the postmortem.
create table incident_stars (
    incident_id bigint not null,
    entry_id bigint not null,
    starred_by text not null,
    starred_at_ms bigint not null,
    primary key (incident_id, entry_id)
);

-- Runbook steps ticked by hand (done, or not applicable) per incident; steps that an
-- action performs are ticked by the action itself, read from the actions table.
create table incident_steps (
    incident_id bigint not null,
    step text not null,
    state text not null,
    note text not null,
    by_user text not null,
    at_ms bigint not null,
    primary key (incident_id, step)
);
