//! Receive buffers a connection may keep. The stack thread reads each frame into a buffer from
//! a [`FramePool`]; a large TCP payload then stays in its frame's buffer until the application
//! has read it: queued on its connection (as Linux queues an skb), after waiting out of order
//! for the hole before it to fill if it came early. The buffer goes back to the pool when its
//! last reader lets go. Between the device and the application such a payload is copied once,
//! by the read (unless a segment the held frames cannot take arrives out of order and copies
//! them into the connection's ring first).

use std::sync::{Arc, Mutex, PoisonError};

/// Buffers a pool keeps for reuse; past this many, returned ones are freed.
const POOL_MAX: usize = 64;

/// The size of the buffers a connection copies a 1500-byte frame's out-of-order data into, to
/// hold it as it holds a large frame's (`RecvBuffer::hold_copy`).
pub const SMALL_FRAME: usize = 2048;

/// Frame buffers of one size, kept for reuse: taking one allocates (and zeroes) nothing once
/// the pool has some. Buffers kept by connections are charged to the stack's memory budget;
/// the idle ones here (at most 64, 4.3 MB of 66 560-byte buffers) and the one being read into
/// are the stack's own, as its other fixed buffers are.
pub struct FramePool {
    free: Mutex<Vec<Vec<u8>>>,
    size: usize,
}

impl FramePool {
    /// A pool of buffers of `size` bytes.
    pub fn new(size: usize) -> Arc<FramePool> {
        Arc::new(FramePool {
            free: Mutex::new(Vec::new()),
            size,
        })
    }

    /// A buffer of the pool's size: a returned one, else a new one.
    pub fn take(self: &Arc<Self>) -> RxFrame {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        RxFrame {
            bytes: reused.unwrap_or_else(|| vec![0; self.size]),
            pool: Some(self.clone()),
        }
    }

    /// The size of its buffers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One frame buffer, returned to its pool when dropped. Shared (in an `Arc`) once read into,
/// so that a connection can keep it.
pub struct RxFrame {
    bytes: Vec<u8>,
    pool: Option<Arc<FramePool>>,
}

impl RxFrame {
    /// A buffer of `size` bytes that belongs to no pool.
    pub fn new(size: usize) -> RxFrame {
        RxFrame {
            bytes: vec![0; size],
            pool: None,
        }
    }

    /// The buffer.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The buffer, to read a frame into.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Memory the buffer takes: what a connection keeping it is charged.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Where `part` lies in the buffer, if it does.
    pub fn range_of(&self, part: &[u8]) -> Option<std::ops::Range<usize>> {
        let start = (part.as_ptr() as usize).checked_sub(self.bytes.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= self.bytes.len()).then_some(start..end)
    }
}

/// Back to the pool, while it keeps fewer than its most (64).
impl Drop for RxFrame {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut free = pool.free.lock().unwrap_or_else(PoisonError::into_inner);
            if free.len() < POOL_MAX {
                free.push(std::mem::take(&mut self.bytes));
            }
        }
    }
}

/// The frame stack thread's buffer for the next read: `frame` itself if nothing else holds it,
/// else a fresh one from `pool` (the connection that kept the last frame still does).
pub fn writable<'a>(frame: &'a mut Arc<RxFrame>, pool: &Arc<FramePool>) -> &'a mut RxFrame {
    if Arc::get_mut(frame).is_none() {
        *frame = Arc::new(pool.take());
    }
    Arc::get_mut(frame).expect("a new Arc has one owner")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_frame_is_replaced_and_comes_back_to_the_pool_when_let_go() {
        let pool = FramePool::new(16);
        let mut rx = Arc::new(pool.take());
        writable(&mut rx, &pool).bytes_mut()[0] = 7;
        let first = rx.bytes().as_ptr();
        assert_eq!(
            writable(&mut rx, &pool).bytes().as_ptr(),
            first,
            "reused in place"
        );
        let kept = rx.clone();
        assert_ne!(
            writable(&mut rx, &pool).bytes().as_ptr(),
            first,
            "a fresh one"
        );
        assert_eq!(pool.idle(), 0);
        assert_eq!(kept.bytes()[0], 7);
        drop(kept);
        assert_eq!(pool.idle(), 1, "back when its last reader let go");
        let again = pool.take();
        assert_eq!(again.bytes().as_ptr(), first, "and reused");
        assert_eq!(again.size(), 16);
    }

    #[test]
    fn range_of_finds_a_part_only_inside_the_buffer() {
        let f = RxFrame::new(100);
        assert_eq!(f.range_of(&f.bytes()[10..30]), Some(10..30));
        assert_eq!(f.range_of(&f.bytes()[100..]), Some(100..100));
        let other = [0u8; 4];
        assert_eq!(f.range_of(&other), None);
    }
}
