-- PostgreSQL only (a function for the shared sign-in throttle); SQLite keeps its counters
-- in memory. Kept so both dialects have the same migration history.
select 1;
