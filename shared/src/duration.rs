//! Durations written the way Kubernetes and External Secrets Operator write them:
//! Go's `time.ParseDuration` syntax (`1h`, `30m`, `1h30m`, `1.5h`, `500ms`, `0`).
//!
//! `refreshInterval` and `retryInterval` are strings in the CRDs, so a typo gets
//! past the API server's schema; both halves parse them here, so the provider
//! rejects a bad value at plan time and the controller names the field in status.

use std::time::Duration;

/// Why a duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration: write a number with a unit, e.g. \"1h\", \"30m\" or \"0\"")]
    Empty,
    /// A negative duration, which no interval in secretbridge accepts.
    #[error("negative duration {0:?}: intervals must be zero or positive")]
    Negative(String),
    /// A number was not followed by a unit.
    #[error("missing unit in duration {0:?}: use one of ns, us, ms, s, m, h (e.g. \"90s\")")]
    MissingUnit(String),
    /// A unit that Go durations do not have (e.g. `d` for days).
    #[error("unknown unit {unit:?} in duration {input:?}: use one of ns, us, ms, s, m, h (days are written as hours, e.g. \"24h\")")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Something that is not a number where a number was expected.
    #[error("invalid duration {0:?}: expected a sequence of numbers with units, e.g. \"1h30m\"")]
    Invalid(String),
    /// The value does not fit in a duration.
    #[error("duration {0:?} is too large")]
    Overflow(String),
    /// The value parses but is longer than the field allows.
    #[error("duration {input:?} is longer than the largest allowed, {max}; use a shorter interval, or \"0\" to sync once")]
    TooLong {
        /// The whole input.
        input: String,
        /// The largest allowed value, written as a duration.
        max: String,
    },
}

/// The longest `refreshInterval` or `retryInterval` secretbridge accepts: one
/// year. Timers further out than about two years do not exist in the runtime,
/// and a tenant must not be able to make the controller's arithmetic overflow.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// `MAX_INTERVAL` as the CRD writes it.
pub const MAX_INTERVAL_TEXT: &str = "8760h";

/// The pattern every duration field of the CRDs must match: Go's syntax, a
/// sequence of numbers with units, or `0`. Admission rejects anything else
/// with the field path before the controller ever sees it.
pub const DURATION_PATTERN: &str = r"^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// Parses a duration and refuses one longer than `max`.
pub fn parse_bounded_duration(input: &str, max: Duration) -> Result<Duration, DurationError> {
    let duration = parse_duration(input)?;
    if duration > max {
        return Err(DurationError::TooLong { input: input.to_string(), max: format_duration(max) });
    }
    Ok(duration)
}

/// Parses a Go-style duration such as `1h`, `1h30m`, `1.5h`, `250ms` or `0`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let unsigned = match text.as_bytes()[0] {
        b'-' => {
            let rest = &text[1..];
            // Go accepts "-0"; every other negative is refused.
            return match parse_unsigned(rest, input)? {
                d if d.is_zero() => Ok(Duration::ZERO),
                _ => Err(DurationError::Negative(input.to_string())),
            };
        }
        b'+' => &text[1..],
        _ => text,
    };
    parse_unsigned(unsigned, input)
}

fn parse_unsigned(text: &str, input: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(DurationError::Invalid(input.to_string()));
    }
    let mut total_nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_string()));
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_string(),
                    input: input.to_string(),
                });
            }
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| DurationError::Overflow(input.to_string()))?
        };
        let mut nanos = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        // The fraction is scaled digit by digit so "1.5h" is exact.
        let mut scale = unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(input.to_string()))?;
    // The remainder of a division by 1e9 always fits in u32.
    let subsec = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration the way Go's `Duration.String` does for whole seconds
/// and above (`1h0m0s`, `90s` as `1m30s`), which is what `kubectl` shows.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    if duration.as_secs() == 0 {
        let nanos = duration.subsec_nanos();
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let fraction = match duration.subsec_nanos() {
        0 => String::new(),
        nanos => format!(".{nanos:09}").trim_end_matches('0').to_string(),
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}{fraction}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}{fraction}s")
    } else {
        format!("{seconds}{fraction}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_eso_manifests_use() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("+10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("-0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_input_with_the_fix() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(parse_duration("1"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse_duration("1d"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "d"
        ));
        assert!(matches!(parse_duration("-5m"), Err(DurationError::Negative(_))));
        assert!(matches!(parse_duration("h"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse_duration("1..5h"), Err(DurationError::Invalid(_))));
        let message = parse_duration("1d").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.contains("24h")));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn a_duration_past_a_year_is_refused_naming_the_bound() {
        assert_eq!(parse_bounded_duration("8760h", MAX_INTERVAL), Ok(MAX_INTERVAL));
        let refused = parse_bounded_duration("5124095576030431h", MAX_INTERVAL);
        assert!(matches!(&refused, Err(DurationError::TooLong { max, .. }) if max == "8760h0m0s"), "{refused:?}");
        assert!(matches!(parse_bounded_duration("8761h", MAX_INTERVAL), Err(DurationError::TooLong { .. })));
        assert_eq!(parse_duration(MAX_INTERVAL_TEXT), Ok(MAX_INTERVAL));
    }

    #[test]
    fn the_crd_pattern_admits_exactly_what_parses() {
        let pattern = regex::Regex::new(DURATION_PATTERN).expect("the pattern compiles");
        for good in ["1h", "0", "0s", "1h30m", "1.5h", ".5s", "+10m", "-0", "250ms", "1µs"] {
            assert!(pattern.is_match(good), "{good}");
            assert!(parse_duration(good).is_ok(), "{good}");
        }
        for bad in ["", "1", "1d", "h", "1..5h", "every so often", "1h ", "1 h"] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(secs in 0u64..10_000_000, millis in 0u32..1000) {
            let d = Duration::new(secs, millis * 1_000_000);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics(s in "\\PC{0,16}") {
            let _ = parse_duration(&s);
        }
    }
}
