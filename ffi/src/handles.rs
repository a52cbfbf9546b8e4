//! Opaque handles and the registry of live ones.
//!
//! A handle is a `Box<T>` turned into a raw pointer for C. The registry
//! holds the address and type of every live handle, so a pointer that was
//! freed, never made here, or of another handle type is refused with
//! `OSIRIS_ERR_BAD_HANDLE` instead of being dereferenced, and a second free
//! is a no-op. Invariant: an address is in the registry exactly while its
//! box is allocated; `release` removes it before the box is dropped.
//!
//! Not guarded (and documented in the header): a free racing another call
//! on the same handle from another thread, and the send family
//! (`osiris_send`, `osiris_send_to`, `osiris_reply`), which skip the
//! registry's lock to keep the hot path to the Rust API's own cost; they
//! check NULL and the closed flag only.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::error::{osiris_result, Failure};

/// The handle types, told apart so that a group passed as a node is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Config,
    Node,
    Group,
    QueryResult,
}

/// A type C sees only behind a pointer.
pub(crate) trait Handle: Sized {
    const KIND: Kind;
    /// The name used in messages ("node").
    const NAME: &'static str;
}

fn registry() -> MutexGuard<'static, HashMap<usize, Kind>> {
    static LIVE: OnceLock<Mutex<HashMap<usize, Kind>>> = OnceLock::new();
    let live = LIVE.get_or_init(|| Mutex::new(HashMap::new()));
    // A panic while holding the lock leaves the map consistent (every
    // operation on it is a single insert/remove/get): keep using it.
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves `value` to the heap and registers it; the pointer goes to C.
pub(crate) fn publish<T: Handle>(value: T) -> *mut T {
    let pointer = Box::into_raw(Box::new(value));
    registry().insert(pointer as usize, T::KIND);
    pointer
}

/// Whether `pointer` is a live handle of type `T`.
pub(crate) fn is_live<T: Handle>(pointer: *const T) -> bool {
    registry().get(&(pointer as usize)) == Some(&T::KIND)
}

/// Borrows a live handle.
///
/// # Safety
/// No other thread frees `pointer` while the returned borrow is in use (the
/// C contract: a handle is freed once nothing else uses it).
pub(crate) unsafe fn borrow<'a, T: Handle>(pointer: *const T) -> Result<&'a T, Failure> {
    if pointer.is_null() {
        return Err(Failure::null(T::NAME));
    }
    if !is_live(pointer) {
        return Err(bad_handle(T::NAME));
    }
    // SAFETY: the registry holds exactly the addresses of allocated boxes of
    // type `T::KIND` (module invariant), so `pointer` points to a live,
    // aligned `T`; the caller guarantees no concurrent free. Only shared
    // references are ever made from a handle.
    Ok(unsafe { &*pointer })
}

/// Takes a handle back from C for dropping. `Ok(None)` for NULL (freeing
/// NULL is a no-op); an error for a pointer that is not live (double free).
///
/// # Safety
/// As for [`borrow`]: no other thread uses `pointer` during or after this.
pub(crate) unsafe fn release<T: Handle>(pointer: *mut T) -> Result<Option<Box<T>>, Failure> {
    if pointer.is_null() {
        return Ok(None);
    }
    {
        let mut live = registry();
        if live.get(&(pointer as usize)) != Some(&T::KIND) {
            return Err(bad_handle(T::NAME));
        }
        live.remove(&(pointer as usize));
        if live.is_empty() {
            // Give the table back once no handle is live, so that a program
            // that freed everything ends with nothing of ours allocated
            // (valgrind's leak check sees exactly the handles it leaked).
            live.shrink_to_fit();
        }
    }
    // SAFETY: the address was registered as a `T` (module invariant), so it
    // came from `Box::into_raw(Box<T>)` in `publish`, and removing it from
    // the registry under the lock makes this the one and only release.
    Ok(Some(unsafe { Box::from_raw(pointer) }))
}

fn bad_handle(name: &str) -> Failure {
    Failure::new(
        osiris_result::OSIRIS_ERR_BAD_HANDLE,
        format!("not a live {name} handle (already freed, or not made by osiris)"),
    )
}
