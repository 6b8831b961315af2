//! Bodies of the fuzz targets for what the hub and the agent read from each other (`fuzz/`),
//! kept in the library so that the committed corpora, and every crash input ever found,
//! replay as ordinary tests on stable Rust (`protocol/tests/fuzz_corpus.rs`).
//!
//! Each body feeds outside bytes to the same decoder the receiving end calls and checks
//! what must hold for any input:
//! - no panic;
//! - what decodes stays within the limits the decoder was given;
//! - what decodes encodes again, and that encoding decodes to the same value bit for bit
//!   (compared through postcard, which keeps every `f64` bit, NaN payloads included).
//!
//! Bounded allocation is checked around these bodies: by libFuzzer's `-malloc_limit_mb`
//! under `cargo fuzz`, and by a counting allocator in the replay test.

use alloc::vec::Vec;

use super::batch::{BatchLimits, DEFAULT_BATCH_LIMITS, decode_batch, encode_batch};
use super::{BatchEncoding, Downlink, Uplink, hello_version};
use crate::Record;

/// Limits small enough that short inputs reach the caps.
const SMALL_LIMITS: BatchLimits = BatchLimits {
    max_records: 64,
    max_decoded_bytes: 4096,
};

/// Limits of the round trip of what already decoded: its re-encoding may be a little larger
/// than the input (another encoding), and must still come back.
const ROUND_TRIP_LIMITS: BatchLimits = BatchLimits {
    max_records: usize::MAX,
    max_decoded_bytes: 64 << 20,
};

fn bits(entries: &[(u64, Record)]) -> Vec<u8> {
    postcard::to_allocvec(entries).unwrap_or_default()
}

/// Decodes a batch payload as the hub does, checks what came out and that it round-trips
/// through both encodings.
fn check_batch(encoding: BatchEncoding, payload: &[u8], limits: &BatchLimits) {
    let Ok(entries) = decode_batch(encoding, payload, limits) else {
        return;
    };
    assert!(
        entries.len() <= limits.max_records,
        "{} entries decoded past the {}-record cap",
        entries.len(),
        limits.max_records
    );
    assert!(
        entries.windows(2).all(|w| w[0].0 < w[1].0),
        "a batch decoded with sequence numbers out of order"
    );
    let original = bits(&entries);
    for again in [BatchEncoding::Postcard, BatchEncoding::ColumnarZstd] {
        let bytes = match encode_batch(again, &entries) {
            Ok(bytes) => bytes,
            Err(e) => panic!("decoded entries do not encode as {again:?}: {e}"),
        };
        let back = match decode_batch(again, &bytes, &ROUND_TRIP_LIMITS) {
            Ok(back) => back,
            Err(e) => panic!("{again:?} encoding of decoded entries does not decode: {e}"),
        };
        assert!(
            bits(&back) == original,
            "{again:?} round trip changed the entries"
        );
    }
}

/// A batch's payload as the hub receives it. The first byte picks the encoding (bit 0) and
/// the limits (bit 1: the defaults or small ones); the rest is the payload.
pub fn batch(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 {
        BatchEncoding::Postcard
    } else {
        BatchEncoding::ColumnarZstd
    };
    let limits = if selector & 2 == 0 {
        DEFAULT_BATCH_LIMITS
    } else {
        SMALL_LIMITS
    };
    check_batch(encoding, payload, &limits);
}

/// One WebSocket message from a node, as the hub decodes it: the hello's version first
/// (how the hub refuses a peer of another version), the message, and a batch's payload
/// with the hub's limits.
pub fn uplink(data: &[u8]) {
    let version = hello_version(data);
    let Ok(message) = Uplink::decode(data) else {
        return;
    };
    if let Uplink::Hello(hello) = &message {
        assert_eq!(
            version,
            Some(hello.protocol_version),
            "a decoded hello's version differs from the one read ahead of it"
        );
    }
    let encoded = message.encode();
    match Uplink::decode(&encoded) {
        Ok(back) => assert!(
            back.encode() == encoded,
            "uplink message changed in a round trip"
        ),
        Err(e) => panic!("a re-encoded uplink message does not decode: {e}"),
    }
    if let Uplink::Batch(batch) = &message {
        check_batch(batch.encoding, &batch.payload, &DEFAULT_BATCH_LIMITS);
    }
}

/// One WebSocket message from the hub, as the agent decodes it.
pub fn downlink(data: &[u8]) {
    let Ok(message) = Downlink::decode(data) else {
        return;
    };
    let encoded = message.encode();
    match Downlink::decode(&encoded) {
        Ok(back) => assert!(
            back.encode() == encoded,
            "downlink message changed in a round trip"
        ),
        Err(e) => panic!("a re-encoded downlink message does not decode: {e}"),
    }
}
