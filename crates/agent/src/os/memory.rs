//! Keeping the agent small: one malloc arena for all threads. glibc gives each thread that
//! allocates an arena of its own, and a helper thread (a DNS lookup, a blocking task) would keep
//! megabytes resident for the agent's whole life; the agent is not allocation-bound.
//!
//! Must never: be called after threads have started allocating (call it first thing in `main`).

/// Limits glibc to a single malloc arena. Returns whether the setting was taken.
pub fn single_malloc_arena() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only changes a malloc tunable; it takes plain integers, touches no
        // memory of ours, and is called before any other thread exists.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        ok == 1
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// Hands memory that malloc keeps free back to the system (after a large audit batch, say), so
/// the agent's resident size returns to its idle size.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim only releases free heap memory; it takes a plain integer and is
        // safe to call from any thread at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
