//! `aloftctl export`, the real binary: offline from a store directory made of the simulated
//! flight (equal to the library's own export), every bad input, and the hub path against
//! a test server over real TLS that serves the export stream's contract (a tar of the
//! library's files, `upto`/`created`/`skip` for resuming) and can cut, stall or corrupt it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use aloft_dataset::{
    Dataset, DirOutput, ExportOptions, Format, Layout, Metadata, Selection, StoreDirSource, export,
};
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use common::{DEADLINE, Run, ctl_command};

const NODE: &str = "glider-1";
const CREATED: i64 = 1_790_000_000_000_000_000;
const TOKEN: &str = "viewer-token";

fn flight() -> FlightOptions {
    FlightOptions {
        duration_s: 240.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    }
}

/// A store directory holding the simulated flight, written by the real outbox.
fn flight_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut outbox, _) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    for r in FlightRecords::new(flight()) {
        outbox.append(&r).unwrap();
    }
    outbox.commit().unwrap();
    outbox.close().unwrap();
    dir
}

/// What the library writes for the store, with `stem` and `layout`.
fn library_files(
    store: &Path,
    stem: &str,
    layout: Layout,
    metadata: Metadata,
) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let source = StoreDirSource::open(store).unwrap();
    let mut options = ExportOptions::new(NODE, CREATED);
    options.stem = stem.to_owned();
    options.layout = layout;
    options.metadata = metadata;
    let ds = Dataset::open(&source, NODE, Selection::default(), options).unwrap();
    let mut dir = DirOutput::new(out.path(), false).unwrap();
    export(&ds, Format::Csv, &mut dir).unwrap();
    dir.commit().unwrap();
    files_in(out.path())
}

/// The filter the filtered tests ask for, as arguments and as the library's selection.
fn filtered() -> (Vec<String>, Selection) {
    let start = FlightOptions::default().start_utc_ns;
    let from = start + 30_000_000_000;
    let to = start + 200_000_000_000;
    let args = [
        "--sensor",
        "static",
        "--sensor",
        "pitot",
        "--quantity",
        "air_pressure",
        "--quantity",
        "differential_pressure",
        "--from",
        &aloft_dataset::time::rfc3339_ns(from),
        "--to",
        &to.to_string(),
        "--interval",
        "10s",
        "--method",
        "mean",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let selection = Selection {
        sensors: vec!["static".into(), "pitot".into()],
        quantities: Selection::parse_quantities(&[
            "air_pressure".into(),
            "differential_pressure".into(),
        ])
        .unwrap(),
        from_utc_ns: Some(from),
        to_utc_ns: Some(to),
        resample: Some(aloft_dataset::Resample::Mean {
            interval_ns: 10_000_000_000,
        }),
    };
    (args, selection)
}

/// What the library writes for the store with `selection` (tidy, default stem).
fn library_selected(store: &Path, selection: Selection) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let source = StoreDirSource::open(store).unwrap();
    let ds = Dataset::open(&source, NODE, selection, ExportOptions::new(NODE, CREATED)).unwrap();
    let mut dir = DirOutput::new(out.path(), false).unwrap();
    export(&ds, Format::Csv, &mut dir).unwrap();
    dir.commit().unwrap();
    files_in(out.path())
}

/// Every file under `dir` (hidden ones too), by relative name.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let name = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

fn names(files: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

fn ctl(home: &Path, args: &[&str]) -> Run {
    let output = ctl_command(home).args(args).output().unwrap();
    Run::of(args, output)
}

// ---------------------------------------------------------------- offline

#[test]
fn offline_csv_tidy_and_wide_equal_the_library_and_the_metadata_file_is_used() {
    let store = flight_store();
    let home = tempfile::tempdir().unwrap();
    let store_arg = store.path().to_str().unwrap();
    let untouched = files_in(store.path());
    for (layout, name) in [(Layout::Tidy, "tidy"), (Layout::Wide, "wide")] {
        let out = home.path().join(format!("out-{name}"));
        let run = ctl(
            home.path(),
            &[
                "export",
                "--store",
                store_arg,
                "--node",
                NODE,
                "--format",
                "csv",
                "--layout",
                name,
                "--created",
                &CREATED.to_string(),
                "-o",
                out.to_str().unwrap(),
            ],
        )
        .ok();
        let got = files_in(&out);
        let want = library_files(store.path(), "aloft-glider-1", layout, Metadata::default());
        assert!(want.len() >= 2, "{:?}", names(&want));
        assert_eq!(names(&got), names(&want), "{name}");
        assert!(got == want, "{name}: the files differ from the library's");
        for f in want.keys() {
            assert!(run.stdout.contains(f.as_str()), "{f} not in {}", run.stdout);
        }
        assert!(
            !run.stderr.contains('\r'),
            "a bar on a pipe: {:?}",
            run.stderr
        );
    }
    // `-o FILE`: its stem names the export; a metadata file goes in the sidecar.
    let meta = home.path().join("meta.toml");
    std::fs::write(
        &meta,
        "title = \"Wave flight to 12 km\"\npilot = \"A. Pilot\"\n",
    )
    .unwrap();
    let file = home.path().join("single/flight.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    ctl(
        home.path(),
        &[
            "export",
            "--store",
            store_arg,
            "-n",
            NODE,
            "--format",
            "csv",
            "--created",
            "2026-09-21T12:00:00Z",
            "--metadata",
            meta.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
    )
    .ok();
    let metadata = Metadata {
        title: "Wave flight to 12 km".into(),
        pilot: "A. Pilot".into(),
        ..Metadata::default()
    };
    let got = files_in(file.parent().unwrap());
    assert_eq!(names(&got), ["flight.csv", "flight.sidecar.json"]);
    let mut want = {
        let out = tempfile::tempdir().unwrap();
        let source = StoreDirSource::open(store.path()).unwrap();
        let mut options = ExportOptions::new(
            NODE,
            aloft_dataset::time::parse_utc("2026-09-21T12:00:00Z").unwrap(),
        );
        options.stem = "flight".into();
        options.metadata = metadata;
        let ds = Dataset::open(&source, NODE, Selection::default(), options).unwrap();
        let mut dir = DirOutput::new(out.path(), false).unwrap();
        export(&ds, Format::Csv, &mut dir).unwrap();
        dir.commit().unwrap();
        files_in(out.path())
    };
    assert!(got == want, "-o FILE differs from the library's");
    want.clear();
    assert!(
        files_in(store.path()) == untouched,
        "the store directory was changed"
    );
}

#[test]
fn a_filtered_and_averaged_export_equals_the_library_offline_and_from_the_hub() {
    let store = flight_store();
    let server = ExportServer::start(store.path());
    let home = tempfile::tempdir().unwrap();
    let (filter, selection) = filtered();
    let want = library_selected(store.path(), selection);
    let csv = &want["aloft-glider-1.csv"];
    let rows = csv.iter().filter(|b| **b == b'\n').count();
    assert!(rows > 10, "the filter selects too little: {rows} lines");
    let full = library_files(
        store.path(),
        "aloft-glider-1",
        Layout::Tidy,
        Metadata::default(),
    );
    assert!(
        csv.len() * 4 < full["aloft-glider-1.csv"].len(),
        "the filter selects too much"
    );
    let created = CREATED.to_string();
    let mut common: Vec<&str> = vec!["--format", "csv", "--created", &created];
    common.extend(filter.iter().map(String::as_str));
    let offline = home.path().join("offline");
    let mut args = vec![
        "export",
        "--store",
        store.path().to_str().unwrap(),
        "-n",
        NODE,
        "-o",
        offline.to_str().unwrap(),
    ];
    args.extend(&common);
    ctl(home.path(), &args).ok();
    assert!(
        files_in(&offline) == want,
        "offline differs from the library"
    );
    let hub = home.path().join("hub");
    let mut args = common.clone();
    args.extend(["-o", hub.to_str().unwrap()]);
    server.run(home.path(), &args).ok();
    assert!(files_in(&hub) == want, "the hub's differs from the library");
    let first = query_of(&server.requests()[0]);
    assert_eq!(first.get("created"), Some(&created));
    assert_eq!(first.get("interval").map(String::as_str), Some("10s"));
    assert_eq!(first.get("method").map(String::as_str), Some("mean"));
}

#[test]
fn the_verb_is_in_the_shell_completion_and_the_help() {
    let home = tempfile::tempdir().unwrap();
    let bash = ctl(home.path(), &["completion", "bash"]).ok();
    for word in [
        "export",
        "--store",
        "--metadata",
        "--layout",
        "--quantity",
        "--force",
    ] {
        assert!(
            bash.stdout.contains(word),
            "{word} not in the bash completion"
        );
    }
    let help = ctl(home.path(), &["export", "--help"]).ok();
    for word in [
        "--out <FILE|DIR>",
        "--store <DIR>",
        "resume",
        "read-only",
        "tidy",
        "mean",
    ] {
        assert!(
            help.stdout.contains(word),
            "{word} not in the help: {}",
            help.stdout
        );
    }
    // The global format flag still works for every other verb.
    ctl(home.path(), &["get", "nodes", "-o", "bogus"]).fails(2, "possible values");
}

#[test]
fn offline_bad_inputs_are_refused_clearly_and_leave_no_file() {
    let store = flight_store();
    let home = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let out = home.path().join("out");
    let o = out.to_str().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["export", "-n", NODE, "--format", "csv", "-o", o]
            .iter()
            .map(|a| a.to_string())
            .collect();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(home.path(), &a)
    };
    // Unreadable, foreign and different-format store directories.
    let missing = home.path().join("no-such-dir");
    run(base(&["--store", missing.to_str().unwrap()])).fails(1, "cannot read the store directory");
    let plain_file = home.path().join("file");
    std::fs::write(&plain_file, b"x").unwrap();
    run(base(&["--store", plain_file.to_str().unwrap()]))
        .fails(1, "cannot read the store directory");
    let foreign = home.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"holiday photos").unwrap();
    run(base(&["--store", foreign.to_str().unwrap()])).fails(1, "holds no Aloft store");
    let other_format = home.path().join("other-format");
    std::fs::create_dir_all(&other_format).unwrap();
    for e in std::fs::read_dir(store.path()).unwrap().flatten() {
        std::fs::copy(e.path(), other_format.join(e.file_name())).unwrap();
    }
    std::fs::write(
        other_format.join("epoch"),
        b"ALOFTSTORE v99 not this format",
    )
    .unwrap();
    let before = files_in(&other_format);
    run(base(&["--store", other_format.to_str().unwrap()])).fails(1, "no readable epoch");
    assert!(
        files_in(&other_format) == before,
        "the store directory was changed"
    );
    // Unknown sensor, quantity, format; inverted and empty ranges.
    run(base(&["--store", s, "--sensor", "barometer"])).fails(1, "no sensor \"barometer\"");
    run(base(&["--store", s, "--quantity", "flux_capacitance"]))
        .fails(1, "unknown quantity \"flux_capacitance\"");
    let mut bad_format = base(&["--store", s]);
    bad_format[4] = "xlsx".into();
    run(bad_format).fails(1, "unknown format \"xlsx\"");
    run(base(&[
        "--store",
        s,
        "--from",
        "2026-06-01T12:00:00Z",
        "--to",
        "2026-06-01T11:00:00Z",
    ]))
    .fails(1, "is empty");
    run(base(&[
        "--store",
        s,
        "--from",
        "2026-06-01T12:00:00Z",
        "--to",
        "2026-06-01T12:00:00Z",
    ]))
    .fails(1, "is empty");
    // Usage: a bad time, --method without --interval, --metadata without --store, a
    // multi-file export into something that looks like a file.
    run(base(&["--store", s, "--from", "yesterday"])).fails(2, "not a UTC time");
    run(base(&["--store", s, "--method", "mean"])).fails(2, "--interval");
    run(base(&["--metadata", "m.toml"])).fails(2, "--store");
    let wide_file = home.path().join("wide.csv");
    run(vec![
        "export".into(),
        "-n".into(),
        NODE.into(),
        "--format".into(),
        "csv".into(),
        "--layout".into(),
        "wide".into(),
        "--store".into(),
        s.into(),
        "-o".into(),
        wide_file.to_str().unwrap().into(),
    ])
    .fails(2, "must name a directory");
    assert!(!wide_file.exists());
    let wrong_ext = home.path().join("data.parquet");
    run(vec![
        "export".into(),
        "-n".into(),
        NODE.into(),
        "--format".into(),
        "csv".into(),
        "--store".into(),
        s.into(),
        "-o".into(),
        wrong_ext.to_str().unwrap().into(),
    ])
    .fails(2, "names its file data.csv");
    assert!(files_in(home.path()).keys().all(|k| !k.starts_with("data")));
    assert!(files_in(&out).is_empty(), "{:?}", names(&files_in(&out)));
    // An existing output: refused before anything is written, replaced with --force.
    run(base(&["--store", s, "--created", "1"])).ok();
    let first = files_in(&out);
    let sidecar = out.join("aloft-glider-1.sidecar.json");
    std::fs::write(&sidecar, b"mine").unwrap();
    run(base(&["--store", s, "--created", "2"])).fails(1, "exists; pass --force");
    assert_eq!(std::fs::read(&sidecar).unwrap(), b"mine");
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::write(out.join("aloft-glider-1.csv"), b"mine").unwrap();
    run(base(&["--store", s, "--created", "1"])).fails(1, "exists; pass --force");
    assert_eq!(
        std::fs::read(out.join("aloft-glider-1.csv")).unwrap(),
        b"mine"
    );
    assert!(!sidecar.exists(), "a sidecar without its data file");
    run(base(&["--store", s, "--created", "1", "--force"])).ok();
    assert!(files_in(&out) == first);
}

#[test]
fn offline_a_disk_that_fills_leaves_no_file() {
    let store = flight_store();
    let home = tempfile::tempdir().unwrap();
    let small = home.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let Some(tmpfs) = aloft_test_support::mounts::Tmpfs::mount(&small, "64k") else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "mounting a tmpfs failed (needs root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let r = ctl(
        home.path(),
        &[
            "export",
            "--store",
            store.path().to_str().unwrap(),
            "-n",
            NODE,
            "--format",
            "csv",
            "-o",
            tmpfs.path().to_str().unwrap(),
        ],
    )
    .fails(1, "No space left on device");
    assert!(r.stderr.contains("cannot write"), "{r:?}");
    assert!(
        files_in(tmpfs.path()).is_empty(),
        "{:?}",
        names(&files_in(tmpfs.path()))
    );
}

// ---------------------------------------------------------------- the hub's stream

/// What the test server does with the next export request.
#[derive(Debug, Clone)]
enum Serve {
    /// The whole stream (from `skip`).
    Whole,
    /// This many bytes, then the connection drops.
    Cut(usize),
    /// This many bytes, then nothing until the test lets go.
    Stall(usize),
    /// These bytes, whatever was asked.
    Raw(Vec<u8>),
    /// A refusal with this status.
    Refuse(u16),
}

/// A stand-in for the hub's export endpoint over real TLS, serving the contract from the
/// real export library over a store directory.
struct ExportServer {
    port: u16,
    ca: PathBuf,
    _pki: tempfile::TempDir,
    /// What to do with each request, in order; `Whole` once they run out.
    plan: Arc<Mutex<Vec<Serve>>>,
    /// Each request's path and query.
    requests: Arc<Mutex<Vec<String>>>,
    /// Dropped to let a stalled response go.
    release: Mutex<Option<mpsc::Sender<()>>>,
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The export stream of `query` over `store`: the library's files in a tar, data files
/// first, the sidecar last; headers fixed so the bytes are deterministic.
fn stream_of(
    store: &Path,
    node: &str,
    query: &BTreeMap<String, Vec<String>>,
) -> Result<(Vec<u8>, String, i64), (u16, String)> {
    let one = |k: &str| query.get(k).and_then(|v| v.first()).cloned();
    let created: i64 = one("created").map_or(CREATED, |c| c.parse().unwrap());
    let source = StoreDirSource::open(store).unwrap();
    let mut options = ExportOptions::new(node, created);
    if let Some(stem) = one("stem") {
        options.stem = stem;
    }
    if let Some(l) = one("layout") {
        options.layout = Layout::from_name(&l).map_err(|e| (400, e.to_string()))?;
    }
    let format =
        Format::from_name(&one("format").unwrap_or_default()).map_err(|e| (400, e.to_string()))?;
    let selection = Selection {
        sensors: query.get("sensor").cloned().unwrap_or_default(),
        quantities: Selection::parse_quantities(
            &query.get("quantity").cloned().unwrap_or_default(),
        )
        .map_err(|e| (400, e.to_string()))?,
        from_utc_ns: one("from").and_then(|t| aloft_dataset::time::parse_utc(&t)),
        to_utc_ns: one("to").and_then(|t| aloft_dataset::time::parse_utc(&t)),
        resample: one("interval").map(|i| {
            let interval_ns =
                u64::try_from(humantime::parse_duration(&i).unwrap().as_nanos()).unwrap();
            match one("method").as_deref() {
                Some("mean") => aloft_dataset::Resample::Mean { interval_ns },
                _ => aloft_dataset::Resample::Decimate { interval_ns },
            }
        }),
    };
    let ds = Dataset::open(&source, node, selection, options).map_err(|e| (400, e.to_string()))?;
    let dir = tempfile::tempdir().unwrap();
    let mut out = DirOutput::new(dir.path(), false).unwrap();
    let files = export(&ds, format, &mut out).unwrap();
    out.commit().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for f in &files {
        let data = std::fs::read(dir.path().join(&f.path)).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(u64::try_from(created / 1_000_000_000).unwrap());
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, &f.path, data.as_slice()).unwrap();
    }
    let bytes = tar.into_inner().unwrap();
    let upto = format!("{}:{}", aloft_dataset::source::hex(&source.epoch().0), 99);
    Ok((bytes, upto, created))
}

impl ExportServer {
    fn start(store: &Path) -> ExportServer {
        let pki = tempfile::tempdir().unwrap();
        aloft_hub::pki::create(pki.path(), &["127.0.0.1".to_owned()]).unwrap();
        let config = aloft_hub::pki::server_config(pki.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let plan: Arc<Mutex<Vec<Serve>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let store = store.to_path_buf();
        {
            let plan = plan.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(tcp) = conn else { continue };
                    let (config, plan, requests, store, rx) = (
                        config.clone(),
                        plan.clone(),
                        requests.clone(),
                        store.clone(),
                        rx.clone(),
                    );
                    std::thread::spawn(move || {
                        let _ = serve_one(tcp, config, &plan, &requests, &store, &rx);
                    });
                }
            });
        }
        ExportServer {
            port,
            ca: pki.path().join("ca.pem"),
            _pki: pki,
            plan,
            requests,
            release: Mutex::new(Some(tx)),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn then(&self, serve: Vec<Serve>) {
        *self.plan.lock().unwrap() = serve;
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn let_go(&self) {
        self.release.lock().unwrap().take();
    }

    /// `aloftctl export` against this server.
    fn command(&self, home: &Path, extra: &[&str]) -> Command {
        let mut c = ctl_command(home);
        c.args([
            "export",
            "--hub",
            &self.url(),
            "--ca",
            self.ca.to_str().unwrap(),
            "--token",
            TOKEN,
            "-n",
            NODE,
        ]);
        c.args(extra);
        c
    }

    fn run(&self, home: &Path, extra: &[&str]) -> Run {
        let output = self.command(home, extra).output().unwrap();
        Run::of(extra, output)
    }
}

fn serve_one(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    plan: &Mutex<Vec<Serve>>,
    requests: &Mutex<Vec<String>>,
    store: &Path,
    release: &Mutex<mpsc::Receiver<()>>,
) -> std::io::Result<()> {
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    {
        let mut reader = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
    }
    let target = head
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let authorised = head
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}")));
    requests.lock().unwrap().push(target.clone());
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query_text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.entry(decode(k)).or_default().push(decode(v));
    }
    let status = |tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
                  code: u16,
                  message: &str|
     -> std::io::Result<()> {
        let body =
            serde_json::to_string(&aloft_api::Status::failure("Refused", message, code)).unwrap();
        write!(
            tls,
            "HTTP/1.1 {code} No\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        tls.conn.send_close_notify();
        tls.flush()
    };
    if !authorised {
        return status(&mut tls, 401, "no token");
    }
    let Some(node) = path
        .strip_prefix("/api/v1/nodes/")
        .and_then(|p| p.strip_suffix("/export"))
    else {
        return status(&mut tls, 404, "no such route");
    };
    let node = decode(node);
    if node != NODE {
        return status(&mut tls, 404, &format!("node {node:?} not found"));
    }
    let serve = {
        let mut plan = plan.lock().unwrap();
        if plan.is_empty() {
            Serve::Whole
        } else {
            plan.remove(0)
        }
    };
    if let Serve::Refuse(code) = serve {
        return status(&mut tls, code, "that snapshot is gone");
    }
    let (bytes, upto, created, skipped) = match &serve {
        Serve::Raw(raw) => (raw.clone(), "00:1".to_owned(), CREATED, None),
        _ => {
            let (bytes, upto, created) = match stream_of(store, &node, &query) {
                Ok(s) => s,
                Err((code, message)) => return status(&mut tls, code, &message),
            };
            let skip: Option<usize> = query
                .get("skip")
                .and_then(|v| v.first())
                .map(|s| s.parse().unwrap());
            if let Some(u) = query.get("upto").and_then(|v| v.first()) {
                assert_eq!(u, &upto, "a resume of another snapshot");
            }
            let from = skip.unwrap_or(0).min(bytes.len());
            (bytes[from..].to_vec(), upto, created, skip)
        }
    };
    write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nAloft-Export-Upto: {upto}\r\nAloft-Export-Created: {created}\r\nAloft-Export-Records: 1234\r\n"
    )?;
    if let Some(skip) = skipped {
        write!(tls, "Aloft-Export-Skipped: {skip}\r\n")?;
    }
    write!(tls, "\r\n")?;
    let limit = match serve {
        Serve::Cut(n) | Serve::Stall(n) => n.min(bytes.len()),
        _ => bytes.len(),
    };
    for chunk in bytes[..limit].chunks(7000) {
        write!(tls, "{:x}\r\n", chunk.len())?;
        tls.write_all(chunk)?;
        write!(tls, "\r\n")?;
    }
    tls.flush()?;
    match serve {
        Serve::Cut(_) => {
            // Dropped without the last chunk or TLS close_notify: a broken connection.
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Serve::Stall(_) => {
            let _ = release.lock().unwrap().recv();
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        _ => {
            write!(tls, "0\r\n\r\n")?;
            tls.conn.send_close_notify();
            tls.flush()
        }
    }
}

fn query_of(request: &str) -> BTreeMap<String, String> {
    request
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect()
}

#[test]
fn from_the_hub_tidy_and_wide_equal_the_library_and_a_cut_stream_is_resumed() {
    let store = flight_store();
    let server = ExportServer::start(store.path());
    let home = tempfile::tempdir().unwrap();
    for (layout, name) in [(Layout::Tidy, "tidy"), (Layout::Wide, "wide")] {
        let out = home.path().join(name);
        let run = server
            .run(
                home.path(),
                &[
                    "--format",
                    "csv",
                    "--layout",
                    name,
                    "-o",
                    out.to_str().unwrap(),
                ],
            )
            .ok();
        let want = library_files(store.path(), "aloft-glider-1", layout, Metadata::default());
        let got = files_in(&out);
        assert_eq!(names(&got), names(&want), "{name}: {run:?}");
        assert!(
            got == want,
            "{name}: the hub's files differ from the library's"
        );
        assert!(
            !run.stderr.contains('\r'),
            "a bar on a pipe: {:?}",
            run.stderr
        );
    }
    // The first response breaks after 10 000 bytes; the retry asks for the rest of the
    // same snapshot, and the files equal an uncut export.
    server.requests.lock().unwrap().clear();
    server.then(vec![Serve::Cut(10_000)]);
    let out = home.path().join("cut");
    server
        .run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        )
        .ok();
    let want = library_files(
        store.path(),
        "aloft-glider-1",
        Layout::Tidy,
        Metadata::default(),
    );
    assert!(files_in(&out) == want, "{:?}", names(&files_in(&out)));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let retry = query_of(&requests[1]);
    assert_eq!(
        retry.get("skip").map(String::as_str),
        Some("10000"),
        "{requests:?}"
    );
    assert_eq!(
        retry.get("created").map(String::as_str),
        Some(CREATED.to_string().as_str())
    );
    assert!(
        retry.get("upto").is_some_and(|u| u.ends_with(":99")),
        "{requests:?}"
    );
    // A resume the hub refuses starts over from the first byte.
    server.requests.lock().unwrap().clear();
    server.then(vec![Serve::Cut(5_000), Serve::Refuse(400)]);
    let out = home.path().join("refused-resume");
    let run = server
        .run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        )
        .ok();
    assert!(run.stderr.contains("starting over"), "{run:?}");
    assert!(files_in(&out) == want, "{:?}", names(&files_in(&out)));
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(
        query_of(&requests[1]).get("skip").map(String::as_str),
        Some("5000")
    );
    assert!(!query_of(&requests[2]).contains_key("skip"), "{requests:?}");
    // Bad requests: the hub's words, exit 1, nothing written.
    let bad = home.path().join("bad");
    let mut c = server.command(
        home.path(),
        &["--format", "csv", "-o", bad.to_str().unwrap()],
    );
    c.args(["--sensor", "barometer"]);
    let r = Run::of(&[], c.output().unwrap()).fails(1, "no sensor \"barometer\"");
    assert!(files_in(&bad).is_empty(), "{r:?}");
    let mut c = ctl_command(home.path());
    c.args([
        "export",
        "--hub",
        &server.url(),
        "--ca",
        server.ca.to_str().unwrap(),
        "--token",
        TOKEN,
        "-n",
        "glider-9",
        "--format",
        "csv",
        "-o",
        bad.to_str().unwrap(),
    ]);
    Run::of(&[], c.output().unwrap()).fails(1, "node \"glider-9\" not found");
    assert!(files_in(&bad).is_empty());
}

#[test]
fn an_interrupted_download_resumes_on_the_rerun() {
    let store = flight_store();
    let server = ExportServer::start(store.path());
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    server.then(vec![Serve::Stall(30_000)]);
    let mut child = server
        .command(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the download's state to record bytes, then kill the process.
    let state_file = out.join(".aloft-glider-1.export.json");
    let started = Instant::now();
    let recorded = loop {
        let bytes = std::fs::read(&state_file)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
            .and_then(|v| v["bytes"].as_u64())
            .unwrap_or(0);
        if bytes > 0 {
            break bytes;
        }
        assert!(started.elapsed() < DEADLINE, "no bytes were recorded");
        std::thread::yield_now();
    };
    child.kill().unwrap();
    child.wait().unwrap();
    server.let_go();
    let visible: Vec<String> = files_in(&out)
        .into_keys()
        .filter(|k| !k.starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    let run = server
        .run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        )
        .ok();
    let resumed_at = run
        .stderr
        .split("resumed at ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no `resumed at`: {run:?}"));
    assert!(resumed_at >= recorded, "{resumed_at} < {recorded}");
    let last = server.requests().last().cloned().unwrap();
    assert_eq!(
        query_of(&last).get("skip"),
        Some(&resumed_at.to_string()),
        "{last}"
    );
    let want = library_files(
        store.path(),
        "aloft-glider-1",
        Layout::Tidy,
        Metadata::default(),
    );
    assert!(files_in(&out) == want, "{:?}", names(&files_in(&out)));
    // A rerun with another query discards a stale part instead of continuing it.
    std::fs::write(out.join(".aloft-glider-1.export.part"), vec![1u8; 5000]).unwrap();
    std::fs::write(
        &state_file,
        br#"{"request":"another","upto":"00:1","created":"5","bytes":5000}"#,
    )
    .unwrap();
    let run = server
        .run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap(), "--force"],
        )
        .ok();
    assert!(run.stderr.contains("discarding"), "{run:?}");
    assert!(files_in(&out) == want);
}

/// A tar of raw entries (any name and type), with the end-of-archive marker if `end`.
fn raw_tar(entries: &[(&[u8], u8, &[u8])], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(*kind));
        if *kind == b'2' {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    if end {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

#[test]
fn a_hostile_stream_is_refused_and_nothing_is_written_outside_or_complete_looking() {
    let store = flight_store();
    let server = ExportServer::start(store.path());
    let home = tempfile::tempdir().unwrap();
    let nest = home.path().join("a/b");
    let out = nest.join("out");
    // Outside any hidden folder, so only the absolute-path rule can refuse it.
    let absolute = PathBuf::from(format!("/tmp/aloft-export-absolute-{}", std::process::id()));
    let sidecar: &[u8] = b"aloft-glider-1.sidecar.json";
    let absolute_name = absolute.to_str().unwrap().as_bytes().to_vec();
    let good_sidecar = br#"{"files":[]}"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dot-dot",
            raw_tar(
                &[(b"../../x", b'0', b"evil"), (sidecar, b'0', good_sidecar)],
                true,
            ),
            "not a plain relative file name",
        ),
        (
            "absolute",
            raw_tar(
                &[
                    (&absolute_name, b'0', b"evil"),
                    (sidecar, b'0', good_sidecar),
                ],
                true,
            ),
            "not a plain relative file name",
        ),
        (
            "symlink",
            raw_tar(
                &[
                    (b"aloft-glider-1.csv", b'2', b""),
                    (sidecar, b'0', good_sidecar),
                ],
                true,
            ),
            "symbolic link",
        ),
        (
            "no sidecar",
            raw_tar(&[(b"aloft-glider-1.csv", b'0', b"a,b\n")], true),
            "no sidecar",
        ),
        (
            "unlisted file",
            raw_tar(
                &[
                    (b"aloft-glider-1.csv", b'0', b"a,b\n"),
                    (sidecar, b'0', good_sidecar),
                ],
                true,
            ),
            "not listed in the sidecar",
        ),
    ];
    for (what, bytes, words) in cases {
        server.then(vec![Serve::Raw(bytes)]);
        let r = server.run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        );
        let r = r.fails(1, words);
        assert!(r.stderr.contains("nothing was written"), "{what}: {r:?}");
        assert!(
            files_in(&out).is_empty(),
            "{what}: {:?}",
            names(&files_in(&out))
        );
        assert!(
            !home.path().join("a/x").exists()
                && !home.path().join("x").exists()
                && !nest.join("x").exists(),
            "{what}"
        );
        assert!(!absolute.exists(), "{what}");
    }
    // A stream that always ends early: retried, then given up; only hidden partial files.
    let whole = raw_tar(
        &[
            (b"aloft-glider-1.csv", b'0', &[b'1'; 3000]),
            (sidecar, b'0', good_sidecar),
        ],
        true,
    );
    server.then(vec![Serve::Raw(whole[..2048].to_vec()); 8]);
    let r = server
        .run(
            home.path(),
            &["--format", "csv", "-o", out.to_str().unwrap()],
        )
        .fails(1, "rerun the same command to resume");
    let left = files_in(&out);
    assert!(
        left.keys()
            .all(|k| k.starts_with('.') && (k.ends_with(".part") || k.ends_with(".json"))),
        "{r:?}: {:?}",
        names(&left)
    );
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal_only() {
    let store = flight_store();
    let home = tempfile::tempdir().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "export",
            "--store",
            store.path().to_str().unwrap(),
            "-n",
            NODE,
            "--format",
            "csv",
            "-o",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let piped = ctl(
        home.path(),
        &args(&home.path().join("p"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .ok();
    assert!(piped.stderr.is_empty(), "{:?}", piped.stderr);
    let mut c = ctl_command(home.path());
    c.args(args(&home.path().join("t")));
    let text = stderr_on_a_terminal(c);
    assert!(
        text.contains("exporting"),
        "no progress on a terminal: {text:?}"
    );
}

/// Standard error of `command` when it is a terminal (a pseudo-terminal), as text.
fn stderr_on_a_terminal(mut command: Command) -> String {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty(3) fills two descriptors we then own; no name, termios or size.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let mut child = command.spawn().unwrap();
    drop(command);
    let mut master = std::fs::File::from(master);
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read while it runs (a full terminal would block it); EIO once the other side closed.
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&text)
    );
    String::from_utf8_lossy(&text).into_owned()
}
