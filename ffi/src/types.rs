//! The plain C structs (`#[repr(C)]`, passed by value or borrowed for a
//! call), the constants C passes as integers, and the helpers that read C
//! arguments.
//!
//! Enumerations cross the boundary as `uint32_t`, never as Rust enums: C may
//! pass any integer, and an out-of-range Rust enum would be undefined
//! behaviour. Each is checked and refused with `OSIRIS_ERR_INVALID_ARGUMENT`.

use std::ffi::{c_char, CStr};

use osiris_core::{MemberId, QueryId, QueryOrder, QueryRef, QuerySpec, QueryTarget, SendKind};
use osiris_runtime::GroupId;

use crate::error::Failure;

/// How a multicast is ordered (the `kind` argument of `osiris_send` and the
/// `kind` field of `osiris_message`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum osiris_send_kind {
    /// Send: FIFO per sender.
    OSIRIS_SEND_FIFO = 0,
    /// CausalSend: after every message its sender had delivered.
    OSIRIS_SEND_CAUSAL = 1,
    /// OrderedSend: one total order over every Ordered and Safe message.
    OSIRIS_SEND_ORDERED = 2,
    /// SafeSend: Ordered, delivered once every member holds it.
    OSIRIS_SEND_SAFE = 3,
}

/// Which members answer a query (`osiris_query_spec.target`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum osiris_query_target {
    /// Every member of the view, the caller included.
    OSIRIS_QUERY_ALL = 0,
    /// One member, rotating over the view from call to call.
    OSIRIS_QUERY_ONE = 1,
    /// `k` members (all if the view is smaller), rotating.
    OSIRIS_QUERY_K = 2,
}

/// Where a query goes among the group's traffic (`osiris_query_spec.order`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum osiris_query_order {
    /// FIFO with the caller's other messages (cheapest).
    OSIRIS_ORDER_FIFO = 0,
    /// In the total order of OrderedSend and SafeSend.
    OSIRIS_ORDER_TOTAL = 1,
}

/// Why a node stopped (the `reason` of `osiris_stopped_cb`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum osiris_stop_reason {
    /// It left (shutdown).
    OSIRIS_STOPPED_LEFT = 0,
    /// It lost contact with a majority of its view.
    OSIRIS_STOPPED_DISCONNECTED = 1,
    /// It was excluded from the domain.
    OSIRIS_STOPPED_EXCLUDED = 2,
}

/// A member: a node id and its incarnation (a restarted node is a new
/// incarnation). A plain value: copy it freely.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct osiris_member {
    pub node: u32,
    pub incarnation: u32,
}

impl From<MemberId> for osiris_member {
    fn from(member: MemberId) -> osiris_member {
        osiris_member {
            node: member.node.0,
            incarnation: member.incarnation.0,
        }
    }
}

impl From<osiris_member> for MemberId {
    fn from(member: osiris_member) -> MemberId {
        MemberId::new(member.node, member.incarnation)
    }
}

/// Names a query this member must answer; a plain value that stays valid
/// after the callback: keep a copy to answer later with `osiris_reply`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct osiris_query_ref {
    pub group: u64,
    pub caller: osiris_member,
    pub id: u64,
}

impl From<QueryRef> for osiris_query_ref {
    fn from(query: QueryRef) -> osiris_query_ref {
        osiris_query_ref {
            group: query.group.0,
            caller: query.caller.into(),
            id: query.id.0,
        }
    }
}

impl From<osiris_query_ref> for QueryRef {
    fn from(query: osiris_query_ref) -> QueryRef {
        QueryRef {
            group: GroupId(query.group),
            caller: query.caller.into(),
            id: QueryId(query.id),
        }
    }
}

/// What a query asks for. Pass NULL to `osiris_query` for the default:
/// every member, total order, 2,000 ms.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct osiris_query_spec {
    /// One of `OSIRIS_QUERY_*`.
    pub target: u32,
    /// With `OSIRIS_QUERY_K`: how many members (at least 1).
    pub k: u32,
    /// One of `OSIRIS_ORDER_*`.
    pub order: u32,
    /// The query ends this long after the call if a responder neither
    /// answered nor failed (then `osiris_query_result_timed_out` is true).
    pub timeout_ms: u32,
}

/// The default query: every member, total order, 2 s.
pub(crate) const QUERY_SPEC_DEFAULT: QuerySpec = QuerySpec {
    target: QueryTarget::All,
    order: QueryOrder::Total,
    timeout: std::time::Duration::from_millis(2_000),
};

impl osiris_query_spec {
    pub(crate) fn to_spec(self) -> Result<QuerySpec, Failure> {
        let target = match self.target {
            0 => QueryTarget::All,
            1 => QueryTarget::One,
            2 if self.k >= 1 => QueryTarget::K(self.k),
            2 => return Err(Failure::invalid("OSIRIS_QUERY_K needs k >= 1")),
            other => return Err(Failure::invalid(format!("unknown query target {other}"))),
        };
        let order = match self.order {
            0 => QueryOrder::Fifo,
            1 => QueryOrder::Total,
            other => return Err(Failure::invalid(format!("unknown query order {other}"))),
        };
        Ok(QuerySpec {
            target,
            order,
            timeout: std::time::Duration::from_millis(u64::from(self.timeout_ms)),
        })
    }
}

pub(crate) fn send_kind(kind: u32) -> Result<SendKind, Failure> {
    match kind {
        0 => Ok(SendKind::Fifo),
        1 => Ok(SendKind::Causal),
        2 => Ok(SendKind::Ordered),
        3 => Ok(SendKind::Safe),
        other => Err(Failure::invalid(format!(
            "unknown send kind {other} (expected OSIRIS_SEND_FIFO..OSIRIS_SEND_SAFE)"
        ))),
    }
}

pub(crate) fn send_kind_code(kind: SendKind) -> u32 {
    match kind {
        SendKind::Fifo => osiris_send_kind::OSIRIS_SEND_FIFO as u32,
        SendKind::Causal => osiris_send_kind::OSIRIS_SEND_CAUSAL as u32,
        SendKind::Ordered => osiris_send_kind::OSIRIS_SEND_ORDERED as u32,
        SendKind::Safe => osiris_send_kind::OSIRIS_SEND_SAFE as u32,
    }
}

/// `len` bytes at `data` (NULL is allowed when `len` is 0).
///
/// # Safety
/// If `data` is not NULL, it points to `len` readable bytes that stay
/// unchanged for `'a`.
pub(crate) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::null("data (with len > 0)"));
    }
    // SAFETY: not NULL, and the caller promises `len` readable bytes that
    // are not written during `'a`; `len` fits in memory so it is at most
    // `isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// If `text` is not NULL, it points to a NUL-terminated string that stays
/// unchanged for `'a`.
pub(crate) unsafe fn text<'a>(text: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if text.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: not NULL; the caller promises a NUL-terminated string that
    // is not written during `'a`.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// Writes an output parameter (the caller checked it is not NULL).
///
/// # Safety
/// `out` is not NULL, aligned, and writable.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: as the caller promises.
    unsafe { out.write(value) }
}

/// Fails unless an output parameter is given.
pub(crate) fn need_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}
