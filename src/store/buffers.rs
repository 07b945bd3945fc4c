//! Large buffers of data transfers, reused instead of freed.
//!
//! Freed, a buffer of a few hundred KiB goes back to the allocator's arena of the thread that
//! allocated it, and glibc keeps such freed memory in each arena (it has up to eight per CPU)
//! rather than giving it back. Transfers run on whichever threads serve them, so a node grew
//! with the number of threads that had served transfers at once, that is with the number of
//! nodes downloading at once. Measured with real ESS fetching a 256 MiB object: the CSS's
//! peak RSS was 20, 27, 37 and 44 MB with 2, 10, 20 and 40 ESS, each ESS up to 24 MB; with
//! the pools, 22 to 27 MB whatever the number of ESS, each ESS up to 21 MB. Kept in a pool,
//! buffers are only allocated while more are in use than ever before, and memory follows
//! the peak of transfers at once, which the callers' slots bound.

use parking_lot::Mutex;

/// Buffers of one size, handed out and taken back.
pub struct BufferPool {
    size: usize,
    /// Idle buffers kept at most; more are freed.
    keep: usize,
    idle: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A pool of buffers of `size` bytes that keeps up to `keep` idle ones.
    pub const fn new(size: usize, keep: usize) -> Self {
        Self {
            size,
            keep,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The size of the pool's buffers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A buffer with room for the pool's size. Its length and contents are whatever its
    /// previous user left (empty when new): each kind of caller gives them back the way it
    /// takes them, so neither has to fill or clear a buffer on every reuse.
    pub fn take(&self) -> Vec<u8> {
        self.idle.lock().pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Keeps `buffer` for the next transfer, unless enough are idle or it is not one of the
    /// pool's size (then it is freed).
    pub fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() != self.size {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.keep {
            idle.push(buffer);
        }
    }

    /// Idle buffers kept now.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_kept_number() {
        let pool = BufferPool::new(1024, 2);
        let first = pool.take();
        let address = first.as_ptr();
        pool.give_back(first);
        let again = pool.take();
        assert_eq!(again.as_ptr(), address, "the same allocation comes back");
        let more = [again, pool.take(), pool.take()];
        for buffer in more {
            pool.give_back(buffer);
        }
        assert_eq!(pool.idle(), 2, "no more idle than kept");
    }

    #[test]
    fn a_buffer_comes_back_as_it_was_left() {
        let pool = BufferPool::new(16, 1);
        let mut buffer = pool.take();
        assert!(buffer.is_empty() && buffer.capacity() == 16);
        buffer.resize(16, 7);
        pool.give_back(buffer);
        assert_eq!(pool.take(), vec![7; 16]);
    }

    #[test]
    fn buffers_of_another_size_are_not_kept() {
        let pool = BufferPool::new(16, 4);
        pool.give_back(vec![0; 8]);
        pool.give_back(Vec::with_capacity(32));
        assert_eq!(pool.idle(), 0);
    }
}
