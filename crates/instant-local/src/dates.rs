//! Dates as the server writes and checks them: timestamps go out as cheshire's default
//! `yyyy-MM-dd'T'HH:mm:ss'Z'` (UTC, whole seconds), and a `date` attribute accepts numbers (epoch
//! milliseconds) and the ISO-8601 strings Postgres reads as `timestamptz`.
//!
//! **One parser for the whole engine**: transact stores the epoch milliseconds of a date in
//! `triples.num`, schema jobs recompute them, and queries compare against them, so all three
//! must read a date string the same way.

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

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2025-01-02T03:04:05Z` for epoch milliseconds.
pub(crate) fn iso_from_ms(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Reads `digits` ASCII digits at `*at`.
fn number(bytes: &[u8], at: &mut usize, digits: usize) -> Option<i64> {
    let slice = bytes.get(*at..*at + digits)?;
    if !slice.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *at += digits;
    std::str::from_utf8(slice).ok()?.parse().ok()
}

fn expect(bytes: &[u8], at: &mut usize, byte: u8) -> Option<()> {
    (bytes.get(*at) == Some(&byte)).then(|| *at += 1)
}

/// Epoch milliseconds of an ISO-8601 date string: `YYYY-MM-DD`, optionally followed by `T` or a
/// space and `HH:MM[:SS[.fraction]]`, optionally followed by `Z`, `UTC`, `GMT` or an offset
/// `±HH[:MM]`/`±HHMM`. A string without a zone is UTC (the server's session zone). Other
/// spellings Postgres also accepts (month names, …) are not read.
pub(crate) fn parse_date_ms(text: &str) -> Option<f64> {
    let bytes = text.trim().as_bytes();
    let mut at = 0;
    let year = number(bytes, &mut at, 4)?;
    expect(bytes, &mut at, b'-')?;
    let month = number(bytes, &mut at, 2)?;
    expect(bytes, &mut at, b'-')?;
    let day = number(bytes, &mut at, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) as f64 * 86_400_000.0;
    if at == bytes.len() {
        return Some(ms);
    }
    if !matches!(bytes[at], b'T' | b't' | b' ') {
        return None;
    }
    at += 1;
    let hour = number(bytes, &mut at, 2)?;
    expect(bytes, &mut at, b':')?;
    let minute = number(bytes, &mut at, 2)?;
    let mut second = 0.0;
    if bytes.get(at) == Some(&b':') {
        at += 1;
        second = number(bytes, &mut at, 2)? as f64;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            let fraction: f64 = format!("0.{}", std::str::from_utf8(&bytes[start..at]).ok()?)
                .parse()
                .ok()?;
            second += fraction;
        }
    }
    if hour > 24 || minute > 59 || second >= 61.0 {
        return None;
    }
    ms += (hour * 3_600_000 + minute * 60_000) as f64 + second * 1000.0;
    let zone = std::str::from_utf8(&bytes[at..]).ok()?.trim_start();
    let offset_minutes = match zone {
        "" | "Z" | "z" | "UTC" | "utc" | "GMT" | "gmt" => 0,
        _ => {
            let zone = zone.as_bytes();
            let sign = match zone.first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let mut at = 1;
            let hours = number(zone, &mut at, 2)?;
            let minutes = match zone.get(at) {
                None => 0,
                Some(b':') => {
                    at += 1;
                    number(zone, &mut at, 2)?
                }
                Some(_) => number(zone, &mut at, 2)?,
            };
            if at != zone.len() || hours > 15 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    // Whole milliseconds, the precision `num` is compared at.
    Some((ms - (offset_minutes * 60_000) as f64).round())
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_like_the_server() {
        assert_eq!(iso_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_from_ms(1_760_000_000_999), "2025-10-09T08:53:20Z");
        assert_eq!(
            parse_date_ms("2025-10-09T08:53:20Z"),
            Some(1_760_000_000_000.0)
        );
        assert_eq!(
            parse_date_ms("2025-10-09T10:53:20.5+02:00"),
            Some(1_760_000_000_500.0)
        );
        assert_eq!(parse_date_ms("2025-10-09"), Some(1_759_968_000_000.0));
        assert_eq!(parse_date_ms("1969-12-31 23:59:59"), Some(-1000.0));
        for bad in [
            "",
            "tomorrow",
            "2025-02-30",
            "2025-10-09T",
            "2025-10-09T08:53Zulu",
        ] {
            assert_eq!(parse_date_ms(bad), None, "{bad}");
        }
    }
}
