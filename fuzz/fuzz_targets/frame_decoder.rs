//! Feeds arbitrary bytes, in arbitrary chunks, to the frame decoder a server
//! uses: it must return frames or errors, never panic, and never buffer more
//! than twice what arrived (plus its minimum growth step).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pyrpc_framing::Codec;
use pyrpc_proto::wire::{ClientFrame, ServerFrame};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, the rest is the stream.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec: Codec<ClientFrame, ServerFrame> = Codec::with_max_frame_len(1 << 20);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_frame)) => continue,
                Ok(None) => break,
                Err(_) => return, // a server closes the connection here
            }
        }
        assert!(buf.capacity() <= 2 * stream.len() + 256 * 1024);
    }
});
