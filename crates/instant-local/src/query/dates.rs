//! Date values for `date`-typed attributes, as the server's `parse-date-value` reads them
//! (`db/model/triple.clj`): numbers are epoch milliseconds, strings are ISO-8601 forms.
//!
//! Covered string forms: `YYYY-MM-DD`, and `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]` with an
//! optional zone (`Z`, `±HH:MM`, `±HHMM`, `±HH`); no zone means UTC. A JSON-quoted string and
//! surrounding whitespace are accepted, as the server retries with both. The server's other
//! formats (`3/12/2024`, RFC 2822 dates) are not read here.

use serde_json::Number;

/// Epoch milliseconds of a JSON number, if it fits a Java `long` as the server requires.
pub fn number_millis(number: &Number) -> Option<i64> {
    if let Some(ms) = number.as_i64() {
        return Some(ms);
    }
    let float = number.as_f64()?;
    (float.is_finite() && float.abs() < 9.2e18).then_some(float as i64)
}

/// Epoch milliseconds of a date string.
pub fn parse_date(text: &str) -> Option<i64> {
    parse_iso(text)
        .or_else(|| {
            serde_json::from_str::<String>(text)
                .ok()
                .and_then(|inner| parse_iso(&inner))
        })
        .or_else(|| parse_iso(text.trim()))
}

fn digits(text: &str, len: usize) -> Option<(i64, &str)> {
    if text.len() < len || !text.as_bytes()[..len].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((text[..len].parse().ok()?, &text[len..]))
}

fn parse_iso(text: &str) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (year, rest) = digits(body, 4)?;
    let year = if negative { -year } else { year };
    let rest = rest.strip_prefix('-')?;
    let (month, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = digits(rest, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if rest.is_empty() {
        return Some(days * 86_400_000);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hour, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (minute, mut rest) = digits(rest, 2)?;
    let mut second = 0;
    let mut millis = 0;
    if let Some(after) = rest.strip_prefix(':') {
        let (s, after) = digits(after, 2)?;
        second = s;
        rest = after;
        if let Some(fraction) = rest.strip_prefix(['.', ',']) {
            let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            let padded = format!("{:0<3}", &fraction[..len.min(3)]);
            millis = padded.parse::<i64>().ok()?;
            rest = &fraction[len..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &zone[1..];
            let (hours, zone) = digits(zone, 2)?;
            let zone = zone.strip_prefix(':').unwrap_or(zone);
            let minutes = if zone.is_empty() {
                0
            } else {
                let (minutes, tail) = digits(zone, 2)?;
                if !tail.is_empty() {
                    return None;
                }
                minutes
            };
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms_parse_to_epoch_millis() {
        let cases = [
            "1970-01-01",
            "2024-02-29T12:30:00Z",
            "2024-02-29T12:30:00.5Z",
            "2024-02-29 12:30:00+02:00",
            "2024-02-29T12:30",
            "\"2024-02-29T12:30:00Z\"",
            "  2024-02-29T12:30:00Z ",
            "2024-02-30",
            "tomorrow",
        ];
        let parsed: Vec<String> = cases
            .iter()
            .map(|case| format!("{case} => {:?}", parse_date(case)))
            .collect();
        expect_test::expect![[r#"
            1970-01-01 => Some(0)
            2024-02-29T12:30:00Z => Some(1709209800000)
            2024-02-29T12:30:00.5Z => Some(1709209800500)
            2024-02-29 12:30:00+02:00 => Some(1709202600000)
            2024-02-29T12:30 => Some(1709209800000)
            "2024-02-29T12:30:00Z" => Some(1709209800000)
              2024-02-29T12:30:00Z  => Some(1709209800000)
            2024-02-30 => None
            tomorrow => None"#]]
        .assert_eq(&parsed.join("\n"));
    }
}
