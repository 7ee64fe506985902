//! dock's allocator: blocks of [`LARGE`] bytes or more (a listing's index text, its arrays of
//! thousands of records) are mappings of their own, aligned to and advised for transparent huge
//! pages; everything else goes to the system allocator.
//!
//! Why: a listing of 10,000 objects touches megabytes of fresh memory once, and on this kind of
//! machine each fresh 4 KiB page costs a fault of a few microseconds (a third of a listing's
//! time went there). A 2 MiB page costs about as much as a dozen small ones. Blocks grow in
//! place (`mremap`) where they can. Where the kernel gives no huge pages (or for the daemon and
//! monitors, [`use_huge_pages`]) the blocks are ordinary mappings, as glibc makes for large
//! blocks anyway.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks this large or larger are mappings of their own.
pub const LARGE: usize = 1 << 20;
/// The size and alignment of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

pub struct Allocator;

/// Whether large blocks are advised for huge pages: yes for the commands that live for
/// milliseconds ([`use_huge_pages`]); not for the daemon or a monitor, which live long, where a
/// huge page fault may wait for the kernel to compact memory. Only the advice depends on it:
/// which allocator a block belongs to depends on its layout alone.
static HUGE_PAGES: AtomicBool = AtomicBool::new(false);

/// Large blocks from now on are advised for huge pages.
pub fn use_huge_pages() {
    HUGE_PAGES.store(true, Ordering::Relaxed);
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
        if HUGE_PAGES.load(Ordering::Relaxed) {
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
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            // Fresh anonymous memory is zeroed.
            map_aligned(mapped_len(layout.size()))
        } else {
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
        use_huge_pages();
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
