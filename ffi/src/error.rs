//! Result codes, the thread-local last error message, and the panic
//! boundary every entry point runs inside.
//!
//! Invariant: no Rust panic ever unwinds into C. Every `extern "C"` function
//! runs its body through [`entry`] (or [`entry_value`]), which catches the
//! panic and turns it into `OSIRIS_ERR_PANIC` with a message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{self, AssertUnwindSafe};

use osiris_runtime::RuntimeError;

/// What every fallible `osiris_` function returns. `OSIRIS_OK` is 0; on any
/// other code, `osiris_last_error_message()` says what went wrong, and no
/// output parameter was written.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum osiris_result {
    OSIRIS_OK = 0,
    /// A required pointer argument was NULL.
    OSIRIS_ERR_NULL = 1,
    /// A handle that is not a live handle of the expected type (already
    /// freed, never made by this library, or of another type).
    OSIRIS_ERR_BAD_HANDLE = 2,
    /// An argument out of range (unknown send kind, bad UTF-8 name, index
    /// past the end, buffer too small).
    OSIRIS_ERR_INVALID_ARGUMENT = 3,
    /// The handle was closed (`osiris_group_leave`, `osiris_node_shutdown`).
    OSIRIS_ERR_CLOSED = 4,
    /// The call would block the data-plane thread it was made on (a
    /// blocking call made from inside a callback).
    OSIRIS_ERR_IN_CALLBACK = 5,
    /// Bad configuration text or value; the message names the key.
    OSIRIS_ERR_CONFIG = 10,
    /// A socket could not be set up (bind, option, multicast join).
    OSIRIS_ERR_TRANSPORT = 11,
    /// The protocol refused the operation (not joined, bad name, ...).
    OSIRIS_ERR_PROTOCOL = 12,
    /// The data-plane thread could not be started.
    OSIRIS_ERR_THREAD = 13,
    /// The operation did not complete in time.
    OSIRIS_ERR_TIMEOUT = 14,
    /// The node has stopped (shut down, left, excluded, disconnected).
    OSIRIS_ERR_STOPPED = 15,
    /// The submission ring stayed full for `send_timeout` (a slow member
    /// holds the sender back).
    OSIRIS_ERR_BACKPRESSURE = 16,
    /// A flush or query was abandoned (the node was excluded meanwhile).
    OSIRIS_ERR_INTERRUPTED = 17,
    /// The payload exceeds `payload_max`.
    OSIRIS_ERR_PAYLOAD_TOO_LARGE = 18,
    /// A bug in Osiris: a Rust panic was caught at the boundary.
    OSIRIS_ERR_PANIC = 99,
}

use osiris_result::*;

/// A failed call: its code and the text for `osiris_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: osiris_result,
    pub message: String,
}

impl Failure {
    pub fn new(code: osiris_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn null(what: &str) -> Failure {
        Failure::new(OSIRIS_ERR_NULL, format!("{what} is NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(OSIRIS_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<RuntimeError> for Failure {
    fn from(error: RuntimeError) -> Failure {
        let code = match &error {
            RuntimeError::Config(_) => OSIRIS_ERR_CONFIG,
            RuntimeError::Transport(_) => OSIRIS_ERR_TRANSPORT,
            RuntimeError::Core(_) => OSIRIS_ERR_PROTOCOL,
            RuntimeError::Thread(_) => OSIRIS_ERR_THREAD,
            RuntimeError::Timeout(_) => OSIRIS_ERR_TIMEOUT,
            RuntimeError::Stopped => OSIRIS_ERR_STOPPED,
            RuntimeError::Backpressure => OSIRIS_ERR_BACKPRESSURE,
            RuntimeError::Interrupted(_) => OSIRIS_ERR_INTERRUPTED,
            RuntimeError::PayloadTooLarge { .. } => OSIRIS_ERR_PAYLOAD_TOO_LARGE,
            // `RuntimeError` is non-exhaustive: a future variant is still
            // an error, named by its text.
            _ => OSIRIS_ERR_PROTOCOL,
        };
        Failure::new(code, error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    // An interior NUL cannot go into a C string: cut the text there.
    let text = message.split('\0').next().unwrap_or_default();
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// Runs an entry point's body: a failure becomes its code and the thread's
/// last error message; a panic becomes `OSIRIS_ERR_PANIC`.
pub(crate) fn entry(body: impl FnOnce() -> Result<(), Failure>) -> osiris_result {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => OSIRIS_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!(
                "internal error (panic caught at the C boundary): {what}"
            ));
            OSIRIS_ERR_PANIC
        }
    }
}

/// For the accessors that return a value, not a code: `fallback` on a
/// failure or a panic (the message is kept as for [`entry`]).
pub(crate) fn entry_value<T: Copy>(fallback: T, body: impl FnOnce() -> Result<T, Failure>) -> T {
    let mut value = fallback;
    let _ = entry(|| {
        value = body()?;
        Ok(())
    });
    value
}

/// The message of the most recent failed `osiris_` call on the calling
/// thread ("" if none failed yet). Never NULL. The text is owned by the
/// library and stays valid until the next failing call on this thread:
/// copy it to keep it.
#[no_mangle]
pub extern "C" fn osiris_last_error_message() -> *const c_char {
    let result = panic::catch_unwind(|| LAST_ERROR.with(|slot| slot.borrow().as_ptr()));
    result.unwrap_or(c"internal error".as_ptr())
}

/// A static name for a result code ("OSIRIS_ERR_TIMEOUT"); never NULL,
/// never to be freed.
#[no_mangle]
pub extern "C" fn osiris_result_name(code: u32) -> *const c_char {
    let name: &'static std::ffi::CStr = match code {
        0 => c"OSIRIS_OK",
        1 => c"OSIRIS_ERR_NULL",
        2 => c"OSIRIS_ERR_BAD_HANDLE",
        3 => c"OSIRIS_ERR_INVALID_ARGUMENT",
        4 => c"OSIRIS_ERR_CLOSED",
        5 => c"OSIRIS_ERR_IN_CALLBACK",
        10 => c"OSIRIS_ERR_CONFIG",
        11 => c"OSIRIS_ERR_TRANSPORT",
        12 => c"OSIRIS_ERR_PROTOCOL",
        13 => c"OSIRIS_ERR_THREAD",
        14 => c"OSIRIS_ERR_TIMEOUT",
        15 => c"OSIRIS_ERR_STOPPED",
        16 => c"OSIRIS_ERR_BACKPRESSURE",
        17 => c"OSIRIS_ERR_INTERRUPTED",
        18 => c"OSIRIS_ERR_PAYLOAD_TOO_LARGE",
        99 => c"OSIRIS_ERR_PANIC",
        _ => c"OSIRIS_ERR_UNKNOWN_CODE",
    };
    name.as_ptr()
}
