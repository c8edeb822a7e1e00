//! The CLI's allocator, also used by `cargo bench --bench engine` (which includes this file)
//! so that its figures are the CLI's: mimalloc, told to keep what it frees.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v2's `mimalloc.h`, the enum after
/// `mi_option_eager_commit_delay` = 14; the Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the process instead of going back to the kernel after 10 ms:
/// every training step, and every embedding batch, allocates the same tens to hundreds of
/// MB of activations again, and the kernel zeroing fresh pages for them was a fifth of a
/// training step's time (12-movie finetune: 22 s → 18 s) and 6 % of embedding's (285,000
/// page faults for 1,000 texts, 501 with it). A CLI run ends soon enough to keep what it had.
pub fn keep_freed_memory() {
    // SAFETY: sets one integer option; called first thing in main, before other threads.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
