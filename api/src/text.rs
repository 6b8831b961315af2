//! Text a node, a device or an operator chose, made safe to show on a terminal.
//!
//! Invariant: [`terminal_text`] leaves no [`is_terminal_control`] character raw (except
//! newlines when asked to keep them): each is shown as a visible escape (`\e`, `\n`,
//! `\u{9b}`), so an ESC sequence cannot drive the terminal and a newline cannot break a
//! table row. Text without such characters comes back as it is, unallocated.

use std::borrow::Cow;

/// Whether a character must not reach a terminal raw: C0 controls (ESC, CR, LF, TAB, BS),
/// DEL, C1 controls (U+009B is a one-character CSI), the bidirectional overrides and
/// isolates that reorder what is shown (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
/// U+061C), and the Unicode line and paragraph separators.
pub fn is_terminal_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every [`is_terminal_control`] character shown as an escape (`\n`, `\r`,
/// `\t`, `\e`, `\u{9b}`); newlines are kept when `keep_newlines` (a text of several
/// lines whose lines were escaped as they were made).
pub fn terminal_text(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_terminal_control(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            other => {
                out.push_str("\\u{");
                out.push_str(&format!("{:x}", u32::from(other)));
                out.push('}');
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hostile_text() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec![
            '\u{1b}', '\n', '\r', '\t', '\u{7}', '\u{0}', '\u{7f}', '\u{85}', '\u{9b}', '\u{202e}',
            '\u{2066}', '\u{200f}', '\u{061c}', '\u{2028}', '\u{2029}', '\\', 'u',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), special], 0..64)
            .prop_map(String::from_iter)
    }

    /// Undoes [`terminal_text`] for text that had no backslash: escapes are unambiguous.
    fn unescape(shown: &str) -> String {
        let mut out = String::new();
        let mut chars = shown.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('e') => out.push('\u{1b}'),
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.extend(other),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn shown_text_has_no_raw_control_and_loses_nothing(text in hostile_text()) {
            let one_line = terminal_text(&text, false);
            prop_assert!(!one_line.chars().any(is_terminal_control), "{:?}", one_line);
            let kept = terminal_text(&text, true);
            prop_assert_eq!(kept.matches('\n').count(), text.matches('\n').count());
            prop_assert!(!kept.chars().any(|c| c != '\n' && is_terminal_control(c)));
            if !text.contains('\\') {
                prop_assert_eq!(unescape(&one_line), text.clone());
            }
            if !text.chars().any(is_terminal_control) {
                prop_assert!(matches!(one_line, Cow::Borrowed(_)));
            }
        }
    }
}
