//! Encoding and decoding of frames. PLACEHOLDER: being written (see issue 2).

use super::msg::{AckEntry, Header, Msg};
use crate::error::DecodeError;

/// Bytes of the fixed frame header.
pub const HEADER_BYTES: usize = 38;

/// Builds one frame in a caller-owned buffer.
#[derive(Debug)]
pub struct FrameWriter<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> FrameWriter<'b> {
    /// Clear `buf` and write `header` with a message count of zero.
    pub fn new(buf: &'b mut Vec<u8>, header: &Header) -> FrameWriter<'b> {
        let _ = header;
        buf.clear();
        FrameWriter { buf }
    }
    /// Append a sub-message. Returns false (and writes nothing) if the frame
    /// already holds `u16::MAX` sub-messages.
    pub fn push(&mut self, msg: &Msg<'_>) -> bool {
        let _ = msg;
        unimplemented!()
    }
    pub fn push_data(&mut self, payload: &[u8]) -> bool {
        let _ = payload;
        unimplemented!()
    }
    pub fn push_ack(&mut self, entries: impl Iterator<Item = AckEntry>) -> bool {
        let _ = entries;
        unimplemented!()
    }
    /// Bytes written so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn message_count(&self) -> u16 {
        0
    }
    /// Total frame length.
    pub fn finish(self) -> usize {
        self.buf.len()
    }
}

/// A decoded, fully validated frame borrowing the received bytes.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: Header,
    body: &'a [u8],
    count: u16,
}

impl<'a> Frame<'a> {
    /// Validate the whole frame. Never panics, whatever the bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let _ = bytes;
        unimplemented!()
    }
    pub fn message_count(&self) -> u16 {
        self.count
    }
    /// The sub-messages, in order. Infallible: `decode` validated them.
    pub fn messages(&self) -> Messages<'a> {
        Messages { rest: self.body, left: self.count }
    }
}

#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Msg<'a>;
    fn next(&mut self) -> Option<Msg<'a>> {
        let _ = (self.rest, self.left);
        unimplemented!()
    }
}
