//! Small text helpers shared by the fleet reports: one-line reasons, Markdown table cells and
//! shell words for the commands the reports print.

/// Collapses every run of whitespace (newlines included) into one space and trims, so a server
/// message always fits on one report line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with `…` when cut (cut on a character boundary).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A Markdown table cell: one line, pipes escaped, cut to `max` characters.
pub fn cell(text: &str, max: usize) -> String {
    truncate(&one_line(text), max).replace('|', "\\|")
}

/// `text` as one POSIX shell word (quoted only when needed).
pub fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./:+@=,".contains(&byte))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Words joined into one shell command line.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| shell_word(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_fit_their_places() {
        let cases = [
            (one_line("  a\n\tb  c \r\n"), "a b c"),
            (truncate("abcdef", 4), "abc…"),
            (truncate("abc", 4), "abc"),
            (truncate("ñandú€x", 3), "ña…"),
            (cell("a | b\nc", 100), "a \\| b c"),
            (shell_word("builtin:thread-v1"), "builtin:thread-v1"),
            (shell_word("/tmp/my schema.json"), "'/tmp/my schema.json'"),
            (shell_word("it's"), "'it'\\''s'"),
            (shell_word(""), "''"),
            (
                shell_join(&["threadmig", "matrix", "--org-ids", "a b"]),
                "threadmig matrix --org-ids 'a b'",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
