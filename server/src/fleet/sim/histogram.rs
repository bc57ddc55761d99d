//! Latency histograms with Prometheus semantics: fixed upper bounds, percentiles by
//! linear interpolation inside the bucket (`histogram_quantile`), so the simulator's
//! numbers and a real Prometheus scraping it agree.

/// Upper bounds in milliseconds; a final implicit `+Inf` bucket follows.
pub const BOUNDS_MS: [f64; 30] = [
    1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 75.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0,
    500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 7500.0, 10000.0, 15000.0, 20000.0, 30000.0,
];
/// Number of buckets including `+Inf`.
pub const NB: usize = BOUNDS_MS.len() + 1;
/// Per-bucket (not cumulative) request counts.
pub type Buckets = [u64; NB];

/// Index of the bucket a latency of `ms` falls in.
pub fn bucket_of(ms: f64) -> usize {
    BOUNDS_MS.iter().position(|&b| ms <= b).unwrap_or(BOUNDS_MS.len())
}

/// The `q` quantile (0..=1) in milliseconds, as Prometheus' `histogram_quantile` computes
/// it; 0 for an empty histogram. Past the last finite bound it answers that bound.
pub fn quantile(q: f64, buckets: &Buckets) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut cumulative = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        let prev = cumulative;
        cumulative += count;
        if cumulative as f64 >= rank && count > 0 {
            if i == BOUNDS_MS.len() {
                return BOUNDS_MS[i - 1];
            }
            let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
            let upper = BOUNDS_MS[i];
            return lower + (upper - lower) * ((rank - prev as f64) / count as f64);
        }
    }
    BOUNDS_MS[BOUNDS_MS.len() - 1]
}

/// P(latency <= x) for a log-normal latency with the given mean.
pub fn lognormal_cdf(x_ms: f64, mean_ms: f64, sigma: f64) -> f64 {
    let mu = mean_ms.max(0.01).ln() - sigma * sigma / 2.0;
    0.5 * erfc(-(x_ms.max(1e-9).ln() - mu) / (sigma * std::f64::consts::SQRT_2))
}

/// Spreads `n` requests over the buckets following a log-normal latency distribution
/// with the given mean, exactly (largest remainder), so totals always add up.
pub fn spread_lognormal(n: u64, mean_ms: f64, sigma: f64, out: &mut Buckets) {
    if n == 0 {
        return;
    }
    // For a log-normal, mean = exp(mu + sigma^2 / 2).
    let mu = mean_ms.max(0.01).ln() - sigma * sigma / 2.0;
    let cdf = |x: f64| 0.5 * erfc(-(x.ln() - mu) / (sigma * std::f64::consts::SQRT_2));
    let mut expected = [0.0f64; NB];
    let mut prev = 0.0;
    for (i, &b) in BOUNDS_MS.iter().enumerate() {
        let c = cdf(b);
        expected[i] = (c - prev) * n as f64;
        prev = c;
    }
    expected[NB - 1] = (1.0 - prev) * n as f64;
    let mut assigned = 0u64;
    let mut rema: Vec<(usize, f64)> = Vec::with_capacity(NB);
    for (i, e) in expected.iter().enumerate() {
        let f = e.floor();
        out[i] += f as u64;
        assigned += f as u64;
        rema.push((i, e - f));
    }
    rema.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (i, _) in rema.into_iter().take((n - assigned) as usize) {
        out[i] += 1;
    }
}

/// Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_inside_the_bucket_like_prometheus() {
        let mut b = [0u64; NB];
        b[bucket_of(40.0)] = 100; // all requests in (30, 40]
        assert!((quantile(0.5, &b) - 35.0).abs() < 1e-9);
        assert!((quantile(0.99, &b) - 39.9).abs() < 1e-9);
    }

    #[test]
    fn quantile_of_the_inf_bucket_is_the_last_finite_bound() {
        let mut b = [0u64; NB];
        b[NB - 1] = 10;
        assert_eq!(quantile(0.99, &b), 30000.0);
        assert_eq!(quantile(0.5, &[0; NB]), 0.0);
    }

    #[test]
    fn spreading_keeps_the_total_and_the_median_near_the_distribution() {
        let mut b = [0u64; NB];
        spread_lognormal(10_000, 50.0, 0.5, &mut b);
        assert_eq!(b.iter().sum::<u64>(), 10_000);
        // median of a log-normal with mean 50 and sigma 0.5 is 50 * exp(-0.125) = 44.1
        let p50 = quantile(0.5, &b);
        assert!((40.0..48.0).contains(&p50), "p50 {p50}");
        assert!(quantile(0.99, &b) > 2.5 * p50);
    }
}
