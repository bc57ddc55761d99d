-- Whether the backend made the change (its outcome succeeded), whatever came after: a DNS
-- record that the zone's other servers did not serve in time, or a rollout that stalled,
-- leaves the action failed but the change in force, so it can still be undone and still
-- reverts when its time limit passes.
alter table actions add column applied bigint not null default 0;
