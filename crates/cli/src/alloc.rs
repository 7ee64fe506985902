//! dock's allocator: blocks of [`LARGE`] bytes or more (a listing's index text, its arrays of
//! thousands of records) are mappings of their own, aligned to and advised for transparent huge
//! pages; everything else goes to the system allocator, tuned for commands that live for
//! milliseconds ([`tune_for_short_command`]).
//!
//! Why: a listing of 10,000 objects touches megabytes of fresh memory once, and on this kind of
//! machine each fresh 4 KiB page costs a fault of a few microseconds (a third of a listing's
//! time went there). A 2 MiB page costs about as much as a dozen small ones. Blocks grow in
//! place (`mremap`) where they can. Where the kernel gives no huge pages (or for the daemon and
//! monitors, [`tune_for_short_command`]) the blocks are ordinary mappings, as glibc makes for
//! large blocks anyway.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks this large or larger are mappings of their own.
pub const LARGE: usize = 1 << 20;
/// The size and alignment of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

pub struct Allocator;

/// Whether this process is a command that lives for milliseconds ([`tune_for_short_command`]):
/// then large blocks are advised for huge pages and each thread's heap grows in one step. Not
/// the daemon or a monitor, which live long, where a huge page fault may wait for the kernel to
/// compact memory and memory freed should go back. Only the tuning depends on it: which
/// allocator a block belongs to depends on its layout alone.
static SHORT_COMMAND: AtomicBool = AtomicBool::new(false);

/// How far a thread's heap grows at its first allocation in a short command.
const THREAD_HEAP: usize = 8 << 20;

/// Tunes the allocator for a command that lives for milliseconds.
///
/// Memory it frees is kept for its next allocations rather than handed back to the kernel,
/// which would fault in and zero fresh pages for them (a third of a 10,000-image listing's
/// time went there); commands that follow a container (`run`, `logs -f`, `events`) keep at
/// most what they once used. Large blocks are advised for huge pages, and each thread's heap
/// grows in one step ([`grow_thread_heap_once`]).
pub fn tune_for_short_command() {
    // glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
    const LARGEST: libc::c_int = 32 << 20;
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGEST);
        libc::mallopt(libc::M_TRIM_THRESHOLD, LARGEST);
    }
    SHORT_COMMAND.store(true, Ordering::Relaxed);
}

/// Grows this thread's heap in one step, at its first allocation, and advises most of it for
/// huge pages. glibc grows the heap of a thread other than the main one by the pages each
/// allocation needs, with an `mprotect` every time (a `ps -a` worker made 769 of them), and
/// each fresh 4 KiB page then costs a fault. One block of [`THREAD_HEAP`] taken and given back
/// grows the heap (the main thread's too) at once, and the trim threshold set above keeps it
/// grown. The whole huge pages within the block are advised as large blocks are: a heap's first
/// megabyte or two stays in small pages, what a listing uses beyond it comes in huge ones. Pages
/// are still touched only as they are used; a command that follows a container keeps at most
/// one partly used huge page more per thread. Measured on a `ps -a` of 2,000 containers in 100
/// interleaved rounds: the one-step growth 1.2 ms less, the huge pages 1 ms less again.
fn grow_thread_heap_once() {
    thread_local! {
        static GROWN: Cell<bool> = const { Cell::new(false) };
    }
    if SHORT_COMMAND.load(Ordering::Relaxed) && !GROWN.get() {
        GROWN.set(true);
        // SAFETY: a block of the system allocator's, freed at once. (`black_box`: the
        // compiler would otherwise drop a block that is never used.)
        unsafe {
            let block = std::hint::black_box(libc::malloc(THREAD_HEAP));
            if !block.is_null() {
                let start = (block as usize).next_multiple_of(HUGE_PAGE);
                let end = (block as usize + THREAD_HEAP) & !(HUGE_PAGE - 1);
                if end > start {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
                }
            }
            libc::free(block)
        }
    }
}

/// Whether a block of `layout` is one of ours. A block keeps its layout for its life (as
/// `GlobalAlloc` promises), so alloc and dealloc always agree.
fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= HUGE_PAGE
}

/// The length of the mapping that holds `size` bytes: whole huge pages.
fn mapped_len(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

/// `len` bytes (a multiple of [`HUGE_PAGE`]) of zeroed memory at a huge-page boundary; null
/// when the kernel has none to give.
fn map_aligned(len: usize) -> *mut u8 {
    // SAFETY: anonymous private mappings of our own; the slack around an aligned range is
    // unmapped again, and only the aligned range is returned.
    unsafe {
        let map = |len| {
            let addr = libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if addr == libc::MAP_FAILED {
                ptr::null_mut()
            } else {
                addr.cast::<u8>()
            }
        };
        let mut addr = map(len);
        if addr.is_null() {
            return addr;
        }
        if !(addr as usize).is_multiple_of(HUGE_PAGE) {
            // Recent kernels align such mappings themselves; older ones need room to choose.
            libc::munmap(addr.cast(), len);
            let wide = map(len + HUGE_PAGE);
            if wide.is_null() {
                return wide;
            }
            let head = (wide as usize).next_multiple_of(HUGE_PAGE) - wide as usize;
            if head > 0 {
                libc::munmap(wide.cast(), head);
            }
            if HUGE_PAGE - head > 0 {
                libc::munmap(wide.add(head + len).cast(), HUGE_PAGE - head);
            }
            addr = wide.add(head);
        }
        // Advice only: without it (or without huge pages) the block is an ordinary mapping.
        if SHORT_COMMAND.load(Ordering::Relaxed) {
            libc::madvise(addr.cast(), len, libc::MADV_HUGEPAGE);
        }
        addr
    }
}

// SAFETY: every block is either the system allocator's or a private mapping of ours, chosen by
// its layout alone ([`is_large`]), which is the same at every call for one block.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            map_aligned(mapped_len(layout.size()))
        } else {
            grow_thread_heap_once();
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            // Fresh anonymous memory is zeroed.
            map_aligned(mapped_len(layout.size()))
        } else {
            grow_thread_heap_once();
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_large(layout) {
            libc::munmap(block.cast(), mapped_len(layout.size()));
        } else {
            System.dealloc(block, layout)
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_large(layout), is_large(new_layout)) {
            (false, false) => System.realloc(block, layout, new_size),
            (true, true) => {
                let (old_len, new_len) = (mapped_len(layout.size()), mapped_len(new_size));
                if new_len == old_len {
                    block
                } else if new_len < old_len {
                    libc::munmap(block.add(new_len).cast(), old_len - new_len);
                    block
                } else {
                    // In place when the address space after the block is free; else a new
                    // block and a copy, as for any allocator.
                    let grown = libc::mremap(block.cast(), old_len, new_len, 0);
                    if grown != libc::MAP_FAILED {
                        return grown.cast();
                    }
                    let moved = map_aligned(new_len);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size());
                        libc::munmap(block.cast(), old_len);
                    }
                    moved
                }
            }
            // Across the threshold: a new block of the other kind, and a copy.
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_zeroed_and_keep_their_bytes_as_they_grow_and_shrink() {
        SHORT_COMMAND.store(true, Ordering::Relaxed);
        let a = Allocator;
        let align = 64;
        unsafe {
            let layout = Layout::from_size_align(LARGE, align).unwrap();
            let block = a.alloc_zeroed(layout);
            assert!(!block.is_null());
            assert!((block as usize).is_multiple_of(HUGE_PAGE));
            assert!(std::slice::from_raw_parts(block, LARGE)
                .iter()
                .all(|&b| b == 0));
            for i in (0..LARGE).step_by(4096) {
                *block.add(i) = (i / 4096) as u8;
            }
            // Within its mapping, across huge pages, small again, and large once more: the
            // bytes of the smallest size on the way are kept.
            let mut layout = layout;
            let mut block = block;
            let mut kept = LARGE;
            for size in [
                LARGE + 5,
                3 * HUGE_PAGE + 1,
                7 * HUGE_PAGE,
                LARGE / 2,
                LARGE * 2,
            ] {
                block = a.realloc(block, layout, size);
                assert!(!block.is_null(), "realloc to {size}");
                layout = Layout::from_size_align(size, align).unwrap();
                kept = kept.min(size);
                for i in (0..kept).step_by(4096) {
                    assert_eq!(*block.add(i), (i / 4096) as u8, "byte {i} after {size}");
                }
                *block.add(size - 1) = 7;
            }
            a.dealloc(block, layout);
        }
    }

    /// The writable mappings of this process around `addr`, as `(start, end, advised for
    /// huge pages)`, from /proc/self/smaps: the one holding it and those adjacent to it.
    fn writable_around(addr: usize) -> Vec<(usize, usize, bool)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut maps: Vec<(usize, usize, bool, bool)> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            if let Some((start, end)) = first.split_once('-') {
                let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) else {
                    continue;
                };
                let writable = fields.next().is_some_and(|perms| perms.starts_with("rw"));
                maps.push((start, end, writable, false));
            } else if first == "VmFlags:" {
                if let Some(last) = maps.last_mut() {
                    last.3 = line.split_whitespace().any(|flag| flag == "hg");
                }
            }
        }
        let at = maps
            .iter()
            .position(|&(start, end, ..)| start <= addr && addr < end)
            .unwrap();
        let mut from = at;
        while from > 0 && maps[from - 1].1 == maps[from].0 && maps[from - 1].2 {
            from -= 1;
        }
        let mut to = at;
        while to + 1 < maps.len() && maps[to].1 == maps[to + 1].0 && maps[to + 1].2 {
            to += 1;
        }
        maps[from..=to]
            .iter()
            .map(|&(start, end, _, huge)| (start, end, huge))
            .collect()
    }

    #[test]
    fn a_short_commands_thread_heap_is_grown_at_once_and_advised_for_huge_pages() {
        tune_for_short_command();
        let around = std::thread::spawn(|| {
            // Larger than glibc's per-thread cache holds, which may hand out blocks of the
            // spawning thread's heap (freed here).
            let layout = Layout::from_size_align(4096, 8).unwrap();
            // SAFETY: a block allocated and freed with the same layout.
            unsafe {
                let block = Allocator.alloc(layout);
                let around = writable_around(block as usize);
                Allocator.dealloc(block, layout);
                around
            }
        })
        .join()
        .unwrap();
        let (start, end) = (around[0].0, around[around.len() - 1].1);
        assert!(end - start >= THREAD_HEAP, "{around:x?}");
        // The advice shows (as `hg`) where the kernel has transparent huge pages at all.
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|modes| !modes.contains("[never]"));
        if thp {
            assert!(around.iter().any(|&(.., huge)| huge), "{around:x?}");
        }
    }

    #[test]
    fn blocks_of_a_mebibyte_or_more_are_mappings() {
        let of = |size, align| is_large(Layout::from_size_align(size, align).unwrap());
        assert!(!of(LARGE - 1, 8));
        assert!(of(LARGE, 8));
        assert!(of(LARGE, HUGE_PAGE));
        assert!(!of(LARGE, HUGE_PAGE * 2));
        assert_eq!(mapped_len(LARGE), HUGE_PAGE);
        assert_eq!(mapped_len(HUGE_PAGE + 1), 2 * HUGE_PAGE);
    }
}
