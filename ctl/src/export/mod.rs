//! `aloftctl export`: a node's readings as the files researchers' tools read, from the hub
//! (its export stream, a tar archive, downloaded resumably) or offline from an agent's
//! store directory (the library the hub uses, on the same records: the same bytes).
//!
//! - [`archive`]: the hub's stream checked whole, then extracted.
//! - [`download`]: the stream into a part file, with retries and resume.
//!
//! Invariants: files appear only when the whole export is complete (written under hidden
//! `.part` names and renamed at the end; removed on failure); an existing file is replaced
//! only with `--force`, and the sidecar's and `-o FILE`'s names are checked before anything
//! is downloaded or written; the store directory is opened read-only; a progress bar is
//! drawn only when standard error is a terminal.

pub mod archive;
pub mod download;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aloft_dataset::time::rfc3339_ns;
use aloft_dataset::{
    Dataset, DirOutput, ExportError, FileEntry, Format, Layout, Output, Resample, Selection,
    StoreDirSource, export,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ExportArgs, LayoutArg, MethodArg, OutputArg, TargetArgs};
use crate::client::{ClientError, Hub, segment};
use crate::config::{self, ConfigError};
use archive::{ArchiveError, ExtractError};
use download::Download;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// Arguments that cannot work together (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The export library refused the request or could not write (exit 1).
    #[error(transparent)]
    Dataset(#[from] ExportError),
    /// The config file or target.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The hub refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The hub's stream was refused.
    #[error("{0}; nothing was written")]
    Archive(#[from] ArchiveError),
    /// A local file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The metadata file.
    #[error("--metadata {path}: {message}")]
    Metadata {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The stream kept breaking.
    #[error(
        "the hub's export stream broke {attempts} times in a row ({reason}); what arrived is kept: rerun the same command to resume"
    )]
    Interrupted {
        /// Attempts without progress.
        attempts: u32,
        /// The last reason.
        reason: String,
    },
}

impl ExportFailure {
    /// Whether this is a usage error (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ExportFailure::Usage(_))
    }
}

impl From<ExtractError> for ExportFailure {
    fn from(e: ExtractError) -> Self {
        match e {
            ExtractError::Archive(a) => ExportFailure::Archive(a),
            ExtractError::Write(w) => ExportFailure::Dataset(w),
        }
    }
}

/// Where the export's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The directory.
    pub dir: PathBuf,
    /// The stem of the files' names.
    pub stem: String,
    /// `-o FILE`: the one data file's path.
    pub file: Option<PathBuf>,
}

/// Whether an export of `format` in `layout` writes more than one data file (so `-o`
/// must name a directory): wide tables are one file per sensor, ICARTT one per sensor
/// group, a package several formats.
pub fn writes_several_files(format: &str, layout: Layout) -> bool {
    matches!(format, "icartt" | "package")
        || (layout == Layout::Wide && matches!(format, "csv" | "parquet"))
}

/// Decides where the files go from `-o` (none: the current directory).
pub fn destination(
    output: Option<&Path>,
    node: &str,
    several: bool,
) -> Result<Destination, ExportFailure> {
    let default_stem = aloft_dataset::ExportOptions::new(node, 0).stem;
    let Some(path) = output else {
        return Ok(Destination {
            dir: PathBuf::from("."),
            stem: default_stem,
            file: None,
        });
    };
    let text = path.as_os_str().to_string_lossy();
    let dir_like =
        path.is_dir() || text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR);
    let file_like =
        !dir_like && (archive::exists(path) || path.extension().is_some_and(|e| !e.is_empty()));
    if !file_like {
        return Ok(Destination {
            dir: path.to_path_buf(),
            stem: default_stem,
            file: None,
        });
    }
    if several {
        return Err(ExportFailure::Usage(format!(
            "-o {}: this export writes several files (one per sensor, group or format); -o must name a directory",
            path.display()
        )));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .ok_or_else(|| {
            ExportFailure::Usage(format!(
                "-o {}: a file name needs a name before its extension",
                path.display()
            ))
        })?;
    // The hub names files only with letters, digits, `-`, `_` and `.`; a stem it would
    // change would not be the file asked for, so it is refused here, the same offline.
    if aloft_dataset::formats::file_safe(&stem) != stem {
        return Err(ExportFailure::Usage(format!(
            "-o {}: the file's name may hold only ASCII letters, digits, '-', '_' and '.' (the export names its files from it)",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Destination {
        dir,
        stem,
        file: Some(path.to_path_buf()),
    })
}

impl Destination {
    /// The sidecar's name.
    pub fn sidecar(&self) -> String {
        format!("{}.sidecar.json", self.stem)
    }

    /// Refuses, before anything is done, files that exist (without `--force`).
    fn refuse_existing(&self, force: bool) -> Result<(), ExportFailure> {
        if force {
            return Ok(());
        }
        let mut names = vec![self.dir.join(self.sidecar())];
        names.extend(self.file.clone());
        match names.into_iter().find(|p| archive::exists(p)) {
            Some(p) => Err(ExportError::Exists(p.display().to_string()).into()),
            None => Ok(()),
        }
    }

    /// With `-o FILE`: the export's one data file must be that file.
    fn check_files(&self, files: &[FileEntry]) -> Result<(), ExportFailure> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let wanted = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data: Vec<&str> = files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| *p != self.sidecar())
            .collect();
        match data.as_slice() {
            [one] if *one == wanted => Ok(()),
            [one] => Err(ExportFailure::Usage(format!(
                "-o {}: this format names its file {one}; pass -o {} or a directory",
                file.display(),
                self.dir.join(one).display()
            ))),
            many => Err(ExportFailure::Usage(format!(
                "-o {}: this export writes {} files ({}); -o must name a directory",
                file.display(),
                many.len(),
                many.join(", ")
            ))),
        }
    }
}

/// The progress display: a spinner with bytes and rate on a terminal, nothing otherwise.
fn progress() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {prefix} {binary_bytes} at {binary_bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The resampling asked for.
fn resample(args: &ExportArgs) -> Result<Option<Resample>, ExportFailure> {
    let Some(interval) = args.interval else {
        return Ok(None);
    };
    let interval_ns = u64::try_from(interval.as_nanos())
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ExportError::BadInterval)?;
    Ok(Some(match args.method.unwrap_or(MethodArg::Decimate) {
        MethodArg::Decimate => Resample::Decimate { interval_ns },
        MethodArg::Mean => Resample::Mean { interval_ns },
    }))
}

/// An interval as the API takes it: a whole number of the largest unit that holds it.
fn interval_text(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{ns}ns")
    }
}

fn layout(args: &ExportArgs) -> Layout {
    match args.layout {
        Some(LayoutArg::Wide) => Layout::Wide,
        Some(LayoutArg::Tidy) | None => Layout::Tidy,
    }
}

/// Runs `export`; prints the files written, one per line, to `out`.
pub fn run(
    target: &TargetArgs,
    args: &ExportArgs,
    out: &mut dyn Write,
) -> Result<(), ExportFailure> {
    let output = match &args.output {
        None => None,
        Some(OutputArg::Path(p)) => Some(p.as_path()),
        Some(OutputArg::Format(_)) => {
            return Err(ExportFailure::Usage(
                "-o before `export` is the output format of other verbs; write `export ... -o FILE|DIR`".into(),
            ));
        }
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(ExportError::EmptyRange {
            from: rfc3339_ns(from),
            to: rfc3339_ns(to),
        }
        .into());
    }
    let resample = resample(args)?;
    let dest = destination(
        output,
        &args.node,
        writes_several_files(&args.format, layout(args)),
    )?;
    dest.refuse_existing(args.force)?;
    let bar = progress();
    let files = match &args.store {
        Some(store) => offline(args, store, &dest, resample, &bar),
        None => from_hub(target, args, &dest, &bar),
    };
    bar.finish_and_clear();
    for f in files? {
        writeln!(out, "{}", dest.dir.join(&f.path).display()).map_err(|source| {
            ExportFailure::Io {
                what: "writing the output".into(),
                source,
            }
        })?;
    }
    Ok(())
}

/// An [`Output`] that shows progress: files done and bytes written.
struct Shown<'a> {
    inner: &'a mut DirOutput,
    bar: &'a ProgressBar,
}

impl Output for Shown<'_> {
    fn file(
        &mut self,
        path: &str,
        format: &str,
        mediatype: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<FileEntry, ExportError> {
        let bar = self.bar;
        bar.set_message(format!("{path} (file {})", self.inner.files().len() + 1));
        self.inner.file(path, format, mediatype, &mut |w| {
            let mut counted = Counted { inner: w, bar };
            write(&mut counted)
        })
    }

    fn files(&self) -> &[FileEntry] {
        self.inner.files()
    }
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    bar: &'a ProgressBar,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The export from an agent's store directory, with the library.
fn offline(
    args: &ExportArgs,
    store: &Path,
    dest: &Destination,
    resample: Option<Resample>,
    bar: &ProgressBar,
) -> Result<Vec<FileEntry>, ExportFailure> {
    std::fs::read_dir(store).map_err(|source| ExportFailure::Io {
        what: format!("cannot read the store directory {}", store.display()),
        source,
    })?;
    let format = Format::from_name(&args.format)?;
    let quantities = Selection::parse_quantities(&args.quantities)?;
    let metadata = match &args.metadata {
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ExportFailure::Metadata {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            toml::from_str(&text).map_err(|e| ExportFailure::Metadata {
                path: shown,
                message: e.to_string(),
            })?
        }
        None => aloft_dataset::Metadata::default(),
    };
    let created = args.created.unwrap_or_else(now_ns);
    let source = StoreDirSource::open(store).map_err(ExportError::from)?;
    let mut options = aloft_dataset::ExportOptions::new(&args.node, created);
    options.stem = dest.stem.clone();
    options.layout = layout(args);
    options.metadata = metadata;
    let selection = Selection {
        sensors: args.sensors.clone(),
        quantities,
        from_utc_ns: args.from,
        to_utc_ns: args.to,
        resample,
    };
    bar.set_prefix("exporting");
    let ds = Dataset::open(&source, &args.node, selection, options)?;
    let mut dir = DirOutput::new(&dest.dir, args.force)?;
    let files = export(
        &ds,
        format,
        &mut Shown {
            inner: &mut dir,
            bar,
        },
    )?;
    dest.check_files(&files)?;
    dir.commit()?;
    Ok(files)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// The request's path and query, without `upto`, `created` and `skip`.
pub fn request_path(args: &ExportArgs, stem: &str) -> String {
    let mut q = vec![format!("format={}", segment(&args.format))];
    if let Some(l) = args.layout {
        q.push(format!(
            "layout={}",
            match l {
                LayoutArg::Tidy => "tidy",
                LayoutArg::Wide => "wide",
            }
        ));
    }
    q.extend(
        args.sensors
            .iter()
            .map(|s| format!("sensor={}", segment(s))),
    );
    q.extend(
        args.quantities
            .iter()
            .map(|s| format!("quantity={}", segment(s))),
    );
    q.extend(
        args.from
            .map(|t| format!("from={}", segment(&rfc3339_ns(t)))),
    );
    q.extend(args.to.map(|t| format!("to={}", segment(&rfc3339_ns(t)))));
    if let Some(i) = args.interval {
        q.push(format!("interval={}", interval_text(i)));
        q.push(format!(
            "method={}",
            match args.method.unwrap_or(MethodArg::Decimate) {
                MethodArg::Decimate => "decimate",
                MethodArg::Mean => "mean",
            }
        ));
    }
    q.push(format!("stem={}", segment(stem)));
    format!(
        "/api/v1/nodes/{}/export?{}",
        segment(&args.node),
        q.join("&")
    )
}

/// The export from the hub: download (resumable), check, extract.
fn from_hub(
    target: &TargetArgs,
    args: &ExportArgs,
    dest: &Destination,
    bar: &ProgressBar,
) -> Result<Vec<FileEntry>, ExportFailure> {
    let resolved = config::resolve(target)?;
    let hub = Hub::new(&resolved, target.request_timeout)?;
    std::fs::create_dir_all(&dest.dir).map_err(|source| ExportFailure::Io {
        what: format!("cannot make {}", dest.dir.display()),
        source,
    })?;
    let download = Download::at(&dest.dir, &dest.stem);
    let path = request_path(args, &dest.stem);
    bar.set_prefix("downloading");
    let (mut file, members) = match download::fetch(
        &hub,
        &path,
        args.created,
        args.upto.as_deref(),
        &download,
        &dest.sidecar(),
        bar,
    ) {
        Ok(fetched) => fetched,
        Err(e) => {
            // A refusal before any byte arrived leaves nothing to resume.
            if std::fs::metadata(&download.part).is_ok_and(|m| m.len() == 0) {
                download.remove();
            }
            return Err(e);
        }
    };
    bar.set_prefix("extracting");
    let total = members.len();
    let mut out = DirOutput::new(&dest.dir, args.force)?;
    let files = match archive::extract(&mut file, &members, &mut out, &mut |done| {
        bar.set_message(format!("{done}/{total} files"));
    }) {
        Ok(files) => files,
        Err(ExtractError::Archive(refused)) => {
            drop(out);
            download.remove();
            return Err(refused.into());
        }
        // A full disk or an existing file: the download stays for a rerun.
        Err(ExtractError::Write(e)) => return Err(e.into()),
    };
    dest.check_files(&files)?;
    out.commit()?;
    drop(file);
    download.remove();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_path_names_a_directory_or_the_one_data_file() {
        let here = destination(None, "glider-1", false).unwrap();
        assert_eq!(here.dir, PathBuf::from("."));
        assert_eq!(here.stem, "aloft-glider-1");
        let tmp = tempfile::tempdir().unwrap();
        let existing = destination(Some(tmp.path()), "g", true).unwrap();
        assert_eq!((existing.dir.as_path(), existing.file), (tmp.path(), None));
        let new_dir = destination(Some(Path::new("exports/flight-3")), "g", true).unwrap();
        assert_eq!(new_dir.dir, PathBuf::from("exports/flight-3"));
        assert_eq!(new_dir.stem, "aloft-g");
        let trailing = destination(Some(Path::new("out.d/")), "g", true).unwrap();
        assert_eq!(trailing.file, None);
        let file = destination(Some(Path::new("exports/flight.csv")), "g", false).unwrap();
        assert_eq!(file.dir, PathBuf::from("exports"));
        assert_eq!(file.stem, "flight");
        assert_eq!(file.sidecar(), "flight.sidecar.json");
        let spaced = destination(Some(Path::new("flight 1.csv")), "g", false).unwrap_err();
        assert!(spaced.is_usage(), "{spaced}");
        let bare = destination(Some(Path::new("flight.csv")), "g", false).unwrap();
        assert_eq!(bare.dir, PathBuf::from("."));
        let several = destination(Some(Path::new("flight.csv")), "g", true).unwrap_err();
        assert!(several.is_usage(), "{several}");
        assert!(several.to_string().contains("must name a directory"));
    }

    #[test]
    fn exports_of_several_files_are_known_by_format_and_layout() {
        assert!(!writes_several_files("csv", Layout::Tidy));
        assert!(writes_several_files("csv", Layout::Wide));
        assert!(writes_several_files("parquet", Layout::Wide));
        assert!(writes_several_files("icartt", Layout::Tidy));
        assert!(writes_several_files("package", Layout::Tidy));
        assert!(!writes_several_files("netcdf", Layout::Wide));
        assert!(!writes_several_files("igc", Layout::Tidy));
    }

    #[test]
    fn intervals_are_sent_in_the_largest_whole_unit() {
        assert_eq!(interval_text(Duration::from_secs(10)), "10s");
        assert_eq!(interval_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(interval_text(Duration::from_nanos(1_000_001)), "1000001ns");
    }
}
