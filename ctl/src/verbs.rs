//! What each verb does: requests to the hub's API (docs/api.md, "Control") and what is
//! printed.
//!
//! Output goes to the writer given (standard output in the binary), diagnostics and errors
//! to the caller as [`CtlError`], whose [`CtlError::exit_code`] is the process's exit code
//! (docs/ctl.md lists them).

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime};

use aloft_api::{
    Command, CommandRequest, CommandRequestSpec, List, LogLine, Node, NodeRequest, NodeRequestMeta,
    PartialObjectMetadata, Sensor, Token, TokenRequest, TokenRequestSpec, Version, WatchEvent,
    WatchEventType,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::{
    CancelArgs, Cli, ConfigWhat, CreateWhat, DeleteArgs, DescribeArgs, DescribeKind, FileArgs,
    GetArgs, Kind, LogsArgs, OutputArg, RestartArgs, RevokeArgs, RolloutWait, SetArgs, TargetArgs,
    TopArgs, UnsetArgs, Verb,
};
use crate::client::{ClientError, Hub, segment};
use crate::config::{self, ConfigError, ConfigFile, Context};
use crate::manifest::{self, ManifestError};
use crate::output::{self, Format, Table, read_as};
use crate::views;

/// Why a verb did not succeed, and with which exit code.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Arguments that cannot work together (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The config file or target (exit 1).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The hub refused or could not be reached (exit 1).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `export` (exit 1, 2 for usage).
    #[error(transparent)]
    Export(#[from] crate::export::ExportFailure),
    /// A manifest file (exit 1).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A local file or the terminal (exit 1).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A waited-for command ended without success (exit 3).
    #[error("command {id} ended {phase}: {message}")]
    CommandUnsuccessful {
        /// The command.
        id: String,
        /// Failed, Expired or Cancelled.
        phase: String,
        /// The agent's or hub's words.
        message: String,
    },
    /// `--wait` ran out of time (exit 4).
    #[error(
        "command {id} is still {phase} after {waited}; it stays queued until it expires. Follow it with `aloftctl get commands {id} -w`"
    )]
    WaitTimedOut {
        /// The command.
        id: String,
        /// Its phase then.
        phase: String,
        /// How long was waited.
        waited: String,
    },
    /// `diff` found changes (exit 5; not an error, but scripts need to tell).
    #[error("changes found")]
    ChangesFound,
    /// A waited-for desired state was refused by the agent (exit 3).
    #[error("sensor/{sensor} on {node}: the agent refused generation {generation}: {reason}")]
    Refused {
        /// The sensor.
        sensor: String,
        /// Its node.
        node: String,
        /// The generation refused.
        generation: u64,
        /// The agent's words.
        reason: String,
    },
    /// `--wait` of `set` or `apply` ran out of time (exit 4).
    #[error(
        "sensor/{sensor} on {node}: the agent has not observed generation {generation} after {waited} (it observed {observed}); the hub keeps it and sends it when the node connects. Follow it with `aloftctl get sensors {sensor} -n {node} -w`"
    )]
    RolloutTimedOut {
        /// The sensor.
        sensor: String,
        /// Its node.
        node: String,
        /// The generation waited for.
        generation: u64,
        /// What the agent had observed then.
        observed: String,
        /// How long was waited.
        waited: String,
    },
}

impl CtlError {
    /// The process's exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 2,
            CtlError::Export(e) if e.is_usage() => 2,
            CtlError::CommandUnsuccessful { .. } | CtlError::Refused { .. } => 3,
            CtlError::WaitTimedOut { .. } | CtlError::RolloutTimedOut { .. } => 4,
            CtlError::ChangesFound => 5,
            _ => 1,
        }
    }

    /// Whether standard output was closed by its reader (a broken pipe).
    pub fn is_closed_output(&self) -> bool {
        matches!(self, CtlError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> CtlError + '_ {
    move |source| CtlError::Io {
        what: what.to_owned(),
        source,
    }
}

/// Runs one parsed command line, printing to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    let format = match cli.output {
        Some(OutputArg::Format(f)) => f,
        _ => Format::Table,
    };
    let ctx = Invocation {
        target: &cli.target,
        format,
    };
    match &cli.verb {
        Verb::Get(args) => ctx.get(args, out),
        Verb::Describe(args) => ctx.describe(args, out),
        Verb::Top(args) => ctx.top(args, out),
        Verb::Restart(args) => ctx.restart(args, out),
        Verb::Set(args) => ctx.set(args, out),
        Verb::Unset(args) => ctx.unset(args, out),
        Verb::Apply(args) => ctx.apply(&args.file, out, Some(args.wait)),
        Verb::Diff(args) => ctx.apply(args, out, None),
        Verb::Logs(args) => ctx.logs(args, out),
        Verb::Cancel(args) => ctx.cancel(args, out),
        Verb::Create(args) => ctx.create(&args.what, out),
        Verb::Delete(args) => ctx.delete(args, out),
        Verb::Revoke(args) => ctx.revoke(args, out),
        Verb::Config(args) => config_edit(&cli.target, &args.what, out),
        Verb::Export(args) => Ok(crate::export::run(&cli.target, args, out)?),
        Verb::Version => ctx.version(out),
        Verb::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "aloftctl", &mut script);
            out.write_all(&script).map_err(io("writing the output"))
        }
    }
}

struct Invocation<'a> {
    target: &'a TargetArgs,
    format: Format,
}

/// Writes human output: lines aloftctl composed, whose fields from outside were escaped
/// with [`shown`] as they were put in (so their newlines are escaped); any control
/// character still left is escaped here, so nothing reaches the terminal raw.
fn write(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    write_data(out, &output::terminal_text(text, true))
}

/// Writes JSON, YAML or a completion script as it is (they escape what they carry).
fn write_data(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    out.write_all(text.as_bytes())
        .map_err(io("writing the output"))
}

/// A field from outside (a name, a reason, a log line) as it may be put into a line of
/// human output: control characters, newlines included, shown as escapes.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    output::terminal_text(text, false)
}

/// A list's items as the hub sent them (printed as they came by `-o json|yaml`).
fn items(list: &Value) -> Vec<Value> {
    match list {
        Value::Array(items) => items.clone(),
        other => read_as::<List<Value>>(other).items,
    }
}

/// A list's items read as their `aloft_api` type.
fn typed_items<T: serde::de::DeserializeOwned + Default>(list: &Value) -> Vec<T> {
    items(list).iter().map(read_as).collect()
}

/// An object's name.
fn name_of(object: &Value) -> String {
    read_as::<PartialObjectMetadata>(object).metadata.name
}

impl Invocation<'_> {
    fn hub(&self) -> Result<Hub, CtlError> {
        let target = config::resolve(self.target)?;
        Ok(Hub::new(&target, self.target.request_timeout)?)
    }

    /// Prints objects in the chosen format; tables through `table`.
    fn show(
        &self,
        out: &mut dyn Write,
        objects: &[Value],
        single: bool,
        table: impl Fn(&[Value], bool) -> Table,
        empty: &str,
    ) -> Result<(), CtlError> {
        let text = match self.format {
            Format::Json => output::to_json(&output::document(objects, single)),
            Format::Yaml => output::to_yaml(&output::document(objects, single)),
            Format::Name => objects
                .iter()
                .map(|o| format!("{}\n", shown(&output::name_of(o))))
                .collect(),
            Format::Table | Format::Wide => {
                let table = table(objects, self.format == Format::Wide);
                if table.is_empty() {
                    format!("{empty}\n")
                } else {
                    table.render(true)
                }
            }
        };
        match self.format {
            Format::Json | Format::Yaml => write_data(out, &text),
            Format::Name | Format::Table | Format::Wide => write(out, &text),
        }
    }

    /// The node a sensor verb is about: `--node`, else the only node there is.
    fn node_for(&self, hub: &Hub, node: Option<&String>) -> Result<String, CtlError> {
        if let Some(node) = node {
            return Ok(node.clone());
        }
        let nodes: Vec<Node> = typed_items(&hub.get("/api/v1/nodes")?);
        match nodes.as_slice() {
            [one] => Ok(one.metadata.name.clone()),
            [] => Err(CtlError::Usage(
                "the hub has no node yet; create one with `aloftctl create node NAME`".into(),
            )),
            many => Err(CtlError::Usage(format!(
                "the hub has {} nodes ({}): say which with --node NAME",
                many.len(),
                many.iter()
                    .map(|n| n.metadata.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn get(&self, args: &GetArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let query = |extra: &str| -> String {
            let mut q = Vec::new();
            if let Some(node) = &args.node {
                q.push(format!("node={}", segment(node)));
            }
            if args.kind == Kind::Events {
                q.push(format!("limit={}", args.limit));
            }
            if !extra.is_empty() {
                q.push(extra.to_owned());
            }
            if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            }
        };
        let collection = match args.kind {
            Kind::Nodes => "/api/v1/nodes".to_owned(),
            Kind::Sensors => "/api/v1/sensors".to_owned(),
            Kind::Commands => "/api/v1/commands".to_owned(),
            Kind::Events => "/api/v1/events".to_owned(),
            Kind::Tokens => "/api/v1/tokens".to_owned(),
        };
        let (path, single) = match (&args.name, args.kind) {
            (None, _) => (collection.clone(), false),
            (Some(name), Kind::Sensors) => {
                let node = self.node_for(&hub, args.node.as_ref())?;
                (
                    format!("/api/v1/nodes/{}/sensors/{}", segment(&node), segment(name)),
                    true,
                )
            }
            (Some(name), _) => (format!("{collection}/{}", segment(name)), true),
        };
        let now = SystemTime::now();
        let kind = args.kind;
        let listed = if single {
            vec![hub.get(&path)?]
        } else {
            items(&hub.get(&format!("{path}{}", query("")))?)
        };
        let empty = format!("No {} found.", format!("{kind:?}").to_ascii_lowercase());
        self.show(
            out,
            &listed,
            single,
            |o, w| views::table(kind, o, w, now),
            &empty,
        )?;
        if !args.watch {
            return Ok(());
        }
        if kind == Kind::Tokens {
            return Err(CtlError::Usage(
                "watch works for nodes, sensors, commands and events".into(),
            ));
        }
        out.flush().map_err(io("writing the output"))?;
        let watch_path = if single {
            format!("{path}?watch=true")
        } else {
            format!("{path}{}", query("watch=true"))
        };
        let wide = self.format == Format::Wide;
        // Later rows keep the columns of the table printed first; after an empty listing
        // the first row brings the header.
        let first = views::table(kind, &listed, wide, now);
        let mut widths = first.widths();
        let mut header_shown = !first.is_empty();
        let mut failure = None;
        // The watch starts with the current objects, already printed above.
        let identity = |o: &Value| {
            let meta = read_as::<PartialObjectMetadata>(o).metadata;
            meta.uid.unwrap_or(meta.name)
        };
        let listed: Vec<String> = listed.iter().map(identity).collect();
        hub.watch(&watch_path, |event| {
            let Ok(WatchEvent {
                kind: change,
                object,
            }) = WatchEvent::<Value>::deserialize(&event)
            else {
                return true;
            };
            let object = &object;
            if change == WatchEventType::Added && listed.contains(&identity(object)) {
                return true;
            }
            let text = match self.format {
                Format::Json => output::to_json(&event),
                Format::Yaml => format!("---\n{}", output::to_yaml(&event)),
                Format::Name => format!("{}\n", shown(&output::name_of(object))),
                Format::Table | Format::Wide => {
                    let table =
                        views::table(kind, std::slice::from_ref(object), wide, SystemTime::now());
                    let text = table.render_within(!header_shown, &widths);
                    if !header_shown {
                        widths = table.widths();
                        header_shown = true;
                    }
                    // Every character left that could drive the terminal is escaped.
                    output::terminal_text(&text, true).into_owned()
                }
            };
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        match failure {
            // A closed pipe (`| head`) ends a watch; it is not an error.
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Some(e) => Err(io("writing the output")(e)),
            None => Ok(()),
        }
    }

    fn describe(&self, args: &DescribeArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let now = SystemTime::now();
        let (object, node, sensor) = match args.kind {
            DescribeKind::Node => {
                let node = hub.get(&format!("/api/v1/nodes/{}", segment(&args.name)))?;
                (node, args.name.clone(), None)
            }
            DescribeKind::Sensor => {
                let node = self.node_for(&hub, args.node.as_ref())?;
                let sensor = hub.get(&format!(
                    "/api/v1/nodes/{}/sensors/{}",
                    segment(&node),
                    segment(&args.name)
                ))?;
                (sensor, node, Some(args.name.clone()))
            }
        };
        if matches!(self.format, Format::Json | Format::Yaml | Format::Name) {
            return self.show(
                out,
                std::slice::from_ref(&object),
                true,
                |_, _| Table::default(),
                "",
            );
        }
        let described: PartialObjectMetadata = read_as(&object);
        let mut text = String::new();
        text.push_str(&format!(
            "Name:         {}\nKind:         {}\n",
            shown(&described.metadata.name),
            shown(&described.kind)
        ));
        if sensor.is_some() {
            text.push_str(&format!("Node:         {}\n", shown(&node)));
        }
        // A node's health gets its own section below; the status shows everything else.
        let mut object = object;
        let health = match object.pointer_mut("/status").and_then(Value::as_object_mut) {
            Some(status) if sensor.is_none() => status.remove("health"),
            _ => None,
        };
        // Spec and status as the hub sent them, every field it sent shown.
        for (title, field) in [("Spec", "spec"), ("Status", "status")] {
            if let Some(section) = object.get(field).filter(|v| !v.is_null()) {
                text.push_str(&format!("{title}:\n"));
                for line in output::to_yaml(section).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
        if let Some(health) = health.filter(|h| !h.is_null()) {
            text.push_str("Health:\n");
            for (label, value) in views::node_health(&read_as(&health), now) {
                text.push_str(&format!("  {:<14}{value}\n", format!("{label}:")));
            }
        }
        let mut sensors = items(&hub.get(&format!("/api/v1/sensors?node={}", segment(&node)))?);
        if let Some(name) = &sensor {
            sensors.retain(|s| read_as::<Sensor>(s).metadata.name == *name);
        } else {
            text.push_str("Sensors:\n");
            for line in views::table(Kind::Sensors, &sensors, false, now)
                .render(true)
                .lines()
            {
                text.push_str(&format!("  {line}\n"));
            }
        }
        let mut commands = items(&hub.get(&format!("/api/v1/commands?node={}", segment(&node)))?);
        if let Some(name) = &sensor {
            commands.retain(|c| read_as::<Command>(c).spec.sensor == *name);
        }
        text.push_str("Commands:\n");
        if commands.is_empty() {
            text.push_str("  <none>\n");
        } else {
            for line in views::table(Kind::Commands, &commands, false, now)
                .render(true)
                .lines()
            {
                text.push_str(&format!("  {line}\n"));
            }
        }
        // Events are for admins and operators to see; a viewer's describe still works.
        match hub.get(&format!("/api/v1/events?node={}&limit=20", segment(&node))) {
            Ok(list) => {
                let mut events = items(&list);
                if let Some(name) = &sensor {
                    // The sensor's own events and those of its commands.
                    let command_names: Vec<String> = commands.iter().map(name_of).collect();
                    events.retain(|e| {
                        let object = read_as::<aloft_api::Event>(e).spec.object.name;
                        object == *name || command_names.contains(&object)
                    });
                }
                text.push_str("Events:\n");
                if events.is_empty() {
                    text.push_str("  <none>\n");
                } else {
                    for line in views::table(Kind::Events, &events, false, now)
                        .render(true)
                        .lines()
                    {
                        text.push_str(&format!("  {line}\n"));
                    }
                }
            }
            Err(ClientError::Forbidden { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        write(out, &text)
    }

    fn top(&self, args: &TopArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let path = match &args.node {
            Some(node) => format!("/api/v1/sensors?node={}", segment(node)),
            None => "/api/v1/sensors".to_owned(),
        };
        let sensors = items(&hub.get(&path)?);
        self.show(
            out,
            &sensors,
            false,
            |s, _| views::values(s),
            "No values yet.",
        )
    }

    fn restart(&self, args: &RestartArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let node = self.node_for(&hub, args.node.as_ref())?;
        let body = CommandRequest {
            spec: CommandRequestSpec {
                action: "restartSensor".to_owned(),
                sensor: args.name.clone(),
                hard: args.hard,
                ttl_seconds: Some(ttl_seconds(args.ttl)?),
            },
        };
        let command = hub.post(&format!("/api/v1/nodes/{}/commands", segment(&node)), &body)?;
        let created: Command = read_as(&command);
        let id = created.metadata.name.clone();
        match self.format {
            Format::Table | Format::Wide => write(
                out,
                &format!(
                    "command/{} created: {} on {}, {}\n",
                    shown(&id),
                    shown(&views::command_action(&created)),
                    shown(&node),
                    shown(&phase_words(&created))
                ),
            )?,
            _ => self.show(
                out,
                std::slice::from_ref(&command),
                true,
                |_, _| Table::default(),
                "",
            )?,
        }
        if !args.wait {
            return Ok(());
        }
        out.flush().map_err(io("writing the output"))?;
        self.wait_for(&hub, &id, args.timeout, out)
    }

    fn wait_for(
        &self,
        hub: &Hub,
        id: &str,
        timeout: std::time::Duration,
        out: &mut dyn Write,
    ) -> Result<(), CtlError> {
        let path = format!(
            "/api/v1/commands/{}?watch=true&timeoutSeconds={}",
            segment(id),
            whole_seconds(timeout)
        );
        let deadline = Instant::now() + timeout;
        let mut last: Option<Value> = None;
        let mut printed_phase = String::new();
        hub.watch(&path, |event| {
            // What arrives after the deadline came too late: the wait has timed out.
            if Instant::now() >= deadline {
                return false;
            }
            let Ok(WatchEvent { object, .. }) = WatchEvent::<Value>::deserialize(&event) else {
                return true;
            };
            let command: Command = read_as(&object);
            let phase = command.status.phase.clone();
            if phase != printed_phase && matches!(self.format, Format::Table | Format::Wide) {
                let _ = writeln!(
                    out,
                    "command/{} {}",
                    shown(id),
                    shown(&phase_words(&command))
                );
                let _ = out.flush();
                printed_phase.clone_from(&phase);
            }
            last = Some(object);
            !is_terminal(&phase)
        })?;
        let Some(last) = last else {
            return Err(CtlError::WaitTimedOut {
                id: id.to_owned(),
                phase: "unknown".into(),
                waited: humantime::format_duration(timeout).to_string(),
            });
        };
        if matches!(self.format, Format::Json | Format::Yaml | Format::Name) {
            self.show(
                out,
                std::slice::from_ref(&last),
                true,
                |_, _| Table::default(),
                "",
            )?;
        }
        let status = read_as::<Command>(&last).status;
        let phase = status.phase;
        match phase.as_str() {
            "Succeeded" => Ok(()),
            p if is_terminal(p) => Err(CtlError::CommandUnsuccessful {
                id: id.to_owned(),
                phase,
                message: status.message,
            }),
            _ => Err(CtlError::WaitTimedOut {
                id: id.to_owned(),
                phase,
                waited: humantime::format_duration(timeout).to_string(),
            }),
        }
    }

    fn set(&self, args: &SetArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        if args.interval.is_none()
            && !args.enable
            && !args.disable
            && args.tunables.is_empty()
            && args.power_override.is_none()
        {
            return Err(CtlError::Usage(
                "nothing to set: give --interval DURATION, --enable, --disable, --tunable KEY=VALUE or --power-override true|false"
                    .into(),
            ));
        }
        let mut spec = serde_json::Map::new();
        if let Some(interval) = args.interval {
            let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
            if ms == 0 {
                return Err(CtlError::Usage("--interval must be at least 1ms".into()));
            }
            spec.insert("intervalMs".into(), json!(ms));
        }
        if args.enable {
            spec.insert("enabled".into(), json!(true));
        }
        if args.disable {
            spec.insert("enabled".into(), json!(false));
        }
        if let Some(exempt) = args.power_override {
            spec.insert("powerOverride".into(), json!(exempt));
        }
        if !args.tunables.is_empty() {
            // A PATCH merges key by key; null removes a key (the last of a repeated key wins).
            let tunables: std::collections::BTreeMap<_, _> =
                args.tunables.iter().cloned().collect();
            spec.insert("tunables".into(), json!(tunables));
        }
        let hub = self.hub()?;
        let node = self.node_for(&hub, args.node.as_ref())?;
        let sensor = hub.patch(
            &format!(
                "/api/v1/nodes/{}/sensors/{}/spec",
                segment(&node),
                segment(&args.name)
            ),
            &Value::Object(spec),
        )?;
        self.changed(out, &sensor, "set")?;
        if args.wait.wait {
            out.flush().map_err(io("writing the output"))?;
            let deadline = Instant::now() + args.wait.timeout;
            self.wait_for_rollout(&hub, &sensor, deadline, args.wait.timeout, out)?;
        }
        Ok(())
    }

    /// Waits until the agent has observed the generation of `sensor` (the hub's answer to
    /// a change), or refused it, or `deadline` passes.
    fn wait_for_rollout(
        &self,
        hub: &Hub,
        sensor: &Value,
        deadline: Instant,
        timeout: Duration,
        out: &mut dyn Write,
    ) -> Result<(), CtlError> {
        let sensor: Sensor = read_as(sensor);
        let name = sensor.metadata.name;
        let node = sensor.metadata.node.unwrap_or_default();
        let generation = sensor.metadata.generation.unwrap_or(0);
        let left = deadline.saturating_duration_since(Instant::now());
        let path = format!(
            "/api/v1/nodes/{}/sensors/{}?watch=true&timeoutSeconds={}",
            segment(&node),
            segment(&name),
            whole_seconds(left)
        );
        let mut observed = None;
        let mut outcome: Option<Result<(), String>> = None;
        if !left.is_zero() {
            hub.watch(&path, |event| {
                // What arrives after the deadline came too late: the wait has timed out.
                if Instant::now() >= deadline {
                    return false;
                }
                let Ok(WatchEvent { object, .. }) = WatchEvent::<Sensor>::deserialize(&event)
                else {
                    return true;
                };
                observed = object.status.observed_generation;
                if observed.is_some_and(|o| o >= generation) {
                    outcome = Some(match object.status.refused {
                        Some(reason) if !reason.is_empty() => Err(reason),
                        _ => Ok(()),
                    });
                    return false;
                }
                true
            })?;
        }
        match outcome {
            Some(Ok(())) => {
                if matches!(self.format, Format::Table | Format::Wide) {
                    write(
                        out,
                        &format!(
                            "sensor/{} on {} observed generation {generation}\n",
                            shown(&name),
                            shown(&node)
                        ),
                    )?;
                }
                Ok(())
            }
            Some(Err(reason)) => Err(CtlError::Refused {
                sensor: name,
                node,
                generation,
                reason,
            }),
            None => Err(CtlError::RolloutTimedOut {
                sensor: name,
                node,
                generation,
                observed: observed.map_or_else(|| "none".to_owned(), |o| o.to_string()),
                waited: humantime::format_duration(timeout).to_string(),
            }),
        }
    }

    /// Deletes a sensor's desired state (`DELETE .../spec`).
    fn unset(&self, args: &UnsetArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let node = self.node_for(&hub, args.node.as_ref())?;
        let sensor = hub.delete(&format!(
            "/api/v1/nodes/{}/sensors/{}/spec",
            segment(&node),
            segment(&args.name)
        ))?;
        self.changed(out, &sensor, "unset (back to its config file)")
    }

    fn changed(&self, out: &mut dyn Write, sensor: &Value, verb: &str) -> Result<(), CtlError> {
        match self.format {
            Format::Table | Format::Wide => {
                let sensor: Sensor = read_as(sensor);
                let word = if sensor.status.changed == Some(false) {
                    "unchanged"
                } else {
                    verb
                };
                write(
                    out,
                    &format!(
                        "sensor/{} on {} {word} (generation {})\n",
                        shown(&sensor.metadata.name),
                        shown(sensor.metadata.node.as_deref().unwrap_or_default()),
                        sensor.metadata.generation.unwrap_or(0)
                    ),
                )
            }
            _ => self.show(
                out,
                std::slice::from_ref(sensor),
                true,
                |_, _| Table::default(),
                "",
            ),
        }
    }

    /// `apply` (with its `--wait`) or, without one, `diff`.
    fn apply(
        &self,
        args: &FileArgs,
        out: &mut dyn Write,
        wait: Option<RolloutWait>,
    ) -> Result<(), CtlError> {
        let dry = wait.is_none();
        let name = args.file.display().to_string();
        let text = if name == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(io("reading standard input"))?;
            text
        } else {
            std::fs::read_to_string(&args.file).map_err(|source| CtlError::Io {
                what: format!("cannot read {name}"),
                source,
            })?
        };
        let sensors = manifest::parse(&name, &text)?;
        let hub = self.hub()?;
        let mut changes = false;
        let mut applied_all = Vec::new();
        for sensor in &sensors {
            let path = format!(
                "/api/v1/nodes/{}/sensors/{}/spec",
                segment(&sensor.node),
                segment(&sensor.name)
            );
            if dry {
                let current = hub.get(&format!(
                    "/api/v1/nodes/{}/sensors/{}",
                    segment(&sensor.node),
                    segment(&sensor.name)
                ))?;
                // The hub validates too (an unknown sensor is an error in diff as in apply).
                hub.put(&format!("{path}?dryRun=true"), &sensor.spec_json())?;
                let lines = manifest::diff_lines(sensor, current.get("spec"));
                if !lines.is_empty() {
                    changes = true;
                    let mut text = format!(
                        "sensor/{} on {}:\n",
                        shown(&sensor.name),
                        shown(&sensor.node)
                    );
                    for line in lines {
                        text.push_str(&shown(&line));
                        text.push('\n');
                    }
                    write(out, &text)?;
                }
            } else {
                let applied = hub.put(&path, &sensor.spec_json())?;
                self.changed(out, &applied, "configured")?;
                applied_all.push(applied);
            }
        }
        if let Some(wait) = wait.filter(|w| w.wait) {
            out.flush().map_err(io("writing the output"))?;
            let deadline = Instant::now() + wait.timeout;
            for applied in &applied_all {
                self.wait_for_rollout(&hub, applied, deadline, wait.timeout, out)?;
            }
        }
        if changes {
            Err(CtlError::ChangesFound)
        } else {
            Ok(())
        }
    }

    fn logs(&self, args: &LogsArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let (node, sensor) = match args.kind {
            DescribeKind::Node => (args.name.clone(), None),
            DescribeKind::Sensor => (self.node_for(&hub, args.node.as_ref())?, Some(&args.name)),
        };
        let mut path = format!("/api/v1/nodes/{}/logs?lines={}", segment(&node), args.tail);
        if let Some(sensor) = sensor {
            path.push_str(&format!("&sensor={}", segment(sensor)));
        }
        let list = hub.get(&path)?;
        if matches!(self.format, Format::Json | Format::Yaml) {
            let text = if self.format == Format::Json {
                output::to_json(&list)
            } else {
                output::to_yaml(&list)
            };
            return write_data(out, &text);
        }
        let lines: Vec<LogLine> = typed_items(&list);
        if lines.is_empty() {
            return write(out, "No log lines.\n");
        }
        write(out, &views::log_lines(&lines))
    }

    fn cancel(&self, args: &CancelArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let command = hub.post(
            &format!("/api/v1/commands/{}/cancel", segment(&args.id)),
            &json!({}),
        )?;
        match self.format {
            Format::Table | Format::Wide => write(
                out,
                &format!(
                    "command/{} {}\n",
                    shown(&args.id),
                    shown(&phase_words(&read_as(&command)))
                ),
            ),
            _ => self.show(
                out,
                std::slice::from_ref(&command),
                true,
                |_, _| Table::default(),
                "",
            ),
        }
    }

    fn create(&self, what: &CreateWhat, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        let (created, secret) = match what {
            CreateWhat::Node { name } => {
                let node = hub.post(
                    "/api/v1/nodes",
                    &NodeRequest {
                        metadata: NodeRequestMeta { name: name.clone() },
                    },
                )?;
                let token = read_as::<Node>(&node).status.token.unwrap_or_default();
                (node, token)
            }
            CreateWhat::Token { role, description } => {
                let token = hub.post(
                    "/api/v1/tokens",
                    &TokenRequest {
                        spec: TokenRequestSpec {
                            role: role.clone(),
                            description: description.clone(),
                        },
                    },
                )?;
                let secret = read_as::<Token>(&token).status.secret.unwrap_or_default();
                (token, secret)
            }
        };
        match self.format {
            Format::Table | Format::Wide => {
                let text = match what {
                    CreateWhat::Node { name } => format!(
                        "node/{} created. Its token (shown once; put it in the agent's [hub] token_file):\n{}\n",
                        shown(name),
                        shown(&secret)
                    ),
                    CreateWhat::Token { role, .. } => format!(
                        "token/{} created with role {}. The token (shown once):\n{}\n",
                        shown(&name_of(&created)),
                        shown(role),
                        shown(&secret)
                    ),
                };
                write(out, &text)
            }
            _ => self.show(
                out,
                std::slice::from_ref(&created),
                true,
                |_, _| Table::default(),
                "",
            ),
        }
    }

    fn delete(&self, args: &DeleteArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        hub.delete(&format!("/api/v1/nodes/{}", segment(&args.name)))?;
        write(out, &format!("node/{} deleted\n", shown(&args.name)))
    }

    fn revoke(&self, args: &RevokeArgs, out: &mut dyn Write) -> Result<(), CtlError> {
        let hub = self.hub()?;
        hub.delete(&format!("/api/v1/tokens/{}", segment(&args.id)))?;
        write(out, &format!("token/{} revoked\n", shown(&args.id)))
    }

    fn version(&self, out: &mut dyn Write) -> Result<(), CtlError> {
        write(out, &format!("aloftctl {}\n", env!("CARGO_PKG_VERSION")))?;
        let hub = match self.hub() {
            Ok(hub) => hub,
            // No hub configured: the client's version is all there is to say.
            Err(CtlError::Config(ConfigError::NoHub)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let line = match hub.get("/api/v1/version") {
            Ok(v) => {
                let version = read_as::<Version>(&v).version;
                format!(
                    "aloft-hub {} at {}\n",
                    shown(if version.is_empty() {
                        "<unknown>"
                    } else {
                        &version
                    }),
                    shown(hub.base())
                )
            }
            Err(e) => format!(
                "aloft-hub at {}: {}\n",
                shown(hub.base()),
                shown(&e.to_string())
            ),
        };
        write(out, &line)
    }
}

/// A command's TTL in whole seconds: a fraction rounds up; zero is refused, as a command
/// that expires before any node could get it is a mistake.
fn ttl_seconds(ttl: Duration) -> Result<u64, CtlError> {
    if ttl.is_zero() {
        return Err(CtlError::Usage(
            "--ttl 0s would expire the command before the node could get it; give 1s or more (default 1h)".into(),
        ));
    }
    Ok(whole_seconds(ttl))
}

/// `duration` in whole seconds, rounded up (the hub's TTLs and watch timeouts are seconds).
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
        .max(1)
}

/// `pending (waiting for the node to connect)`, `succeeded: restarted`.
fn phase_words(command: &Command) -> String {
    let phase = command.status.phase.to_ascii_lowercase();
    let message = &command.status.message;
    if message.is_empty() {
        phase
    } else {
        format!("{phase}: {message}")
    }
}

/// Whether a command's phase is final.
pub fn is_terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Expired" | "Cancelled")
}

fn config_edit(
    target: &TargetArgs,
    what: &ConfigWhat,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let path = config::config_path(target);
    let mut file = ConfigFile::load(&path)?;
    match what {
        ConfigWhat::SetContext {
            name,
            server,
            certificate_authority,
            token_file,
            use_it,
        } => {
            let absolute =
                |p: &std::path::PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let index = match file.contexts.iter().position(|c| &c.name == name) {
                Some(i) => i,
                None => {
                    file.contexts.push(Context {
                        name: name.clone(),
                        server: None,
                        certificate_authority: None,
                        token: None,
                        token_file: None,
                    });
                    file.contexts.len() - 1
                }
            };
            if let Some(context) = file.contexts.get_mut(index) {
                if let Some(server) = server {
                    context.server = Some(server.clone());
                }
                if let Some(ca) = certificate_authority {
                    context.certificate_authority = Some(absolute(ca));
                }
                if let Some(token_file) = token_file {
                    context.token_file = Some(absolute(token_file));
                    context.token = None;
                }
            }
            if *use_it {
                file.current_context = Some(name.clone());
            }
            file.save(&path)?;
            write(
                out,
                &format!(
                    "context {} written to {}\n",
                    shown(name),
                    shown(&path.display().to_string())
                ),
            )
        }
        ConfigWhat::UseContext { name } => {
            if file.context(name).is_none() {
                return Err(ConfigError::UnknownContext {
                    name: name.clone(),
                    path,
                    known: file
                        .contexts
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .into());
            }
            file.current_context = Some(name.clone());
            file.save(&path)?;
            write(out, &format!("switched to context {}\n", shown(name)))
        }
        ConfigWhat::GetContexts => {
            let mut table = Table::new(&["CURRENT", "NAME", "SERVER"]);
            for context in &file.contexts {
                let current = file.current_context.as_deref() == Some(context.name.as_str());
                table.row(vec![
                    if current { "*" } else { "" }.to_owned(),
                    context.name.clone(),
                    context.server.clone().unwrap_or_default(),
                ]);
            }
            write(out, &table.render(true))
        }
        ConfigWhat::CurrentContext => match &file.current_context {
            Some(name) => write(out, &format!("{}\n", shown(name))),
            None => Err(CtlError::Usage(format!(
                "no current context in {}; set one with `aloftctl config use-context NAME`",
                path.display()
            ))),
        },
    }
}
