//! `[mqtt]`: the local MQTT bus the agent publishes its readings and statuses to (docs/mqtt.md).
//!
//! Without the section the agent starts no bus task and no thread: it runs exactly as it
//! would without MQTT. With it, the broker is a view of the store, never its source: nothing
//! here can make the agent lose a reading.
//!
//! Invariants checked at load ([`problems`]): the broker is `host:port`; the QoS is 0 or 1;
//! the keepalive is at least [`MIN_KEEPALIVE`] and fits MQTT's 16-bit seconds; a password comes only from a file (it is never
//! written in the config, so it is never logged with it) and only with a user name; client
//! certificate and key come together and only with TLS; the topic prefix is a plain topic
//! level path (no wildcards, no empty level); the rate per topic is above zero and at most
//! [`MAX_RATE_PER_TOPIC`], so the publisher's timer never wakes the agent more than a few
//! times a second.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The shortest keepalive: rumqttc's MQTT 5 client refuses anything shorter.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(5);

/// The highest `max_rate_per_topic`: publishes are coalesced on a timer of this rate at most.
pub const MAX_RATE_PER_TOPIC: f64 = 4.0;

/// Which MQTT protocol version the agent speaks to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.
    #[serde(rename = "5")]
    V5,
}

impl MqttVersion {
    /// The version as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

/// The local MQTT bus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MqttConfig {
    /// Broker address, `host:port` (`127.0.0.1:1883`).
    pub broker: String,
    /// Protocol version: `"3.1.1"` (default) or `"5"`.
    #[serde(default)]
    pub version: MqttVersion,
    /// Client id at the broker; `aloft-agent-<node>` by default.
    #[serde(default)]
    pub client_id: Option<String>,
    /// QoS of every publish: 0 (default: the bus is a live view, the store keeps every
    /// reading) or 1.
    #[serde(default)]
    pub qos: u8,
    /// MQTT keepalive.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// User name at the broker.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (its first line); the password is never in the config.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connect with TLS (rustls with `ring`).
    #[serde(default)]
    pub tls: bool,
    /// CA certificates (PEM) that sign the broker's certificate; the system's roots if absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// First topic level of everything the agent publishes (`aloft`).
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Most publishes per second on one topic; newer values in between replace older ones.
    #[serde(default = "default_max_rate_per_topic")]
    pub max_rate_per_topic: f64,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// After an outage, publish the readings taken during it (from the store, bounded, not
    /// retained) before going live again. Off by default: the live view is live.
    #[serde(default)]
    pub replay_outage: bool,
}

fn default_keepalive() -> Duration {
    Duration::from_secs(30)
}

fn default_topic_prefix() -> String {
    "aloft".to_string()
}

fn default_max_rate_per_topic() -> f64 {
    2.0
}

fn default_reconnect_max() -> Duration {
    Duration::from_secs(10)
}

impl MqttConfig {
    /// A config for `broker` with every default, for tests and tools.
    pub fn new(broker: impl Into<String>) -> Self {
        MqttConfig {
            broker: broker.into(),
            version: MqttVersion::default(),
            client_id: None,
            qos: 0,
            keepalive: default_keepalive(),
            username: None,
            password_file: None,
            tls: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            topic_prefix: default_topic_prefix(),
            max_rate_per_topic: default_max_rate_per_topic(),
            reconnect_max: default_reconnect_max(),
            replay_outage: false,
        }
    }

    /// The broker's host and port; `None` if `broker` is not `host:port`.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let broker = self.broker.trim();
        let (host, port) = broker.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        (!host.is_empty()).then(|| (host.to_string(), port))
    }

    /// The client id, defaulting to `aloft-agent-<node>`.
    pub fn client_id_for(&self, node: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("aloft-agent-{node}"))
    }

    /// The period of the publisher's coalescing timer: one publish per topic at most.
    pub fn flush_period(&self) -> Duration {
        let rate = self.max_rate_per_topic.clamp(0.01, MAX_RATE_PER_TOPIC);
        Duration::from_secs_f64(1.0 / rate)
    }
}

/// One problem of a `[mqtt]` section: the key (under `mqtt.`), what is wrong, what to do.
pub(super) type MqttProblem = (&'static str, String, String);

/// Everything wrong with `mqtt` (empty when it is fine).
pub(super) fn problems(mqtt: &MqttConfig) -> Vec<MqttProblem> {
    let mut out: Vec<MqttProblem> = Vec::new();
    if mqtt.host_port().is_none() {
        out.push((
            "mqtt.broker",
            format!("\"{}\" is not host:port", mqtt.broker.trim()),
            "write the broker's host and port, such as \"127.0.0.1:1883\"".into(),
        ));
    }
    if mqtt.qos > 1 {
        out.push((
            "mqtt.qos",
            format!("QoS {} is not offered", mqtt.qos),
            "write 0 (default) or 1".into(),
        ));
    }
    if mqtt.keepalive < MIN_KEEPALIVE || mqtt.keepalive.as_secs() > u64::from(u16::MAX) {
        out.push((
            "mqtt.keepalive",
            format!(
                "{} is outside 5 s to 65535 s",
                humantime_serde::re::humantime::format_duration(mqtt.keepalive)
            ),
            "write a keepalive such as \"30s\"".into(),
        ));
    }
    if mqtt.password_file.is_some() && mqtt.username.is_none() {
        out.push((
            "mqtt.password_file",
            "a password without a user name".into(),
            "add mqtt.username".into(),
        ));
    }
    if mqtt.cert_file.is_some() != mqtt.key_file.is_some() {
        out.push((
            "mqtt.cert_file",
            "a client certificate and its key come together".into(),
            "set both mqtt.cert_file and mqtt.key_file, or neither".into(),
        ));
    }
    if !mqtt.tls && (mqtt.ca_file.is_some() || mqtt.cert_file.is_some()) {
        out.push((
            "mqtt.tls",
            "certificates are given but TLS is off".into(),
            "add tls = true".into(),
        ));
    }
    if let Err(why) = check_topic_prefix(&mqtt.topic_prefix) {
        out.push((
            "mqtt.topic_prefix",
            format!("\"{}\" {why}", mqtt.topic_prefix),
            "write topic levels without wildcards, such as \"aloft\"".into(),
        ));
    }
    if !(mqtt.max_rate_per_topic > 0.0 && mqtt.max_rate_per_topic <= MAX_RATE_PER_TOPIC) {
        out.push((
            "mqtt.max_rate_per_topic",
            format!(
                "{} is not above 0 and at most {MAX_RATE_PER_TOPIC}",
                mqtt.max_rate_per_topic
            ),
            "write publishes per second per topic, such as 2.0".into(),
        ));
    }
    if mqtt.reconnect_max.is_zero() {
        out.push((
            "mqtt.reconnect_max",
            "is zero".into(),
            "write a duration above zero, such as \"10s\"".into(),
        ));
    }
    out
}

/// Why `prefix` cannot lead a topic name.
fn check_topic_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Err("is empty");
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err("holds a wildcard or NUL");
    }
    if prefix.starts_with('$') {
        return Err("starts with $ (reserved for the broker)");
    }
    if prefix.split('/').any(str::is_empty) {
        return Err("has an empty level");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MqttConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_broker_alone_takes_every_default() {
        let m = parse("broker = '127.0.0.1:1883'");
        assert_eq!(m.version, MqttVersion::V311);
        assert_eq!(m.qos, 0);
        assert_eq!(m.topic_prefix, "aloft");
        assert!(!m.replay_outage);
        assert_eq!(m.host_port(), Some(("127.0.0.1".into(), 1883)));
        assert_eq!(m.client_id_for("g1"), "aloft-agent-g1");
        assert_eq!(m.flush_period(), Duration::from_millis(500));
        assert!(problems(&m).is_empty());
    }

    #[test]
    fn version_5_and_ipv6_brokers_parse() {
        let m = parse("broker = '[::1]:8883'\nversion = '5'\ntls = true\nca_file = '/ca.pem'");
        assert_eq!(m.version, MqttVersion::V5);
        assert_eq!(m.host_port(), Some(("::1".into(), 8883)));
        assert!(problems(&m).is_empty());
    }

    #[test]
    fn every_broken_key_is_named() {
        let m = parse(
            "broker = 'nohost'\nqos = 2\nkeepalive = '0s'\npassword_file = '/p'\n\
             cert_file = '/c'\ntopic_prefix = 'a/+/b'\nmax_rate_per_topic = 50.0\n\
             reconnect_max = '0s'",
        );
        let keys: Vec<&str> = problems(&m).iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "mqtt.broker",
                "mqtt.qos",
                "mqtt.keepalive",
                "mqtt.password_file",
                "mqtt.cert_file",
                "mqtt.tls",
                "mqtt.topic_prefix",
                "mqtt.max_rate_per_topic",
                "mqtt.reconnect_max",
            ]
        );
    }

    #[test]
    fn topic_prefixes_are_plain_levels() {
        assert!(check_topic_prefix("aloft").is_ok());
        assert!(check_topic_prefix("fleet/aloft").is_ok());
        for bad in ["", "a//b", "/a", "a/", "a/#", "$SYS", "a\0"] {
            assert!(check_topic_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
