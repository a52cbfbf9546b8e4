//! Callbacks: the C function pointer types, the structs they receive, and
//! the Rust handlers that call them.
//!
//! Every callback runs on the node's data-plane thread (`osiris-data-<id>`),
//! one at a time, in event order. What a callback receives by pointer is
//! valid during the call only. While a callback runs, the thread is marked
//! as "in a callback", and the calls that would wait for the data plane
//! (join, leave, flush, query, shutdown, node free) refuse with
//! `OSIRIS_ERR_IN_CALLBACK` instead of deadlocking it.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::panic::{self, AssertUnwindSafe};

use osiris_core::{DomainView, GroupView, MemberId, StopReason};
use osiris_runtime::{GroupBuilder, Message, NodeBuilder, QueryRequest};

use crate::error::{osiris_result, Failure};
use crate::types::{osiris_member, osiris_query_ref, osiris_stop_reason, send_kind_code};

/// A group view, borrowed for the `on_view` call.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_view {
    pub group: u64,
    /// NUL-terminated group name.
    pub name: *const c_char,
    /// 1 for the group's first view, one more per change.
    pub id: u64,
    /// Ranked oldest first (the first is the one that makes checkpoints).
    pub members: *const osiris_member,
    pub members_len: usize,
    pub joined: *const osiris_member,
    pub joined_len: usize,
    pub left: *const osiris_member,
    pub left_len: usize,
    pub failed: *const osiris_member,
    pub failed_len: usize,
}

/// A delivered message, borrowed for the `on_message` call: `payload` is
/// valid during the call only (copy what you keep).
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_message {
    pub group: u64,
    pub sender: osiris_member,
    /// One of `OSIRIS_SEND_*`; a point-to-point message is FIFO.
    pub kind: u32,
    /// Sent with `osiris_send_to` to this member alone.
    pub point_to_point: bool,
    pub payload: *const u8,
    pub len: usize,
}

/// A query to answer, borrowed for the `on_query` call: `payload` is valid
/// during the call only; `handle` is a value to keep for a later
/// `osiris_reply`.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_query_request {
    pub group: u64,
    pub from: osiris_member,
    pub handle: osiris_query_ref,
    pub payload: *const u8,
    pub len: usize,
}

/// A byte buffer the library owns, lent to a callback to fill: the reply of
/// `on_query`, the state of `on_checkpoint`. Fill it with `osiris_buf_set`
/// or `osiris_buf_append` during the call; the library copies it. Never
/// keep the pointer past the call.
#[derive(Debug, Default)]
#[allow(non_camel_case_types)]
pub struct osiris_buf {
    pub(crate) bytes: Option<Vec<u8>>,
}

/// `on_view`: each new view of the group, the same at every member, in the
/// same order. Data-plane thread.
#[allow(non_camel_case_types)]
pub type osiris_view_cb = Option<unsafe extern "C" fn(user: *mut c_void, view: *const osiris_view)>;

/// `on_message`: each delivered multicast (and point-to-point message).
/// Data-plane thread; `message->payload` is valid during the call only.
#[allow(non_camel_case_types)]
pub type osiris_message_cb =
    Option<unsafe extern "C" fn(user: *mut c_void, message: *const osiris_message)>;

/// `on_query`: answer a query. Reply now with `osiris_buf_set(reply, ..)`
/// (an empty reply counts), or leave `reply` untouched and answer later,
/// from any thread, with `osiris_reply(group, &query->handle, ..)`.
/// Data-plane thread.
#[allow(non_camel_case_types)]
pub type osiris_query_cb = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        query: *const osiris_query_request,
        reply: *mut osiris_buf,
    ),
>;

/// `on_checkpoint`: write the group's state into `state` for a joiner.
/// Called on the oldest member, exactly at the view boundary. Data-plane
/// thread.
#[allow(non_camel_case_types)]
pub type osiris_checkpoint_cb =
    Option<unsafe extern "C" fn(user: *mut c_void, state: *mut osiris_buf)>;

/// `on_load`: a joiner loads the state a donor's `on_checkpoint` wrote,
/// before any delivery in the group. Not called for the group's founder.
/// Data-plane thread; `state` is valid during the call only.
#[allow(non_camel_case_types)]
pub type osiris_load_cb =
    Option<unsafe extern "C" fn(user: *mut c_void, state: *const u8, len: usize)>;

/// `on_domain_view`: each new domain view (every node, oldest first).
/// Data-plane thread; `members` is valid during the call only.
#[allow(non_camel_case_types)]
pub type osiris_domain_view_cb = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        view_id: u64,
        members: *const osiris_member,
        members_len: usize,
    ),
>;

/// `on_stopped`: the node stopped (`reason` is one of `OSIRIS_STOPPED_*`).
/// Data-plane thread, its last callback.
#[allow(non_camel_case_types)]
pub type osiris_stopped_cb = Option<unsafe extern "C" fn(user: *mut c_void, reason: u32)>;

/// A group's callbacks; every one may be NULL. The struct is copied by
/// `osiris_group_join`; `user` is passed back to each callback and must
/// stay valid until the group is left or its node is shut down.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct osiris_group_callbacks {
    pub user: *mut c_void,
    pub on_view: osiris_view_cb,
    pub on_message: osiris_message_cb,
    pub on_query: osiris_query_cb,
    pub on_checkpoint: osiris_checkpoint_cb,
    pub on_load: osiris_load_cb,
}

/// A node's callbacks; every one may be NULL. Copied by
/// `osiris_node_start`; `user` must stay valid until the node is shut down.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct osiris_node_callbacks {
    pub user: *mut c_void,
    pub on_domain_view: osiris_domain_view_cb,
    pub on_stopped: osiris_stopped_cb,
}

/// The C `user` pointer, carried to the data-plane thread.
#[derive(Debug, Clone, Copy)]
struct User(*mut c_void);

// SAFETY: the library never dereferences `user`; it only hands it back to
// the application's callbacks on the data-plane thread. The header's
// contract makes the application responsible for `user` being usable from
// that thread (as for any C callback context handed to another thread).
unsafe impl Send for User {}

impl User {
    /// A method, so that closures capture the whole (Send) wrapper rather
    /// than its raw pointer field.
    fn get(self) -> *mut c_void {
        self.0
    }
}

thread_local! {
    static IN_CALLBACK: Cell<u32> = const { Cell::new(0) };
}

/// Fails if the calling thread is inside a callback (a call that waits for
/// the data plane would wait for itself).
pub(crate) fn refuse_in_callback(what: &str) -> Result<(), Failure> {
    if IN_CALLBACK.with(Cell::get) > 0 {
        return Err(Failure::new(
            osiris_result::OSIRIS_ERR_IN_CALLBACK,
            format!("{what} waits for the data-plane thread: not allowed inside a callback"),
        ));
    }
    Ok(())
}

/// Runs one call into C, marked as a callback. A Rust panic in the glue is
/// caught here so that it never takes the data-plane thread down (a C
/// callback cannot unwind: unwinding out of an `extern "C"` function
/// aborts).
fn upcall(call: impl FnOnce()) {
    IN_CALLBACK.with(|depth| depth.set(depth.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(call));
    IN_CALLBACK.with(|depth| depth.set(depth.get() - 1));
    if result.is_err() {
        eprintln!("osiris: internal error in a callback's glue (panic caught)");
    }
}

fn members(list: &[MemberId]) -> Vec<osiris_member> {
    list.iter().copied().map(osiris_member::from).collect()
}

fn stop_code(reason: StopReason) -> u32 {
    let code = match reason {
        StopReason::Left => osiris_stop_reason::OSIRIS_STOPPED_LEFT,
        StopReason::Disconnected => osiris_stop_reason::OSIRIS_STOPPED_DISCONNECTED,
        StopReason::Excluded => osiris_stop_reason::OSIRIS_STOPPED_EXCLUDED,
    };
    code as u32
}

/// Registers the node callbacks that are set.
pub(crate) fn node_handlers(
    mut builder: NodeBuilder,
    callbacks: &osiris_node_callbacks,
) -> NodeBuilder {
    let user = User(callbacks.user);
    if let Some(callback) = callbacks.on_domain_view {
        builder = builder.on_domain_view(move |view: &DomainView| {
            let list: Vec<osiris_member> = view.members.iter().map(|info| info.id.into()).collect();
            // SAFETY: the application gave this function pointer for this
            // purpose; `list` outlives the call, as the header promises.
            upcall(|| unsafe { callback(user.get(), view.id.0, list.as_ptr(), list.len()) });
        });
    }
    if let Some(callback) = callbacks.on_stopped {
        builder = builder.on_stopped(move |reason| {
            // SAFETY: the application's function pointer, with its own
            // `user`; plain values only.
            upcall(|| unsafe { callback(user.get(), stop_code(reason)) });
        });
    }
    builder
}

/// Registers the group callbacks that are set.
pub(crate) fn group_handlers(
    mut builder: GroupBuilder,
    callbacks: &osiris_group_callbacks,
) -> GroupBuilder {
    let user = User(callbacks.user);
    if let Some(callback) = callbacks.on_view {
        builder = builder.on_view(move |view| call_view(callback, user, view));
    }
    if let Some(callback) = callbacks.on_message {
        builder = builder.on_message(move |message| call_message(callback, user, message));
    }
    if let Some(callback) = callbacks.on_query {
        builder = builder.on_query(move |query| call_query(callback, user, query));
    }
    if let Some(callback) = callbacks.on_checkpoint {
        builder = builder.on_checkpoint(move || {
            let mut state = osiris_buf::default();
            // SAFETY: the application's function pointer; `state` lives on
            // this stack frame for the whole call.
            upcall(|| unsafe { callback(user.get(), &mut state) });
            state.bytes.unwrap_or_default()
        });
    }
    if let Some(callback) = callbacks.on_load {
        builder = builder.on_load(move |state: &[u8]| {
            // SAFETY: the application's function pointer; `state` is
            // borrowed for the whole call.
            upcall(|| unsafe { callback(user.get(), state.as_ptr(), state.len()) });
        });
    }
    builder
}

fn call_view(
    callback: unsafe extern "C" fn(*mut c_void, *const osiris_view),
    user: User,
    view: &GroupView,
) {
    let name = CString::new(view.name.replace('\0', "")).unwrap_or_default();
    let (list, joined, left, failed) = (
        members(&view.members),
        members(&view.joined),
        members(&view.left),
        members(&view.failed),
    );
    let c_view = osiris_view {
        group: view.group.0,
        name: name.as_ptr(),
        id: view.id,
        members: list.as_ptr(),
        members_len: list.len(),
        joined: joined.as_ptr(),
        joined_len: joined.len(),
        left: left.as_ptr(),
        left_len: left.len(),
        failed: failed.as_ptr(),
        failed_len: failed.len(),
    };
    // SAFETY: the application's function pointer; `c_view` and every array
    // and string it points to live until this function returns.
    upcall(|| unsafe { callback(user.get(), &c_view) });
}

fn call_message(
    callback: unsafe extern "C" fn(*mut c_void, *const osiris_message),
    user: User,
    message: &Message<'_>,
) {
    let c_message = osiris_message {
        group: message.group.0,
        sender: message.sender.into(),
        kind: send_kind_code(message.kind),
        point_to_point: message.point_to_point,
        payload: message.payload.as_ptr(),
        len: message.payload.len(),
    };
    // SAFETY: the application's function pointer; the payload is borrowed
    // from the core for this handler call, which outlasts the C call.
    upcall(|| unsafe { callback(user.get(), &c_message) });
}

fn call_query(
    callback: unsafe extern "C" fn(*mut c_void, *const osiris_query_request, *mut osiris_buf),
    user: User,
    query: &QueryRequest<'_>,
) -> Option<Vec<u8>> {
    let c_query = osiris_query_request {
        group: query.group.0,
        from: query.from.into(),
        handle: query.handle.into(),
        payload: query.payload.as_ptr(),
        len: query.payload.len(),
    };
    let mut reply = osiris_buf::default();
    // SAFETY: the application's function pointer; `c_query`, its payload
    // and `reply` all live until this function returns.
    upcall(|| unsafe { callback(user.get(), &c_query, &mut reply) });
    reply.bytes
}
