//! Decode arbitrary bytes as a frame. Decoding must never panic, and whatever
//! it accepts must be canonical: re-encoding the decoded header and
//! sub-messages reproduces the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osiris_core::wire::{Frame, FrameWriter};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let mut buf = Vec::with_capacity(data.len());
    let mut writer = FrameWriter::new(&mut buf, &frame.header);
    let mut count: u16 = 0;
    for msg in frame.messages() {
        assert!(writer.push(&msg), "re-encoding refused {msg:?}");
        count += 1;
    }
    assert_eq!(count, frame.message_count());
    assert_eq!(writer.finish(), data.len());
    assert!(buf == data, "decode then encode is not the identity");
});
