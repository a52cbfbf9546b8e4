//! Groups: join, the sends, flush, query, reply, leave.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use osiris_runtime::Group;

use crate::error::{entry, osiris_result, Failure};
use crate::handles::{borrow, publish, release, Handle, Kind};
use crate::node::osiris_node;
use crate::query::osiris_query_result;
use crate::types::{
    bytes, need_out, osiris_member, osiris_query_ref, osiris_query_spec, send_kind, text,
    write_out, QUERY_SPEC_DEFAULT,
};
use crate::upcall::{group_handlers, osiris_group_callbacks, refuse_in_callback};

/// A joined group (opaque). Made by `osiris_group_join`, freed by
/// `osiris_group_free`; usable from any thread at once.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_group {
    group: Group,
    /// Set by `osiris_group_leave`: every later call fails with
    /// `OSIRIS_ERR_CLOSED`.
    left: AtomicBool,
}

impl Handle for osiris_group {
    const KIND: Kind = Kind::Group;
    const NAME: &'static str = "group";
}

impl osiris_group {
    fn open(&self) -> Result<&Group, Failure> {
        if self.left.load(Ordering::Acquire) {
            return Err(Failure::new(
                osiris_result::OSIRIS_ERR_CLOSED,
                "the group was left (osiris_group_leave): free the handle",
            ));
        }
        Ok(&self.group)
    }
}

/// The send family's check: NULL and closed only, no registry lock (see the
/// `handles` module: a freed handle here is not detected).
///
/// # Safety
/// `group` is NULL or a live group handle not freed during the call.
unsafe fn group_fast<'a>(group: *const osiris_group) -> Result<&'a Group, Failure> {
    if group.is_null() {
        return Err(Failure::null("group"));
    }
    // SAFETY: not NULL, and the caller promises a live handle (the header's
    // contract for the send functions).
    let group = unsafe { &*group };
    group.open()
}

/// A group handle through the registry, refused when closed.
///
/// # Safety
/// As for `handles::borrow`.
unsafe fn group_checked<'a>(group: *const osiris_group) -> Result<&'a Group, Failure> {
    // SAFETY: forwarded contract.
    unsafe { borrow(group) }?.open()
}

/// Joins the group `name` (creating it if it does not exist) and waits for
/// the view that admits this node (at most `join_timeout`). A joiner's
/// `on_load` runs on the data-plane thread before any delivery in the
/// group, but may run after this returns. `callbacks` may be NULL and is
/// copied. On success `*out` is a new group handle the caller frees with
/// `osiris_group_free`. Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_BAD_HANDLE`,
/// `OSIRIS_ERR_PROTOCOL` (bad name, already joined), `OSIRIS_ERR_TIMEOUT`,
/// `OSIRIS_ERR_STOPPED`, `OSIRIS_ERR_IN_CALLBACK`.
#[no_mangle]
pub extern "C" fn osiris_group_join(
    node: *const osiris_node,
    name: *const c_char,
    callbacks: *const osiris_group_callbacks,
    out: *mut *mut osiris_group,
) -> osiris_result {
    entry(|| {
        refuse_in_callback("osiris_group_join")?;
        need_out(out, "out")?;
        // SAFETY: a node handle the caller does not free meanwhile.
        let node = unsafe { borrow(node) }?;
        // SAFETY: a NUL-terminated string (or NULL, refused).
        let name = unsafe { text(name, "name") }?;
        let mut builder = node.node().group(name);
        if !callbacks.is_null() {
            // SAFETY: not NULL; a readable, initialised plain struct we copy.
            let callbacks = unsafe { *callbacks };
            builder = group_handlers(builder, &callbacks);
        }
        let group = builder.join()?;
        let handle = osiris_group {
            group,
            left: AtomicBool::new(false),
        };
        // SAFETY: `out` is not NULL (checked) and writable.
        unsafe { write_out(out, publish(handle)) };
        Ok(())
    })
}

/// Multicasts `len` bytes at `data` with `kind` (one of `OSIRIS_SEND_*`).
/// The bytes are copied before it returns. Returns once the message is in
/// the submission ring; blocks while the ring is full (flow control), at
/// most `send_timeout`. Any thread, callbacks included (but a callback that
/// fills the ring waits for itself until `OSIRIS_ERR_BACKPRESSURE`).
/// Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_CLOSED`,
/// `OSIRIS_ERR_INVALID_ARGUMENT`, `OSIRIS_ERR_PAYLOAD_TOO_LARGE`,
/// `OSIRIS_ERR_BACKPRESSURE`, `OSIRIS_ERR_STOPPED`. A freed handle is not
/// detected here (undefined behaviour): the send family skips the handle
/// registry to stay cheap.
#[no_mangle]
pub extern "C" fn osiris_send(
    group: *const osiris_group,
    kind: u32,
    data: *const u8,
    len: usize,
) -> osiris_result {
    entry(|| {
        // SAFETY: the send family's contract: NULL or a live handle.
        let group = unsafe { group_fast(group) }?;
        let kind = send_kind(kind)?;
        // SAFETY: `len` readable bytes at `data`, unchanged during the call.
        let payload = unsafe { bytes(data, len) }?;
        group.send_kind(kind, payload)?;
        Ok(())
    })
}

/// Reliable FIFO point-to-point send to one member of the group, in order
/// with this member's multicasts. As `osiris_send` otherwise (a target that
/// is not a member is reported on the data plane's stderr).
#[no_mangle]
pub extern "C" fn osiris_send_to(
    group: *const osiris_group,
    to: osiris_member,
    data: *const u8,
    len: usize,
) -> osiris_result {
    entry(|| {
        // SAFETY: the send family's contract: NULL or a live handle.
        let group = unsafe { group_fast(group) }?;
        // SAFETY: `len` readable bytes at `data`, unchanged during the call.
        let payload = unsafe { bytes(data, len) }?;
        group.send_to(to.into(), payload)?;
        Ok(())
    })
}

/// Answers a query later: `handle` is the `osiris_query_request.handle` copied in
/// `on_query`, which left its reply buffer untouched. Any thread. As
/// `osiris_send` otherwise (an unknown or finished query is reported on the
/// data plane's stderr).
#[no_mangle]
pub extern "C" fn osiris_reply(
    group: *const osiris_group,
    handle: *const osiris_query_ref,
    data: *const u8,
    len: usize,
) -> osiris_result {
    entry(|| {
        // SAFETY: the send family's contract: NULL or a live handle.
        let group = unsafe { group_fast(group) }?;
        if handle.is_null() {
            return Err(Failure::null("handle"));
        }
        // SAFETY: not NULL; a readable plain `Copy` struct.
        let handle = unsafe { *handle };
        // SAFETY: `len` readable bytes at `data`, unchanged during the call.
        let payload = unsafe { bytes(data, len) }?;
        group.reply(handle.into(), payload)?;
        Ok(())
    })
}

/// Waits until every multicast this member sent in the group before the
/// call is stable (held by every member), at most `request_timeout`.
/// Errors: `OSIRIS_ERR_TIMEOUT`, `OSIRIS_ERR_STOPPED`,
/// `OSIRIS_ERR_INTERRUPTED`, `OSIRIS_ERR_CLOSED`, `OSIRIS_ERR_IN_CALLBACK`.
#[no_mangle]
pub extern "C" fn osiris_flush(group: *const osiris_group) -> osiris_result {
    entry(|| {
        refuse_in_callback("osiris_flush")?;
        // SAFETY: a group handle the caller does not free meanwhile.
        let group = unsafe { group_checked(group) }?;
        group.flush()?;
        Ok(())
    })
}

/// Sends a query and waits for the replies (see `osiris_query_spec`; NULL
/// spec: every member, total order, 2 s). On success `*out` is a new
/// result the caller frees with `osiris_query_result_free`; members that
/// left before replying are in its failed list, and a timeout is a flag on
/// it, not an error. Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_CLOSED`,
/// `OSIRIS_ERR_INVALID_ARGUMENT`, `OSIRIS_ERR_PAYLOAD_TOO_LARGE`,
/// `OSIRIS_ERR_STOPPED`, `OSIRIS_ERR_INTERRUPTED`, `OSIRIS_ERR_IN_CALLBACK`.
#[no_mangle]
pub extern "C" fn osiris_query(
    group: *const osiris_group,
    spec: *const osiris_query_spec,
    data: *const u8,
    len: usize,
    out: *mut *mut osiris_query_result,
) -> osiris_result {
    entry(|| {
        refuse_in_callback("osiris_query")?;
        need_out(out, "out")?;
        // SAFETY: a group handle the caller does not free meanwhile.
        let group = unsafe { group_checked(group) }?;
        let spec = if spec.is_null() {
            QUERY_SPEC_DEFAULT
        } else {
            // SAFETY: not NULL; a readable plain `Copy` struct.
            unsafe { *spec }.to_spec()?
        };
        // SAFETY: `len` readable bytes at `data`, unchanged during the call.
        let payload = unsafe { bytes(data, len) }?;
        let result = group.query(spec, payload)?;
        // SAFETY: `out` is not NULL (checked) and writable.
        unsafe { write_out(out, publish(osiris_query_result::new(result))) };
        Ok(())
    })
}

/// Leaves the group and waits until the view without this node is agreed
/// (at most `request_timeout`). After the call, whatever it returned, the
/// handle is closed: every call on it but `osiris_group_free` fails with
/// `OSIRIS_ERR_CLOSED` (a second leave too). No callback of this group
/// runs once it returns `OSIRIS_OK`.
#[no_mangle]
pub extern "C" fn osiris_group_leave(group: *const osiris_group) -> osiris_result {
    entry(|| {
        refuse_in_callback("osiris_group_leave")?;
        // SAFETY: a group handle the caller does not free meanwhile.
        let handle = unsafe { borrow(group) }?;
        let group = handle.open()?.clone();
        if handle.left.swap(true, Ordering::AcqRel) {
            return Err(Failure::new(
                osiris_result::OSIRIS_ERR_CLOSED,
                "the group is being left by another call",
            ));
        }
        group.leave()?;
        Ok(())
    })
}

/// Frees a group handle. It does not leave the group (the node stays a
/// member, and the group's callbacks go on, until `osiris_group_leave` or
/// the node's shutdown). NULL is a no-op; a second free is detected and
/// ignored. Allowed in a callback.
#[no_mangle]
pub extern "C" fn osiris_group_free(group: *mut osiris_group) {
    entry(|| {
        // SAFETY: the caller does not use `group` from another thread
        // during or after this call.
        drop(unsafe { release(group) }?);
        Ok(())
    });
}
