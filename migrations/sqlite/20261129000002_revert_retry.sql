-- An expired change whose revert failed is tried again, with a growing wait, until it is
-- reverted (or no longer in force): how many tries failed, and when the next one is due.
alter table actions add column revert_attempts bigint;
alter table actions add column revert_next_at_s bigint;
