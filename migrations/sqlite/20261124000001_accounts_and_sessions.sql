-- Console accounts and their sessions (tower-sessions records).
create table users (
    id integer primary key autoincrement,
    username text not null unique,
    password_hash text not null,
    role text not null check (role in ('viewer', 'responder', 'admin')),
    created_at bigint not null
);

create table sessions (
    id text primary key,
    data text not null,
    expiry_date bigint not null
);

create index sessions_expiry_date on sessions (expiry_date);
