//! Query results (owned by the caller) and the reply/state buffers lent to
//! callbacks.

use osiris_runtime::QueryResult;

use crate::error::{entry, entry_value, osiris_result, Failure};
use crate::handles::{borrow, release, Handle, Kind};
use crate::types::{bytes, need_out, osiris_member, write_out};
use crate::upcall::osiris_buf;

/// What a query collected (opaque). Made by `osiris_query`, freed by
/// `osiris_query_result_free`; the reply bytes it lends stay valid until
/// then.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_query_result {
    replies: Vec<(osiris_member, Vec<u8>)>,
    failed: Vec<osiris_member>,
    timed_out: bool,
}

impl Handle for osiris_query_result {
    const KIND: Kind = Kind::QueryResult;
    const NAME: &'static str = "query result";
}

impl osiris_query_result {
    pub(crate) fn new(result: QueryResult) -> osiris_query_result {
        osiris_query_result {
            replies: result
                .replies
                .into_iter()
                .map(|(from, reply)| (from.into(), reply))
                .collect(),
            failed: result.failed.into_iter().map(Into::into).collect(),
            timed_out: result.timed_out,
        }
    }
}

/// How many replies arrived (0 for NULL or a bad handle).
#[no_mangle]
pub extern "C" fn osiris_query_result_reply_count(result: *const osiris_query_result) -> usize {
    // SAFETY: a result handle the caller does not free meanwhile.
    entry_value(0, || Ok(unsafe { borrow(result) }?.replies.len()))
}

/// Reply `index` (arrival order): who sent it, and its bytes, lent until
/// the result is freed. `from` may be NULL; `data` and `len` may not.
/// Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_BAD_HANDLE`,
/// `OSIRIS_ERR_INVALID_ARGUMENT` (index past the end).
#[no_mangle]
pub extern "C" fn osiris_query_result_reply(
    result: *const osiris_query_result,
    index: usize,
    from: *mut osiris_member,
    data: *mut *const u8,
    len: *mut usize,
) -> osiris_result {
    entry(|| {
        // SAFETY: a result handle the caller does not free meanwhile.
        let result = unsafe { borrow(result) }?;
        need_out(data, "data")?;
        need_out(len, "len")?;
        let (member, reply) = result.replies.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "reply {index} of {} (index past the end)",
                result.replies.len()
            ))
        })?;
        // SAFETY: every output pointer written is not NULL (checked) and,
        // per the header, writable.
        unsafe {
            if !from.is_null() {
                write_out(from, *member);
            }
            write_out(data, reply.as_ptr());
            write_out(len, reply.len());
        }
        Ok(())
    })
}

/// How many responders left the view before replying (0 for NULL or a bad
/// handle).
#[no_mangle]
pub extern "C" fn osiris_query_result_failed_count(result: *const osiris_query_result) -> usize {
    // SAFETY: a result handle the caller does not free meanwhile.
    entry_value(0, || Ok(unsafe { borrow(result) }?.failed.len()))
}

/// Failed responder `index`. Errors as for `osiris_query_result_reply`.
#[no_mangle]
pub extern "C" fn osiris_query_result_failed(
    result: *const osiris_query_result,
    index: usize,
    member: *mut osiris_member,
) -> osiris_result {
    entry(|| {
        // SAFETY: a result handle the caller does not free meanwhile.
        let result = unsafe { borrow(result) }?;
        need_out(member, "member")?;
        let failed = result.failed.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "failed member {index} of {} (index past the end)",
                result.failed.len()
            ))
        })?;
        // SAFETY: `member` is not NULL (checked) and writable.
        unsafe { write_out(member, *failed) };
        Ok(())
    })
}

/// Whether some responder neither replied nor failed within the timeout
/// (false for NULL or a bad handle).
#[no_mangle]
pub extern "C" fn osiris_query_result_timed_out(result: *const osiris_query_result) -> bool {
    // SAFETY: a result handle the caller does not free meanwhile.
    entry_value(false, || Ok(unsafe { borrow(result) }?.timed_out))
}

/// Frees a query result and the reply bytes it lent. NULL is a no-op; a
/// second free is detected and ignored.
#[no_mangle]
pub extern "C" fn osiris_query_result_free(result: *mut osiris_query_result) {
    entry(|| {
        // SAFETY: the caller does not use `result` from another thread
        // during or after this call.
        drop(unsafe { release(result) }?);
        Ok(())
    });
}

/// Replaces the contents of a buffer lent to `on_query` or `on_checkpoint`
/// with a copy of `len` bytes at `data` (NULL allowed when `len` is 0).
/// Only during that callback. Errors: `OSIRIS_ERR_NULL`.
#[no_mangle]
pub extern "C" fn osiris_buf_set(
    buf: *mut osiris_buf,
    data: *const u8,
    len: usize,
) -> osiris_result {
    buf_write(buf, data, len, true)
}

/// Appends a copy of `len` bytes at `data` to a buffer lent to `on_query`
/// or `on_checkpoint` (to write a state piece by piece). Only during that
/// callback. Errors: `OSIRIS_ERR_NULL`.
#[no_mangle]
pub extern "C" fn osiris_buf_append(
    buf: *mut osiris_buf,
    data: *const u8,
    len: usize,
) -> osiris_result {
    buf_write(buf, data, len, false)
}

fn buf_write(buf: *mut osiris_buf, data: *const u8, len: usize, replace: bool) -> osiris_result {
    entry(|| {
        if buf.is_null() {
            return Err(Failure::null("buf"));
        }
        // SAFETY: `len` readable bytes at `data`, unchanged during the call.
        let data = unsafe { bytes(data, len) }?;
        // SAFETY: not NULL; a buffer is only handed out by the library, on
        // the stack of the callback now running on this thread, which holds
        // no other reference to it during the C call.
        let buf = unsafe { &mut *buf };
        let bytes = buf.bytes.get_or_insert_with(Vec::new);
        if replace {
            bytes.clear();
        }
        bytes.extend_from_slice(data);
        Ok(())
    })
}
