//! What the reading of a config file finds and how it points at it: a [`Finding`] holds
//! a problem with its byte offset before [`super::errors::Position`] places it on a line,
//! [`Spans`] maps each key path to where it starts, and [`nearest`] suggests the key or
//! value a typo meant.
//!
//! Both the walk over the file ([`super::load`]) and the semantic rules
//! ([`super::validate`]) report through these, so neither depends on the other for them:
//! the loader runs the rules, the rules never call back into the loader.

use std::collections::HashMap;

/// A problem before it is placed on a line.
#[derive(Debug)]
pub(super) struct Finding {
    /// Byte offset in the text, if the problem is in it.
    pub offset: Option<usize>,
    pub key: String,
    pub what: String,
    pub fix: String,
}

/// Where each key path starts in the text, for the semantic rules to point at.
#[derive(Debug, Default)]
pub(super) struct Spans {
    starts: HashMap<String, usize>,
}

impl Spans {
    /// The offset of `path`, else of the nearest enclosing table that has one
    /// (`sensor[2].address` falls back to `sensor[2]`: a default the file left out).
    pub fn offset(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(&o) = self.starts.get(path) {
                return Some(o);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    pub fn insert(&mut self, path: String, offset: usize) {
        self.starts.entry(path).or_insert(offset);
    }
}

/// The candidate nearest to `word` by edit distance, if near enough to be a typo.
pub(super) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("address", "address"), 0);
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("adrress", "address"), 1);
        assert_eq!(edit_distance("bud", "baud"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_suggests_only_plausible_typos() {
        let keys = ["port", "baud", "bus", "address", "interval"];
        assert_eq!(nearest("adress", &keys), Some("address"));
        assert_eq!(nearest("intervall", &keys), Some("interval"));
        assert_eq!(nearest("colour", &keys), None);
        assert_eq!(nearest("", &keys), None);
    }

    #[test]
    fn span_lookup_falls_back_to_the_enclosing_table() {
        let mut spans = Spans::default();
        spans.insert("sensor[2]".into(), 40);
        spans.insert("sensor[2].power".into(), 60);
        assert_eq!(spans.offset("sensor[2].power.line"), Some(60));
        assert_eq!(spans.offset("sensor[2].address"), Some(40));
        assert_eq!(spans.offset("hub.url"), None);
    }
}
