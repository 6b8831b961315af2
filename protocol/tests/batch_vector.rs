//! The batch codec across architectures: `testdata/batch-vectors/` holds batches encoded on
//! x86_64 (every record kind and quantity, in every encoding the codec has). Every build
//! (x86_64 natively, aarch64 and armv7 under qemu in `cargo xtask test`) decodes them to
//! the expected records and encodes those records to the same bytes, byte for byte. So
//! what x86 encodes ARM decodes, and what ARM encodes is what x86 decodes.
//!
//! The files are read with `include_bytes!`: the test binary carries them, wherever it runs.
//! Regenerate them (on x86_64 only, after a deliberate change of the format, of zstd or of
//! the records in `common/mod.rs`) with
//! `ALOFT_WRITE_BATCH_VECTORS=1 cargo test -p aloft-protocol --test batch_vector`.

mod common;

use aloft_protocol::sync::BatchEncoding;
use aloft_protocol::sync::batch::{DEFAULT_BATCH_LIMITS, decode_batch, encode_batch};

/// Every encoding the codec has: a new one fails [`encoding_name`]'s match until it is
/// added here and to the vectors.
const ENCODINGS: [BatchEncoding; 2] = [BatchEncoding::Postcard, BatchEncoding::ColumnarZstd];

fn encoding_name(encoding: BatchEncoding) -> &'static str {
    match encoding {
        BatchEncoding::Postcard => "postcard",
        BatchEncoding::ColumnarZstd => "columnar-zstd",
        _ => panic!("{encoding:?} has no test vector"),
    }
}

macro_rules! vectors {
    ($($case:literal),* $(,)?) => {
        /// The committed vectors, compiled in: (case, encoding name, bytes).
        const COMMITTED: &[(&str, &str, &[u8])] = &[
            $(
                ($case, "postcard", include_bytes!(concat!("../testdata/batch-vectors/", $case, ".postcard.bin"))),
                ($case, "columnar-zstd", include_bytes!(concat!("../testdata/batch-vectors/", $case, ".columnar-zstd.bin"))),
            )*
        ];
    };
}
vectors!("every-kind", "flight", "edges", "empty");

fn committed(case: &str, encoding: BatchEncoding) -> &'static [u8] {
    let name = encoding_name(encoding);
    COMMITTED
        .iter()
        .find(|(c, e, _)| *c == case && *e == name)
        .map(|(_, _, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no committed vector {case}.{name}"))
}

fn write_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/batch-vectors");
    std::fs::create_dir_all(&dir).expect("create the vector directory");
    for (case, entries) in common::vector_cases() {
        for encoding in ENCODINGS {
            let bytes = encode_batch(encoding, &entries).expect("the cases encode");
            let path = dir.join(format!("{case}.{}.bin", encoding_name(encoding)));
            std::fs::write(&path, bytes).expect("write a vector");
        }
    }
}

#[test]
fn committed_vectors_cover_every_case_and_encoding() {
    let cases = common::vector_cases();
    assert_eq!(COMMITTED.len(), cases.len() * ENCODINGS.len());
    for (case, _) in &cases {
        for encoding in ENCODINGS {
            committed(case, encoding);
        }
    }
    // The cases hold every quantity.
    let every_kind = common::every_kind();
    for quantity in aloft_protocol::Quantity::ALL {
        assert!(
            every_kind.iter().any(|(_, r)| matches!(
                r, aloft_protocol::Record::Reading(reading) if reading.quantity == *quantity
            )),
            "no reading of {quantity:?} in the vectors"
        );
    }
}

#[test]
fn committed_vectors_decode_to_the_expected_records() {
    if std::env::var_os("ALOFT_WRITE_BATCH_VECTORS").is_some() {
        write_vectors();
        return;
    }
    for (case, entries) in common::vector_cases() {
        for encoding in ENCODINGS {
            let decoded = decode_batch(encoding, committed(case, encoding), &DEFAULT_BATCH_LIMITS)
                .unwrap_or_else(|e| panic!("{case} {encoding:?} does not decode: {e}"));
            assert_eq!(decoded.len(), entries.len(), "{case} {encoding:?}");
            assert!(
                common::bits(&decoded) == common::bits(&entries),
                "{case} {encoding:?} decodes to other records than were encoded"
            );
        }
    }
}

#[test]
fn the_same_records_encode_to_the_committed_bytes() {
    if std::env::var_os("ALOFT_WRITE_BATCH_VECTORS").is_some() {
        return;
    }
    for (case, entries) in common::vector_cases() {
        for encoding in ENCODINGS {
            let bytes = encode_batch(encoding, &entries).expect("the cases encode");
            let expected = committed(case, encoding);
            let first_difference = bytes.iter().zip(expected).position(|(a, b)| a != b);
            assert!(
                bytes == expected,
                "{case} {encoding:?} encodes to {} bytes, the committed vector has {}; first \
                 difference at {first_difference:?}",
                bytes.len(),
                expected.len()
            );
        }
    }
}
