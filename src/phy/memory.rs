use super::{Device, WakeFd};
use crate::sync::{Mutex, MutexGuard};
use crate::time::Instant;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Frames queued towards one end, and the eventfd that says so.
struct Queue {
    frames: Mutex<VecDeque<Vec<u8>>>,
    ready: WakeFd,
}

/// One end of an in-memory Ethernet link: what one end sends, the other receives, in order.
pub struct MemoryDevice {
    rx: Arc<Queue>,
    tx: Arc<Queue>,
    mtu: usize,
    capacity: usize,
}

/// Two connected ends with the given MTU. Each direction buffers at most 4096 frames, then drops
/// (like a full NIC ring).
pub fn memory_pair(mtu: usize) -> io::Result<(MemoryDevice, MemoryDevice)> {
    let a = Arc::new(Queue {
        frames: Mutex::new(VecDeque::new()),
        ready: WakeFd::new()?,
    });
    let b = Arc::new(Queue {
        frames: Mutex::new(VecDeque::new()),
        ready: WakeFd::new()?,
    });
    let end = |rx: &Arc<Queue>, tx: &Arc<Queue>| MemoryDevice {
        rx: rx.clone(),
        tx: tx.clone(),
        mtu,
        capacity: 4096,
    };
    Ok((end(&a, &b), end(&b, &a)))
}

fn lock(q: &Queue) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
    q.frames.lock().unwrap_or_else(|e| e.into_inner())
}

impl Device for MemoryDevice {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.rx.ready.drain();
        let mut q = lock(&self.rx);
        let Some(frame) = q.pop_front() else {
            return Ok(None);
        };
        if !q.is_empty() {
            self.rx.ready.wake();
        }
        drop(q);
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(Some(n))
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        let mut q = lock(&self.tx);
        if q.len() >= self.capacity {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        q.push_back(frame.to_vec());
        drop(q);
        self.tx.ready.wake();
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.rx.ready.raw_fd())
    }
}
