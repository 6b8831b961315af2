//! The seam the control layer builds on, with the hub in-process (`server::serve`) over real TLS: the
//! control layer's messages are sent after the welcome, the node's control messages reach
//! it, `Sessions::push` delivers at once, and extra API routes are served with the hub's
//! authentication.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_hub::api::{ApiState, Caller};
use aloft_hub::server::{ServeOptions, serve};
use aloft_hub::testing::{NodeClient, api_get, client_config, hello};
use aloft_hub::{Hub, RecordingControl, Role};
use aloft_protocol::StoreEpoch;
use aloft_protocol::sync::{
    Command, CommandAction, CommandOutcome, DesiredSensorSpec, DesiredSpec, Downlink, Uplink,
};
use axum::Router;
use axum::routing::get;

fn desired() -> Downlink {
    Downlink::Desired(DesiredSpec {
        sensors: vec![DesiredSensorSpec {
            name: "static".into(),
            generation: 3,
            interval_ms: Some(200),
            enabled: None,
        }],
        tunables: vec![],
        power_overrides: vec![],
    })
}

async fn operator_only(caller: Caller) -> Result<&'static str, aloft_hub::api::ApiError> {
    caller.require(Role::Operator)?;
    Ok("restarted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_flow_both_ways_and_extra_routes_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let init = aloft_hub::init::init(&aloft_hub::init::InitOptions {
        data_dir: data.clone(),
        sans: vec!["localhost".into()],
        node: "glider".into(),
    })
    .unwrap();
    let hub = Hub::open(&data).unwrap();
    let (_, viewer) = hub
        .tokens
        .create(Role::Viewer, None, "test viewer")
        .unwrap();
    let control = Arc::new(RecordingControl::new(vec![desired()]));
    let routes: Router<ApiState> = Router::new().route("/api/v1/extra", get(operator_only));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        hub.clone(),
        aloft_hub::pki::server_config(&data).unwrap(),
        listener,
        ServeOptions {
            control: control.clone(),
            routes: Some(routes),
        },
        async {
            let _ = stopped.await;
        },
    ));
    let tls = client_config(&init.ca_file).unwrap();

    let mut node = NodeClient::connect(addr, &tls, &init.node_token)
        .await
        .unwrap();
    node.hello(hello("glider", StoreEpoch([4; 16])))
        .await
        .unwrap();
    assert_eq!(
        node.recv().await.unwrap(),
        desired(),
        "on_connect follows the welcome"
    );

    let result = Uplink::CommandResult {
        id: "c1".into(),
        outcome: CommandOutcome::Succeeded {
            message: "restarted".into(),
        },
    };
    node.send(&Uplink::CommandAck { id: "c1".into() })
        .await
        .unwrap();
    node.send(&result).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while control.received().len() < 2 {
        assert!(Instant::now() < deadline, "control messages did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        control.received(),
        vec![
            ("glider".to_owned(), Uplink::CommandAck { id: "c1".into() }),
            ("glider".to_owned(), result),
        ]
    );

    let command = Downlink::Command(Command {
        id: "c2".into(),
        expires_utc_ns: i64::MAX,
        action: CommandAction::RestartSensor {
            sensor: "static".into(),
            hard: false,
        },
    });
    assert!(hub.sessions.is_connected("glider"));
    assert!(hub.sessions.push("glider", command.clone()));
    assert_eq!(node.recv().await.unwrap(), command);
    assert!(!hub.sessions.push("nobody", command));

    let (status, body) = api_get(addr, &tls, Some(&init.admin_token), "/api/v1/extra")
        .await
        .unwrap();
    assert_eq!((status, body.as_slice()), (200, b"restarted".as_slice()));
    let (status, body) = api_get(addr, &tls, Some(&viewer), "/api/v1/extra")
        .await
        .unwrap();
    assert_eq!(status, 403);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["kind"], "Status");
    assert_eq!(error["reason"], "Forbidden");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        !hub.sessions.is_connected("glider"),
        "shutdown ends sessions"
    );
}
