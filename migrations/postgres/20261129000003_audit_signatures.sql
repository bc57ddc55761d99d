-- Entries are signed with a key kept outside the database (HMAC-SHA-256 of the hash,
-- hex). Entries written before signing have none; a key marker entry vouches for them.
alter table audit_log add column mac text not null default '';
