//! Configs and nodes.

use std::ffi::c_char;

use osiris_runtime::{Node, NodeBuilder, RuntimeConfig};

use crate::error::{entry, osiris_result, Failure};
use crate::handles::{borrow, publish, release, Handle, Kind};
use crate::types::{need_out, text, write_out};
use crate::upcall::{node_handlers, osiris_node_callbacks, refuse_in_callback};

/// A node's configuration (opaque). Made by `osiris_config_from_toml`,
/// freed by `osiris_config_free`; `osiris_node_start` only reads it.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_config {
    config: RuntimeConfig,
}

impl Handle for osiris_config {
    const KIND: Kind = Kind::Config;
    const NAME: &'static str = "config";
}

/// A running node (opaque). Made by `osiris_node_start`, freed by
/// `osiris_node_free`.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct osiris_node {
    node: Node,
}

impl Handle for osiris_node {
    const KIND: Kind = Kind::Node;
    const NAME: &'static str = "node";
}

impl osiris_node {
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }
}

/// Parses a node config in TOML (the keys of docs/runtime.md: `node`,
/// `bind`, `bootstrap`, `seeds`, `idle`, `[timing]`, `[limits]`, ...).
/// On success `*out` is a new config the caller frees with
/// `osiris_config_free`. Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_CONFIG`
/// (the message names the key), `OSIRIS_ERR_INVALID_ARGUMENT` (not UTF-8).
#[no_mangle]
pub extern "C" fn osiris_config_from_toml(
    text_toml: *const c_char,
    out: *mut *mut osiris_config,
) -> osiris_result {
    entry(|| {
        need_out(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string (or NULL,
        // refused), unchanged during the call.
        let text_toml = unsafe { text(text_toml, "text") }?;
        let config = RuntimeConfig::from_toml(text_toml)?;
        // SAFETY: `out` is not NULL (checked) and points to writable
        // storage for a pointer, as the header requires.
        unsafe { write_out(out, publish(osiris_config { config })) };
        Ok(())
    })
}

/// Frees a config. NULL is a no-op; a second free is detected and ignored
/// (see `osiris_last_error_message`).
#[no_mangle]
pub extern "C" fn osiris_config_free(config: *mut osiris_config) {
    entry(|| {
        // SAFETY: the caller does not use `config` from another thread
        // during or after this call (header contract).
        drop(unsafe { release(config) }?);
        Ok(())
    });
}

/// Starts a node: binds its socket and starts its data-plane thread.
/// `config` is only read (free it when you like); `callbacks` may be NULL
/// and is copied. On success `*out` is a new node the caller frees with
/// `osiris_node_free`. Errors: `OSIRIS_ERR_NULL`, `OSIRIS_ERR_BAD_HANDLE`,
/// `OSIRIS_ERR_CONFIG`, `OSIRIS_ERR_TRANSPORT` (e.g. the port is taken),
/// `OSIRIS_ERR_THREAD`.
#[no_mangle]
pub extern "C" fn osiris_node_start(
    config: *const osiris_config,
    callbacks: *const osiris_node_callbacks,
    out: *mut *mut osiris_node,
) -> osiris_result {
    entry(|| {
        need_out(out, "out")?;
        // SAFETY: a config handle the caller does not free meanwhile.
        let config = unsafe { borrow(config) }?;
        let mut builder = NodeBuilder::new(config.config.clone());
        if !callbacks.is_null() {
            // SAFETY: not NULL; the caller passes a readable, initialised
            // `osiris_node_callbacks` (a plain `Copy` struct we copy).
            let callbacks = unsafe { *callbacks };
            builder = node_handlers(builder, &callbacks);
        }
        let node = builder.start()?;
        // SAFETY: `out` is not NULL (checked) and writable.
        unsafe { write_out(out, publish(osiris_node { node })) };
        Ok(())
    })
}

/// Writes the node's unicast address ("127.0.0.1:40123") as a
/// NUL-terminated string into `buf` of `capacity` bytes (64 always
/// suffice). Useful with `bind = "127.0.0.1:0"`. Errors: `OSIRIS_ERR_NULL`,
/// `OSIRIS_ERR_BAD_HANDLE`, `OSIRIS_ERR_INVALID_ARGUMENT` (too small).
#[no_mangle]
pub extern "C" fn osiris_node_local_addr(
    node: *const osiris_node,
    buf: *mut c_char,
    capacity: usize,
) -> osiris_result {
    entry(|| {
        // SAFETY: a node handle the caller does not free meanwhile.
        let node = unsafe { borrow(node) }?;
        need_out(buf, "buf")?;
        let address = node.node.local_addr().to_string();
        if address.len() >= capacity {
            return Err(Failure::invalid(format!(
                "buf holds {capacity} bytes; the address needs {}",
                address.len() + 1
            )));
        }
        // SAFETY: `buf` is not NULL and the caller says it has `capacity`
        // writable bytes; we write `address.len() + 1 <= capacity` of them,
        // from a separate allocation (no overlap).
        unsafe {
            std::ptr::copy_nonoverlapping(address.as_ptr(), buf.cast::<u8>(), address.len());
            buf.add(address.len()).write(0);
        }
        Ok(())
    })
}

/// Leaves the domain (every group), stops the data-plane thread and waits
/// for it (at most `leave_timeout`). After it returns no callback of this
/// node runs again, and calls on the node and its groups fail with
/// `OSIRIS_ERR_STOPPED`. Calling it again does nothing. Not from a
/// callback (`OSIRIS_ERR_IN_CALLBACK`).
#[no_mangle]
pub extern "C" fn osiris_node_shutdown(node: *const osiris_node) -> osiris_result {
    entry(|| {
        refuse_in_callback("osiris_node_shutdown")?;
        // SAFETY: a node handle the caller does not free meanwhile.
        let node = unsafe { borrow(node) }?;
        node.node.shutdown();
        Ok(())
    })
}

/// Shuts the node down (as `osiris_node_shutdown`) and frees the handle.
/// Group handles of this node stay valid to free, and fail with
/// `OSIRIS_ERR_STOPPED`. NULL is a no-op; a second free is detected and
/// ignored. From a callback it is refused and does nothing (the message
/// says so).
#[no_mangle]
pub extern "C" fn osiris_node_free(node: *mut osiris_node) {
    entry(|| {
        refuse_in_callback("osiris_node_free")?;
        // SAFETY: the caller does not use `node` from another thread during
        // or after this call.
        if let Some(node) = unsafe { release(node) }? {
            node.node.shutdown();
        }
        Ok(())
    });
}
