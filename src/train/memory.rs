//! Peak memory of a training run: a counting global allocator when the program installs
//! one, else the process's resident high-water mark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting live heap bytes and their high-water mark. A library
/// cannot install a global allocator for its users, so the program does:
///
/// ```
/// #[global_allocator]
/// static ALLOC: rosa::train::CountingAlloc = rosa::train::CountingAlloc;
/// let v = vec![0u8; 1 << 20];
/// assert!(rosa::train::memory::peak_bytes().unwrap() >= 1 << 20);
/// # drop(v);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call forwards to the system allocator unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ACTIVE.store(true, Ordering::Relaxed);
        let p = System.alloc(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ACTIVE.store(true, Ordering::Relaxed);
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grow(new_size);
        }
        p
    }
}

/// The counting allocator's high-water mark, if it is installed.
pub fn peak_bytes() -> Option<usize> {
    ACTIVE
        .load(Ordering::Relaxed)
        .then(|| PEAK.load(Ordering::Relaxed))
}

/// Starts a new high-water mark at the current heap size.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The process's resident high-water mark (`VmHWM` in /proc/self/status), where there is one.
pub fn vm_hwm_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Where a reported peak comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakSource {
    /// [`CountingAlloc`]: heap high-water mark during the measured span.
    Heap,
    /// `VmHWM`: the whole process's resident high-water mark so far (it never goes down,
    /// so later rows include earlier ones).
    VmHwm,
    /// Neither is available.
    None,
}

impl PeakSource {
    /// How the report describes it.
    pub fn describe(self) -> &'static str {
        match self {
            PeakSource::Heap => "heap high-water mark during the method (counting allocator)",
            PeakSource::VmHwm => "process resident high-water mark so far (VmHWM; cumulative)",
            PeakSource::None => "not measured",
        }
    }
}

/// Measures the peak from [`PeakMeter::start`] to [`PeakMeter::read`].
#[derive(Debug, Clone, Copy)]
pub struct PeakMeter;

impl PeakMeter {
    /// Starts a span.
    pub fn start() -> Self {
        reset_peak();
        PeakMeter
    }

    /// The peak since the start, and where it comes from.
    pub fn read(self) -> (usize, PeakSource) {
        match (peak_bytes(), vm_hwm_bytes()) {
            (Some(p), _) => (p, PeakSource::Heap),
            (None, Some(h)) => (h, PeakSource::VmHwm),
            (None, None) => (0, PeakSource::None),
        }
    }
}
