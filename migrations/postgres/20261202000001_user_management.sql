-- User management: accounts can be disabled, their sessions ended on every replica, and
-- they may come from the identity provider.
-- A disabled account cannot sign in and its sessions are refused at their next request.
alter table users add column disabled_at bigint;
-- Bumped when an account's sessions are ended (disable, password reset, revoke); a
-- session signed in under an older epoch is refused, even one re-saved after its row
-- was deleted by a request already under way.
alter table users add column session_epoch bigint not null default 0;
alter table users add column last_sign_in_at bigint;
-- 'local' (a password here) or 'oidc' (the identity provider vouches; no password).
alter table users add column source text not null default 'local' check (source in ('local', 'oidc'));
-- The identity provider's id for the person (`sub`), for accounts it vouches for: the
-- account is found by it, never by a name someone could choose.
alter table users add column external_id text;
create unique index users_external_id on users (external_id);
-- Whose session it is, so that an account's sessions can be counted and ended.
alter table sessions add column user_id bigint;
create index sessions_user_id on sessions (user_id);
