-- Free-text search over the audit trail: a trigram index, so a substring query reads
-- only candidate entries instead of scanning the ledger. pg_trgm is a trusted extension
-- (PostgreSQL 13+): the database owner may create it.
create extension if not exists pg_trgm;

create index audit_log_text_trgm on audit_log using gin (
    lower(actor || ' ' || target || ' ' || action || ' ' || reason || ' ' || params || ' ' || incident) gin_trgm_ops
);
