//! Heap bytes per buffered data point, counted by a global allocator: every
//! byte the recorder (and the provider it holds) keeps live at 10,000
//! resources × 8 metrics with full 60-point buffers, divided by the points
//! buffered. The peer's `heap_bytes_per_point` is the same ratio from Go's
//! `HeapAlloc` (~300 B). Prints one JSON line.
//!
//! ```sh
//! cargo run --release --example heap                   # 10,000 resources
//! cargo run --release --example heap -- 1000 100       # R and A
//! ```
//!
//! SQLite allocates with its own `malloc`, outside this allocator: its page
//! cache is bounded (`cache_size`) and does not grow with the resources, so it
//! is reported on its own (`sqlite_heap_bytes`), not per point.

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    support::assert_peer_generator();
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let resources = args.next().unwrap_or(10_000);
    let active = args.next().unwrap_or(0);
    let base = LIVE.load(Ordering::Relaxed);
    let sqlite_base = rusqlite_memory_used();
    // Steady state: full buffers, a few ticks past filling (evictions included).
    let rig = support::TickRig::new(resources, active, 1);
    for _ in 0..10 {
        rig.step();
    }
    rig.check();
    let live = LIVE.load(Ordering::Relaxed) - base;
    let stats = rig.recorder.stats();
    let points = stats.buffered_points;
    println!(
        r#"{{"bench":"heap","lang":"rust","R":{resources},"A":{active},"points_buffered":{points},"live_heap_bytes":{live},"heap_bytes_per_point":{:.1},"ring_bytes_per_point":{:.1},"sqlite_heap_bytes":{}}}"#,
        live as f64 / points as f64,
        stats.buffer_bytes as f64 / points as f64,
        rusqlite_memory_used() - sqlite_base
    );
}

/// Bytes SQLite holds in its own allocator (all connections of the process).
fn rusqlite_memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used only reads SQLite's global counters.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}
