//! The ingest figures of `cargo xtask bench mqtt`: how fast readings other programs publish
//! to `aloft/<node>/ingest/<sensor>` reach the agent's store, against the broker's own
//! ceiling measured in the same run.
//!
//! One Mosquitto on a free loopback port, one release agent with a single `mqtt` sensor
//! (no simulated flight: the figure is the bus's, not the sensors'), one `mosquitto_pub -l`
//! publishing [`MESSAGES`] messages of one reading each as fast as it can, and one
//! `mosquitto_sub` on the same topic. `mqtt.ingest_per_s` is the readings the agent counted
//! into its store writer per second, first to last; `mqtt.mosquitto_sub_per_s` the
//! messages `mosquitto_sub` received per second, first to last; `mqtt.ingest_vs_broker`
//! their ratio. All are QoS 0, as the agent subscribes.
//!
//! Invariant: every process started here is killed when dropped, so a failed run leaves
//! nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_hub_process::{Process, start_agent};
use crate::{cargo, run, target_dir};

/// Messages the publisher sends, one reading each.
pub const MESSAGES: u64 = 200_000;
/// The node's name in the bench's config.
const NODE: &str = "bench";
/// How long the bench waits for a step before it fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// A count that has not moved for this long is final.
const SETTLED: Duration = Duration::from_secs(2);

/// The three ingest figures.
#[derive(Debug, Clone, Copy)]
pub struct IngestFigures {
    /// Readings per second into the agent's store writer.
    pub ingest_per_s: f64,
    /// Messages per second `mosquitto_sub` received of the same publisher.
    pub mosquitto_sub_per_s: f64,
}

impl IngestFigures {
    /// The lines `cargo xtask bench mqtt` prints for them.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("mqtt.ingest_per_s {:.0} readings/s", self.ingest_per_s),
            format!(
                "mqtt.mosquitto_sub_per_s {:.0} messages/s",
                self.mosquitto_sub_per_s
            ),
            format!(
                "mqtt.ingest_vs_broker {:.2} ratio",
                self.ingest_per_s / self.mosquitto_sub_per_s
            ),
        ]
    }
}

/// Builds the release `aloft-agent` (debug with `ALOFT_BENCH_DEBUG`) and returns the folder
/// it is in.
pub fn build_agent() -> Result<std::path::PathBuf> {
    let debug = std::env::var_os("ALOFT_BENCH_DEBUG").is_some();
    let mut build = cargo();
    build.args(["build", "--quiet", "--locked", "-p", "aloft-agent"]);
    if !debug {
        build.arg("--release");
    }
    run("build the agent", &mut build)?;
    Ok(target_dir().join(if debug { "debug" } else { "release" }))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn metrics_text(addr: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The sampler's readings the agent has counted into its store writer.
fn stored(addr: &str) -> Option<f64> {
    let text = metrics_text(addr)?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("aloft_readings_total{") && l.contains("sensor=\"sampler\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// The first and last time a growing count moved, and its final value, once it has not
/// moved for [`SETTLED`] after reaching `at_least` or after the deadline.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    first: Option<Instant>,
    last: Option<Instant>,
    count: u64,
}

impl Span {
    fn rate(&self) -> Result<f64> {
        match (self.first, self.last) {
            (Some(a), Some(b)) if b > a && self.count > 1 => {
                Ok((self.count - 1) as f64 / (b - a).as_secs_f64())
            }
            _ => bail!("too few messages to time ({})", self.count),
        }
    }
}

/// Runs the ingest bench with the release binaries in `bin`.
pub fn ingest(bin: &Path, dir: &Path) -> Result<IngestFigures> {
    for tool in ["mosquitto", "mosquitto_pub", "mosquitto_sub"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            bail!(
                "{tool} is not installed (cargo xtask test installs mosquitto and mosquitto-clients)"
            );
        }
    }
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 0\n"
        ),
    )?;
    let _broker = Process(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start mosquitto")?,
    );
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("mosquitto did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let metrics = format!("127.0.0.1:{}", free_port()?);
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"{NODE}\"\n[store]\npath = {store:?}\nmax_bytes = 10_000_000_000\n\
             full_policy = \"drop-oldest\"\nflush_interval = \"1s\"\nretain_acked = \"1h\"\n\
             [metrics]\nlisten = \"{metrics}\"\n\
             [mqtt]\nbroker = \"127.0.0.1:{port}\"\n\
             [[sensor]]\nname = \"sampler\"\nkind = \"mqtt\"\nclient_id = \"bench-pub\"\n\
             max_readings_per_s = 100000.0\n\
             [sensor.quantities.air_temperature]\nmin = 150.0\nmax = 350.0\n",
            store = dir.join("store").display().to_string(),
        ),
    )?;
    let _agent = start_agent(bin, &config)?;
    let topic = format!("aloft/{NODE}/ingest/sampler");
    let pub_args = ["-h", "127.0.0.1", "-p", &port.to_string(), "-t", &topic];

    // The agent is subscribed once a probe reading reaches its store writer.
    let deadline = Instant::now() + DEADLINE;
    loop {
        Command::new("mosquitto_pub")
            .args(pub_args)
            .args(["-m", r#"{"quantity":"air_temperature","value":250}"#])
            .status()?;
        std::thread::sleep(Duration::from_millis(200));
        if stored(&metrics).is_some_and(|n| n >= 1.0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent took no reading from the bus");
        }
    }
    let baseline = stored(&metrics).context("agent metrics")? as u64;

    // The broker's own ceiling: mosquitto_sub on the same topic, timed per line.
    let sub_span = Arc::new(Mutex::new(Span::default()));
    let mut sub = Process(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", &topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start mosquitto_sub")?,
    );
    let out = sub.0.stdout.take().context("mosquitto_sub stdout")?;
    let sink = Arc::clone(&sub_span);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if line.is_err() {
                break;
            }
            let now = Instant::now();
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            s.first.get_or_insert(now);
            s.last = Some(now);
            s.count += 1;
        }
    });
    // mosquitto_sub prints nothing when it is subscribed: give it the broker's round trip.
    std::thread::sleep(Duration::from_millis(500));

    let mut publisher = Command::new("mosquitto_pub")
        .args(pub_args)
        .args(["-l", "-q", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("start mosquitto_pub")?;
    let mut stdin = publisher.stdin.take().context("mosquitto_pub stdin")?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = String::with_capacity(64 * 1024);
        for n in 0..MESSAGES {
            buf.push_str(&format!(
                "{{\"quantity\":\"air_temperature\",\"value\":{}}}\n",
                200.0 + (n % 1000) as f64 / 10.0
            ));
            if buf.len() > 60_000 {
                stdin.write_all(buf.as_bytes())?;
                buf.clear();
            }
        }
        stdin.write_all(buf.as_bytes())
    });

    // The agent's count, polled; its first and last move.
    let mut agent_span = Span::default();
    let mut seen = baseline;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = Instant::now();
        let n = stored(&metrics).map_or(seen, |n| n as u64);
        if n > seen {
            agent_span.first.get_or_insert(now);
            agent_span.last = Some(now);
            seen = n;
        }
        let quiet = agent_span.last.is_some_and(|l| now - l > SETTLED);
        if quiet || now > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Readings in the window between the first and last observed move: the count less
    // what had arrived before the first poll that saw it move.
    agent_span.count = seen - baseline;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the publisher's writer panicked"))??;
    let _ = publisher.wait();
    let sub_final = *sub_span.lock().unwrap_or_else(|e| e.into_inner());
    if agent_span.count < MESSAGES / 2 {
        let refused: Vec<String> = metrics_text(&metrics)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("aloft_agent_ingest_") && !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect();
        bail!(
            "the agent stored {} of {MESSAGES} readings at {:.0}/s (mosquitto_sub saw {} at \
             {:.0}/s): {}",
            agent_span.count,
            agent_span.rate().unwrap_or(0.0),
            sub_final.count,
            sub_final.rate().unwrap_or(0.0),
            refused.join("; ")
        );
    }
    Ok(IngestFigures {
        ingest_per_s: agent_span.rate()?,
        mosquitto_sub_per_s: sub_final.rate()?,
    })
}
