//! What is wrong with a config file, said so that a flight engineer can fix it: one problem
//! a line, `file:line:column: key: what is wrong; what to do`.
//!
//! Invariant: a [`ConfigErrors`] holds at least one problem, in file order (syntax and
//! unreadable-file problems have no key path of a setting and use `syntax` and `file`).

use std::fmt;

/// Where in the file a problem is: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text; a position inside a
    /// multi-byte character counts as that character).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is; `None` when it is not in the text (the file cannot be read).
    pub position: Option<Position>,
    /// The key path (`sensor[2].address`, `store.max_bytes`), or `syntax` / `file`.
    pub key: String,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.position {
            write!(f, "{}:{}: ", p.line, p.column)?;
        }
        write!(f, "{}: {}; {}", self.key, self.what, self.fix)
    }
}

/// Every problem found in one config file. Its Display is the report for a human: one
/// problem a line, `file:line:column: key: what is wrong; what to do`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file (or other origin) the text came from, as the report names it.
    pub origin: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            // `file:line:column: key: ...`, or `file: key: ...` with no position.
            let sep = if p.position.is_some() { ":" } else { ": " };
            write!(f, "{}{sep}{p}", self.origin)?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Whether there are none (never, for one returned by the loader).
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The outcome of `aloft-agent check-config FILE`: the text to print and whether the file
/// is valid (the binary exits non-zero when it is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the agent can run with the file.
    pub valid: bool,
    /// The report: every problem, or a summary of what the agent would run.
    pub text: String,
}
