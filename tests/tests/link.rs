//! The link simulator against a TCP echo server on loopback: every fault does what it says
//! on real sockets (an RST is seen as ConnectionReset, a blackhole as silence on an open
//! socket, a throttle as a byte count that cannot pass the bandwidth).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use aloft_tests::link::{Action, Link, Script, Throttle};
use aloft_tests::system::wait_until;

/// An echo server on a free loopback port, one thread per connection; lives as long as
/// the test process (its threads end with their connections).
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let addr = listener.local_addr().expect("echo server address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn connect(link: &Link) -> TcpStream {
    let stream = TcpStream::connect(link.addr()).expect("connect through the link");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
}

fn echo(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message)?;
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back)?;
    Ok(back)
}

#[test]
fn a_healthy_link_forwards_both_ways_and_counts_every_byte() {
    let link = Link::start(echo_server()).expect("link");
    let mut stream = connect(&link);
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(echo(&mut stream, &message).expect("echo"), message);
    // A chunk is counted once its write returned, and the echo can be back before that:
    // wait for the counters, then check they stopped at the message.
    let sent = message.len() as u64;
    let bytes = wait_until(
        "the link to count the message",
        Duration::from_secs(5),
        || {
            let b = link.bytes();
            (b.up >= sent && b.down >= sent).then_some(b)
        },
    )
    .expect("every byte counted");
    assert_eq!(bytes.up, sent);
    assert_eq!(bytes.down, sent);
    assert_eq!(link.connections(), 1);
}

#[test]
fn a_cut_resets_open_connections_and_serves_new_ones() {
    let link = Link::start(echo_server()).expect("link");
    let mut stream = connect(&link);
    echo(&mut stream, b"before").expect("echo before the cut");
    link.apply(Action::Cut);
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf);
    assert!(
        matches!(&err, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "a cut must reset, not close: {err:?}"
    );
    let mut again = connect(&link);
    assert_eq!(echo(&mut again, b"after").expect("echo after"), b"after");
}

#[test]
fn a_blackhole_keeps_the_socket_open_and_silent_until_healed() {
    let link = Link::start(echo_server()).expect("link");
    let mut stream = connect(&link);
    echo(&mut stream, b"before").expect("echo before");
    link.apply(Action::Blackhole);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    stream
        .write_all(b"into the void")
        .expect("write is accepted");
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf);
    // Neither data, nor FIN (Ok(0)), nor RST: the read times out.
    assert!(
        matches!(&err, Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut),
        "a blackhole must be silent: {err:?}"
    );
    link.apply(Action::Heal);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut back = [0u8; 13];
    stream
        .read_exact(&mut back)
        .expect("held bytes arrive after heal");
    assert_eq!(&back, b"into the void");
}

#[test]
fn an_outage_resets_new_connections_until_healed() {
    let link = Link::start(echo_server()).expect("link");
    let mut stream = connect(&link);
    echo(&mut stream, b"x").expect("echo");
    link.apply(Action::Down);
    let mut buf = [0u8; 4];
    assert!(stream.read(&mut buf).is_err(), "open connection reset");
    let mut refused = connect(&link);
    let result = echo(&mut refused, b"hello");
    assert!(result.is_err(), "a new connection is reset: {result:?}");
    link.apply(Action::Heal);
    let mut healed = connect(&link);
    assert_eq!(echo(&mut healed, b"back").expect("echo"), b"back");
}

#[test]
fn a_cut_mid_frame_forwards_half_the_next_chunk_then_resets() {
    let link = Link::start(echo_server()).expect("link");
    let mut stream = connect(&link);
    echo(&mut stream, b"whole").expect("echo");
    link.apply(Action::CutMidFrame);
    stream.write_all(&[7u8; 1000]).expect("write");
    // The echo server sends back what reached it, then the reset arrives.
    let mut received = Vec::new();
    let mut buf = [0u8; 2000];
    let reset = loop {
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => break e.kind() == ErrorKind::ConnectionReset,
        }
    };
    assert!(reset, "the cut must end in a reset");
    assert!(
        received.len() < 1000,
        "only part of the chunk may pass, {} bytes came back",
        received.len()
    );
    assert_eq!(
        link.bytes().up,
        5 + 500,
        "half of the 1000-byte chunk passed"
    );
}

#[test]
fn a_throttle_holds_the_rate_to_its_bandwidth() {
    let link = Link::start(echo_server()).expect("link");
    // 200 kbit/s = 25 000 bytes/s each way.
    link.apply(Action::Throttle(Some(Throttle::starlink(200_000))));
    let mut stream = connect(&link);
    let message = vec![1u8; 10_000];
    let started = Instant::now();
    let back = echo(&mut stream, &message).expect("echo");
    assert_eq!(back.len(), message.len());
    // 10 000 bytes at 25 000 bytes/s cannot cross in under 0.4 s, whatever the machine.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the throttle let 10 kB through in {:?}",
        started.elapsed()
    );
}

#[test]
fn latency_delays_even_a_single_byte() {
    let link = Link::start(echo_server()).expect("link");
    link.apply(Action::Throttle(Some(Throttle {
        bits_per_s: 100_000_000,
        one_way_latency: Duration::from_millis(100),
        queue: Duration::from_millis(100),
    })));
    let mut stream = connect(&link);
    let started = Instant::now();
    echo(&mut stream, b"!").expect("echo");
    // Two crossings of 100 ms: a floor, never a ceiling.
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn a_flap_cuts_repeatedly_and_a_script_heals_it() {
    let link = Link::start(echo_server()).expect("link");
    let played = link.play(
        Script::new()
            .then(
                Duration::ZERO,
                Action::Flap {
                    every: Duration::from_millis(200),
                    outage: Duration::from_millis(100),
                },
            )
            .then(Duration::from_millis(1_000), Action::Heal),
    );
    // Connections keep dying during the flap; count the resets seen.
    let mut resets = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut healed = false;
    while !healed && Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(link.addr()) else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        loop {
            if played.wait(Duration::ZERO) || Instant::now() >= deadline {
                healed = true;
                break;
            }
            if echo(&mut stream, b"ping").is_err() {
                resets += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(healed, "the script did not heal the link");
    assert!(
        resets >= 2,
        "a 1 s flap every 200 ms reset {resets} connections"
    );
    let mut stream = connect(&link);
    assert_eq!(echo(&mut stream, b"calm").expect("healed"), b"calm");
}

#[test]
fn scripts_repeat_their_steps() {
    let script = Script::new()
        .then(Duration::from_secs(1), Action::Cut)
        .then(Duration::from_secs(2), Action::Heal)
        .repeat(3);
    assert_eq!(script.steps.len(), 6);
    assert_eq!(script.duration(), Duration::from_secs(9));
}

#[test]
fn waits_give_up_at_their_deadline() {
    let link = Link::start(echo_server()).expect("link");
    let waited = wait_until(
        "a connection nobody makes",
        Duration::from_millis(200),
        || (link.connections() > 0).then_some(()),
    );
    assert!(waited.is_err());
}
