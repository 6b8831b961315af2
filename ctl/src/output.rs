//! How results are shown: aligned tables (kubectl's look: upper-case headers, columns
//! separated by at least three spaces, `<none>` for nothing), or the hub's objects as JSON,
//! YAML or `kind/name` lines.
//!
//! JSON and YAML print the hub's objects as they came (a list as a `List` object, as
//! kubectl does), so nothing the hub said is lost to a typed view.
//!
//! Invariant: text a node or an operator chose (names, kinds, reasons, log lines) never
//! reaches the terminal raw. Human output passes [`terminal_text`], which shows every
//! control character as a visible escape (`\e`, `\n`, `\u{9b}`), so an ESC sequence cannot
//! drive the terminal and a newline cannot break a table: a table row is always one line.
//! JSON stays valid JSON: it escapes C0 itself, and [`to_json`] escapes the rest.

use std::time::Duration;

use aloft_api::PartialObjectMetadata;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// Aligned columns, more of them.
    Wide,
    /// The hub's objects as JSON.
    Json,
    /// The hub's objects as YAML.
    Yaml,
    /// `kind/name`, one a line (for scripts).
    Name,
}

/// A table: headers and rows of cells, shown aligned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells show as empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The width of each column as shown: its widest cell or header, escapes included.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| shown_width(h)).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(shown_width(cell));
            }
        }
        widths
    }

    /// The aligned text, with the header line unless `headers` is false.
    pub fn render(&self, headers: bool) -> String {
        self.render_within(headers, &[])
    }

    /// As [`Table::render`], each column at least as wide as in `at_least`: the widths of
    /// the table printed first, so that a watch's later rows line up with its header.
    pub fn render_within(&self, headers: bool, at_least: &[usize]) -> String {
        let mut widths = self.widths();
        for (width, floor) in widths.iter_mut().zip(at_least) {
            *width = (*width).max(*floor);
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                let cell = terminal_text(cell, false);
                text.push_str(&cell);
                if i != last {
                    // Padding by hand: a `{:width$}` format panics above 65 535.
                    let pad = width.saturating_sub(cell.chars().count()) + COLUMN_GAP;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        if headers {
            line(&self.headers);
        }
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// Spaces between columns, as kubectl.
const COLUMN_GAP: usize = 3;

/// How many characters a cell takes once escaped.
fn shown_width(cell: &str) -> usize {
    terminal_text(cell, false).chars().count()
}

pub use aloft_api::text::{is_terminal_control, terminal_text};

/// The hub's items as one document: the single object, or a kubectl-style `List`.
pub fn document(items: &[Value], single: bool) -> Value {
    match (single, items) {
        (true, [one]) => one.clone(),
        _ => json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": items,
        }),
    }
}

/// Pretty JSON, newline-terminated. serde_json escapes C0 controls; the other terminal
/// controls (C1, bidirectional overrides) are written as `\uXXXX` too, which is the same
/// JSON string, so the value parses back unchanged.
pub fn to_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = escape_json_controls(&text);
    out.push('\n');
    out
}

/// YAML (no leading `---`). A YAML emitter writes bidirectional overrides and line
/// separators raw; every string (or key) holding a terminal control is written instead as
/// a JSON string, which is a YAML double-quoted scalar with `\uXXXX` escapes, so the
/// document reads back as the same value.
pub fn to_yaml(value: &Value) -> String {
    let mut escaped = Vec::new();
    let marked = mark_controlled(value, &mut escaped);
    let text = serde_norway::to_string(&marked).unwrap_or_default();
    let mut text = text
        .strip_prefix("---\n")
        .map(str::to_owned)
        .unwrap_or(text);
    // Last first, so that marker 1 does not match the start of marker 10.
    for (i, original) in escaped.iter().enumerate().rev() {
        let quoted = json_string(original);
        text = text.replace(&marker(i), &quoted);
    }
    text
}

/// The plain YAML scalar that stands for the `i`th string [`to_yaml`] escapes itself.
fn marker(i: usize) -> String {
    format!("aloftctl-escaped-string-{i}-7f3a9c")
}

/// `value` with each string holding a terminal control replaced by its marker; the
/// originals pushed to `escaped` in marker order.
fn mark_controlled(value: &Value, escaped: &mut Vec<String>) -> Value {
    let mut mark = |text: &str| -> String {
        if text.chars().any(is_terminal_control) || text.contains("aloftctl-escaped-string-") {
            escaped.push(text.to_owned());
            marker(escaped.len() - 1)
        } else {
            text.to_owned()
        }
    };
    match value {
        Value::String(text) => Value::String(mark(text)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| mark_controlled(item, escaped))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let key = if key.chars().any(is_terminal_control)
                        || key.contains("aloftctl-escaped-string-")
                    {
                        escaped.push(key.clone());
                        marker(escaped.len() - 1)
                    } else {
                        key.clone()
                    };
                    (key, mark_controlled(item, escaped))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` as a JSON string literal with every terminal control as a `\uXXXX` escape.
fn json_string(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    escape_json_controls(&quoted)
}

/// JSON text with the terminal controls serde_json leaves raw (C1, bidirectional
/// overrides, separators) written as `\uXXXX`. Outside strings serde_json writes only
/// newlines and spaces, so any such control is inside a string, where the escape means
/// the same character.
fn escape_json_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_terminal_control(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// `kind/name` of an object, lower-case kind as kubectl prints it.
pub fn name_of(value: &Value) -> String {
    let object: PartialObjectMetadata = read_as(value);
    let kind = if object.kind.is_empty() {
        "object".to_owned()
    } else {
        object.kind.to_ascii_lowercase()
    };
    format!("{kind}/{}", object.metadata.name)
}

/// A hub's object read as its `aloft_api` type. Reading is lenient (what the hub left out
/// reads as `None` or empty); an object that does not read at all (a field of the wrong
/// type) reads as the empty object, whose cells show `<none>`.
pub fn read_as<T: DeserializeOwned + Default>(value: &Value) -> T {
    T::deserialize(value).unwrap_or_default()
}

/// kubectl's short age: `45s`, `3m12s`, `5h`, `3d4h`, `120d`.
pub fn short_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10_799 => format!("{}m", s / 60),
        10_800..=86_399 => format!("{}h", s / 3600),
        86_400..=863_999 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The age of an RFC 3339 time against `now`, or `<unknown>`.
pub fn age_since(rfc3339: &str, now: std::time::SystemTime) -> String {
    match humantime::parse_rfc3339_weak(rfc3339) {
        Ok(time) => short_age(now.duration_since(time).unwrap_or_default()),
        Err(_) => "<unknown>".into(),
    }
}

/// An age given in seconds (the hub computes newest-value ages itself, on its clock).
pub fn age_seconds(secs: Option<f64>) -> String {
    match secs {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            if secs < 10.0 {
                format!("{secs:.1}s")
            } else {
                short_age(Duration::from_secs_f64(secs))
            }
        }
        _ => "<none>".into(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Text as a node or an attacker may send it: any character, with the ones that drive
    /// terminals (ESC sequences, CSI, newlines, bidirectional overrides) made frequent.
    fn hostile_text(max: usize) -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec![
            '\u{1b}', '\n', '\r', '\t', '\u{7}', '\u{8}', '\u{0}', '\u{7f}', '\u{85}', '\u{9b}',
            '\u{9d}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200f}', '\u{2028}', '[',
            '2', 'J', ';', 'é', '\\',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), special], 0..max)
            .prop_map(String::from_iter)
    }

    fn hostile_table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
        (1usize..5).prop_flat_map(|columns| {
            (
                prop::collection::vec(hostile_text(8), columns),
                prop::collection::vec(prop::collection::vec(hostile_text(24), columns), 0..6),
            )
        })
    }

    fn table_of(headers: &[String], rows: &[Vec<String>]) -> Table {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut table = Table::new(&headers);
        for row in rows {
            table.row(row.clone());
        }
        table
    }

    proptest! {
        #[test]
        fn a_table_of_any_text_has_one_line_a_row_and_no_control_character(
            (headers, rows) in hostile_table()
        ) {
            let text = table_of(&headers, &rows).render(true);
            prop_assert_eq!(text.matches('\n').count(), rows.len() + 1);
            prop_assert!(text.ends_with('\n'));
            let bad = text.chars().find(|c| *c != '\n' && is_terminal_control(*c));
            prop_assert_eq!(bad, None, "{:?}", text);
        }

        #[test]
        fn human_text_of_any_text_keeps_only_its_newlines(text in hostile_text(64)) {
            let kept = terminal_text(&text, true);
            prop_assert_eq!(kept.matches('\n').count(), text.matches('\n').count());
            prop_assert!(!kept.chars().any(|c| c != '\n' && is_terminal_control(c)));
            let one_line = terminal_text(&text, false);
            prop_assert!(!one_line.chars().any(is_terminal_control));
            // Text without controls is shown as it is.
            if !text.chars().any(is_terminal_control) {
                prop_assert_eq!(one_line.as_ref(), text.as_str());
            }
        }

        #[test]
        fn json_of_any_text_parses_back_unchanged_and_carries_no_raw_control(
            text in hostile_text(64)
        ) {
            let value = json!({"metadata": {"name": text.clone()}, "status": {"reason": text}});
            let shown = to_json(&value);
            prop_assert!(!shown.chars().any(|c| c != '\n' && is_terminal_control(c)));
            let back: Value = serde_json::from_str(&shown).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, value);
        }

        #[test]
        fn yaml_of_any_text_reads_back_unchanged_and_carries_no_raw_control(
            text in hostile_text(64),
            key in hostile_text(8),
        ) {
            let mut tunables = serde_json::Map::new();
            tunables.insert(key, json!(text.clone()));
            let value = json!({"status": {"reason": text, "list": [text, 1]}, "tunables": tunables});
            let shown = to_yaml(&value);
            prop_assert!(!shown.chars().any(|c| c != '\n' && is_terminal_control(c)), "{:?}", shown);
            let back: Value = serde_norway::from_str(&shown).map_err(|e| TestCaseError::fail(format!("{e}: {shown}")))?;
            prop_assert_eq!(back, value);
        }

        #[test]
        fn watch_rows_line_up_with_the_header_of_the_first_table(
            (headers, rows) in hostile_table().prop_flat_map(|(headers, rows)| {
                // Headers are aloftctl's own: capitals, maybe a space inside.
                (prop::collection::vec("[A-Z]([A-Z ]{0,8}[A-Z])?", headers.len()), Just(rows))
            }),
            later in prop::collection::vec("[a-z]{0,3}", 1..5),
        ) {
            let first = table_of(&headers, &rows);
            let widths = first.widths();
            let header = first.render(true);
            let header = header.lines().next().unwrap_or_default();
            let mut row = later;
            row.resize(headers.len(), String::new());
            // A later cell wider than its column must push the rest right; within the
            // widths of the first table, nothing moves.
            for (cell, width) in row.iter_mut().zip(&widths) {
                *cell = cell.chars().take(*width).collect();
            }
            let next = table_of(&headers, &[row.clone()]).render_within(false, &widths);
            // Each cell starts where its header does (the cells are not wider than the
            // first table's columns).
            let next: Vec<char> = next.trim_end_matches('\n').chars().collect();
            let header: Vec<char> = header.chars().collect();
            let at_column = |line: &[char], at: usize, len: usize| -> String {
                line.iter().skip(at).take(len).collect()
            };
            let mut at = 0;
            for (i, ((cell, title), width)) in row.iter().zip(&headers).zip(&widths).enumerate() {
                let title = terminal_text(title, false);
                prop_assert_eq!(at_column(&header, at, title.chars().count()), title.as_ref(), "header {}", i);
                prop_assert_eq!(at_column(&next, at, cell.chars().count()), cell.as_str(), "cell {}", i);
                at += width + COLUMN_GAP;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn cells_of_any_width_render_padded_without_panicking(
            wide in 60_000usize..200_000,
            narrow in 0usize..10,
        ) {
            let mut table = Table::new(&["REASON", "NEXT"]);
            table.row(vec!["x".repeat(wide), "y".into()]);
            table.row(vec!["z".repeat(narrow), "w".into()]);
            let text = table.render(true);
            let lines: Vec<&str> = text.lines().collect();
            prop_assert_eq!(lines.len(), 3);
            let column = wide.max(narrow) + COLUMN_GAP;
            prop_assert_eq!(lines[0].chars().count(), column + "NEXT".len());
            prop_assert_eq!(lines[1].chars().count(), column + 1);
            prop_assert_eq!(lines[2].chars().count(), column + 1);
        }
    }

    #[test]
    fn columns_align_on_the_widest_cell_and_the_last_has_no_trailing_space() {
        let mut table = Table::new(&["NAME", "STATE"]);
        table.row(vec!["cosmic-ray".into(), "running".into()]);
        table.row(vec!["gps".into(), "restarting".into()]);
        assert_eq!(
            table.render(true),
            "NAME         STATE\ncosmic-ray   running\ngps          restarting\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (130, "2m10s"),
            (900, "15m"),
            (7200, "120m"),
            (36_000, "10h"),
            (90_000, "1d1h"),
            (8_640_000, "100d"),
        ];
        for (secs, text) in cases {
            assert_eq!(short_age(Duration::from_secs(secs)), text, "{secs}");
        }
    }

    #[test]
    fn one_object_stays_itself_and_several_become_a_list() {
        let a = json!({"kind": "Sensor", "metadata": {"name": "gps"}});
        assert_eq!(document(std::slice::from_ref(&a), true), a);
        let list = document(&[a.clone(), a], false);
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    }
}
