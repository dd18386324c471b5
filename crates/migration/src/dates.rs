//! Reading legacy date values and formatting epoch milliseconds, without a clock.

use serde_json::Value;

use crate::model::LegacyDate;

/// Epoch values below this (1973-03-03 in milliseconds) are taken for epoch seconds.
pub const SECONDS_THRESHOLD: i64 = 100_000_000_000;

/// Classifies a JSON value found in a `date` attribute (`null` is the caller's business).
pub fn classify(value: &Value) -> LegacyDate {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(n) => classify_integer(n, &value.to_string()),
            None => {
                let millis = number
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64);
                match millis {
                    Some(n) => classify_integer(n, &value.to_string()),
                    None => LegacyDate::Invalid(value.to_string()),
                }
            }
        },
        Value::String(text) => classify_str(text, &value.to_string()),
        other => LegacyDate::Invalid(other.to_string()),
    }
}

/// A date given as a number (`json` is its JSON text, kept when it is not a date).
pub fn classify_integer(n: i64, json: &str) -> LegacyDate {
    if n >= SECONDS_THRESHOLD {
        LegacyDate::Millis(n)
    } else if n > 0 {
        LegacyDate::Seconds {
            seconds: n,
            millis: n.saturating_mul(1000),
        }
    } else {
        LegacyDate::Invalid(json.to_string())
    }
}

/// A date given as a string (`json` is the string's JSON text, kept when it is not a date).
pub fn classify_str(text: &str, json: &str) -> LegacyDate {
    match parse_iso(text) {
        Some(millis) => LegacyDate::Text {
            text: text.to_string(),
            millis,
        },
        // A numeric string: same reading as a number.
        None => match text.trim().parse::<i64>() {
            Ok(n) if n > 0 => classify_integer(n, json),
            _ => LegacyDate::Invalid(json.to_string()),
        },
    }
}

/// Parses ISO 8601 / RFC 3339 (`YYYY-MM-DD`, optionally `THH:MM[:SS[.fff…]]` and `Z` or
/// `±HH:MM`; no offset means UTC) into epoch milliseconds.
pub fn parse_iso(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = num(&b[0..4])?;
    let month = num(&b[5..7])?;
    let day = num(&b[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(millis);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hour = num(&rest[0..2])?;
    let minute = num(&rest[3..5])?;
    rest = &rest[5..];
    let mut second = 0;
    let mut fraction_ms = 0;
    if rest.first() == Some(&b':') {
        second = num(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let frac = &rest[1..1 + digits];
            let mut ms = 0;
            for i in 0..3 {
                ms = ms * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
            }
            fraction_ms = ms;
            rest = &rest[1 + digits..];
        }
    }
    if hour > 24 || minute > 59 || second > 60 || (hour == 24 && (minute, second) != (0, 0)) {
        return None;
    }
    let offset_minutes = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let hours = num(&[*h1, *h2])?;
            let minutes = num(&[*m1, *m2])?;
            let total = hours * 60 + minutes;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    millis += ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + fraction_ms;
    Some(millis)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.sssZ` (what JavaScript's
/// `toISOString` gives), for messages.
pub fn format_millis(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let ms_of_day = millis.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms() {
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso("1970-01-01"), Some(0));
        assert_eq!(
            parse_iso("2025-03-01T10:00:00.123Z"),
            Some(1_740_823_200_123)
        );
        assert_eq!(
            parse_iso("2025-03-01T12:00:00+02:00"),
            Some(1_740_823_200_000)
        );
        assert_eq!(parse_iso("2025-02-30T00:00:00Z"), None);
        assert_eq!(parse_iso("not a date"), None);
        assert_eq!(format_millis(1_740_823_200_123), "2025-03-01T10:00:00.123Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
