//! [`HubSource`]: a node's stored stream as an [`aloft_dataset::RecordSource`], bounded to
//! a snapshot taken when the export started.
//!
//! The snapshot, per epoch: the newest number held then (`upto`), and the numbers below it
//! that were not held then (ranges not yet synced, received around). Records arriving
//! later (the agent keeps syncing, or fills such a range) are outside it, so every pass of
//! the export, and a resumed download asking with the same `upto` and creation time, read
//! exactly the same records. What the export knew when it started (the watermarks, the
//! ranges not synced, the node's last reported backlog) is kept with the stream tables as
//! the export's memo, keyed by (node, creation time, upto): the first request that names
//! them fixes it, later ones read it back, so the sidecar's completeness is the same bytes
//! too.

use std::ops::ControlFlow;

use aloft_dataset::source::{Backlog, EpochHeld, MissingSeqs};
use aloft_dataset::{Completeness, RecordSource, SourceError};
use aloft_protocol::{Record, StoreEpoch};
use serde::{Deserialize, Serialize};

use super::request::{parse_epoch, upto_text};
use crate::clock::hex;
use crate::storage::streams::{EpochBound, RecordKinds, StorageError, StreamGap, Streams};

/// What an export knew when it started: kept so a resumed download sees the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memo {
    /// Per epoch of the snapshot.
    pub epochs: Vec<MemoEpoch>,
    /// The node's backlog as last reported then.
    pub backlog: Option<MemoBacklog>,
}

/// One epoch of a [`Memo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoEpoch {
    /// The epoch, lowercase hex.
    pub epoch: String,
    /// The newest number of the snapshot.
    pub upto: u64,
    /// The contiguous watermark then (at most `upto`).
    pub watermark: Option<u64>,
    /// Ranges at or below `upto` not held then.
    pub not_synced: Vec<(u64, u64)>,
}

/// A node's backlog in a [`Memo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoBacklog {
    /// Records not yet sent.
    pub unsent_records: u64,
    /// When reported, RFC 3339.
    pub reported: Option<String>,
    /// Whether the hub held every record that backlog can reach when the export started:
    /// `None` when the report did not say where it ends (a hub that did not record it).
    #[serde(default)]
    pub arrived: Option<bool>,
    /// Where the backlog ends at the latest (the registry's bound), to decide `arrived`.
    #[serde(skip)]
    pub bound: Option<(StoreEpoch, u64)>,
}

/// A node's stream in the hub, bounded to a snapshot.
#[derive(Debug)]
pub struct HubSource {
    streams: Streams,
    node: String,
    bounds: Vec<EpochBound>,
    upto: String,
    completeness: Completeness,
}

impl HubSource {
    /// The stream of `node` bounded to `upto` (the newest held per epoch when `None`), as
    /// the export made at `created_utc_ns` sees it; `backlog` is the node's last reported
    /// backlog, kept in the memo when this is the first request of the export.
    pub fn open(
        streams: &Streams,
        node: &str,
        upto: Option<&[(StoreEpoch, u64)]>,
        created_utc_ns: i64,
        backlog: Option<MemoBacklog>,
    ) -> Result<HubSource, StorageError> {
        let held = streams.held(node)?;
        let upto: Vec<(StoreEpoch, u64)> = match upto {
            Some(u) => u.to_vec(),
            None => held
                .iter()
                .filter_map(|h| h.newest.map(|n| (h.epoch, n)))
                .collect(),
        };
        let gaps = streams.gaps(node)?;
        let epochs = upto
            .iter()
            .map(|&(epoch, bound)| {
                let h = held.iter().find(|h| h.epoch == epoch);
                let mut not_synced: Vec<(u64, u64)> = gaps
                    .iter()
                    .filter_map(|g| match g {
                        StreamGap::Unsynced {
                            epoch: e,
                            first,
                            last,
                        } if *e == epoch && *first <= bound => Some((*first, (*last).min(bound))),
                        _ => None,
                    })
                    .collect();
                // A snapshot reaching past what is held (asked for by hand): what is
                // beyond is not held either.
                let newest = h.and_then(|h| h.newest);
                match newest {
                    Some(n) if n < bound => not_synced.push((n + 1, bound)),
                    None => not_synced.push((0, bound)),
                    _ => {}
                }
                MemoEpoch {
                    epoch: hex(&epoch.0),
                    upto: bound,
                    watermark: h.and_then(|h| h.watermark).map(|w| w.min(bound)),
                    not_synced,
                }
            })
            .collect();
        let backlog = backlog.map(|mut b| {
            if let Some((epoch, last)) = b.bound {
                let watermark = held
                    .iter()
                    .find(|h| h.epoch == epoch)
                    .and_then(|h| h.watermark);
                b.arrived = Some(watermark.is_some_and(|w| w >= last));
            }
            b
        });
        let fresh = Memo { epochs, backlog };
        let upto_key = upto_text(&upto);
        let fresh_text = serde_json::to_string(&fresh).unwrap_or_default();
        let kept_text = streams.export_memo(node, created_utc_ns, &upto_key, &fresh_text)?;
        let memo = serde_json::from_str::<Memo>(&kept_text).unwrap_or(fresh);
        let bounds: Vec<EpochBound> = memo
            .epochs
            .iter()
            .filter_map(|e| {
                Some(EpochBound {
                    epoch: parse_epoch(&e.epoch)?,
                    upto: e.upto,
                    holes: e.not_synced.clone(),
                })
            })
            .collect();
        let completeness = Completeness {
            origin: "hub".to_owned(),
            epochs: memo
                .epochs
                .iter()
                .map(|e| EpochHeld {
                    epoch: e.epoch.clone(),
                    watermark: e.watermark,
                    newest: Some(e.upto),
                })
                .collect(),
            missing: memo
                .epochs
                .iter()
                .flat_map(|e| {
                    e.not_synced.iter().map(|&(first, last)| MissingSeqs {
                        epoch: e.epoch.clone(),
                        first,
                        last,
                        why: "not_synced".to_owned(),
                    })
                })
                .collect(),
            node_backlog: memo.backlog.as_ref().map(|b| Backlog {
                unsent_records: b.unsent_records,
                reported: b.reported.clone(),
                arrived: b.arrived,
            }),
        };
        Ok(HubSource {
            streams: streams.clone(),
            node: node.to_owned(),
            bounds,
            upto: upto_key,
            completeness,
        })
    }

    /// The snapshot as the `Aloft-Export-Upto` header and the `upto` parameter write it.
    pub fn upto(&self) -> &str {
        &self.upto
    }

    /// A counter of the records (of every kind) in the snapshot, to run beside the
    /// export: counting reads every record's key (a second on ten million).
    pub fn counter(&self) -> impl FnOnce() -> Result<u64, StorageError> + Send + 'static {
        let (streams, node, bounds) =
            (self.streams.clone(), self.node.clone(), self.bounds.clone());
        move || streams.count_bounded(&node, &bounds)
    }

    fn pass(
        &self,
        kinds: RecordKinds,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.streams
            .dump_bounded(&self.node, &self.bounds, kinds, |epoch, seq, record| {
                each(epoch, seq, &record).is_continue()
            })
            .map_err(|e| SourceError::Backend(Box::new(e)))
    }
}

impl RecordSource for HubSource {
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.pass(RecordKinds::All, each)
    }

    fn for_each_meta_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.pass(RecordKinds::Meta, each)
    }

    fn completeness(&self) -> Completeness {
        self.completeness.clone()
    }
}
