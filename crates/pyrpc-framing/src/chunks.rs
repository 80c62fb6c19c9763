//! [`FrameChunks`]: encoded frames as a list of chunks, so that a large
//! `bytes` field is sent from the message's own buffer instead of a copy.
//!
//! ```text
//!  frame:   | len | tags, lengths, small fields | 500 MiB payload | rest |
//!  chunks:  [ ---------- tail (copied) -------- ][ the payload's  ][ tail ]
//!                                                 own `Bytes`
//! ```
//!
//! [`Codec::encode_chunks`](crate::Codec::encode_chunks) runs prost's own
//! encoder over a [`BufMut`] that copies everything into a small buffer
//! except a `Bytes` field of at least [`ZERO_COPY_MIN`] bytes, which it keeps
//! as its own chunk (a reference count, no copy). The bytes are therefore
//! prost's encoding by construction; the tests compare them anyway.
//! [`FrameChunks`] is a [`Buf`], so `AsyncWriteExt::write_all_buf` sends it
//! with vectored writes (`writev`).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A `bytes` field at least this long is referenced, not copied, when a
/// frame is encoded into [`FrameChunks`]. Below it, a copy costs less than
/// the bookkeeping of one more chunk (and one more `iovec`).
pub const ZERO_COPY_MIN: usize = 64 * 1024;

/// Encoded frames waiting to be written: a queue of chunks, each either a
/// run of small encoded pieces or one large payload shared with the message
/// it came from.
///
/// It is a [`Buf`]: bytes consumed with [`Buf::advance`] (i.e. written) are
/// dropped, and chunks appended later go after what is left, so a writer
/// that stops mid-frame resumes exactly where it stopped.
#[derive(Debug, Default)]
pub struct FrameChunks {
    /// Finished chunks, oldest first; every one of them is non-empty.
    done: VecDeque<Bytes>,
    /// The total length of `done`.
    done_len: usize,
    /// Small pieces encoded after the last chunk of `done`.
    tail: BytesMut,
}

// ===== impl FrameChunks =====

impl FrameChunks {
    /// No chunks.
    pub fn new() -> Self {
        Self::default()
    }

    /// No chunks, with room for `cap` bytes of small pieces.
    pub fn with_capacity(cap: usize) -> Self {
        FrameChunks {
            tail: BytesMut::with_capacity(cap),
            ..Self::default()
        }
    }

    /// The bytes waiting, in all chunks.
    pub fn len(&self) -> usize {
        self.done_len + self.tail.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity of the buffer small pieces are copied into.
    pub fn buffer_capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Drops everything waiting; keeps the small-piece buffer's capacity.
    pub fn clear(&mut self) {
        self.done.clear();
        self.done_len = 0;
        self.tail.clear();
    }

    /// The whole content as one contiguous buffer (a copy; for tests and
    /// small frames).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for c in &self.done {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(&self.tail);
        v
    }

    /// Moves everything waiting in `other` to the end of `self`, leaving
    /// `other` empty. Nothing is copied when `self` is empty (the two swap
    /// places); otherwise only `other`'s small pieces are.
    pub fn append(&mut self, other: &mut FrameChunks) {
        if self.is_empty() {
            std::mem::swap(self, other);
            other.clear();
            return;
        }
        for c in other.done.drain(..) {
            self.push_shared(c);
        }
        other.done_len = 0;
        self.tail.extend_from_slice(&other.tail);
        other.tail.clear();
    }

    /// How many chunks there are (a run of small pieces counts as one).
    pub fn chunk_count(&self) -> usize {
        self.done.len() + usize::from(!self.tail.is_empty())
    }

    /// The writer prost encodes into.
    pub(crate) fn writer(&mut self) -> ChunkWriter<'_> {
        ChunkWriter { out: self }
    }

    /// Appends `b` as a chunk of its own, after what is there.
    fn push_shared(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            let small = self.tail.split().freeze();
            self.done_len += small.len();
            self.done.push_back(small);
        }
        self.done_len += b.len();
        self.done.push_back(b);
    }

    /// Appends `b` after what is there, copied.
    #[cfg(test)]
    fn put_small(&mut self, b: &[u8]) {
        self.tail.extend_from_slice(b);
    }
}

impl Buf for FrameChunks {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        match self.done.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for c in self.done.iter().map(|c| &c[..]).chain([&self.tail[..]]) {
            if n == dst.len() {
                break;
            }
            if !c.is_empty() {
                dst[n] = IoSlice::new(c);
                n += 1;
            }
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len(), "advance past the end of FrameChunks");
        while cnt > 0 {
            let Some(front) = self.done.front_mut() else {
                self.tail.advance(cnt);
                return;
            };
            let n = cnt.min(front.len());
            front.advance(n);
            self.done_len -= n;
            cnt -= n;
            if front.is_empty() {
                self.done.pop_front();
            }
        }
    }
}

// ===== ChunkWriter =====

/// The [`BufMut`] prost encodes a frame into: copies into the small-piece
/// buffer, except a large [`Buf`] handed over whole (prost passes a `bytes`
/// field of type `Bytes` to [`BufMut::put`] as a clone of it), which
/// becomes a chunk through [`Buf::copy_to_bytes`], a reference-count bump
/// for `Bytes`.
pub(crate) struct ChunkWriter<'a> {
    out: &'a mut FrameChunks,
}

// SAFETY: every method delegates to `BytesMut`'s own `BufMut`
// implementation of the same buffer, which upholds the trait's contract;
// `put` (a safe, provided method) is the only one that adds behaviour.
#[allow(unsafe_code)]
unsafe impl BufMut for ChunkWriter<'_> {
    fn remaining_mut(&self) -> usize {
        self.out.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`,
        // which is the same buffer's `chunk_mut()`.
        unsafe { self.out.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.out.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.out.tail.put_slice(src);
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        let len = src.remaining();
        if len >= ZERO_COPY_MIN {
            self.out.push_shared(src.copy_to_bytes(len));
        } else {
            while src.has_remaining() {
                let c = src.chunk();
                let n = c.len();
                self.out.tail.extend_from_slice(c);
                src.advance(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bytes_become_their_own_chunk_and_small_ones_are_copied() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        let mut c = FrameChunks::new();
        let mut w = c.writer();
        w.put_slice(b"ab");
        w.put(Bytes::from_static(b"small"));
        w.put(big.clone());
        w.put_u8(b'z');
        assert_eq!(c.chunk_count(), 3);
        assert_eq!(c.len(), 2 + 5 + ZERO_COPY_MIN + 1);
        // the payload chunk is the caller's buffer, not a copy
        assert_eq!(c.done[1].as_ptr(), big.as_ptr());
        let mut want = b"absmall".to_vec();
        want.extend_from_slice(&big);
        want.push(b'z');
        assert_eq!(c.to_vec(), want);
    }

    #[test]
    fn append_keeps_the_order_and_empties_the_other() {
        let big = Bytes::from(vec![3u8; ZERO_COPY_MIN]);
        let mut a = FrameChunks::new();
        let mut b = FrameChunks::new();
        b.put_small(b"one");
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(a.to_vec(), b"one");
        b.put_small(b"two");
        b.push_shared(big.clone());
        b.put_small(b"three");
        a.advance(1);
        a.append(&mut b);
        assert!(b.is_empty() && b.chunk_count() == 0);
        let mut want = b"netwo".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"three");
        assert_eq!(a.to_vec(), want);
        assert_eq!(a.len(), want.len());
    }

    #[test]
    fn advance_walks_across_chunks_and_later_appends_go_after() {
        let big = Bytes::from(vec![1u8; ZERO_COPY_MIN]);
        let mut c = FrameChunks::new();
        c.put_small(b"head");
        c.push_shared(big);
        c.put_small(b"tail");
        c.advance(2);
        assert_eq!(c.chunk(), b"ad");
        c.advance(2 + ZERO_COPY_MIN - 1);
        assert_eq!(c.chunk(), &[1u8][..]);
        c.advance(1);
        assert_eq!(c.chunk(), b"tail");
        c.put_small(b"!");
        c.advance(2);
        assert_eq!(c.to_vec(), b"il!");
        assert_eq!(c.chunks_vectored(&mut [IoSlice::new(&[]); 4]), 1);
        c.advance(3);
        assert!(c.is_empty());
        assert_eq!(c.chunks_vectored(&mut [IoSlice::new(&[]); 4]), 0);
    }
}
