//! Small Markdown helpers.

/// `text` as inline code, with a fence longer than any backtick run inside it.
pub(crate) fn code(text: &str) -> String {
    if text.is_empty() {
        return "``".to_owned();
    }
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `1 file`, `2 files`; `1 match`, `2 matches`.
pub(crate) fn count(n: usize, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else if singular.ends_with("ch") {
        format!("{n} {singular}es")
    } else {
        format!("{n} {singular}s")
    }
}

pub(crate) fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_spans_survive_backticks() {
        assert_eq!(super::code("a"), "`a`");
        assert_eq!(super::code("a`b"), "``a`b``");
        assert_eq!(super::code("`x`"), "`` `x` ``");
    }
}
