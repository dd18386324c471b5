//! Date values for `date`-typed attributes, as the server's `parse-date-value` reads them
//! (`db/model/triple.clj`): numbers are epoch milliseconds, strings are ISO-8601 forms.
//!
//! The string forms are those of [`crate::dates::parse_date_ms`]; a JSON-quoted string and
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

/// Epoch milliseconds of a date string, read by the engine's one date parser
/// ([`crate::dates::parse_date_ms`]); a JSON-quoted string is accepted too, as the server
/// retries with it.
pub fn parse_date(text: &str) -> Option<i64> {
    crate::dates::parse_date_ms(text)
        .or_else(|| {
            serde_json::from_str::<String>(text)
                .ok()
                .and_then(|inner| crate::dates::parse_date_ms(&inner))
        })
        .map(|ms| ms as i64)
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
