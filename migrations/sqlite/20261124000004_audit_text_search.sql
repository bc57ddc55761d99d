-- Free-text search over the audit trail: a trigram index, so a substring query reads
-- only candidate entries instead of scanning the ledger. Contentless (the ledger holds
-- the text); fed by an insert trigger, since the ledger is append-only.
create virtual table audit_text using fts5(body, content = '', tokenize = 'trigram');

insert into audit_text (rowid, body)
select id, actor || ' ' || target || ' ' || action || ' ' || reason || ' ' || params || ' ' || incident
from audit_log;

create trigger audit_text_index after insert on audit_log
begin
    insert into audit_text (rowid, body)
    values (new.id, new.actor || ' ' || new.target || ' ' || new.action || ' ' || new.reason || ' ' || new.params || ' ' || new.incident);
end;
