//! A real Mosquitto broker for a test: its own generated config on a free loopback port,
//! optionally with TLS (certificates made with rcgen), a password file (made with
//! `mosquitto_passwd`) and an ACL file; killed when dropped, restartable on the same port,
//! and stoppable with SIGSTOP to play a broker that hangs.
//!
//! Also the real clients: [`Subscription`] runs `mosquitto_sub` in the background and
//! collects what it receives; [`publish`] runs `mosquitto_pub` once.
//!
//! Invariants: every process started here is killed when its handle drops; every wait has a
//! deadline; the broker keeps nothing on disk between its runs (`persistence false`), so a
//! restart loses its retained messages as a crashed broker without persistence would.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Why the broker or a client could not be run.
#[derive(Debug)]
pub enum MosquittoError {
    /// A file or process operation failed.
    Io(String, std::io::Error),
    /// Something did not happen in time.
    Timeout(String),
    /// A tool failed.
    Tool(String),
}

impl std::fmt::Display for MosquittoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MosquittoError::Io(what, e) => write!(f, "{what}: {e}"),
            MosquittoError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            MosquittoError::Tool(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for MosquittoError {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MosquittoError {
    let what = what.into();
    move |e| MosquittoError::Io(what, e)
}

/// Whether the Mosquitto broker and clients are installed (`cargo xtask test` installs them).
pub fn available() -> bool {
    [
        "mosquitto",
        "mosquitto_sub",
        "mosquitto_pub",
        "mosquitto_passwd",
    ]
    .iter()
    .all(|tool| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file())
    })
}

fn mosquitto_binary() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").is_file() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// A loopback port free now.
fn free_port() -> Result<u16, MosquittoError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("find a free port"))?
        .port())
}

/// The files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the broker's certificate (and the client's), PEM.
    pub ca: PathBuf,
    /// The broker's certificate for `localhost` and 127.0.0.1.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// How the broker is set up.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// TLS on the listener (certificates made in the broker's directory).
    pub tls: bool,
    /// Users and passwords; anonymous clients are refused when any are given.
    pub users: Vec<(String, String)>,
    /// An ACL file's text (`user NAME` / `topic write ...` lines).
    pub acl: Option<String>,
}

/// A running (or stopped, restartable) Mosquitto.
#[derive(Debug)]
pub struct Mosquitto {
    dir: PathBuf,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    tls: Option<TlsFiles>,
    child: Option<Child>,
}

impl Mosquitto {
    /// A plain broker on a free port, anonymous clients allowed, in `dir`.
    pub fn start(dir: &Path) -> Result<Self, MosquittoError> {
        Self::start_with(dir, &BrokerOptions::default())
    }

    /// A broker set up by `options`, in `dir`.
    pub fn start_with(dir: &Path, options: &BrokerOptions) -> Result<Self, MosquittoError> {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let port = free_port()?;
        let mut text = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\nmax_queued_messages 1000\n"
        );
        if options.users.is_empty() {
            text.push_str("allow_anonymous true\n");
        } else {
            let passwords = dir.join("passwords");
            let _ = std::fs::remove_file(&passwords);
            for (i, (user, password)) in options.users.iter().enumerate() {
                let mut c = Command::new("mosquitto_passwd");
                c.arg("-b");
                if i == 0 {
                    c.arg("-c");
                }
                let out = c
                    .arg(&passwords)
                    .arg(user)
                    .arg(password)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(io("run mosquitto_passwd"))?;
                if !out.status.success() {
                    return Err(MosquittoError::Tool(format!(
                        "mosquitto_passwd: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
            }
            text.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                passwords.display()
            ));
        }
        if let Some(acl) = &options.acl {
            let file = dir.join("acl");
            std::fs::write(&file, acl).map_err(io("write the ACL file"))?;
            text.push_str(&format!("acl_file {}\n", file.display()));
        }
        let tls = if options.tls {
            let files = make_certificates(dir)?;
            text.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate false\n",
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            ));
            Some(files)
        } else {
            None
        };
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, text).map_err(io("write mosquitto.conf"))?;
        let mut broker = Mosquitto {
            dir: dir.to_path_buf(),
            port,
            config,
            log: dir.join("mosquitto.log"),
            tls,
            child: None,
        };
        broker.run()?;
        Ok(broker)
    }

    fn run(&mut self) -> Result<(), MosquittoError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("open the broker's log"))?;
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("start mosquitto"))?;
        self.child = Some(child);
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(MosquittoError::Tool(format!(
                    "mosquitto exited ({status}): {}",
                    self.log_text()
                )));
            }
            if Instant::now() >= deadline {
                return Err(MosquittoError::Timeout("mosquitto to listen".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TLS files, when the listener has TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it (SIGKILL, as a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same config (and nothing retained).
    pub fn restart(&mut self) -> Result<(), MosquittoError> {
        self.kill();
        // The port stays free for us: nothing else binds it in a test's lifetime, and
        // Mosquitto sets SO_REUSEADDR.
        self.run()
    }

    /// Stops it with SIGSTOP: connections stay open, nothing is read or answered.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), Signal::SIGSTOP);
        }
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), Signal::SIGCONT);
        }
    }

    /// The arguments `mosquitto_sub`/`mosquitto_pub` need to reach this broker as `user`.
    pub fn client_args(&self, user: Option<(&str, &str)>) -> Vec<String> {
        let mut args = vec![
            "-h".to_string(),
            if self.tls.is_some() {
                "localhost".into()
            } else {
                "127.0.0.1".into()
            },
            "-p".into(),
            self.port.to_string(),
        ];
        if let Some(tls) = &self.tls {
            args.push("--cafile".into());
            args.push(tls.ca.display().to_string());
        }
        if let Some((u, p)) = user {
            args.extend(["-u".into(), u.into(), "-P".into(), p.into()]);
        }
        args
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// A CA, a broker certificate for `localhost`/127.0.0.1 and a client certificate, in `dir`.
fn make_certificates(dir: &Path) -> Result<TlsFiles, MosquittoError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let tool = |e: rcgen::Error| MosquittoError::Tool(format!("rcgen: {e}"));
    let ca_key = KeyPair::generate().map_err(tool)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tool)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "Aloft test broker CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(tool)?;
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().map_err(tool)?;
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(tool)?
        .signed_by(&server_key, &issuer)
        .map_err(tool)?;
    let client_key = KeyPair::generate().map_err(tool)?;
    let mut client_params =
        CertificateParams::new(vec!["aloft-agent".to_string()]).map_err(tool)?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "aloft-agent");
    let client = client_params
        .signed_by(&client_key, &issuer)
        .map_err(tool)?;
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("broker.pem"),
        key: dir.join("broker.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    for (path, text) in [
        (&files.ca, ca_cert.pem()),
        (&files.cert, server.pem()),
        (&files.key, server_key.serialize_pem()),
        (&files.client_cert, client.pem()),
        (&files.client_key, client_key.serialize_pem()),
    ] {
        std::fs::write(path, text).map_err(io(format!("write {}", path.display())))?;
    }
    Ok(files)
}

/// One message `mosquitto_sub -v` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload, as text.
    pub payload: String,
    /// Whether the broker sent it as a retained message (`-F` `%r`).
    pub retained: bool,
}

/// A `mosquitto_sub` running in the background, collecting what it receives.
#[derive(Debug)]
pub struct Subscription {
    child: Child,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Subscription {
    /// Subscribes to `filter` on `broker` as `user`.
    pub fn start(
        broker: &Mosquitto,
        filter: &str,
        user: Option<(&str, &str)>,
    ) -> Result<Self, MosquittoError> {
        let mut child = Command::new("mosquitto_sub")
            .args(broker.client_args(user))
            .args(["-t", filter, "-F", "%r\t%t\t%p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start mosquitto_sub"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| MosquittoError::Tool("mosquitto_sub has no stdout".into()))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.splitn(3, '\t');
                let (Some(r), Some(topic), Some(payload)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let mut held = sink.lock().unwrap_or_else(|e| e.into_inner());
                held.push(Received {
                    topic: topic.to_string(),
                    payload: payload.to_string(),
                    retained: r == "1",
                });
            }
        });
        Ok(Subscription { child, received })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many messages were received so far.
    pub fn count(&self) -> usize {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits until `probe` finds what it wants among the messages received.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&[Received]) -> Option<T>,
    ) -> Result<T, MosquittoError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let held = self.received.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(found) = probe(&held) {
                    return Ok(found);
                }
            }
            if Instant::now() >= deadline {
                return Err(MosquittoError::Timeout(what.into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained messages under `filter` now: a fresh `mosquitto_sub` that reads what the
/// broker hands a new subscriber and leaves after `settle` without more (`-W`).
pub fn retained(
    broker: &Mosquitto,
    filter: &str,
    user: Option<(&str, &str)>,
) -> Result<Vec<Received>, MosquittoError> {
    let out = Command::new("mosquitto_sub")
        .args(broker.client_args(user))
        .args([
            "-t",
            filter,
            "-F",
            "%r\t%t\t%p",
            "--retained-only",
            "-W",
            "2",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io("run mosquitto_sub"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            Some(Received {
                retained: parts.next()? == "1",
                topic: parts.next()?.to_string(),
                payload: parts.next()?.to_string(),
            })
        })
        .collect())
}

/// Publishes one message with `mosquitto_pub`; `Ok(false)` when the broker refused the
/// connection.
pub fn publish(
    broker: &Mosquitto,
    topic: &str,
    payload: &str,
    user: Option<(&str, &str)>,
) -> Result<bool, MosquittoError> {
    let status = Command::new("mosquitto_pub")
        .args(broker.client_args(user))
        .args(["-t", topic, "-m", payload, "-q", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(io("run mosquitto_pub"))?;
    Ok(status.success())
}
