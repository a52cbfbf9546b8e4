//! Blocking with a timeout on a socket: `ppoll(2)`, for the block-on-event
//! idle strategy. `ppoll` rather than `poll` because its timeout is a
//! `timespec`: a 50 µs timeout stays 50 µs instead of rounding to 0 (a busy
//! loop) or to 1 ms.

use std::io;
use std::os::fd::RawFd;
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
