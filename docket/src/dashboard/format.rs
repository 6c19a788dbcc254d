//! How the pages write values: times, durations, JSON, URL query values.

use std::time::SystemTime;

use maud::{Markup, html};

/// `args` pretty-printed when it is JSON, else as stored.
pub(super) fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| json.to_owned())
}

/// A time as UTC, to the second.
pub(super) fn clock(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(stamp) => stamp.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => "?".into(),
    }
}

/// A due time, with how far it is from now.
pub(super) fn when(time: SystemTime) -> Markup {
    let now = SystemTime::now();
    let relative = match time.duration_since(now) {
        Ok(ahead) => format!("in {}", short(ahead)),
        Err(behind) => format!("{} ago", short(behind.duration())),
    };
    html! { time datetime=(clock(time)) title=(clock(time)) { (relative) } }
}

pub(super) fn ago(idle: std::time::Duration) -> String {
    format!("{} ago", short(idle))
}

/// A duration in its largest unit: `12s`, `5m`, `3h`, `2d`.
fn short(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// How long a run took: `850 ms`, `2.4 s`, `3m 05s`.
pub(super) fn took(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{:.1} s", duration.as_secs_f64()),
        _ => format!(
            "{}m {:02}s",
            duration.as_secs() / 60,
            duration.as_secs() % 60
        ),
    }
}

pub(super) fn title_case(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `text` percent-encoded for a URL query value.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("track-7_x.y~"), "track-7_x.y~");
    }

    #[test]
    fn durations_read_in_their_largest_unit() {
        use std::time::Duration;
        assert_eq!(ago(Duration::from_secs(59)), "59s ago");
        assert_eq!(ago(Duration::from_secs(61)), "1m ago");
        assert_eq!(ago(Duration::from_secs(7200)), "2h ago");
        assert_eq!(ago(Duration::from_secs(3 * 86400)), "3d ago");
        assert_eq!(pretty("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(pretty("not json"), "not json");
    }
}
