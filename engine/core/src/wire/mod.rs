//! Wire format: versioned binary frames of batched sub-messages.
//! `msg` is the vocabulary, `codec` turns it into bytes and back.

mod codec;
mod data;
mod msg;

pub use codec::{peek_header, Frame, FrameWriter, Messages, HEADER_BYTES};
pub use data::*;
pub use msg::*;
