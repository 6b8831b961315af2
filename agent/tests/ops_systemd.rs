//! sd_notify against a real unix datagram socket standing in for systemd.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use aloft_agent::systemd::Notifier;

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a datagram within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_status_watchdog_stopping_and_extend_timeout_arrive_at_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = Notifier::from_vars(Some(path.as_os_str()), None, None).unwrap();
    assert!(n.is_enabled());

    n.ready().unwrap();
    n.status("4 sensors running\n1 degraded").unwrap();
    n.watchdog().unwrap();
    n.stopping().unwrap();
    n.extend_timeout(Duration::from_millis(2500)).unwrap();
    assert_eq!(receive(&systemd), "READY=1");
    assert_eq!(receive(&systemd), "STATUS=4 sensors running 1 degraded");
    assert_eq!(receive(&systemd), "WATCHDOG=1");
    assert_eq!(receive(&systemd), "STOPPING=1");
    assert_eq!(receive(&systemd), "EXTEND_TIMEOUT_USEC=2500000");
}

#[test]
fn messages_reach_an_abstract_namespace_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("aloft-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let systemd = UnixDatagram::bind_addr(&addr).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let var = format!("@{name}");
    let n = Notifier::from_vars(Some(OsStr::new(&var)), None, None).unwrap();
    n.ready().unwrap();
    assert_eq!(receive(&systemd), "READY=1");
}

#[test]
fn a_vanished_socket_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone");
    let n = Notifier::from_vars(Some(path.as_os_str()), None, None).unwrap();
    assert!(n.ready().is_err());
}

#[tokio::test(start_paused = true)]
async fn watchdog_keep_alives_come_at_half_the_interval_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = tokio::net::UnixDatagram::bind(&path).unwrap();
    let n = Notifier::from_vars(Some(path.as_os_str()), Some("4000000"), None).unwrap();
    assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(2)));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let start = tokio::time::Instant::now();
    let watchdog = tokio::spawn(async move {
        n.run_watchdog(async {
            let _ = stop_rx.await;
        })
        .await;
    });
    let mut buf = [0u8; 64];
    let mut arrivals = Vec::new();
    for _ in 0..4 {
        let len = tokio::time::timeout(Duration::from_secs(10), systemd.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        arrivals.push(start.elapsed());
    }
    // The first at once, then every 2 s of (virtual) time.
    let expected: Vec<Duration> = (0..4).map(|i| Duration::from_secs(2 * i)).collect();
    assert_eq!(arrivals, expected);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), watchdog)
        .await
        .unwrap()
        .unwrap();
}
