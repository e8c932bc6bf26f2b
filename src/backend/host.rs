//! Facts about the host the backends run on: CPU features, rayon's thread pool with
//! flush-to-zero on every worker, available memory, and huge-page hints. Both backends and the
//! application read them; nothing here depends on a backend.

/// Whether this CPU has AVX2 and FMA (checked once): the matmul kernels in `cpu::matmul` and
/// the 8-lane optimizer loops in `cpu::optim` need both; without them the backend falls back to
/// the `gemm` crate and portable loops.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has AVX-512 F, BW and VL beside AVX2 and FMA (checked once): the fused
/// optimizer loops (f32 and bfloat16 state) and the 8-bit step's coder and loops take 16 lanes
/// where it does; every kernel keeps its AVX2
/// and portable paths. `DESCENT_NO_AVX512=1` turns the AVX-512 paths off (for tests and
/// side-by-side timing).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            has_avx2_fma()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && std::env::var("DESCENT_NO_AVX512").is_err()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has AVX-512 BF16 beside [`has_avx512`]'s F, BW and VL (checked once; off
/// with `DESCENT_NO_AVX512=1`): Muon's bfloat16 Newton–Schulz multiplies on `vdpbf16ps` where
/// it does, and through widened f32 elsewhere.
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| has_avx512() && is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Build rayon's global pool with flush-to-zero on every worker (once; later calls do nothing).
/// Worker stacks get the main thread's usual 8 MiB because the CLI runs its whole command on a
/// worker (see `cli::main`).
pub fn init_thread_pool() {
    // In the browser rayon runs every loop on the calling thread (no threads to build).
    if cfg!(target_arch = "wasm32") {
        return;
    }
    static POOL: std::sync::Once = std::sync::Once::new();
    POOL.call_once(|| {
        // Fails if something ran on rayon's global pool before (a program that uses rayon
        // itself, or a test): then its workers get flush-to-zero now, each in turn. The pool
        // never adds workers later, so every thread that runs a kernel has it.
        let built =
            rayon::ThreadPoolBuilder::new().stack_size(8 << 20).start_handler(|_| set_flush_to_zero()).build_global();
        if built.is_err() {
            rayon::broadcast(|_| set_flush_to_zero());
        }
    });
}

/// Set flush-to-zero and denormals-are-zero on this thread (x86-64 MXCSR bits 15 and 6).
pub fn set_flush_to_zero() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}

/// Whether flush-to-zero is set on this thread.
pub fn flush_to_zero_is_set() -> bool {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::_mm_getcsr;
        _mm_getcsr() & 0x8040 == 0x8040
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Ask the kernel to back a large buffer with 2 MiB pages (Linux transparent huge pages in
/// `madvise` mode) before it is first touched: streaming kernels over hundreds of MB then miss
/// the TLB far less often. A hint only; nothing depends on it being honoured.
pub fn advise_huge_pages(v: &mut Vec<f32>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * 4;
        if bytes < 4 * HUGE {
            return;
        }
        let start = v.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if end > aligned {
            // SAFETY: the range lies inside the vector's own allocation; MADV_HUGEPAGE changes
            // no contents and no mapping, only how pages are backed.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// The host's available memory (Linux's `MemAvailable`), if known.
pub fn host_available_bytes() -> Option<u64> {
    if cfg!(target_arch = "wasm32") {
        return None;
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

thread_local! {
    /// Set while this thread runs one slice of a data-parallel step: every op then runs on it
    /// alone (the slices themselves are what runs in parallel).
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether ops on this thread may split their work across rayon's pool: false inside a
/// [`SerialSection`].
pub fn may_fork() -> bool {
    !SERIAL.with(|s| s.get())
}

/// The threads an op on this thread may use: rayon's count, or 1 inside a [`SerialSection`].
pub fn op_threads() -> usize {
    if may_fork() {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// While alive, the CPU backend's ops on this thread run on this thread alone.
pub struct SerialSection {
    was: bool,
}

impl SerialSection {
    /// Run this thread's ops serially until the section is dropped.
    pub fn enter() -> SerialSection {
        SerialSection { was: SERIAL.with(|s| s.replace(true)) }
    }
}

impl Drop for SerialSection {
    fn drop(&mut self) {
        let was = self.was;
        SERIAL.with(|s| s.set(was));
    }
}

/// `f` of every item, in the items' order, item `i` run on pool thread `i % threads` (or all
/// on this thread inside a [`SerialSection`] or on one thread). The same items land on the
/// same threads every call, so a data-parallel step's slice `s` runs where slice `s` ran the
/// step before, and finds its worker's buffers in that core's cache.
#[cfg(not(target_arch = "wasm32"))]
pub fn map_pinned<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    use std::sync::Mutex;
    if op_threads() <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    // Each item and the slot for its result.
    let jobs: Vec<_> = items.into_iter().map(|t| (Mutex::new(Some(t)), Mutex::new(None::<R>))).collect();
    rayon::broadcast(|ctx| {
        for (item, out) in jobs.iter().skip(ctx.index()).step_by(ctx.num_threads()) {
            if let Some(item) = item.lock().map(|mut s| s.take()).unwrap_or(None) {
                let r = f(item);
                if let Ok(mut o) = out.lock() {
                    *o = Some(r);
                }
            }
        }
    });
    // broadcast returns once every thread has run its share, each item exactly once.
    jobs.into_iter().map(|(_, out)| out.into_inner().ok().flatten().expect("every item ran")).collect()
}

/// [`map_pinned`] in the browser: one thread, so every item in order.
#[cfg(target_arch = "wasm32")]
pub fn map_pinned<T, R>(items: Vec<T>, f: impl Fn(T) -> R) -> Vec<R> {
    items.into_iter().map(f).collect()
}
