//! Text that came from outside (a peer's display name, a reason it sent, an origin it
//! claims) made safe to log: control characters are escaped, so a peer cannot break a
//! log line or forge one, and the length is bounded.

/// Characters of outside text kept in a log line.
const MAX_SHOWN_CHARS: usize = 128;

/// `text` escaped for a log line: control characters (line breaks, escape sequences,
/// ...) as `\n`, `\u{1b}` and the like, at most [`MAX_SHOWN_CHARS`] characters, then
/// "...".
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SHOWN_CHARS + 8));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_new_log_line() {
        let forged = "till\n2026-11-30T09:00:00Z ERROR node hub: fake\r\u{1b}[2J";
        let s = shown(forged);
        assert!(!s.contains('\n') && !s.contains('\r') && !s.contains('\u{1b}'));
        assert!(s.starts_with("till\\n2026"));
        assert!(s.contains("\\u{1b}"));
    }

    #[test]
    fn long_text_is_cut() {
        let s = shown(&"é".repeat(1000));
        assert_eq!(s.chars().count(), MAX_SHOWN_CHARS + 3);
        assert_eq!(shown("plain name"), "plain name");
    }
}
