//! The one grammar of node and sensor names: a DNS-1123 label,
//! `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most [`MAX_NAME_LEN`] characters.
//!
//! The agent's config, the hub's API and the protocol all ask [`check_name`], so a name
//! one of them accepts is accepted by all of them; a name that passes goes unchanged into
//! URLs, kubectl, MQTT topics, metric labels and data file names.
//!
//! Invariant: a valid name is 1 to 63 ASCII bytes, so its encoded size is bounded (a
//! postcard string of at most 64 bytes), which is what keeps downlink messages that carry
//! names under the message cap.

use core::fmt;

/// The longest name, in characters (= bytes: valid names are ASCII).
pub const MAX_NAME_LEN: usize = 63;

/// The grammar in words, for error messages and help texts.
pub const NAME_RULE: &str = "1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit (a DNS-1123 label, like \"outside-air\")";

/// What is wrong with a name. Its `Display` says it in a sentence that can follow the
/// name ("the name \"X\" {error}").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// A character outside a-z, 0-9 and '-'.
    Character {
        /// The first offending character.
        character: char,
        /// Its position, in characters from 1.
        position: usize,
    },
    /// The name starts with '-'.
    LeadingHyphen,
    /// The name ends with '-'.
    TrailingHyphen,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "is empty"),
            NameError::TooLong { len } => {
                write!(
                    f,
                    "is {len} characters long, over the limit of {MAX_NAME_LEN}"
                )
            }
            NameError::Character {
                character,
                position,
            } if character.is_ascii_uppercase() => write!(
                f,
                "has the upper-case {character:?} at position {position}; names are lower case"
            ),
            NameError::Character {
                character,
                position,
            } => write!(
                f,
                "has {} at position {position}; only a-z, 0-9 and '-' are allowed",
                Escaped(*character)
            ),
            NameError::LeadingHyphen => write!(f, "starts with '-'"),
            NameError::TrailingHyphen => write!(f, "ends with '-'"),
        }
    }
}

impl core::error::Error for NameError {}

/// A character as Rust's `{:?}` escapes it, so a control character in a hostile name
/// cannot reach a terminal raw through an error message.
struct Escaped(char);

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Whether a character may appear in a name at all.
const fn allowed(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Checks `name` against the grammar; the first problem found, in the order: empty, too
/// long, a bad character, a hyphen at an end.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong { len });
        }
    }
    if let Some((i, character)) = name.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return Err(NameError::Character {
            character,
            position: i + 1,
        });
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingHyphen);
    }
    if name.ends_with('-') {
        return Err(NameError::TrailingHyphen);
    }
    Ok(())
}

/// Whether `name` follows the grammar.
pub fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use proptest::prelude::*;

    extern crate alloc;

    /// The grammar as a regular expression would say it, written independently of
    /// [`check_name`]: the oracle of the property tests.
    fn oracle(name: &str) -> bool {
        let bytes = name.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || *b == b'-')
    }

    #[test]
    fn each_problem_is_named_with_what_is_wrong_and_where() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name(&"a".repeat(64)),
            Err(NameError::TooLong { len: 64 })
        );
        assert_eq!(
            check_name("glider_2"),
            Err(NameError::Character {
                character: '_',
                position: 7
            })
        );
        assert_eq!(
            check_name("glider.alps"),
            Err(NameError::Character {
                character: '.',
                position: 7
            })
        );
        assert_eq!(check_name("-gps"), Err(NameError::LeadingHyphen));
        assert_eq!(check_name("gps-"), Err(NameError::TrailingHyphen));
        assert_eq!(check_name(&"a".repeat(63)), Ok(()));
        assert_eq!(check_name("0"), Ok(()));
        assert!(
            check_name("Gps")
                .unwrap_err()
                .to_string()
                .contains("upper-case 'G' at position 1")
        );
        let escaped = check_name("a\u{1b}[2J").unwrap_err().to_string();
        assert!(!escaped.contains('\u{1b}'), "{escaped}");
        assert!(
            check_name(&"é".repeat(40))
                .unwrap_err()
                .to_string()
                .contains("position 1"),
            "40 two-byte characters are not too long, but not allowed either"
        );
    }

    proptest! {
        #[test]
        fn labels_of_the_grammar_are_accepted(name in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?") {
            prop_assert_eq!(check_name(&name), Ok(()));
        }

        #[test]
        fn the_checker_agrees_with_the_grammar_on_any_string(name in "[-a-z0-9A-Z_. \u{1b}é]{0,70}|\\PC{0,80}") {
            prop_assert_eq!(check_name(&name).is_ok(), oracle(&name), "{:?}", name);
        }

        #[test]
        fn an_error_names_the_first_offending_character(prefix in "[a-z0-9]{1,20}", bad in "[^-a-z0-9]", rest in "[a-z0-9]{0,20}") {
            let name: String = [prefix.as_str(), bad.as_str(), rest.as_str()].concat();
            let character = bad.chars().next().unwrap_or('?');
            prop_assert_eq!(
                check_name(&name),
                Err(NameError::Character { character, position: prefix.chars().count() + 1 })
            );
        }
    }
}
