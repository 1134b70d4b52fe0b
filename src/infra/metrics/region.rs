//! Where the blocks live. In fork mode an anonymous mapping private to the process. In cluster mode
//! a file the primary creates in its private directory and every worker maps `MAP_SHARED`: block 0
//! holds what exited workers counted, each live worker writes only the block the primary leased to
//! it, and whichever worker answers a scrape sums them all, so one scrape sees the whole instance.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{MmapOptions, MmapRaw};

use super::block::Block;

/// Identifies the layout: a worker of another build (a rolling reload to a binary whose counters
/// differ) must not read this file as its own.
const MAGIC: u64 = 0x6170_705f_6d65_7472 ^ (std::mem::size_of::<Block>() as u64);

#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    blocks: AtomicU64,
    /// Worker processes the primary has had to start again after one died.
    pub(crate) worker_restarts: AtomicU64,
    _reserved: [AtomicU64; 5],
}

const HEADER: usize = std::mem::size_of::<Header>();
/// Block 0 keeps the counts of processes that have exited.
pub(crate) const RETIRED: usize = 0;

pub(crate) struct Region {
    map: MmapRaw,
    blocks: usize,
}

// SAFETY: the mapping is only ever accessed through atomics.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// A region for this process alone: the retired block and one live block.
    pub(crate) fn private() -> io::Result<Region> {
        let map: MmapRaw = MmapOptions::new().len(Self::size(2)).map_anon()?.into();
        Ok(Self::init(map, 2))
    }

    /// Creates the shared file of a cluster primary with room for `blocks` (the retired one included).
    pub(crate) fn create(path: &Path, blocks: usize) -> io::Result<Region> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        // ftruncate fills with zeroes: every block starts empty.
        file.set_len(Self::size(blocks) as u64)?;
        Ok(Self::init(MmapRaw::map_raw(&file)?, blocks))
    }

    /// Maps the file a primary created, checking it has our layout.
    pub(crate) fn open(path: &Path) -> io::Result<Region> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        if len < HEADER {
            return Err(io::Error::other("the metrics file is too short"));
        }
        let map = MmapRaw::map_raw(&file)?;
        let region = Region { map, blocks: 0 };
        if region.header().magic.load(Ordering::Acquire) != MAGIC {
            return Err(io::Error::other("the metrics file has another layout (a different build made it)"));
        }
        let blocks = region.header().blocks.load(Ordering::Relaxed) as usize;
        if len < Self::size(blocks) {
            return Err(io::Error::other("the metrics file is shorter than its header says"));
        }
        Ok(Region { blocks, ..region })
    }

    fn init(map: MmapRaw, blocks: usize) -> Region {
        let region = Region { map, blocks };
        region.header().blocks.store(blocks as u64, Ordering::Relaxed);
        region.header().magic.store(MAGIC, Ordering::Release);
        region
    }

    fn size(blocks: usize) -> usize {
        HEADER + blocks * std::mem::size_of::<Block>()
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned and at least HEADER bytes; zeroes are valid atomics.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    pub(crate) fn block(&self, index: usize) -> &Block {
        assert!(index < self.blocks, "block {index} of {}", self.blocks);
        // SAFETY: in bounds (checked above and at open), 8-byte aligned (HEADER and Block are
        // multiples of 8 from a page-aligned start), and all-atomic.
        unsafe { &*self.map.as_ptr().add(HEADER + index * std::mem::size_of::<Block>()).cast::<Block>() }
    }

    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }

    /// Every block added up, with the restarts from the header.
    pub(crate) fn total(&self) -> (Box<Block>, u64) {
        let total = Block::zeroed();
        for index in 0..self.blocks {
            total.add(self.block(index));
        }
        (total, self.header().worker_restarts.load(Ordering::Relaxed))
    }
}

/// The primary's side: the shared file and which blocks live workers hold.
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    region: Region,
    leased: Mutex<Vec<bool>>,
}

impl Shared {
    /// Room for every worker twice over (during a rolling reload an old worker drains while its
    /// replacement serves), plus the retired block.
    pub(crate) fn create(dir: &Path, workers: u16) -> io::Result<Arc<Shared>> {
        let path = dir.join("metrics.shm");
        let blocks = 1 + 2 * usize::from(workers) + 2;
        let region = Region::create(&path, blocks)?;
        let mut leased = vec![false; blocks];
        leased[RETIRED] = true;
        Ok(Arc::new(Shared { path, region, leased: Mutex::new(leased) }))
    }

    /// A free block for a new worker; `None` if all are taken (that worker then counts privately).
    pub(crate) fn lease(self: &Arc<Self>) -> Option<Lease> {
        let mut leased = self.leased.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = leased.iter().position(|taken| !taken)?;
        leased[index] = true;
        Some(Lease { shared: self.clone(), index })
    }

    pub(crate) fn set_worker_restarts(&self, restarts: u64) {
        self.region.header().worker_restarts.store(restarts, Ordering::Relaxed);
    }
}

/// A block held by one worker process; dropped once that process has exited, which folds its
/// counts into the retired block and frees it.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    pub(crate) index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let region = &self.shared.region;
        region.block(RETIRED).absorb(region.block(self.index));
        let mut leased = self.shared.leased.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        leased[self.index] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_write_their_block_and_every_mapping_sees_the_sum() {
        let dir = std::env::temp_dir().join(format!("app-region-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let shared = Shared::create(&dir, 2).unwrap();
        let (a, b) = (shared.lease().unwrap(), shared.lease().unwrap());
        let (worker_a, worker_b) = (Region::open(&shared.path).unwrap(), Region::open(&shared.path).unwrap());
        worker_a.block(a.index).randoms_computations.fetch_add(3, Ordering::Relaxed);
        worker_b.block(b.index).randoms_computations.fetch_add(4, Ordering::Relaxed);
        shared.set_worker_restarts(1);
        let (total, restarts) = worker_a.total();
        assert_eq!((total.randoms_computations.load(Ordering::Relaxed), restarts), (7, 1));

        // A worker exits: its counts stay, its block is free for the next one.
        let freed = a.index;
        drop(a);
        assert_eq!(worker_b.total().0.randoms_computations.load(Ordering::Relaxed), 7);
        assert_eq!(shared.lease().unwrap().index, freed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
