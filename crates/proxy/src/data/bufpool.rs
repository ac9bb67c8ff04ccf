//! A per-thread pool of client I/O buffers: an idle client holds none (idle
//! pools of thousands of connections stay small), and taking one back on the
//! next request costs no allocation.

use bytes::BytesMut;
use std::cell::RefCell;

/// What a buffer starts with; it grows for bigger requests and replies.
const SIZE: usize = 4096;
/// Room below which a pooled buffer is claimed back whole.
const LOW: usize = SIZE / 2;
/// Buffers kept per thread; more than this many idle ones are freed. Each
/// busy client holds two, and at 500 clients a smaller pool freed and
/// allocated one per request (glibc malloc/free: ~10 % of the user-space
/// instructions at SET P1); at most 4 MiB when idle.
const KEEP: usize = 1024;
/// Bigger buffers (after a large value) are freed rather than kept.
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`LOW`] bytes of room.
pub fn take() -> BytesMut {
    let mut b = POOL
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(SIZE));
    // A pooled buffer is the tail of one read from or written out (its start
    // advanced): claim all of it back once its room runs low, not each time
    // (a reclaim per request was ~150 instructions at pipeline 1).
    if b.capacity() < LOW {
        b.reserve(SIZE);
    }
    b
}

/// `b`, first taken from the pool if it was handed back.
pub fn held(b: &mut BytesMut) -> &mut BytesMut {
    if b.capacity() == 0 {
        *b = take();
    }
    b
}

/// Hands `b` back (its contents are discarded).
pub fn give(b: &mut BytesMut) {
    let mut b = std::mem::take(b);
    if b.capacity() == 0 || b.capacity() > MAX_KEPT {
        return;
    }
    b.clear();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < KEEP {
            p.push(b);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let mut a = take();
        assert!(a.capacity() >= SIZE);
        a.extend_from_slice(b"PING\r\n");
        let ptr = a.as_ptr();
        give(&mut a);
        assert_eq!(a.capacity(), 0, "the session keeps nothing");
        let b = take();
        assert_eq!(b.as_ptr(), ptr, "the same allocation comes back");
        assert!(b.is_empty());
        let mut big = BytesMut::with_capacity(MAX_KEPT * 2);
        give(&mut big);
        let c = take();
        assert!(c.capacity() < MAX_KEPT * 2, "big buffers are not kept");
    }

    #[test]
    fn an_advanced_buffer_is_claimed_back_once_its_room_runs_low() {
        use bytes::Buf;
        let mut a = take();
        a.extend_from_slice(&[b'x'; 100]);
        a.advance(100); // what a session does as the socket takes its bytes
        let room = a.capacity();
        give(&mut a);
        let mut b = take();
        assert_eq!(b.capacity(), room, "a little advanced: kept as it is");
        b.extend_from_slice(&vec![b'x'; room - LOW + 1]);
        b.advance(room - LOW + 1);
        give(&mut b);
        let c = take();
        assert!(c.capacity() >= SIZE, "room below LOW: all of it back");
    }
}
