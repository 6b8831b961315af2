//! How results are shown: aligned tables (kubectl's look: upper-case headers, columns
//! separated by at least three spaces, `<none>` for nothing), or the hub's objects as JSON,
//! YAML or `kind/name` lines.
//!
//! JSON and YAML print the hub's objects as they came (a list as a `List` object, as
//! kubectl does), so nothing the hub said is lost to a typed view.

use std::fmt::Write as _;
use std::time::Duration;

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

    /// The aligned text, with the header line unless `headers` is false (watch updates).
    pub fn render(&self, headers: bool) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i == last {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}   ");
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

/// Pretty JSON, newline-terminated.
pub fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// YAML (no leading `---`).
pub fn to_yaml(value: &Value) -> String {
    let text = serde_norway::to_string(value).unwrap_or_default();
    text.strip_prefix("---\n")
        .map(str::to_owned)
        .unwrap_or(text)
}

/// `kind/name` of an object, lower-case kind as kubectl prints it.
pub fn name_of(value: &Value) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    format!("{kind}/{}", str_at(value, "/metadata/name"))
}

/// The string at a JSON pointer, or empty.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The cell text of the value at a JSON pointer: strings as they are, numbers and booleans
/// printed, nothing as `<none>`.
pub fn cell(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) if s.is_empty() => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
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
pub fn age_secs(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer).and_then(Value::as_f64) {
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
    use super::*;

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
