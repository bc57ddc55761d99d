//! Number formatting shared by the views.
//!
//! Fixed-point through integers rather than `{:.N}`: float formatting would pull core's
//! large float-printing code into the wasm bundle for a handful of labels.

/// `v` with `decimals` digits after the point (0 to 3), rounded half away from zero.
pub fn fixed(v: f64, decimals: u32) -> String {
    let scale = 10i64.pow(decimals.min(3));
    let n = (v * scale as f64).round() as i64;
    let (sign, n) = if n < 0 { ("-", -n) } else { ("", n) };
    if decimals == 0 {
        return format!("{sign}{n}");
    }
    let frac = (n % scale).to_string();
    let pad = "0".repeat(decimals as usize - frac.len());
    format!("{sign}{}.{pad}{frac}", n / scale)
}

/// Requests per second: one decimal below 100, none above.
pub fn rps(v: f64) -> String {
    if v < 100.0 { fixed(v, 1) } else { fixed(v, 0) }
}

/// What a number that could not be read shows: never a zero.
pub fn unknown_number() -> String {
    "unknown".into()
}

/// A fraction as a percentage with precision where it matters.
pub fn percent(v: f64) -> String {
    let p = v * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.1 {
        format!("{}%", fixed(p, 3))
    } else if p < 10.0 {
        format!("{}%", fixed(p, 2))
    } else {
        format!("{}%", fixed(p, 1))
    }
}

/// Milliseconds, switching to seconds past 10 s.
pub fn millis(v: f64) -> String {
    if v >= 10_000.0 { format!("{} s", fixed(v / 1000.0, 1)) } else { format!("{} ms", fixed(v, 0)) }
}

/// A duration in seconds as the largest two units, e.g. `3h 12m`.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The zone the console shows times in, as minutes east of UTC (0: UTC). The person
/// picks it (UTC or this browser's local offset); it is kept in the browser's `gw_tz`
/// cookie so that the server renders pages in it too and hydration changes no text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Zone(pub i32);

/// The `gw_tz` offset in a `Cookie` header or `document.cookie`; 0 when absent or not a
/// whole number of minutes within ±14 h.
pub fn zone_in_cookies(cookies: &str) -> i32 {
    cookies
        .split(';')
        .find_map(|c| c.trim().strip_prefix("gw_tz="))
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|m| m.abs() <= 14 * 60)
        .unwrap_or(0)
}

/// The chosen zone's offset, minutes east of UTC: from the request on the server, from
/// the cookie in the browser.
pub fn zone() -> i32 {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        // Read once: choosing another zone reloads the page.
        thread_local!(static ZONE: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) });
        ZONE.with(|z| match z.get() {
            Some(m) => m,
            None => {
                let m = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.unchecked_into::<web_sys::HtmlDocument>().cookie().ok())
                    .map_or(0, |c| zone_in_cookies(&c));
                z.set(Some(m));
                m
            }
        })
    }
    #[cfg(not(feature = "hydrate"))]
    leptos::prelude::use_context::<Zone>().map_or(0, |z| z.0)
}

/// `UTC` or `UTC+01:00`: the name shown with every time.
pub fn zone_label() -> String {
    let m = zone();
    if m == 0 {
        return "UTC".into();
    }
    format!("UTC{}{:02}:{:02}", if m < 0 { '-' } else { '+' }, m.abs() / 60, m.abs() % 60)
}

/// `YYYY-MM-DD HH:MM:SS` in the chosen [`zone`] (its name is shown once, in the column
/// header or the axis, via [`zone_label`]).
pub fn time(ms: i64) -> String {
    utc(ms + i64::from(zone()) * 60_000)
}

/// `YYYY-MM-DD HH:MM:SS` UTC from Unix ms, by integer arithmetic (same text on the
/// server and in the browser, no date library in the bundle).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Percent-encodes `s` for a URL query value (RFC 3986 unreserved characters stay).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_small_error_rates_visible() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.0004), "0.040%");
        assert_eq!(percent(0.0523), "5.23%");
        assert_eq!(percent(0.5), "50.0%");
    }

    #[test]
    fn fixed_point_matches_the_float_formatter() {
        for v in [0.0, 0.04, 1.5, 9.995, 12.3456, 999.95, 1234.5, -2.25] {
            for d in 0..=3 {
                let expected = format!("{:.*}", d as usize, v);
                // Only ties may round differently (half away from zero vs. to even).
                if (v * 10f64.powi(d as i32)).fract().abs() != 0.5 {
                    assert_eq!(fixed(v, d), expected, "{v} with {d} decimals");
                }
            }
        }
        assert_eq!(millis(12_345.0), "12.3 s");
        assert_eq!(rps(1234.4), "1234");
    }

    #[test]
    fn the_zone_cookie_is_read_and_bounded() {
        assert_eq!(zone_in_cookies("session=abc; gw_tz=60"), 60);
        assert_eq!(zone_in_cookies("gw_tz=-330;x=1"), -330);
        for bad in ["", "gw_tz=", "gw_tz=abc", "gw_tz=841", "gw_tz=-99999999999", "xgw_tz=60"] {
            assert_eq!(zone_in_cookies(bad), 0, "{bad}");
        }
        // With no zone chosen (no context here), times are UTC and say so.
        assert_eq!((time(0), zone_label()), ("1970-01-01 00:00:00".to_string(), "UTC".to_string()));
    }

    #[test]
    fn ages_show_two_units() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(3 * 3600 + 12 * 60 + 5), "3h 12m");
        assert_eq!(age(2 * 86_400 + 3600), "2d 1h");
    }
}
