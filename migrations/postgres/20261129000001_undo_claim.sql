-- An undo claims its action before it changes anything (a conditional update), so of two
-- concurrent undos exactly one runs. Set when the claim is taken, cleared if the undo fails.
alter table actions add column undo_claimed_at_ms bigint;
