//! Blocking with a timeout on a socket: `ppoll(2)`, for the block-on-event
//! idle strategy. `ppoll` rather than `poll` because its timeout is a
//! `timespec`: a 50 µs timeout stays 50 µs instead of rounding to 0 (a busy
//! loop) or to 1 ms.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    /// Wait until a frame can be received.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Wait until the socket buffer has room to send.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    /// Wait for either.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    /// Whether readability is asked for.
    #[must_use]
    pub fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether writability is asked for.
    #[must_use]
    pub fn is_writable(self) -> bool {
        self.writable
    }
}

/// What was ready when a wait returned. Both `false`: the timeout passed (or a
/// signal interrupted the wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Frames can be received (or the socket has an error to report).
    pub readable: bool,
    /// A send would not block.
    pub writable: bool,
}

impl Readiness {
    /// Neither readable nor writable.
    #[must_use]
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}

/// Waits on one file descriptor. `EINTR` returns an empty readiness.
pub(crate) fn wait_fd(
    fd: RawFd,
    interest: Interest,
    timeout: Option<Duration>,
) -> io::Result<Readiness> {
    let mut events: libc::c_short = 0;
    if interest.readable {
        events |= libc::POLLIN;
    }
    if interest.writable {
        events |= libc::POLLOUT;
    }
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let timespec = timeout.map(|timeout| libc::timespec {
        // Saturate: a timeout of centuries is "no limit" in practice.
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 1e9: fits every `c_long`.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `pollfd` is a valid, exclusively borrowed array of one element
    // (count 1); `timespec_ptr` is null or points to `timespec`, alive until the
    // call returns; a null signal mask leaves the mask unchanged. `ppoll` does
    // not keep any pointer after it returns.
    let ready = unsafe { libc::ppoll(&mut pollfd, 1, timespec_ptr, std::ptr::null()) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Readiness::default());
        }
        return Err(error);
    }
    let error_or_hangup = pollfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
    Ok(Readiness {
        // An error condition is reported as readable so that the caller's next
        // receive surfaces it instead of waiting forever.
        readable: interest.readable && (pollfd.revents & libc::POLLIN != 0 || error_or_hangup),
        writable: interest.writable && (pollfd.revents & libc::POLLOUT != 0 || error_or_hangup),
    })
}

/// Wakes a thread blocked in [`wait_readable`]: an `eventfd(2)` that another
/// thread makes readable. The runtime's block-on-event idle strategy waits on
/// its sockets and this, so an application submitting work wakes it at once.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Makes the eventfd (non-blocking, close-on-exec).
    ///
    /// # Errors
    /// The `eventfd(2)` error (out of file descriptors).
    pub fn new() -> io::Result<Waker> {
        // SAFETY: `eventfd` takes no pointers; it returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned by `eventfd`, owned by
        // nobody else; `OwnedFd` closes it exactly once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Waker { fd })
    }

    /// Makes the waker readable (wakes the waiter). Never blocks; a full
    /// counter (2^64 - 2 wakes not yet reset) is still readable, so an error
    /// is ignored.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one`, alive for the call, to a
        // descriptor this struct owns.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast::<libc::c_void>(),
                8,
            )
        };
    }

    /// Clears the wake (called by the waiter after it woke).
    pub fn reset(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, alive and exclusively
        // borrowed for the call; the descriptor is non-blocking.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::from_mut(&mut count).cast::<libc::c_void>(),
                8,
            )
        };
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The most descriptors [`wait_readable`] takes.
pub const WAIT_FDS_MAX: usize = 8;

/// Blocks until one of `fds` is readable or `timeout` passes (`None`: no
/// limit). Returns whether anything was ready (false: timeout or a signal).
/// For waiting on several transports and a [`Waker`] at once. Callers must
/// first drain what a transport already holds (`recv_batch` until it returns
/// 0): frames reassembled inside a transport do not make its socket readable.
///
/// # Errors
/// More than [`WAIT_FDS_MAX`] descriptors (`InvalidInput`), or the `ppoll(2)` error.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<bool> {
    if fds.len() > WAIT_FDS_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "wait_readable takes at most WAIT_FDS_MAX descriptors",
        ));
    }
    let mut pollfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; WAIT_FDS_MAX];
    for (slot, fd) in pollfds.iter_mut().zip(fds) {
        slot.fd = fd.as_raw_fd();
        slot.events = libc::POLLIN;
    }
    let timespec = timeout.map(|timeout| libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `pollfds` is a valid, exclusively borrowed array of at least
    // `fds.len()` elements (checked above); every descriptor is borrowed, so
    // open, for the call; `timespec_ptr` is null or points to `timespec`,
    // alive until the call returns; a null signal mask leaves the mask as it
    // is. `ppoll` keeps no pointer after it returns.
    let ready = unsafe {
        libc::ppoll(
            pollfds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timespec_ptr,
            std::ptr::null(),
        )
    };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(error);
    }
    Ok(ready > 0)
}
