//! `GET /api/v1/nodes/{node}/readings` (NDJSON, streamed) and `GET
//! /api/v1/nodes/{node}/gaps`.
//!
//! Invariants: readings stream from the database in (epoch, seq) order through a bounded
//! channel, so memory stays flat whatever the range; UTC is the reading's own, or
//! reconstructed from its boot's time correlation (`time_source: "reconstructed"`), or
//! null when the hub has no correlation for its boot yet.

use aloft_api::{Gap, List, ListMeta, Reading, SeqRange, TimeSpan};
use aloft_protocol::Quantity;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, ApiState, Caller, Query, timestamp};
use crate::clock::{hex, parse_utc};
use crate::storage::streams::{ReadingQuery, ReadingRow, StreamGap, source_name};
use crate::tokens::Role;

/// Query parameters of the readings route.
#[derive(Debug, Default, Deserialize)]
pub struct ReadingParams {
    /// Sensor name.
    pub sensor: Option<String>,
    /// Quantity name (`air_pressure`, ...).
    pub quantity: Option<String>,
    /// RFC 3339 or ns since the Unix epoch, inclusive.
    pub since: Option<String>,
    /// RFC 3339 or ns since the Unix epoch, exclusive.
    pub until: Option<String>,
    /// At most this many lines.
    pub limit: Option<u64>,
}

/// One reading as an NDJSON line.
pub fn reading_json(row: &ReadingRow) -> Reading {
    Reading {
        sensor: row.sensor.clone(),
        quantity: row.quantity.to_string(),
        unit: row.quantity.unit().map(str::to_owned),
        value: Some(row.value),
        utc: timestamp(row.utc_ns),
        utc_ns: row.utc_ns,
        mono_ns: row.mono_ns,
        time_source: source_name(row.source).to_owned(),
        quality: row.quality.names().map(str::to_owned).collect(),
        epoch: hex(&row.epoch.0),
        seq: row.seq,
    }
}

/// 404 unless `node` exists.
pub(crate) async fn require_node(state: &ApiState, node: &str) -> Result<(), ApiError> {
    let registry = state.hub.registry.clone();
    let name = node.to_owned();
    let exists = tokio::task::spawn_blocking(move || registry.exists(&name))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no node {node:?}; `GET /api/v1/nodes` lists them"
        )))
    }
}

/// `GET /api/v1/nodes/{node}/readings?sensor=&quantity=&since=&until=&limit=` (viewer).
pub async fn readings(
    caller: Caller,
    State(state): State<ApiState>,
    Path(node): Path<String>,
    Query(params): Query<ReadingParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    require_node(&state, &node).await?;
    let quantity = match &params.quantity {
        None => None,
        Some(name) => Some(Quantity::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown quantity {name:?} (use names like air_pressure)"
            ))
        })?),
    };
    let time = |text: &Option<String>, what: &str| -> Result<Option<i64>, ApiError> {
        match text {
            None => Ok(None),
            Some(t) => parse_utc(t).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what}={t:?} is neither RFC 3339 (2026-11-24T12:00:00Z) nor ns since 1970"
                ))
            }),
        }
    };
    let query = ReadingQuery {
        node,
        sensor: params.sensor.clone(),
        quantity,
        since_utc_ns: time(&params.since, "since")?,
        until_utc_ns: time(&params.until, "until")?,
        limit: params.limit,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let streams = state.hub.streams.clone();
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(64 << 10);
        let mut open = true;
        let result = streams.readings(&query, |row| {
            if serde_json::to_writer(&mut chunk, &reading_json(&row)).is_err() {
                return false;
            }
            chunk.push(b'\n');
            if chunk.len() >= 60 << 10 {
                open = tx
                    .blocking_send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                    .is_ok();
            }
            open
        });
        match result {
            Ok(()) if open && !chunk.is_empty() => {
                let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
            }
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "Reading query failed mid-stream.");
                // Cuts the response: the client sees a truncated body, not a false end.
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `GET /api/v1/nodes/{node}/gaps` (viewer): a `GapList`.
pub async fn gaps(
    caller: Caller,
    State(state): State<ApiState>,
    Path(node): Path<String>,
) -> Result<Json<List<Gap>>, ApiError> {
    caller.require(Role::Viewer)?;
    require_node(&state, &node).await?;
    let streams = state.hub.streams.clone();
    let name = node.clone();
    let gaps = tokio::task::spawn_blocking(move || streams.gaps(&name))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    let items: Vec<Gap> = gaps
        .iter()
        .map(|gap| match gap {
            StreamGap::Recorded { epoch, seq, gap } => Gap::Recorded {
                epoch: hex(&epoch.0),
                seq: *seq,
                reason: format!("{:?}", gap.reason),
                covers: gap.covers.map(|(first, last)| SeqRange { first, last }),
                readings: gap.readings,
                sensor: gap.sensor.map(|s| s.0),
                span: gap.span.map(|(a, b)| TimeSpan {
                    from_mono_ns: a.mono_ns,
                    from: timestamp(a.utc_ns),
                    to_mono_ns: b.mono_ns,
                    to: timestamp(b.utc_ns),
                }),
            },
            StreamGap::Unsynced { epoch, first, last } => Gap::Unsynced {
                epoch: hex(&epoch.0),
                covers: SeqRange {
                    first: *first,
                    last: *last,
                },
            },
        })
        .collect();
    Ok(Json(List::new("Gap", items).with_metadata(ListMeta {
        node: Some(node),
        sensor: None,
    })))
}
