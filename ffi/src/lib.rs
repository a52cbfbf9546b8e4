//! osiris-ffi: the C ABI of Osiris (`libosiris.so`, `libosiris.a`,
//! `include/osiris.h`). Every public function is `extern "C"`, named
//! `osiris_*`, and runs inside a panic boundary (`error::entry`): errors
//! come back as `osiris_result` codes with a thread-local message, never as
//! an unwind. Handles are opaque boxes tracked by a registry (`handles`),
//! so NULL, double frees and use after free are refused where the cost
//! allows (see docs/c-api.md for what is and is not guarded).
//!
//! The ownership and threading rules are in docs/c-api.md and in the
//! header's comments (cbindgen copies the doc comments).

// The entry points take raw pointers from C and check what can be checked
// (NULL, the handle registry); the rest of each pointer's contract (length,
// lifetime) is the C caller's and is stated in the header. Marking them
// `unsafe fn` would change nothing for C, which has no such notion.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod error;
mod group;
mod handles;
mod node;
mod query;
mod types;
mod upcall;

pub use error::{osiris_last_error_message, osiris_result, osiris_result_name};
pub use group::{
    osiris_flush, osiris_group, osiris_group_free, osiris_group_join, osiris_group_leave,
    osiris_query, osiris_reply, osiris_send, osiris_send_to,
};
pub use node::{
    osiris_config, osiris_config_free, osiris_config_from_toml, osiris_node, osiris_node_free,
    osiris_node_local_addr, osiris_node_shutdown, osiris_node_start,
};
pub use query::{
    osiris_buf_append, osiris_buf_set, osiris_query_result, osiris_query_result_failed,
    osiris_query_result_failed_count, osiris_query_result_free, osiris_query_result_reply,
    osiris_query_result_reply_count, osiris_query_result_timed_out,
};
pub use types::{
    osiris_member, osiris_query_order, osiris_query_ref, osiris_query_spec, osiris_query_target,
    osiris_send_kind, osiris_stop_reason,
};
pub use upcall::{
    osiris_buf, osiris_checkpoint_cb, osiris_domain_view_cb, osiris_group_callbacks,
    osiris_load_cb, osiris_message, osiris_message_cb, osiris_node_callbacks, osiris_query_cb,
    osiris_query_request, osiris_stopped_cb, osiris_view, osiris_view_cb,
};

/// The library's version ("0.1.0"), static, never to be freed.
#[no_mangle]
pub extern "C" fn osiris_version() -> *const std::ffi::c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(version) => version,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}
