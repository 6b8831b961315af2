//! The command line: kubectl's verbs and conventions over aloft-hub's resources.
//!
//! Only argument shapes live here; `verbs` does the work. Global flags (`--context`,
//! `--hub`, `--token`, `--ca`, `-o`) come after or before the verb, as with kubectl.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{EnumValueParser, PathBufValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

use crate::output::Format;

/// `aloftctl`: operate aloft-hub's nodes and sensors.
#[derive(Debug, Parser)]
#[command(
    name = "aloftctl",
    version,
    about = "Operate Aloft nodes and sensors through aloft-hub",
    after_help = "Exit codes: 0 ok (also when the output's reader went away), 1 error, \
                  2 usage, 3 a waited-for command ended without success or the agent refused \
                  a waited-for desired state, 4 a wait timed out, 5 `diff` found changes."
)]
pub struct Cli {
    /// Where and who: context, hub, token, CA.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Output format: table (default), wide, json, yaml, name.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_parser = EnumValueParser::<Format>::new().map(OutputArg::Format)
    )]
    pub output: Option<OutputArg>,

    /// Log filter for aloftctl's own diagnostics (RUST_LOG syntax); RUST_LOG wins if set.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,

    /// What to do.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Which hub and which credentials; each flag overrides its environment variable, which
/// overrides the context of the config file.
#[derive(Debug, Args, Default, Clone)]
pub struct TargetArgs {
    /// The context of the config file to use instead of its current-context.
    #[arg(long, global = true, env = "ALOFT_CONTEXT")]
    pub context: Option<String>,
    /// The config file (default ~/.config/aloft/config.yaml).
    #[arg(long, global = true, env = "ALOFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The hub's URL, e.g. https://127.0.0.1:8443.
    #[arg(long, global = true, env = "ALOFT_HUB")]
    pub hub: Option<String>,
    /// The bearer token.
    #[arg(long, global = true, env = "ALOFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the hub's certificate (the hub's DATA/ca.pem).
    #[arg(long, global = true, env = "ALOFT_CA")]
    pub ca: Option<PathBuf>,
    /// How long to wait for the hub to answer one request.
    #[arg(long = "request-timeout", global = true, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List resources: nodes, sensors, commands, events, tokens.
    Get(GetArgs),
    /// Show one node or sensor in detail.
    Describe(DescribeArgs),
    /// The newest value of every sensor's quantities.
    Top(TopArgs),
    /// Restart a sensor (a command: queued while the node is offline, applied once).
    Restart(RestartArgs),
    /// Change a sensor's desired state (interval, enabled, tunables).
    Set(SetArgs),
    /// Delete a sensor's desired state: it goes back to its node's config file.
    Unset(UnsetArgs),
    /// Make the desired state of sensors what a YAML file says.
    Apply(ApplyArgs),
    /// Show what `apply -f FILE` would change.
    Diff(FileArgs),
    /// Recent agent log lines, fetched from the node now.
    Logs(LogsArgs),
    /// Cancel a command that has not been applied yet.
    Cancel(CancelArgs),
    /// Create a node (prints its token once) or a token.
    Create(CreateArgs),
    /// Delete a node.
    Delete(DeleteArgs),
    /// Revoke a token.
    Revoke(RevokeArgs),
    /// Edit the config file's contexts.
    Config(ConfigArgs),
    /// Export a node's readings as files researchers' tools read (CSV, Parquet, NetCDF-CF,
    /// ICARTT, IGC, GeoJSON, KML, a data package), from the hub or offline from an agent's
    /// store directory.
    Export(ExportArgs),
    /// Print aloftctl's version and, when reachable, the hub's.
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What `-o` carries: the output format of every verb but `export`, whose `-o` names the
/// file or directory its files go to. One argument id serves both, so that `export` can
/// have its own `-o` while the format flag stays global for every other verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputArg {
    /// `-o table|wide|json|yaml|name`.
    Format(Format),
    /// `export -o FILE|DIR`.
    Path(PathBuf),
}

/// `export --node N --format F [...]`.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --store the export comes from the hub (viewer role): it is \
                  downloaded into a hidden part file beside the output and resumed after a \
                  broken connection or an interrupted run (rerun the same command). With \
                  --store it is made offline from an agent's store directory, opened \
                  read-only; no hub or token is needed. Files appear only when the whole \
                  export is complete. Times: RFC 3339 (2026-11-24T12:00:00Z) or ns since \
                  the Unix epoch."
)]
pub struct ExportArgs {
    /// The node whose readings to export (its name also names the files).
    #[arg(long, short = 'n')]
    pub node: String,
    /// Only this sensor (repeatable; all when none is given).
    #[arg(long = "sensor", value_name = "SENSOR")]
    pub sensors: Vec<String>,
    /// Only this quantity (repeatable; e.g. `air_pressure`; all when none is given).
    #[arg(long = "quantity", value_name = "QUANTITY")]
    pub quantities: Vec<String>,
    /// Only readings at or after this UTC time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Only readings before this UTC time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<i64>,
    /// The format: parquet, csv, netcdf, icartt, igc, geojson, kml, package.
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// Tidy (one row per reading, default) or wide (one table per sensor), where the
    /// format has layouts.
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Thin or average over intervals of this length (`1s`, `10s`).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// How --interval thins: keep the first reading of each interval (decimate, default)
    /// or average them (mean).
    #[arg(long, value_enum, requires = "interval")]
    pub method: Option<MethodArg>,
    /// Where the files go: a directory (made if missing; default the current one), or,
    /// for an export of one data file, that file's path (its stem names the sidecar).
    #[arg(
        short = 'o',
        long = "out",
        id = "output",
        value_name = "FILE|DIR",
        value_hint = ValueHint::AnyPath,
        value_parser = PathBufValueParser::new().map(OutputArg::Path)
    )]
    pub output: Option<OutputArg>,
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
    /// Export offline from this agent store directory (read-only) instead of the hub.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub store: Option<PathBuf>,
    /// With --store: a TOML file of the dataset's metadata (title, institution,
    /// principal_investigator, project, platform, license, pilot, copilot, glider_type,
    /// glider_id, competition_id), which the hub takes from its config.
    #[arg(long, value_name = "FILE", requires = "store", value_hint = ValueHint::FilePath)]
    pub metadata: Option<PathBuf>,
    /// The export's creation time, printed in its metadata (default now): fix it for
    /// reproducible files.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub created: Option<i64>,
    /// From the hub: only the records up to these sequence numbers, per store epoch
    /// (`EPOCH:SEQ,...`, as a sidecar's `completeness.epochs` and the hub's
    /// `Aloft-Export-Upto` give them), so that an export made later is the same one.
    #[arg(long, value_name = "EPOCH:SEQ,...", conflicts_with = "store", value_parser = parse_upto)]
    pub upto: Option<String>,
}

/// Checks `--upto`: comma-separated `EPOCH:SEQ`, each epoch 32 hex digits.
pub fn parse_upto(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.split(',').all(|part| {
            part.split_once(':').is_some_and(|(epoch, seq)| {
                epoch.len() == 32
                    && epoch.bytes().all(|b| b.is_ascii_hexdigit())
                    && !seq.is_empty()
                    && seq.bytes().all(|b| b.is_ascii_digit())
                    && seq.parse::<u64>().is_ok()
            })
        });
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{text}` is not EPOCH:SEQ[,EPOCH:SEQ...] (a store epoch in 32 hex digits, a sequence number)"
        ))
    }
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One row per reading.
    Tidy,
    /// One table per sensor, one column per quantity.
    Wide,
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// The first reading of each interval, unchanged.
    Decimate,
    /// The mean of each interval.
    Mean,
}

/// Parses a UTC time: RFC 3339 or ns since the Unix epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    aloft_dataset::time::parse_utc(text).ok_or_else(|| {
        format!(
            "`{text}` is not a UTC time; write RFC 3339 (2026-11-24T12:00:00Z) or ns since the Unix epoch"
        )
    })
}

/// `get KIND`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list.
    #[arg(value_enum)]
    pub kind: Kind,
    /// One resource by name (a node, a sensor, a command id, a token id).
    pub name: Option<String>,
    /// Only this node's resources.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// After listing, watch for changes and print them as they happen.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Events: at most this many, newest last.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// The kinds `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Nodes.
    #[value(alias = "node", alias = "no")]
    Nodes,
    /// Sensors of every node (or of `--node`).
    #[value(alias = "sensor", alias = "se")]
    Sensors,
    /// Commands.
    #[value(alias = "command", alias = "cmd")]
    Commands,
    /// The audit trail.
    #[value(alias = "event", alias = "ev")]
    Events,
    /// Tokens (admin).
    #[value(alias = "token")]
    Tokens,
}

/// `describe node|sensor NAME`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Node or sensor.
    #[arg(value_enum)]
    pub kind: DescribeKind,
    /// Its name.
    pub name: String,
    /// The sensor's node (needed when more than one node has a sensor of that name).
    #[arg(long, short = 'n')]
    pub node: Option<String>,
}

/// What `describe` and `logs` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeKind {
    /// A node.
    Node,
    /// A sensor.
    Sensor,
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only this node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
}

/// `restart sensor NAME`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Only `sensor` can be restarted.
    #[arg(value_enum)]
    pub kind: RestartKind,
    /// The sensor's name.
    pub name: String,
    /// The sensor's node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// Power-cycle the sensor's power line first.
    #[arg(long)]
    pub hard: bool,
    /// Follow the command to its end; exit 3 unless it succeeded, 4 on --timeout.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// After this, the agent does not apply the command (it waits out outages until then).
    /// Whole seconds, at least 1s; a fraction rounds up.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub ttl: Duration,
}

/// The one kind `restart` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartKind {
    /// A sensor.
    Sensor,
}

/// `set sensor NAME`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Only `sensor` can be set.
    #[arg(value_enum)]
    pub kind: RestartKind,
    /// The sensor's name.
    pub name: String,
    /// The sensor's node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// Sampling interval (`100ms`, `2s`).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Run the sensor.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Stop the sensor (until enabled again).
    #[arg(long)]
    pub disable: bool,
    /// Set a driver tunable, KEY=VALUE (repeatable): `true`/`false`, a whole number, or
    /// text (`"..."` keeps a value text); KEY=null removes it from the desired state.
    #[arg(long = "tunable", value_name = "KEY=VALUE", value_parser = parse_tunable)]
    pub tunables: Vec<(String, Option<aloft_api::TunableValue>)>,
    /// Exempt the sensor from the node's power steps (`true`: it samples as desired
    /// whatever the battery; `false`: it follows the power steps again).
    #[arg(long, value_name = "true|false")]
    pub power_override: Option<bool>,
    /// How long to wait for the agent.
    #[command(flatten)]
    pub wait: RolloutWait,
}

/// Parses `--tunable KEY=VALUE`: `true`/`false` a switch, a whole number a number, `null`
/// a removal, `"..."` the text inside the quotes, anything else text. A fraction is
/// refused: tunables are whole numbers of their unit.
pub fn parse_tunable(text: &str) -> Result<(String, Option<aloft_api::TunableValue>), String> {
    use aloft_api::TunableValue;
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "`{text}` is not KEY=VALUE; write e.g. pressure_oversampling=16"
        ));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}` has no key before `=`"));
    }
    let value = match value {
        "null" => None,
        "true" => Some(TunableValue::Bool(true)),
        "false" => Some(TunableValue::Bool(false)),
        v if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            Some(TunableValue::Text(v[1..v.len() - 1].to_owned()))
        }
        v => match v.parse::<i64>() {
            Ok(i) => Some(TunableValue::Integer(i)),
            Err(_) if v.parse::<f64>().is_ok_and(f64::is_finite) && v.contains(['.', 'e', 'E']) => {
                return Err(format!(
                    "`{v}` has a fraction; a tunable is a whole number of its unit (or text: \"{v}\")"
                ));
            }
            Err(_) => Some(TunableValue::Text(v.to_owned())),
        },
    };
    Ok((key.to_owned(), value))
}

/// `--wait` of `set` and `apply`: until the agent observed the new generation.
#[derive(Debug, Args, Clone, Copy)]
pub struct RolloutWait {
    /// Wait until the agent has observed the new desired state; exit 3 if it refused it,
    /// 4 on --timeout.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
}

/// `apply -f FILE [--wait]`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file.
    #[command(flatten)]
    pub file: FileArgs,
    /// How long to wait for the agent.
    #[command(flatten)]
    pub wait: RolloutWait,
}

/// `unset sensor NAME`.
#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Only `sensor` can be unset.
    #[arg(value_enum)]
    pub kind: RestartKind,
    /// The sensor's name.
    pub name: String,
    /// The sensor's node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
}

/// `apply -f FILE`, `diff -f FILE`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The YAML file (`-` for standard input); several documents separated by `---`.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

/// `logs node|sensor NAME`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A node's lines, or only those about one sensor.
    #[arg(value_enum)]
    pub kind: DescribeKind,
    /// Its name.
    pub name: String,
    /// The sensor's node.
    #[arg(long, short = 'n')]
    pub node: Option<String>,
    /// At most this many lines, newest last.
    #[arg(long, default_value_t = 100)]
    pub tail: u32,
}

/// `cancel command ID`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Only `command`.
    #[arg(value_enum)]
    pub kind: CancelKind,
    /// The command's id.
    pub id: String,
}

/// The one kind `cancel` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CancelKind {
    /// A command.
    Command,
}

/// `create node NAME`, `create token --role R`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What.
    #[command(subcommand)]
    pub what: CreateWhat,
}

/// What `create` makes.
#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// A node and its token (printed once: keep it for the agent's token_file).
    Node {
        /// The node's name (its `[node] name`).
        name: String,
    },
    /// A token for a person or a script (printed once).
    Token {
        /// viewer (read), operator (commands, desired state) or admin (nodes, tokens).
        #[arg(long)]
        role: String,
        /// What it is for, shown by `get tokens`.
        #[arg(long)]
        description: Option<String>,
    },
}

/// `delete node NAME`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Only `node`.
    #[arg(value_enum)]
    pub kind: DeleteKind,
    /// Its name.
    pub name: String,
}

/// The one kind `delete` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeleteKind {
    /// A node.
    Node,
}

/// `revoke token ID`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Only `token`.
    #[arg(value_enum)]
    pub kind: RevokeKind,
    /// The token's id (from `get tokens`), not its secret.
    pub id: String,
}

/// The one kind `revoke` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevokeKind {
    /// A token.
    Token,
}

/// `config ...`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What.
    #[command(subcommand)]
    pub what: ConfigWhat,
}

/// Config file edits, as `kubectl config`.
#[derive(Debug, Subcommand)]
pub enum ConfigWhat {
    /// Add or change a context (and make it current with --use).
    SetContext {
        /// The context's name.
        name: String,
        /// The hub's URL.
        #[arg(long = "server")]
        server: Option<String>,
        /// The CA file.
        #[arg(long = "certificate-authority")]
        certificate_authority: Option<PathBuf>,
        /// A file holding the token (read at each use).
        #[arg(long = "token-file")]
        token_file: Option<PathBuf>,
        /// Make it the current context.
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Make a context the current one.
    UseContext {
        /// Its name.
        name: String,
    },
    /// List the contexts.
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
}

/// Parses `100ms`, `2s`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 100ms, 5s, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_api::TunableValue;
    use proptest::prelude::*;

    #[test]
    fn a_tunable_value_is_typed_by_its_text() {
        let parsed = |t: &str| parse_tunable(t).map(|(_, v)| v);
        assert_eq!(parsed("a=16"), Ok(Some(TunableValue::Integer(16))));
        assert_eq!(parsed("a=-3"), Ok(Some(TunableValue::Integer(-3))));
        assert_eq!(parsed("a=true"), Ok(Some(TunableValue::Bool(true))));
        assert_eq!(parsed("a=false"), Ok(Some(TunableValue::Bool(false))));
        assert_eq!(parsed("a=null"), Ok(None));
        assert_eq!(
            parsed("a=airborne4g"),
            Ok(Some(TunableValue::Text("airborne4g".into())))
        );
        assert_eq!(
            parsed("a=\"16\""),
            Ok(Some(TunableValue::Text("16".into())))
        );
        assert_eq!(
            parsed("a=\"null\""),
            Ok(Some(TunableValue::Text("null".into())))
        );
        assert_eq!(parsed("a="), Ok(Some(TunableValue::Text(String::new()))));
        assert_eq!(
            parse_tunable("dynamic_model=a=b"),
            Ok((
                "dynamic_model".into(),
                Some(TunableValue::Text("a=b".into()))
            ))
        );
        assert!(parsed("a=1.5").unwrap_err().contains("fraction"));
        assert!(parsed("a=1e3").unwrap_err().contains("fraction"));
        assert!(parse_tunable("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_tunable("=16").unwrap_err().contains("no key"));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_with_a_reason(text in ".{0,80}") {
            match parse_tunable(&text) {
                Ok((key, _)) => prop_assert!(!key.is_empty()),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        #[test]
        fn a_whole_number_round_trips(n in any::<i64>()) {
            prop_assert_eq!(
                parse_tunable(&format!("k={n}")),
                Ok(("k".to_owned(), Some(TunableValue::Integer(n))))
            );
        }
    }

    #[test]
    fn upto_is_a_list_of_epoch_and_sequence_number() {
        let epoch = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            parse_upto(&format!("{epoch}:42")),
            Ok(format!("{}:42", epoch.to_ascii_lowercase()))
        );
        assert!(parse_upto(&format!("{epoch}:1,{epoch}:2")).is_ok());
        for bad in [
            String::new(),
            "abc:1".to_owned(),
            format!("{epoch}:"),
            format!("{epoch}:-1"),
            format!("{epoch}:1,"),
            format!("{epoch}:18446744073709551616"),
            epoch.to_owned(),
            format!("{epoch}:1 "),
        ] {
            assert!(parse_upto(&bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_upto_text_is_checked_without_panicking(text in "\\PC{0,80}") {
            let _ = parse_upto(&text);
        }
    }
}
