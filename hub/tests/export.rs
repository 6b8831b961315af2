//! The export route against the real hub process: the simulated flight synced over the
//! protocol, exported as a tar stream, compared file by file with what the export library
//! gives from the same records in memory; snapshots, resumed downloads, bad requests,
//! roles and temporary files.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_dataset::source::MemorySource;
use aloft_dataset::{Completeness, Dataset, DirOutput, ExportOptions};
use aloft_hub::testing::{
    HubProcess, InitTokens, NodeClient, api_get, api_get_streaming, api_request, client_config,
    hello,
};
use aloft_protocol::sync::{BacklogReport, Downlink, LiveUpdate, Uplink};
use aloft_protocol::{Record, StoreEpoch, TimeSource, Timestamp};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use http_body_util::BodyExt;
use rustls::ClientConfig;

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const EPOCH: StoreEpoch = StoreEpoch([0x5e; 16]);
const NODE: &str = "glider";

const CONFIG: &str = r#"
[export]
title = "Wave flight over the Sierra"
institution = "Example Soaring Institute"
principal_investigator = "Lovelace, Ada"
project = "Aloft test"
platform = "glider D-KXYZ"
license = "CC-BY-4.0"
pilot = "A. Lovelace"
glider_type = "Stemme S12"
glider_id = "D-KXYZ"
"#;

struct Running {
    _dir: tempfile::TempDir,
    data: PathBuf,
    hub: HubProcess,
    tokens: InitTokens,
    tls: Arc<ClientConfig>,
}

fn start() -> Running {
    start_with(|_| ())
}

/// `init`, `prepare` the data directory, `run`.
fn start_with(prepare: impl FnOnce(&Path)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, NODE).unwrap();
    std::fs::write(data.join("hub.toml"), CONFIG).unwrap();
    prepare(&data);
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    Running {
        _dir: dir,
        data,
        hub,
        tokens,
        tls,
    }
}

/// The flight's records numbered from 0.
fn flight(opts: FlightOptions) -> Vec<(u64, Record)> {
    FlightRecords::new(opts)
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect()
}

/// Sends the records of `first..=last` in batches.
async fn sync(client: &mut NodeClient, records: &[(u64, Record)], first: u64, last: u64) {
    let chosen: Vec<(u64, Record)> = records
        .iter()
        .filter(|(s, _)| (first..=last).contains(s))
        .cloned()
        .collect();
    for chunk in chosen.chunks(2000) {
        let (a, b) = (chunk[0].0, chunk[chunk.len() - 1].0);
        client.batch(EPOCH, a, b, chunk).await.unwrap();
    }
}

async fn backlog(client: &mut NodeClient, records: u64) {
    client
        .send(&Uplink::Live(LiveUpdate {
            time: Timestamp::with_utc(1, 1_780_000_000_000_000_000, TimeSource::Gnss),
            readings: vec![],
            sensors: vec![],
            backlog: BacklogReport {
                records,
                bytes: records * 40,
                oldest_age_s: None,
            },
        }))
        .await
        .unwrap();
    // A ping answered means the live update before it was handled.
    client.send(&Uplink::Ping { nonce: records }).await.unwrap();
    loop {
        if let Downlink::Pong { .. } = client.recv().await.unwrap() {
            break;
        }
    }
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

async fn get(run: &Running, token: &str, path: &str) -> Answer {
    let response = api_get_streaming(run.hub.addr, &run.tls, token, path)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (path, content)
        })
        .collect()
}

/// The names GNU tar lists in `bytes` (a reader nobody here wrote); it must also find the
/// archive's end without complaint.
fn gnu_tar_list(bytes: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.tar");
    std::fs::write(&file, bytes).unwrap();
    let output = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What the library writes from `records` in memory, in the order it wrote the files.
fn local(records: &[(u64, Record)], query: &str, created: i64) -> Vec<(String, Vec<u8>)> {
    let request = aloft_hub::export::request::ExportRequest::parse(query).unwrap();
    let source = MemorySource::new(
        records
            .iter()
            .map(|(s, r)| (EPOCH, *s, r.clone()))
            .collect(),
        Completeness::default(),
    );
    let mut options = ExportOptions::new(NODE, created);
    if let Some(stem) = &request.stem {
        options.stem = stem.clone();
    }
    options.layout = request.layout;
    options.metadata = aloft_hub::config::HubConfig::parse(CONFIG).unwrap().export;
    let ds = Dataset::open(&source, NODE, request.selection(), options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut out = DirOutput::new(dir.path(), false).unwrap();
    aloft_dataset::export(&ds, request.format, &mut out).unwrap();
    let files = out.commit().unwrap();
    files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                std::fs::read(dir.path().join(&f.path)).unwrap(),
            )
        })
        .collect()
}

/// The hub's files equal the library's, byte for byte, but for the sidecar (whose
/// completeness says where the records were read), which must list the same files.
fn assert_same_files(hub: &[(String, Vec<u8>)], local: &[(String, Vec<u8>)]) -> serde_json::Value {
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(hub), names(local));
    let (sidecar_name, sidecar) = hub.last().unwrap();
    assert!(sidecar_name.ends_with(".sidecar.json"), "{sidecar_name}");
    for ((name, a), (_, b)) in hub.iter().zip(local).take(hub.len() - 1) {
        assert!(
            a == b,
            "{name} differs ({} bytes against {})",
            a.len(),
            b.len()
        );
    }
    let sidecar: serde_json::Value = serde_json::from_slice(sidecar).unwrap();
    let local_sidecar: serde_json::Value =
        serde_json::from_slice(&local.last().unwrap().1).unwrap();
    assert_eq!(sidecar["files"], local_sidecar["files"]);
    assert_eq!(sidecar["totals"], local_sidecar["totals"]);
    assert_eq!(sidecar["gaps"], local_sidecar["gaps"]);
    sidecar
}

fn flight_options() -> FlightOptions {
    FlightOptions {
        duration_s: 240.0,
        gps_hz: 2.0,
        static_hz: 4.0,
        pitot_hz: 4.0,
        first_fix_s: 15.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(20.0),
        ..FlightOptions::default()
    }
}

async fn viewer_token(run: &Running) -> String {
    let (status, body) = api_request(
        run.hub.addr,
        &run.tls,
        Some(&run.tokens.admin),
        "POST",
        "/api/v1/tokens",
        Some(&serde_json::json!({"spec": {"role": "viewer", "description": "export reader"}})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    created["status"]["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tar_holds_the_files_the_library_writes_from_the_same_records() {
    let run = start();
    let records = flight(flight_options());
    let last = records.last().unwrap().0;
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello(NODE, EPOCH)).await.unwrap();
    sync(&mut client, &records, 0, last).await;
    backlog(&mut client, 0).await;
    let viewer = viewer_token(&run).await;

    for query in [
        "format=csv",
        "format=csv&layout=wide",
        "format=csv&sensor=static&sensor=gps&quantity=air_pressure&quantity=latitude\
         &from=2026-05-28T20:26:50Z&to=1780000200000000000&interval=10s&method=mean&stem=wave-1",
        "format=csv&sensor=pitot&interval=5s",
    ] {
        let answer = get(
            &run,
            &viewer,
            &format!("/api/v1/nodes/{NODE}/export?{query}"),
        )
        .await;
        assert_eq!(
            answer.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("content-type"), "application/x-tar");
        assert_eq!(
            answer.header("aloft-export-upto"),
            format!("{}:{last}", aloft_hub::clock::hex(&EPOCH.0))
        );
        assert_eq!(
            answer.header("aloft-export-records"),
            (last + 1).to_string()
        );
        assert_eq!(answer.header("aloft-export-skipped"), "0");
        let created: i64 = answer.header("aloft-export-created").parse().unwrap();
        let hub_files = untar(&answer.body);
        assert_eq!(
            gnu_tar_list(&answer.body),
            hub_files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        );
        let sidecar = assert_same_files(&hub_files, &local(&records, query, created));
        assert_eq!(sidecar["completeness"]["status"], "complete", "{query}");
        assert_eq!(sidecar["completeness"]["origin"], "hub");
        assert_eq!(sidecar["completeness"]["epochs"][0]["watermark"], last);
        // The tar's headers carry nothing but the name, size and creation time.
        let mut archive = tar::Archive::new(answer.body.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.mode().unwrap(), 0o644);
            assert_eq!(h.mtime().unwrap(), (created / 1_000_000_000) as u64);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.username().unwrap(), Some(""));
        }
    }
    // Metadata from hub.toml reaches the sidecar.
    let answer = get(
        &run,
        &run.tokens.admin,
        &format!("/api/v1/nodes/{NODE}/export?format=csv"),
    )
    .await;
    assert_eq!(answer.status, 200);

    // A node token cannot read the API, so cannot export.
    let answer = get(
        &run,
        &run.tokens.node,
        &format!("/api/v1/nodes/{NODE}/export?format=csv"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["reason"], "Forbidden");
    let answer = get(
        &run,
        "not-a-token",
        &format!("/api/v1/nodes/{NODE}/export?format=csv"),
    )
    .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_download_gets_the_same_bytes_while_the_node_keeps_syncing() {
    let run = start();
    let records = flight(flight_options());
    let last = records.last().unwrap().0;
    let (hole_first, hole_last, held_last) = (last / 4, last / 3, last / 2);
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello(NODE, EPOCH)).await.unwrap();
    // Held: 0..hole, then beyond the hole up to held_last; the hole is not synced yet.
    sync(&mut client, &records, 0, hole_first - 1).await;
    sync(&mut client, &records, hole_last + 1, held_last).await;
    // The node's backlog ends at most at the watermark it was told (before the hole) plus
    // this many: within what it syncs below, so that the report is met without a new one.
    let reported = last / 2;
    backlog(&mut client, reported).await;
    let viewer = viewer_token(&run).await;
    let path = format!("/api/v1/nodes/{NODE}/export?format=csv&layout=wide");
    let first = get(&run, &viewer, &path).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let upto = first.header("aloft-export-upto").to_owned();
    let created = first.header("aloft-export-created").to_owned();
    assert_eq!(
        upto,
        format!("{}:{held_last}", aloft_hub::clock::hex(&EPOCH.0))
    );
    let held: Vec<(u64, Record)> = records
        .iter()
        .filter(|(s, _)| *s < hole_first || (hole_last < *s && *s <= held_last))
        .cloned()
        .collect();
    assert_eq!(first.header("aloft-export-records"), held.len().to_string());
    let files = untar(&first.body);
    let sidecar = assert_same_files(
        &files,
        &local(&held, "format=csv&layout=wide", created.parse().unwrap()),
    );
    let completeness = &sidecar["completeness"];
    assert_eq!(completeness["status"], "partial");
    assert_eq!(completeness["missing"][0]["first"], hole_first);
    assert_eq!(completeness["missing"][0]["last"], hole_last);
    assert_eq!(completeness["missing"][0]["why"], "not_synced");
    assert_eq!(completeness["epochs"][0]["watermark"], hole_first - 1);
    assert_eq!(completeness["epochs"][0]["newest"], held_last);
    assert_eq!(completeness["node_backlog"]["unsent_records"], reported);
    assert_eq!(completeness["node_backlog"]["arrived"], false);

    // The node fills the hole and syncs the rest, and goes quiet before its next report:
    // its last report still says `reported` records.
    sync(&mut client, &records, hole_first, hole_last).await;
    sync(&mut client, &records, held_last + 1, last).await;
    let again_path = format!("{path}&upto={upto}&created={created}");
    let again = get(&run, &viewer, &again_path).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("aloft-export-upto"), upto);
    assert!(
        again.body == first.body,
        "the same snapshot gives the same bytes"
    );

    // A cut download resumes from any byte.
    let total = first.body.len();
    for skip in [0, 1, 511, 512, total / 3, total - 1024, total] {
        let part = get(&run, &viewer, &format!("{again_path}&skip={skip}")).await;
        assert_eq!(part.status, 200);
        assert_eq!(part.header("aloft-export-skipped"), skip.to_string());
        assert!(part.body == first.body[skip..], "skip={skip}");
    }
    // Beyond the end the stream is cut, never answered as complete.
    let beyond = api_get_streaming(
        run.hub.addr,
        &run.tls,
        &viewer,
        &format!("{again_path}&skip={}", total + 1),
    )
    .await
    .unwrap();
    assert!(beyond.into_body().collect().await.is_err());

    // A new export sees everything now held.
    let now = get(&run, &viewer, &path).await;
    assert_eq!(
        now.header("aloft-export-records"),
        records.len().to_string()
    );
    let sidecar = assert_same_files(
        &untar(&now.body),
        &local(
            &records,
            "format=csv&layout=wide",
            now.header("aloft-export-created").parse().unwrap(),
        ),
    );
    // The stale report's records have all arrived: the export is complete, not partial.
    assert_eq!(
        sidecar["completeness"]["status"], "complete",
        "{}",
        sidecar["completeness"]
    );
    assert_eq!(sidecar["completeness"]["node_backlog"]["arrived"], true);
    assert_eq!(
        sidecar["completeness"]["node_backlog"]["unsent_records"],
        reported
    );

    // A new report whose records have not arrived makes a new export partial again.
    backlog(&mut client, 7).await;
    let later = get(&run, &viewer, &path).await;
    let sidecar: serde_json::Value = serde_json::from_slice(
        &untar(&later.body)
            .into_iter()
            .find(|(name, _)| name.ends_with(".sidecar.json"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(sidecar["completeness"]["status"], "partial");
    assert_eq!(sidecar["completeness"]["node_backlog"]["arrived"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_status_naming_what_is_wrong() {
    let run = start();
    let records = flight(FlightOptions {
        duration_s: 60.0,
        ..FlightOptions::default()
    });
    let last = records.last().unwrap().0;
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello(NODE, EPOCH)).await.unwrap();
    sync(&mut client, &records, 0, last).await;
    let token = run.tokens.admin.clone();
    let answer = get(&run, &token, "/api/v1/nodes/nobody/export?format=csv").await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    for (query, says) in [
        ("", "format is required"),
        ("format=xls", "unknown format"),
        ("format=csv&layout=long", "unknown layout"),
        ("format=csv&sensor=thermometer", "no sensor \"thermometer\""),
        ("format=csv&quantity=warp_speed", "unknown quantity"),
        (
            "format=csv&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "is empty",
        ),
        ("format=csv&from=5&to=5", "is empty"),
        ("format=csv&from=noon", "from="),
        ("format=csv&interval=0s", "longer than zero"),
        ("format=csv&interval=sometimes", "interval="),
        ("format=csv&interval=1s&method=median", "unknown method"),
        ("format=csv&method=mean", "needs an interval"),
        ("format=csv&upto=abc", "upto="),
        ("format=csv&created=yesterday", "created="),
        ("format=csv&skip=-4", "skip="),
        ("format=csv&stem=a%2Fb", "stem="),
        ("format=csv&stem=..", "stem="),
        ("format=csv&format=csv", "more than once"),
        ("format=csv&nodes=x", "unknown parameter"),
    ] {
        let answer = get(
            &run,
            &token,
            &format!("/api/v1/nodes/{NODE}/export?{query}"),
        )
        .await;
        assert_eq!(answer.status, 400, "{query}");
        let status = answer.json();
        assert_eq!(status["kind"], "Status", "{query}");
        assert_eq!(status["code"], 400);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{query}: {message:?} does not say {says:?}"
        );
    }
}

#[test]
fn malformed_queries_never_get_a_500() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = start();
    let records = flight(FlightOptions {
        duration_s: 30.0,
        ..FlightOptions::default()
    });
    let last = records.last().unwrap().0;
    runtime.block_on(async {
        let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
            .await
            .unwrap();
        client.hello(hello(NODE, EPOCH)).await.unwrap();
        sync(&mut client, &records, 0, last).await;
    });
    let pieces = prop_oneof![
        Just("format=csv".to_owned()),
        "(format|layout|sensor|quantity|from|to|interval|method|stem|upto|created|skip|[a-z]{1,5})=[\\PC%&=+:,/.]{0,24}",
        "[\\PC%&=]{0,16}",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
    runner
        .run(&proptest::collection::vec(pieces, 0..6), |parts| {
            let query = parts.join("&");
            let path = format!("/api/v1/nodes/{NODE}/export?{query}");
            // A query the URI grammar refuses never reaches the hub; the rest do.
            if path.parse::<hyper::Uri>().is_err() {
                return Ok(());
            }
            let (status, body) = runtime
                .block_on(api_get(
                    run.hub.addr,
                    &run.tls,
                    Some(&run.tokens.admin),
                    &path,
                ))
                .unwrap();
            prop_assert!(status == 200 || status == 400, "{query}: {status}");
            if status == 400 {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                prop_assert_eq!(&v["kind"], "Status");
                prop_assert!(!v["message"].as_str().unwrap_or_default().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

fn spooled(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("export-tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Whether the hub process holds a file of its export folder open.
fn holds_spool(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| l.to_string_lossy().contains("export-tmp"))
            })
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_files_are_gone_after_a_complete_and_an_aborted_download() {
    let run = start();
    // Large enough that the stream outlasts the buffers between the hub and the client.
    let records = flight(FlightOptions {
        duration_s: 1800.0,
        gps_hz: 2.0,
        static_hz: 10.0,
        pitot_hz: 10.0,
        ..FlightOptions::default()
    });
    let last = records.last().unwrap().0;
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello(NODE, EPOCH)).await.unwrap();
    sync(&mut client, &records, 0, last).await;
    let pid = run.hub.pid().unwrap();
    let path = format!("/api/v1/nodes/{NODE}/export?format=csv");

    let complete = get(&run, &run.tokens.admin, &path).await;
    assert_eq!(complete.status, 200);
    assert!(
        complete.body.len() > 8 << 20,
        "{} bytes",
        complete.body.len()
    );
    assert_eq!(untar(&complete.body).len(), 2);
    assert!(spooled(&run.data).is_empty());

    // A client that reads a little and goes away.
    let response = api_get_streaming(run.hub.addr, &run.tls, &run.tokens.admin, &path)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = 0;
    while got < 4096 {
        let frame = body.frame().await.unwrap().unwrap();
        got += frame.data_ref().map_or(0, |d| d.len());
    }
    // The first file is being copied out of its spool while the client stalls.
    assert_eq!(spooled(&run.data).len(), 1, "one file spooled at a time");
    assert!(holds_spool(pid));
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !spooled(&run.data).is_empty() || holds_spool(pid) {
        assert!(Instant::now() < deadline, "the spool outlived the client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_while_spooling_fails_the_export_and_leaves_nothing() {
    let mut tmpfs = None;
    let run = start_with(|data| {
        let spool = data.join("export-tmp");
        std::fs::create_dir_all(&spool).unwrap();
        tmpfs = aloft_test_support::mounts::Tmpfs::mount(&spool, "512k");
    });
    let Some(_fs) = tmpfs else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a tmpfs could not be mounted (root is needed)"
        );
        eprintln!("export disk full: SKIPPED: could not mount a tmpfs (not root?)");
        return;
    };
    let records = flight(FlightOptions {
        duration_s: 300.0,
        gps_hz: 2.0,
        static_hz: 10.0,
        pitot_hz: 10.0,
        ..FlightOptions::default()
    });
    let last = records.last().unwrap().0;
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello(NODE, EPOCH)).await.unwrap();
    sync(&mut client, &records, 0, last).await;
    let response = api_get_streaming(
        run.hub.addr,
        &run.tls,
        &run.tokens.admin,
        &format!("/api/v1/nodes/{NODE}/export?format=csv"),
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await;
    if status == 200 {
        // Failed after the answer started: the body is cut, never a complete tar.
        assert!(body.is_err(), "a complete body from a full disk");
    } else {
        assert_eq!(status, 500);
        let status: serde_json::Value = serde_json::from_slice(&body.unwrap().to_bytes()).unwrap();
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains("No space left"), "{message}");
    }
    assert!(spooled(&run.data).is_empty(), "{:?}", spooled(&run.data));
}
