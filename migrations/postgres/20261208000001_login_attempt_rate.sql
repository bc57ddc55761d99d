-- Issue 29: the shared throttle's second version (see server/src/auth/throttle.rs).
-- Keys are fixed-size (a digest of the name, the client's address or IPv6 /64); an
-- account under a distributed guess is a real rate (one attempt per p_slow_gap_ms from
-- anywhere, the rest refused), not a sleep every attempt passes; and an (account, address)
-- pair that signed in within p_trust_ms (key p_trusted) meets neither its address's
-- limit nor the account's rate. Returns the wait in ms (> 0: refused) or 0 (go, counted).
create or replace function gatewarden_login_attempt_v2(
    p_lock bigint, p_pair text, p_addr text, p_user text, p_trusted text, p_window_ms bigint,
    p_free_pair bigint, p_free_addr bigint, p_slow_at bigint, p_slow_gap_ms bigint,
    p_trust_ms bigint, p_max_delay_ms bigint
) returns bigint language plpgsql as $$
declare
    p_now bigint;
    p_window_start bigint;
    r record;
    free bigint;
    owed bigint;
    wait_ms bigint := 0;
    trusted boolean;
begin
    perform pg_advisory_xact_lock(p_lock);
    p_now := cast(extract(epoch from clock_timestamp()) * 1000 as bigint);
    p_window_start := p_now - p_window_ms;
    trusted := exists (select 1 from login_throttle where key = p_trusted and last_ms >= p_now - p_trust_ms);
    for r in
        select key, last_ms, failures from login_throttle
        where key in (p_pair, p_addr, p_user) and first_ms >= p_window_start
    loop
        if r.key = p_user then
            if not trusted and r.failures >= p_slow_at then
                wait_ms := greatest(wait_ms, p_slow_gap_ms - greatest(p_now - r.last_ms, 0));
            end if;
        elsif r.key = p_pair or not trusted then
            free := case when r.key = p_pair then p_free_pair else p_free_addr end;
            if r.failures >= free then
                owed := least((1::bigint << least(r.failures - free, 20)::int) * 1000, p_max_delay_ms)
                        - greatest(p_now - r.last_ms, 0);
                wait_ms := greatest(wait_ms, owed);
            end if;
        end if;
    end loop;
    if wait_ms > 0 then
        return wait_ms;
    end if;
    insert into login_throttle as t (key, first_ms, last_ms, failures)
        select k, p_now, p_now, 1 from unnest(array[p_pair, p_addr, p_user]) as k
    on conflict (key) do update set
        failures = case when t.first_ms < p_window_start then 1 else t.failures + 1 end,
        first_ms = case when t.first_ms < p_window_start then p_now else t.first_ms end,
        last_ms = p_now;
    return 0;
end
$$;
