//! The zstd frame around a batch's columns. Compressing reuses one zstd context per
//! thread; inflating is capped: whatever a frame declares or a stream grows to, it never
//! costs more than the decoder's `max_decoded_bytes` of memory, nor a window larger than
//! that cap needs.

extern crate std;

use alloc::vec::Vec;
use core::cell::RefCell;
use std::io::Read;

use super::{BatchError, ZSTD_LEVEL};

std::thread_local! {
    // zstd contexts cost hundreds of kB to set up: one per thread, reused by every batch.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

pub(super) fn deflate(columns: &[u8]) -> Result<Vec<u8>, BatchError> {
    let fail = BatchError::Deflate;
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(fail)?),
        };
        compressor.compress(columns).map_err(fail)
    })
}

/// Inflates one zstd frame, refusing it as soon as it passes `max` bytes: a frame that
/// declares its size inflates into a buffer of that size, which zstd never overruns; one
/// that does not grows its output as it inflates and is cut at the cap. Either way a bomb
/// costs at most `max` bytes of memory, never what it claims.
pub(super) fn inflate(payload: &[u8], max: usize) -> Result<Vec<u8>, BatchError> {
    let fail = BatchError::Inflate;
    // The window is the decoder's other allocation: no honest frame needs one larger than
    // the cap on its content (zstd's floor is 2^10).
    let window_log = (usize::BITS - max.max(1 << 10).saturating_sub(1).leading_zeros()).min(31);
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(payload) {
        let declared = usize::try_from(declared).unwrap_or(usize::MAX);
        if declared > max {
            return Err(BatchError::TooLarge { max });
        }
        return DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new().map_err(fail)?),
            };
            decompressor
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(window_log))
                .map_err(fail)?;
            decompressor.decompress(payload, declared).map_err(fail)
        });
    }
    let mut decoder = zstd::stream::read::Decoder::new(payload).map_err(fail)?;
    decoder.window_log_max(window_log).map_err(fail)?;
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(max));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(BatchError::Inflate)?;
    if out.len() > max {
        return Err(BatchError::TooLarge { max });
    }
    Ok(out)
}
