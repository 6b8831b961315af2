//! The link simulator: a TCP forwarder on loopback between the agent and the hub that
//! misbehaves the way the glider's Starlink link does, on command.
//!
//! Faults ([`Action`]): a cut (both sides get an RST: SO_LINGER 0, no FIN), a blackhole
//! (nothing is forwarded either way, the sockets stay open and silent: the half-open link
//! that leaves KubeEdge nodes stuck), a throttle (bandwidth and one-way latency, with a
//! small bounded link queue), an outage (existing connections cut, new ones reset at once),
//! a flap (short outages every N s), and a cut in the middle of a frame (half of the next
//! chunk from the agent is forwarded, then both sides are reset). [`Script`]s of timed
//! actions drive it.
//!
//! Invariants: bytes are forwarded in order and never altered; a byte is counted
//! ([`Link::bytes`]) once, when it is written to the other side, so the counts are what
//! crossed the link. The link queue is bounded (the throttle's `queue` plus what is in
//! flight for its latency): like a router's buffer, it does not hide minutes of backlog.
//! The simulator runs on its own runtime thread, so synchronous tests drive it without one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Largest chunk read at once when the link is not throttled.
const CHUNK: usize = 16 * 1024;
/// Link queue when not throttled: enough to keep loopback busy.
const UNTHROTTLED_QUEUE: usize = 4 * CHUNK;

/// Why the link could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Its runtime could not be built.
    #[error("cannot start the link's runtime: {0}")]
    Runtime(std::io::Error),
    /// Its listening socket could not be bound.
    #[error("cannot listen on loopback: {0}")]
    Listen(std::io::Error),
}

/// Bandwidth and latency of a throttled link, the same both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Bits per second each way.
    pub bits_per_s: u64,
    /// Added one way (Starlink: about 20 ms, so ~40 ms round trip).
    pub one_way_latency: Duration,
    /// How long a queue the link holds beyond what is in flight, as time at its bandwidth
    /// (a router's buffer).
    pub queue: Duration,
}

impl Throttle {
    /// A Starlink-like link of `bits_per_s`: 20 ms each way, 100 ms of queue.
    pub fn starlink(bits_per_s: u64) -> Self {
        Self {
            bits_per_s,
            one_way_latency: Duration::from_millis(20),
            queue: Duration::from_millis(100),
        }
    }

    fn bytes_per_s(&self) -> f64 {
        self.bits_per_s.max(8) as f64 / 8.0
    }

    /// Time on the wire of `bytes`.
    fn serialisation(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_s())
    }

    /// Read size: about 10 ms of the link, so pacing is smooth.
    fn chunk(&self) -> usize {
        ((self.bytes_per_s() / 100.0) as usize).clamp(256, CHUNK)
    }

    /// The most bytes the link holds: in flight for its latency, plus its queue.
    fn capacity(&self) -> usize {
        let held = self.bytes_per_s() * (self.one_way_latency + self.queue).as_secs_f64();
        (held as usize).max(2 * self.chunk())
    }
}

/// One thing the link does, now.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Reset every open connection (RST both sides); new connections are served.
    Cut,
    /// Forward half of the next chunk from the agent, then reset both sides.
    CutMidFrame,
    /// Forward nothing either way on any connection, old or new, and close nothing:
    /// the half-open link. [`Action::Heal`] lets the held bytes through again.
    Blackhole,
    /// An outage: reset every open connection and every new one at once.
    Down,
    /// Throttle the link, or lift the throttle with `None`. Faults come and go under it.
    Throttle(Option<Throttle>),
    /// Short outages ([`Action::Down`] for `outage`) every `every`, until the next action.
    Flap {
        /// Time between the starts of two outages.
        every: Duration,
        /// How long each lasts.
        outage: Duration,
    },
    /// Forward again (the throttle stays).
    Heal,
}

/// Timed actions: each step runs `after` the previous one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    /// (wait, then do).
    pub steps: Vec<(Duration, Action)>,
}

impl Script {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step: after `wait`, do `action`.
    pub fn then(mut self, wait: Duration, action: Action) -> Self {
        self.steps.push((wait, action));
        self
    }

    /// This script `times` times over.
    pub fn repeat(self, times: usize) -> Self {
        let steps = (0..times)
            .flat_map(|_| self.steps.iter().copied())
            .collect();
        Self { steps }
    }

    /// The sum of its waits.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|(wait, _)| *wait).sum()
    }
}

/// Whether connections forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Blackhole,
    Down,
}

/// Bytes that crossed the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Agent to hub.
    pub up: u64,
    /// Hub to agent.
    pub down: u64,
}

impl Bytes {
    /// Both ways.
    pub fn total(&self) -> u64 {
        self.up + self.down
    }
}

#[derive(Debug)]
struct Shared {
    mode: watch::Sender<Mode>,
    throttle: watch::Sender<Option<Throttle>>,
    /// Bumped to reset every open connection.
    cuts: watch::Sender<u64>,
    /// Set to cut the next chunk from the agent in half.
    cut_mid_frame: watch::Sender<bool>,
    up: AtomicU64,
    down: AtomicU64,
    accepted: AtomicU64,
    last_accept: Mutex<Option<Instant>>,
    /// The running flap or script, stopped by the next action.
    flap: Mutex<Option<AbortHandle>>,
}

impl Shared {
    fn apply(self: &Arc<Self>, action: Action, runtime: &tokio::runtime::Handle) {
        if let Some(flap) = self
            .flap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            flap.abort();
        }
        tracing::debug!(?action, "Link action.");
        match action {
            Action::Cut => self.cut(),
            Action::CutMidFrame => {
                self.cut_mid_frame.send_replace(true);
            }
            Action::Blackhole => {
                self.mode.send_replace(Mode::Blackhole);
            }
            Action::Down => {
                self.mode.send_replace(Mode::Down);
                self.cut();
            }
            Action::Throttle(throttle) => {
                self.throttle.send_replace(throttle);
            }
            Action::Flap { every, outage } => {
                let shared = Arc::clone(self);
                let task = runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(every.saturating_sub(outage)).await;
                        shared.mode.send_replace(Mode::Down);
                        shared.cut();
                        tokio::time::sleep(outage).await;
                        shared.mode.send_replace(Mode::Pass);
                    }
                });
                *self.flap.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(task.abort_handle());
            }
            Action::Heal => {
                self.mode.send_replace(Mode::Pass);
                self.cut_mid_frame.send_replace(false);
            }
        }
    }

    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// The link simulator. Dropping it stops it and resets its connections.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Link {
    /// Starts a link on a free loopback port that forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Self, LinkError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("link")
            .enable_all()
            .build()
            .map_err(LinkError::Runtime)?;
        // Bound without block_on, so a link can start from inside another runtime.
        let bound = std::net::TcpListener::bind("127.0.0.1:0").map_err(LinkError::Listen)?;
        bound.set_nonblocking(true).map_err(LinkError::Listen)?;
        let addr = bound.local_addr().map_err(LinkError::Listen)?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(bound).map_err(LinkError::Listen)?
        };
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(Mode::Pass),
            throttle: watch::Sender::new(None),
            cuts: watch::Sender::new(0),
            cut_mid_frame: watch::Sender::new(false),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            last_accept: Mutex::new(None),
            flap: Mutex::new(None),
        });
        runtime.spawn(accept(listener, upstream, Arc::clone(&shared)));
        tracing::debug!(%addr, %upstream, "Link up.");
        Ok(Self {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// Where the agent connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Does `action` now.
    pub fn apply(&self, action: Action) {
        if let Some(runtime) = &self.runtime {
            self.shared.apply(action, runtime.handle());
        }
    }

    /// Plays `script` in the background; a later [`Link::apply`] or script stops it.
    pub fn play(&self, script: Script) -> Played {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let Some(runtime) = &self.runtime else {
            return Played(done_rx);
        };
        let shared = Arc::clone(&self.shared);
        let handle = runtime.handle().clone();
        runtime.spawn(async move {
            for (wait, action) in script.steps {
                tokio::time::sleep(wait).await;
                shared.apply(action, &handle);
            }
            let _ = done_tx.send(());
        });
        Played(done_rx)
    }

    /// Bytes that crossed so far. A chunk is counted once its write to the far side
    /// returned, so the far side (and an echo of it) may see it a moment earlier.
    pub fn bytes(&self) -> Bytes {
        Bytes {
            up: self.shared.up.load(Ordering::Relaxed),
            down: self.shared.down.load(Ordering::Relaxed),
        }
    }

    /// Connections accepted so far (reset ones included).
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// When the newest connection was accepted.
    pub fn last_connection_at(&self) -> Option<Instant> {
        *self
            .shared
            .last_accept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A script playing in the background.
#[derive(Debug)]
pub struct Played(std::sync::mpsc::Receiver<()>);

impl Played {
    /// Waits up to `timeout` for the script's last step; whether it ran.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.0.recv_timeout(timeout).is_ok()
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "Link could not accept.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        *shared
            .last_accept
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if *shared.mode.borrow() == Mode::Down {
            tracing::debug!(%peer, "Link down: reset.");
            reset(&client);
            continue;
        }
        tokio::spawn(connection(client, upstream, Arc::clone(&shared)));
    }
}

/// Makes the close of `stream` an RST instead of a FIN.
fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!(error = %e, "Cannot set SO_LINGER 0.");
    }
}

/// How one direction ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Its sender closed (FIN) and everything was delivered.
    Finished,
    /// A reset, an error, or a cut: reset both sides.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut cuts = shared.cuts.subscribe();
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(e) => {
            tracing::debug!(error = %e, "Link cannot reach the hub: reset.");
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, Direction::Up, &shared);
        let down = pump(server_read, client_write, Direction::Down, &shared);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                changed = cuts.changed() => {
                    if changed.is_ok() {
                        break End::Reset;
                    }
                }
                end = &mut up, if !up_done => {
                    if end == End::Reset { break End::Reset; }
                    up_done = true;
                }
                end = &mut down, if !down_done => {
                    if end == End::Reset { break End::Reset; }
                    down_done = true;
                }
            }
            if up_done && down_done {
                break End::Finished;
            }
        }
    };
    if end == End::Reset {
        reset(&client);
        reset(&server);
    }
}

/// Forwards one direction under the link's mode and throttle until its sender closes or
/// something resets.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    direction: Direction,
    shared: &Shared,
) -> End {
    let mut mode = shared.mode.subscribe();
    let mut throttle_rx = shared.throttle.subscribe();
    let mut cut_mid_frame = shared.cut_mid_frame.subscribe();
    let counter = match direction {
        Direction::Up => &shared.up,
        Direction::Down => &shared.down,
    };
    // (deliver at, bytes): what the link holds.
    let mut queue: VecDeque<(tokio::time::Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0usize;
    let mut wire_free = tokio::time::Instant::now();
    let mut sender_closed = false;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let throttle = *throttle_rx.borrow_and_update();
        let passing = *mode.borrow_and_update() == Mode::Pass;
        if sender_closed && queue.is_empty() {
            let _ = to.shutdown().await;
            return End::Finished;
        }
        let (chunk, capacity) = match throttle {
            Some(t) => (t.chunk(), t.capacity()),
            None => (CHUNK, UNTHROTTLED_QUEUE),
        };
        let can_read = passing && !sender_closed && queued < capacity;
        let next_delivery = queue.front().map(|(at, _)| *at);
        tokio::select! {
            _ = mode.changed() => {}
            _ = throttle_rx.changed() => {}
            read = from.read(&mut buf[..chunk]), if can_read => {
                let n = match read {
                    Ok(0) => { sender_closed = true; continue; }
                    Ok(n) => n,
                    Err(_) => return End::Reset,
                };
                let Some(bytes) = buf.get(..n) else { return End::Reset };
                if direction == Direction::Up && n >= 2 && *cut_mid_frame.borrow_and_update() {
                    shared.cut_mid_frame.send_replace(false);
                    let half = bytes.get(..n / 2).unwrap_or_default();
                    // What the link held goes first: the cut falls inside this chunk.
                    for (_, held) in queue.drain(..) {
                        if to.write_all(&held).await.is_err() { return End::Reset; }
                        counter.fetch_add(held.len() as u64, Ordering::Relaxed);
                    }
                    if to.write_all(half).await.is_ok() {
                        counter.fetch_add(half.len() as u64, Ordering::Relaxed);
                        let _ = to.flush().await;
                    }
                    tracing::debug!(forwarded = half.len(), of = n, "Link cut mid-frame.");
                    return End::Reset;
                }
                let now = tokio::time::Instant::now();
                let deliver = match throttle {
                    Some(t) => {
                        wire_free = wire_free.max(now) + t.serialisation(n);
                        wire_free + t.one_way_latency
                    }
                    None => now,
                };
                queued += n;
                queue.push_back((deliver, bytes.to_vec()));
            }
            () = sleep_until(next_delivery), if passing && next_delivery.is_some() => {
                if let Some((_, bytes)) = queue.pop_front() {
                    queued -= bytes.len();
                    if to.write_all(&bytes).await.is_err() {
                        return End::Reset;
                    }
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
