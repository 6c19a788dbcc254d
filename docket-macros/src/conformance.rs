//! Reading the conformance tables at the workspace root (`conformance/*.txt`), which tests of
//! both crates check their own parsers against.

/// The cases of a table: each line's input, written in double quotes, and the columns after it.
/// Blank lines and lines starting with `#` are skipped.
pub(crate) fn cases(
    table: &'static str,
) -> impl Iterator<Item = (&'static str, Vec<&'static str>)> {
    table
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let quoted = line.strip_prefix('"');
            let (input, columns) = quoted
                .and_then(|rest| rest.split_once('"'))
                .unwrap_or_else(|| panic!("a case starts with its input in double quotes: {line}"));
            (input, columns.split_whitespace().collect())
        })
}
