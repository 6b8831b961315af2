//! The import graph between the modules of each crate, and the cycles in it.
//!
//! A module that imports from a sibling which imports back cannot be read, tested or moved
//! on its own; this check keeps every crate's dependencies running one way.
//!
//! # What counts
//!
//! - The modules are the ones the crate declares: `mod x;` and `mod x { … }`, followed from
//!   `src/lib.rs`, `src/main.rs` and `src/bin/*` (each root is its own crate). Test modules
//!   are left out with everything in them: a `mod` under an attribute `#[cfg(…test…)]`
//!   (not `not(test)`), whether its body is inline or in a file.
//! - A use is a path in a `use` item, or a path anywhere in code that starts with `crate::`,
//!   `super::` or `self::` (`crate::x::f()`), groups included (`use crate::{a::X, b::Y}`).
//!   It names the deepest declared module its segments spell, followed through the names
//!   `use` items bind (`pub use load::check` in `config` makes `crate::config::check` a use
//!   of `config::load`; globs too, where the globbed module defines or binds the name), so
//!   re-exports do not hide a dependency. Comments and string literals do not count, nor
//!   macro-generated paths, nor paths to other crates.
//! - The graph is drawn at every folder level: within a parent module, child `a` depends on
//!   sibling `b` when anything in `a`'s subtree uses anything in `b`'s subtree. The crate
//!   root's children are the top-level modules. A module using its own ancestor (`super::`
//!   from `tests` or from a submodule reaching its parent's own items) or its own
//!   descendant (a `mod.rs` re-exporting its children) is normal Rust and draws no edge; a
//!   parent's own file is not a node among its children.
//!
//! A cycle is reported as a path `a -> b -> a`, each step with the first place (file and
//! line) that makes it.
//!
//! Invariant: the check reads files only; it never builds or runs anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Crates whose module cycles are known and being untangled elsewhere: the check runs on
/// them and lists what it finds, and fails once one of them is clean so that the entry goes.
pub const PENDING: &[&str] = &[];

/// A module's path inside its crate (`["config", "load"]`); the root is empty.
type ModPath = Vec<String>;

/// The source files of one crate, by path relative to the crate's folder (`src/lib.rs`).
pub type Sources = BTreeMap<PathBuf, String>;

/// Where a use was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// The file, relative to the workspace (`agent/src/config/load.rs`).
    pub file: PathBuf,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One step of a cycle: `from` uses `to`, first at `place`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The using module, in full (`config::load`).
    pub from: String,
    /// The used module, in full.
    pub to: String,
    /// The first place that makes the step.
    pub place: Place,
}

/// Modules that depend on each other in a ring, all children of one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The crate root the modules belong to (`agent/src/lib.rs`).
    pub root: String,
    /// The steps; the last one leads back to the first `from`.
    pub steps: Vec<Step>,
}

impl Cycle {
    /// The modules in order, the first repeated at the end: `["a", "b", "a"]`.
    pub fn path(&self) -> Vec<&str> {
        let mut path: Vec<&str> = self.steps.iter().map(|s| s.from.as_str()).collect();
        if let Some(first) = self.steps.first() {
            path.push(first.from.as_str());
        }
        path
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.root, self.path().join(" -> "))?;
        for step in &self.steps {
            write!(f, "\n    {} -> {} at {}", step.from, step.to, step.place)?;
        }
        Ok(())
    }
}

/// The cycles of every crate root in `sources` (one crate's files).
pub fn crate_cycles(crate_name: &str, sources: &Sources) -> Vec<Cycle> {
    let mut roots: Vec<&PathBuf> = sources
        .keys()
        .filter(|p| {
            let s = p.to_string_lossy();
            s == "src/lib.rs"
                || s == "src/main.rs"
                || (s.starts_with("src/bin/")
                    && (p.parent() == Some(Path::new("src/bin"))
                        || p.file_name().is_some_and(|n| n == "main.rs")))
        })
        .collect();
    roots.sort();
    roots
        .into_iter()
        .flat_map(|root| {
            let label = format!("{crate_name}/{}", root.display());
            let mut uses = uses(sources, root);
            for (_, _, place) in &mut uses {
                place.file = Path::new(crate_name).join(&place.file);
            }
            cycles_of(&label, &uses)
        })
        .collect()
}

/// Reads the `.rs` files below `crate_dir/src`.
pub fn read_crate(crate_dir: &Path) -> Result<Sources> {
    let mut sources = Sources::new();
    let mut folders = vec![crate_dir.join("src")];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading {}", folder.display()))?
                .path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let relative = path.strip_prefix(crate_dir).unwrap_or(&path).to_path_buf();
                sources.insert(relative, text);
            }
        }
    }
    Ok(sources)
}

/// The workspace's crates: every folder directly under `root` with a `Cargo.toml` and a
/// `src/`, by folder name.
pub fn workspace_crates(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", root.display()))?
            .path();
        if path.join("Cargo.toml").is_file() && path.join("src").is_dir() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            crates.push((name, path));
        }
    }
    crates.sort();
    Ok(crates)
}

/// Every crate's cycles, by crate folder name.
pub fn workspace_cycles(root: &Path) -> Result<BTreeMap<String, Vec<Cycle>>> {
    workspace_crates(root)?
        .into_iter()
        .map(|(name, dir)| {
            let sources = read_crate(&dir)?;
            let cycles = crate_cycles(&name, &sources);
            Ok((name, cycles))
        })
        .collect()
}

/// `cargo xtask cycles`: lists every crate's cycles; fails when a crate not in [`PENDING`]
/// has one, or when a pending crate has none left.
pub fn check(root: &Path) -> Result<()> {
    let verdict = Verdict::of(&workspace_cycles(root)?);
    for (name, cycles) in &verdict.pending {
        eprintln!(
            "xtask: {name} is pending (module_cycles::PENDING): {} cycle(s)",
            cycles.len()
        );
        for cycle in cycles {
            eprintln!("  {cycle}");
        }
    }
    verdict.into_result()
}

/// What the workspace's cycles mean for the check.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Cycles in crates that must have none.
    pub failing: Vec<Cycle>,
    /// Pending crates and their cycles.
    pub pending: BTreeMap<String, Vec<Cycle>>,
    /// Pending crates that have no cycle left.
    pub clean_but_pending: Vec<String>,
}

impl Verdict {
    /// Sorts each crate's cycles by [`PENDING`].
    pub fn of(cycles: &BTreeMap<String, Vec<Cycle>>) -> Verdict {
        let mut verdict = Verdict::default();
        for (name, found) in cycles {
            if PENDING.contains(&name.as_str()) {
                if found.is_empty() {
                    verdict.clean_but_pending.push(name.clone());
                } else {
                    verdict.pending.insert(name.clone(), found.clone());
                }
            } else {
                verdict.failing.extend(found.iter().cloned());
            }
        }
        for name in PENDING {
            if !cycles.contains_key(*name) {
                verdict
                    .clean_but_pending
                    .push(format!("{name} (no such crate)"));
            }
        }
        verdict
    }

    /// An error that lists what must change, if anything must.
    pub fn into_result(self) -> Result<()> {
        let mut problems = Vec::new();
        if !self.failing.is_empty() {
            problems.push(format!(
                "import cycles between modules:\n{}",
                self.failing
                    .iter()
                    .map(|c| format!("  {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if !self.clean_but_pending.is_empty() {
            problems.push(format!(
                "no cycles left in {}: remove them from module_cycles::PENDING",
                self.clean_but_pending.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", problems.join("\n"))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source as identifiers, `::` and punctuation; comments, literals and lifetimes gone.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    // Skips to the end of a string literal whose opening quote is at `i`, with `hashes`
    // `#`s for a raw one; returns the index after it.
    let skip_string = |mut i: usize, raw: bool, hashes: usize, line: &mut usize| -> usize {
        i += 1;
        while i < chars.len() {
            match chars[i] {
                '\n' => *line += 1,
                '\\' if !raw => {
                    if chars.get(i + 1) == Some(&'\n') {
                        *line += 1;
                    }
                    i += 1;
                }
                '"' if (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) => {
                    return i + 1 + hashes;
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(i, false, 0, &mut line),
            '\'' => {
                if at(i + 1) == '\\' {
                    // A char literal with an escape: up to the closing quote.
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    // A lifetime or label: its name is an identifier like any other.
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
                let byte_prefix = matches!(word.as_str(), "b" | "c");
                if raw_prefix && (at(i) == '"' || at(i) == '#') {
                    let mut hashes = 0;
                    while at(i + hashes) == '#' {
                        hashes += 1;
                    }
                    if at(i + hashes) == '"' {
                        i = skip_string(i + hashes, true, hashes, &mut line);
                        continue;
                    }
                    if word == "r" && hashes == 1 {
                        // A raw identifier, `r#type`.
                        let start = i + 1;
                        i = start;
                        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                            i += 1;
                        }
                        out.push(Token {
                            tok: Tok::Ident(chars[start..i].iter().collect()),
                            line,
                        });
                        continue;
                    }
                }
                if byte_prefix && at(i) == '"' {
                    i = skip_string(i, false, 0, &mut line);
                    continue;
                }
                if word == "b" && at(i) == '\'' {
                    // A byte literal: let the quote arm skip it.
                    continue;
                }
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push(Token {
                    tok: Tok::PathSep,
                    line,
                });
                i += 2;
            }
            c => {
                out.push(Token {
                    tok: Tok::Punct(c),
                    line,
                });
                i += 1;
            }
        }
    }
    out
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(w), .. }) if w == word)
}

fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
}

/// The index after the group that opens at `open` (`{`, `[` or `(`), nesting counted.
fn after_group(toks: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('{' | '[' | '(') => depth += 1,
            Tok::Punct('}' | ']' | ')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

// ---------------------------------------------------------------------------------------
// One file

/// A `mod` declared in a file.
#[derive(Debug)]
struct ModDecl {
    /// The inline modules the declaration sits in, outermost first.
    within: Vec<String>,
    name: String,
    /// Whether its body is in another file (`mod x;`).
    in_file: bool,
}

/// What a `use` brings into its module's scope (and its children's, through `super::`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// One name: the `as` name or the path's last segment.
    Name(String),
    /// Every public name of the module the path names (`use x::*`).
    Glob,
}

/// A path that may name a module of the crate, flattened out of its groups.
#[derive(Debug)]
struct PathUse {
    /// The inline modules the path sits in.
    within: Vec<String>,
    segments: Vec<String>,
    /// What it binds, for a path in a `use` item.
    binds: Option<Binding>,
    /// Whether the `use` is `pub` (of any reach), so that its binding is seen outside the
    /// module and its descendants.
    public: bool,
    line: usize,
}

/// An item a file defines (`struct X`, `fn f`, …), inside the inline modules `within`.
#[derive(Debug)]
struct Definition {
    within: Vec<String>,
    name: String,
}

#[derive(Debug, Default)]
struct FileScan {
    mods: Vec<ModDecl>,
    paths: Vec<PathUse>,
    defines: Vec<Definition>,
}

/// Keywords that open an item whose name follows.
const ITEM_KEYWORDS: &[&str] = &[
    "struct", "enum", "union", "fn", "const", "static", "type", "trait",
];

/// The non-test `mod` declarations, the `use` items, the `crate`/`super`/`self` paths and
/// the item names of one file.
fn scan(text: &str) -> FileScan {
    let toks = tokens(text);
    let mut scan = FileScan::default();
    // Inline modules open around the current token, with the brace depth inside each.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut test_attribute = false;
    let mut i = 0;
    let within = |stack: &[(String, usize)]| stack.iter().map(|(n, _)| n.clone()).collect();
    while i < toks.len() {
        let t = &toks[i];
        match &t.tok {
            Tok::Punct('#') if is_punct(toks.get(i + 1), '[') => {
                let end = after_group(&toks, i + 1);
                test_attribute |= is_test_cfg(&toks[i + 2..end.saturating_sub(1)]);
                i = end;
                continue;
            }
            Tok::Punct('#') if is_punct(toks.get(i + 1), '!') && is_punct(toks.get(i + 2), '[') => {
                i = after_group(&toks, i + 2);
                continue;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                {
                    if is_punct(toks.get(i + 2), ';') {
                        if !test_attribute {
                            scan.mods.push(ModDecl {
                                within: within(&stack),
                                name: name.clone(),
                                in_file: true,
                            });
                        }
                        test_attribute = false;
                        i += 3;
                        continue;
                    }
                    if is_punct(toks.get(i + 2), '{') {
                        if test_attribute {
                            i = after_group(&toks, i + 2);
                        } else {
                            scan.mods.push(ModDecl {
                                within: within(&stack),
                                name: name.clone(),
                                in_file: false,
                            });
                            depth += 1;
                            stack.push((name.clone(), depth));
                            i += 3;
                        }
                        test_attribute = false;
                        continue;
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                if toks.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep) {
                    // `use ::name`: another crate.
                    i += 2;
                    continue;
                }
                let public = is_public(&toks, i);
                let mut flat = Vec::new();
                i = parse_path(&toks, i + 1, Vec::new(), &mut flat);
                for (segments, binds) in flat {
                    scan.paths.push(PathUse {
                        within: within(&stack),
                        segments,
                        binds: Some(binds),
                        public,
                        line: t.line,
                    });
                }
                continue;
            }
            Tok::Ident(w) if ITEM_KEYWORDS.contains(&w.as_str()) => {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                {
                    scan.defines.push(Definition {
                        within: within(&stack),
                        name: name.clone(),
                    });
                }
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep)
                    && !is_ident(i.checked_sub(1).and_then(|p| toks.get(p)), "in") =>
            {
                let mut flat = Vec::new();
                i = parse_path(&toks, i, Vec::new(), &mut flat);
                for (segments, _) in flat {
                    scan.paths.push(PathUse {
                        within: within(&stack),
                        segments,
                        binds: None,
                        public: false,
                        line: t.line,
                    });
                }
                continue;
            }
            Tok::Punct('{') => {
                depth += 1;
                test_attribute = false;
            }
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
                test_attribute = false;
            }
            Tok::Punct(';') => test_attribute = false,
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Whether the item whose keyword is at `i` is `pub`, `pub(crate)`, `pub(super)` or
/// `pub(in …)`.
fn is_public(toks: &[Token], i: usize) -> bool {
    let before = |k: usize| i.checked_sub(k).and_then(|p| toks.get(p));
    if is_ident(before(1), "pub") {
        return true;
    }
    if !is_punct(before(1), ')') {
        return false;
    }
    // Back to the `(` of the visibility.
    (2..8).any(|k| is_punct(before(k), '(') && is_ident(before(k + 1), "pub"))
}

/// Whether an attribute's tokens (inside `#[…]`) make its item test-only.
fn is_test_cfg(attr: &[Token]) -> bool {
    is_ident(attr.first(), "cfg")
        && attr.iter().any(|t| is_ident(Some(t), "test"))
        && !attr.iter().any(|t| is_ident(Some(t), "not"))
}

/// Parses the path whose first segment is at `i`, pushing each flattened path (groups
/// expanded, `self` in a group standing for its prefix) with what it would bind in a `use`
/// onto `out`; returns the index after it.
fn parse_path(
    toks: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Binding)>,
) -> usize {
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(seg)) => {
                if seg != "self" || prefix.is_empty() {
                    prefix.push(seg.clone());
                }
                i += 1;
            }
            Some(Tok::Punct('{')) => {
                let end = after_group(toks, i);
                let mut k = i + 1;
                while k + 1 < end {
                    if is_punct(toks.get(k), ',') {
                        k += 1;
                        continue;
                    }
                    let next = parse_path(toks, k, prefix.clone(), out);
                    // Skip whatever the path left up to the next item.
                    k = next.max(k + 1);
                    while k + 1 < end && !is_punct(toks.get(k), ',') {
                        k += 1;
                    }
                }
                return end;
            }
            Some(Tok::Punct('*')) => {
                out.push((prefix, Binding::Glob));
                return i + 1;
            }
            _ => return end_path(toks, i, prefix, out),
        }
        if toks.get(i).is_some_and(|t| t.tok == Tok::PathSep) {
            i += 1;
        } else {
            return end_path(toks, i, prefix, out);
        }
    }
}

/// Pushes a finished path with its binding (an `as` name at `i`, else its last segment).
fn end_path(
    toks: &[Token],
    i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Binding)>,
) -> usize {
    if is_ident(toks.get(i), "as")
        && let Some(Token {
            tok: Tok::Ident(alias),
            ..
        }) = toks.get(i + 1)
    {
        out.push((prefix, Binding::Name(alias.clone())));
        return i + 2;
    }
    let name = prefix.last().cloned().unwrap_or_default();
    out.push((prefix, Binding::Name(name)));
    i
}

// ---------------------------------------------------------------------------------------
// One crate

/// The file that holds module `name` declared in `file` (a crate root when `is_root`)
/// inside inline modules `within`: crate roots and `mod.rs` keep their children beside
/// them, `x.rs` keeps them in `x/`.
fn module_file(
    sources: &Sources,
    file: &Path,
    is_root: bool,
    within: &[String],
    name: &str,
) -> Option<PathBuf> {
    let folder = file.parent().unwrap_or(Path::new(""));
    let mut base = match file.file_stem() {
        Some(stem) if !is_root && stem != "mod" => folder.join(stem),
        _ => folder.to_path_buf(),
    };
    for w in within {
        base = base.join(w);
    }
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| sources.contains_key(p))
}

/// What the crate's modules declare, define and bring into scope: enough to follow a path
/// through re-exports to the module that defines what it names.
#[derive(Debug, Default)]
struct Names {
    modules: BTreeSet<ModPath>,
    /// Per module, the names its `use` items bind, each to the absolute path it stands for
    /// and whether the `use` is public.
    binds: BTreeMap<ModPath, BTreeMap<String, (Vec<String>, bool)>>,
    /// Per module, the modules its glob `use` items bring in, and whether publicly.
    globs: BTreeMap<ModPath, Vec<(ModPath, bool)>>,
    /// Per module, the items it defines.
    defines: BTreeMap<ModPath, BTreeSet<String>>,
}

/// How many re-exports a path is followed through before it is taken where it stands.
const MAX_HOPS: usize = 16;

impl Names {
    /// The path from the crate root (no `crate` segment) that `segments`, written in
    /// `from`, spells; `None` for another crate's path.
    fn absolute(&self, from: &ModPath, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut at = match first.as_str() {
            "crate" => Vec::new(),
            "self" => from.clone(),
            "super" => from[..from.len().checked_sub(1)?].to_vec(),
            child => {
                let mut path = from.clone();
                path.push(child.to_owned());
                if !self.modules.contains(&path) {
                    return None;
                }
                path
            }
        };
        let mut rest = rest.iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            rest.next();
            at.pop()?;
        }
        at.extend(rest.cloned());
        Some(at)
    }

    /// The deepest module an absolute path written in `from` leads to, through modules and
    /// the names their `use` items bind (a private `use` only for paths written in its
    /// module or below).
    fn module_of(&self, from: &ModPath, path: &[String], hops: usize) -> ModPath {
        let mut at: ModPath = Vec::new();
        for (k, seg) in path.iter().enumerate() {
            let mut deeper = at.clone();
            deeper.push(seg.clone());
            if self.modules.contains(&deeper) {
                at = deeper;
                continue;
            }
            if hops < MAX_HOPS
                && let Some(target) = self.source_of(from, &at, seg)
            {
                let mut next = target;
                next.extend(path[k + 1..].iter().cloned());
                return self.module_of(from, &next, hops + 1);
            }
            break;
        }
        at
    }

    /// Where the name `seg` that module `at` brings in with a `use` comes from, as seen
    /// from `from`.
    fn source_of(&self, from: &ModPath, at: &ModPath, seg: &str) -> Option<Vec<String>> {
        if self.defines.get(at).is_some_and(|d| d.contains(seg)) {
            return None;
        }
        let visible = |public: bool| public || from.starts_with(at);
        if let Some((target, public)) = self.binds.get(at).and_then(|b| b.get(seg))
            && visible(*public)
        {
            return Some(target.clone());
        }
        self.globs.get(at)?.iter().find_map(|(glob, public)| {
            if !visible(*public) {
                return None;
            }
            let mut child = glob.clone();
            child.push(seg.to_owned());
            let has = self.modules.contains(&child)
                || self.defines.get(glob).is_some_and(|d| d.contains(seg))
                || self.binds.get(glob).is_some_and(|b| b.contains_key(seg));
            has.then_some(child)
        })
    }
}

/// Every use between the modules of the crate rooted at `root`: (from, to, place).
fn uses(sources: &Sources, root: &Path) -> Vec<(ModPath, ModPath, Place)> {
    let mut names = Names::default();
    names.modules.insert(Vec::new());
    let mut scanned: Vec<(ModPath, PathBuf, FileScan)> = Vec::new();
    let mut todo: Vec<(ModPath, PathBuf)> = vec![(Vec::new(), root.to_path_buf())];
    while let Some((module, file)) = todo.pop() {
        let Some(text) = sources.get(&file) else {
            continue;
        };
        let found = scan(text);
        for decl in &found.mods {
            let mut path = module.clone();
            path.extend(decl.within.iter().cloned());
            path.push(decl.name.clone());
            names.modules.insert(path.clone());
            if decl.in_file
                && let Some(child) =
                    module_file(sources, &file, module.is_empty(), &decl.within, &decl.name)
            {
                todo.push((path, child));
            }
        }
        for item in &found.defines {
            let mut path = module.clone();
            path.extend(item.within.iter().cloned());
            names
                .defines
                .entry(path)
                .or_default()
                .insert(item.name.clone());
        }
        scanned.push((module, file, found));
    }

    // Every path with the module it is written in, made absolute.
    let mut paths = Vec::new();
    for (module, file, found) in &scanned {
        for path in &found.paths {
            let mut from = module.clone();
            from.extend(path.within.iter().cloned());
            let Some(absolute) = names.absolute(&from, &path.segments) else {
                continue;
            };
            match &path.binds {
                Some(Binding::Name(name)) => {
                    names
                        .binds
                        .entry(from.clone())
                        .or_default()
                        .insert(name.clone(), (absolute.clone(), path.public));
                }
                Some(Binding::Glob) => {
                    names
                        .globs
                        .entry(from.clone())
                        .or_default()
                        .push((absolute.clone(), path.public));
                }
                None => {}
            }
            let place = Place {
                file: file.clone(),
                line: path.line,
            };
            paths.push((from, absolute, place));
        }
    }

    let mut edges: Vec<(ModPath, ModPath, Place)> = paths
        .into_iter()
        .map(|(from, absolute, place)| {
            let to = names.module_of(&from, &absolute, 0);
            (from, to, place)
        })
        .collect();
    edges.sort_by(|a, b| a.2.cmp(&b.2));
    edges
}

fn cycles_of(root: &str, uses: &[(ModPath, ModPath, Place)]) -> Vec<Cycle> {
    // Per parent module: child -> sibling -> first place.
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, Place>>> = BTreeMap::new();
    for (from, to, place) in uses {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            // A module using its ancestor or its descendant.
            continue;
        }
        levels
            .entry(from[..common].to_vec())
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .entry(to[common].clone())
            .or_insert_with(|| place.clone());
    }
    let mut cycles = Vec::new();
    for (parent, graph) in levels {
        let full = |child: &str| {
            let mut p = parent.clone();
            p.push(child.to_owned());
            p.join("::")
        };
        for ring in elementary_cycles(&graph) {
            let steps = ring
                .iter()
                .zip(ring.iter().cycle().skip(1))
                .map(|(a, b)| Step {
                    from: full(a),
                    to: full(b),
                    place: graph[a][b].clone(),
                })
                .collect();
            cycles.push(Cycle {
                root: root.to_owned(),
                steps,
            });
        }
    }
    cycles
}

/// The elementary cycles of a small directed graph, each starting at its least node.
fn elementary_cycles(graph: &BTreeMap<String, BTreeMap<String, Place>>) -> Vec<Vec<String>> {
    fn walk<'g>(
        graph: &'g BTreeMap<String, BTreeMap<String, Place>>,
        start: &'g str,
        path: &mut Vec<&'g str>,
        found: &mut Vec<Vec<String>>,
    ) {
        let Some(last) = path.last().copied() else {
            return;
        };
        for next in graph.get(last).into_iter().flat_map(|n| n.keys()) {
            if next == start {
                found.push(path.iter().map(|s| (*s).to_owned()).collect());
            } else if next.as_str() > start && !path.contains(&next.as_str()) {
                path.push(next);
                walk(graph, start, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, start, &mut vec![start.as_str()], &mut found);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Sources {
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect()
    }

    fn paths(cycles: &[Cycle]) -> Vec<String> {
        cycles.iter().map(|c| c.path().join(" -> ")).collect()
    }

    #[test]
    fn two_top_level_modules_that_use_each_other_are_a_cycle_with_both_places() {
        let sources = tree(&[
            ("src/lib.rs", "pub mod sensor;\npub mod supervisor;\n"),
            (
                "src/sensor.rs",
                "use crate::supervisor::Slot;\npub struct Power;\n",
            ),
            ("src/supervisor/mod.rs", "mod runner;\npub struct Slot;\n"),
            (
                "src/supervisor/runner.rs",
                "fn f() {\n    let _ = crate::sensor::Power;\n}\n",
            ),
        ]);
        let cycles = crate_cycles("agent", &sources);
        assert_eq!(paths(&cycles), ["sensor -> supervisor -> sensor"]);
        let steps = &cycles[0].steps;
        assert_eq!(steps[0].place.to_string(), "agent/src/sensor.rs:1");
        assert_eq!(
            steps[1].place.to_string(),
            "agent/src/supervisor/runner.rs:2"
        );
        assert_eq!(cycles[0].root, "agent/src/lib.rs");
    }

    #[test]
    fn sibling_submodules_using_each_other_through_super_and_groups_are_a_cycle() {
        let sources = tree(&[
            ("src/lib.rs", "mod config;\n"),
            ("src/config/mod.rs", "mod load;\nmod validate;\n"),
            (
                "src/config/load.rs",
                "use super::{validate::{self, check}, Other};\n",
            ),
            (
                "src/config/validate.rs",
                "pub(crate) fn check() { super::load::parse(); }\n",
            ),
        ]);
        assert_eq!(
            paths(&crate_cycles("agent", &sources)),
            ["config::load -> config::validate -> config::load"]
        );
    }

    #[test]
    fn a_ring_of_three_is_listed_once_as_a_path() {
        let sources = tree(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("src/a.rs", "use crate::b::X;\n"),
            ("src/b.rs", "use crate::c::X;\n"),
            ("src/c.rs", "use crate::a::X;\n"),
        ]);
        assert_eq!(paths(&crate_cycles("x", &sources)), ["a -> b -> c -> a"]);
    }

    #[test]
    fn a_use_through_a_re_export_is_a_use_of_the_module_that_defines_it() {
        let sources = tree(&[
            (
                "src/lib.rs",
                "mod a;\nmod b;\npub use b::{Thing as Renamed, other::*};\n",
            ),
            ("src/a.rs", "use crate::Renamed;\npub struct X;\n"),
            ("src/b/mod.rs", "pub mod other;\npub struct Thing;\n"),
            (
                "src/b/other.rs",
                "pub fn helper() { let _ = crate::a::X; }\n",
            ),
        ]);
        assert_eq!(paths(&crate_cycles("x", &sources)), ["a -> b -> a"]);
        // Through a glob: `crate::helper` is `b::other::helper`.
        let mut sources = sources;
        sources.insert(
            "src/a.rs".into(),
            "fn f() { crate::helper(); }\npub struct X;\n".into(),
        );
        assert_eq!(paths(&crate_cycles("x", &sources)), ["a -> b -> a"]);
        // A name the root defines itself is the root's: no edge.
        sources.insert(
            "src/lib.rs".into(),
            "mod a;\nmod b;\npub fn helper() {}\n".into(),
        );
        assert_eq!(crate_cycles("x", &sources), []);
    }

    #[test]
    fn a_child_reaching_a_sibling_through_its_parent_is_a_sibling_use() {
        let sources = tree(&[
            ("src/lib.rs", "mod config;\n"),
            (
                "src/config/mod.rs",
                "mod load;\nmod validate;\npub use load::parse;\nuse validate::rules;\n",
            ),
            ("src/config/load.rs", "pub fn parse() { super::rules(); }\n"),
            (
                "src/config/validate.rs",
                "pub fn rules() { super::parse(); }\n",
            ),
        ]);
        assert_eq!(
            paths(&crate_cycles("agent", &sources)),
            ["config::load -> config::validate -> config::load"]
        );
    }

    #[test]
    fn an_acyclic_tree_with_parents_and_children_using_each_other_passes() {
        let sources = tree(&[
            (
                "src/lib.rs",
                "pub mod wire;\npub mod store;\npub use store::Outbox;\n",
            ),
            ("src/wire.rs", "pub struct Frame;\n"),
            (
                "src/store/mod.rs",
                "mod segment;\npub use segment::Segment;\nuse crate::wire::Frame;\npub struct Outbox;\n",
            ),
            // A child using its parent's items and its grandparent's re-export.
            (
                "src/store/segment.rs",
                "use super::Outbox;\nuse crate::Outbox as O;\nuse crate::wire;\npub struct Segment;\n",
            ),
        ]);
        assert_eq!(crate_cycles("store", &sources), []);
    }

    #[test]
    fn test_modules_inline_or_in_files_are_ignored() {
        let sources = tree(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            (
                "src/a.rs",
                "use crate::b::X;\n#[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use crate::b::Y;\n}\n#[cfg(test)]\nmod more;\n",
            ),
            (
                "src/b.rs",
                "pub struct X;\n#[cfg(all(test, feature = \"sim\"))]\nmod tests {\n    use crate::a::helper;\n    mod deeper { fn f() {} }\n}\n",
            ),
            ("src/a/more.rs", "use crate::b::Z;\n"),
        ]);
        assert_eq!(crate_cycles("x", &sources), []);
        // Once outside the test module, the same use is a cycle.
        let mut sources = sources;
        sources.insert(
            "src/b.rs".into(),
            "pub struct X;\nuse crate::a::helper;\n".into(),
        );
        assert_eq!(paths(&crate_cycles("x", &sources)), ["a -> b -> a"]);
    }

    #[test]
    fn a_not_test_module_counts() {
        let sources = tree(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            ("src/a.rs", "use crate::b::X;\n"),
            (
                "src/b.rs",
                "#[cfg(not(test))]\nmod live {\n    use crate::a::Y;\n}\n",
            ),
        ]);
        assert_eq!(paths(&crate_cycles("x", &sources)), ["a -> b -> a"]);
    }

    #[test]
    fn paths_in_comments_strings_and_visibility_draw_no_edge() {
        let sources = tree(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            ("src/a.rs", "use crate::b::X;\n"),
            (
                "src/b.rs",
                concat!(
                    "// use crate::a::X;\n",
                    "/* crate::a::f() /* nested */ crate::a::g() */\n",
                    "const S: &str = \"crate::a::X\";\n",
                    "const R: &str = r#\"super::a::X \"quoted\"\"#;\n",
                    "const C: char = '\"';\n",
                    "fn f<'a>(x: &'a str) -> &'a str { x }\n",
                    "pub(in crate::b) struct Y;\n",
                    "pub(crate) struct Z;\n",
                ),
            ),
        ]);
        assert_eq!(crate_cycles("x", &sources), []);
    }

    #[test]
    fn inline_modules_are_modules_and_super_inside_them_resolves_from_them() {
        let sources = tree(&[
            ("src/lib.rs", "mod outer;\n"),
            (
                "src/outer.rs",
                concat!(
                    "pub mod msg {\n",
                    "    pub struct M(super::valid::V);\n",
                    "}\n",
                    "pub mod valid {\n",
                    "    pub struct V;\n",
                    "    fn f(_: super::msg::M) {}\n",
                    "}\n",
                ),
            ),
        ]);
        assert_eq!(
            paths(&crate_cycles("x", &sources)),
            ["outer::msg -> outer::valid -> outer::msg"]
        );
    }

    #[test]
    fn a_binary_root_is_its_own_crate() {
        let sources = tree(&[
            ("src/lib.rs", "pub mod a;\n"),
            ("src/a.rs", ""),
            ("src/main.rs", "mod cli;\nmod run;\n"),
            ("src/cli.rs", "use crate::run::go;\n"),
            ("src/run.rs", "use crate::cli::Args;\n"),
        ]);
        let cycles = crate_cycles("x", &sources);
        assert_eq!(paths(&cycles), ["cli -> run -> cli"]);
        assert_eq!(cycles[0].root, "x/src/main.rs");
    }

    #[test]
    fn the_verdict_fails_on_cycles_outside_pending_and_on_clean_pending_crates() {
        let cycle = Cycle {
            root: "agent/src/lib.rs".into(),
            steps: Vec::new(),
        };
        let mut found: BTreeMap<String, Vec<Cycle>> = BTreeMap::new();
        found.insert("agent".into(), vec![cycle.clone()]);
        for name in PENDING {
            found.insert((*name).into(), vec![cycle.clone()]);
        }
        let verdict = Verdict::of(&found);
        assert_eq!(verdict.failing.len(), 1);
        assert_eq!(verdict.pending.len(), PENDING.len());
        assert!(verdict.into_result().is_err());

        found.insert("agent".into(), Vec::new());
        assert!(Verdict::of(&found).into_result().is_ok());

        if let Some(first) = PENDING.first() {
            found.insert((*first).into(), Vec::new());
            let err = Verdict::of(&found).into_result().unwrap_err();
            assert!(err.to_string().contains("remove them from"), "{err}");
        }
    }

    /// The repository itself: no crate outside [`PENDING`] has a module cycle.
    #[test]
    fn the_workspace_has_no_module_cycles() {
        let root = crate::workspace_root();
        let cycles = workspace_cycles(&root).unwrap();
        assert!(cycles.contains_key("agent"), "crates found: {cycles:?}");
        for (name, found) in &cycles {
            for cycle in found {
                eprintln!("{name}: {cycle}");
            }
        }
        if let Err(e) = Verdict::of(&cycles).into_result() {
            panic!("{e}");
        }
    }
}
