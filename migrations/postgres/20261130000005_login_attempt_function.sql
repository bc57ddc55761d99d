-- One round trip per sign-in decision (issue 16): the shared throttle's rules (see
-- server/src/auth/throttle.rs) in one function, under the throttle's advisory lock, so a
-- wave of sign-ins does not hold pooled connections through seven statements each.
-- Returns the wait in ms (> 0: refused), -1 (go, slowed: the account is under a
-- distributed attack) or 0 (go). The attempt is counted only when it may go.
create or replace function gatewarden_login_attempt(
    p_lock bigint, p_pair text, p_addr text, p_user text, p_window_ms bigint,
    p_free_pair bigint, p_free_addr bigint, p_slow_at bigint, p_max_delay_ms bigint
) returns bigint language plpgsql as $$
declare
    p_now bigint;
    p_window_start bigint;
    r record;
    free bigint;
    owed bigint;
    wait_ms bigint := 0;
    slow boolean := false;
begin
    perform pg_advisory_xact_lock(p_lock);
    -- The clock is read under the lock: a decision that waited for it must not judge the
    -- attempts made meanwhile as if they were in its future.
    p_now := cast(extract(epoch from clock_timestamp()) * 1000 as bigint);
    p_window_start := p_now - p_window_ms;
    for r in
        select key, last_ms, failures from login_throttle
        where key in (p_pair, p_addr, p_user) and first_ms >= p_window_start
    loop
        if r.key = p_user then
            slow := r.failures >= p_slow_at;
        else
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
    return case when slow then -1 else 0 end;
end
$$;
