//! Order statistics and the growth fit used by the scaling rows.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 < p <= 1) of unsorted samples; `None`
/// when there are none.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Least-squares fit of `y = a * x^b` over points with positive
/// coordinates; returns the exponent `b` (1 means linear growth, 2
/// quadratic), or `None` with fewer than two distinct `x`.
pub fn power_law_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    linear_slope(&logs)
}

/// Least-squares slope of `y` over `x`, or `None` with fewer than two
/// distinct `x`.
pub fn linear_slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(sxy / sxx)
}

/// Words for a fitted exponent: how the growth reads.
pub fn growth_verdict(exponent: f64) -> &'static str {
    if exponent < 0.85 {
        "sublinear (fixed costs dominate)"
    } else if exponent <= 1.15 {
        "linear"
    } else if exponent <= 1.5 {
        "mildly superlinear"
    } else {
        "superlinear"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentile(&samples, 0.5), Some(ms(50)));
        assert_eq!(percentile(&samples, 0.99), Some(ms(99)));
        assert_eq!(percentile(&samples, 1.0), Some(ms(100)));
        assert_eq!(percentile(&[ms(7)], 0.99), Some(ms(7)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn exponent_of_known_power_laws() {
        let linear: Vec<(f64, f64)> = [100.0, 1000.0, 5000.0].iter().map(|&n| (n, 0.02 * n)).collect();
        let quadratic: Vec<(f64, f64)> = [100.0, 1000.0, 5000.0].iter().map(|&n| (n, 3e-6 * n * n)).collect();
        let b1 = power_law_exponent(&linear).unwrap_or(f64::NAN);
        let b2 = power_law_exponent(&quadratic).unwrap_or(f64::NAN);
        assert!((b1 - 1.0).abs() < 1e-9, "{b1}");
        assert!((b2 - 2.0).abs() < 1e-9, "{b2}");
        assert_eq!(growth_verdict(b1), "linear");
        assert_eq!(growth_verdict(b2), "superlinear");
        assert_eq!(power_law_exponent(&[(10.0, 1.0)]), None);
    }

    #[test]
    fn slope_of_a_line_with_offset() {
        let points = [(100.0, 30.0 + 0.5), (1000.0, 30.0 + 5.0), (5000.0, 30.0 + 25.0)];
        let slope = linear_slope(&points).unwrap_or(f64::NAN);
        assert!((slope - 0.005).abs() < 1e-12, "{slope}");
        assert_eq!(linear_slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
