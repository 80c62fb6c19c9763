//! glibc's heap kept warm while a server runs (decision 0025).
//!
//! Decision 0091 fixed glibc's mmap threshold at 1 MiB, so that buffers of a
//! megabyte or more are unmapped when freed and a thread arena trims its top
//! past 128 KiB: memory after load went back, but every big buffer of every
//! call was mapped and faulted in afresh. While a server runs, buffers below
//! 32 MiB come from the arenas instead (`M_MMAP_THRESHOLD`), and each arena
//! keeps up to 64 MiB free at its top (`M_TOP_PAD`) rather than trimming it.
//!
//! `malloc_trim` gives back the main arena's top and the free pages inside
//! every arena, but not a thread arena's top: glibc trims that only when
//! memory of that arena of 64 KiB or more is freed. So each thread that does
//! a server's work holds a *ticket*, 128 KiB allocated on that thread (hence
//! in its arena), taken by `arm` when the thread starts work. The release
//! (`trim`) lowers the pad to nothing, frees every ticket (each free trims
//! its arena's top), calls `malloc_trim(0)` for the rest, and puts the pad
//! back; threads take new tickets the next time they work. A thread that never armed (one of the user's
//! own) keeps what it freed at its top until it frees a big buffer after
//! the server stops.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod imp {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;

    /// Free space each arena keeps at its top while a server runs.
    const PAD: i32 = 64 << 20;
    /// Buffers at least this big are mapped on their own, even under load
    /// (glibc's maximum for a fixed threshold).
    const MMAP_THRESHOLD: i32 = 32 << 20;
    /// Decision 0091's threshold, for when no server runs.
    const MMAP_THRESHOLD_IDLE: i32 = 1 << 20;
    /// A ticket's size: at least glibc's 64 KiB trim trigger, well below the
    /// mmap threshold (so it comes from the thread's arena).
    const TICKET: usize = 128 << 10;

    /// A ticket: memory of one thread's arena, freed by the idle step.
    struct Ticket(*mut c_void);
    // SAFETY: a plain `malloc`ed block; glibc frees it into its own arena
    // from any thread.
    unsafe impl Send for Ticket {}

    static ON: AtomicBool = AtomicBool::new(false);
    static TICKETS: Mutex<Vec<Ticket>> = Mutex::new(Vec::new());
    /// Bumped by every idle step: a thread armed in an older generation has
    /// had its ticket freed.
    static GENERATION: AtomicU64 = AtomicU64::new(0);

    /// The tickets, unless another thread holds them right now (never waits,
    /// so a process forked while they were held does not hang).
    fn tickets() -> Option<std::sync::MutexGuard<'static, Vec<Ticket>>> {
        match TICKETS.try_lock() {
            Ok(t) => Some(t),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    thread_local! {
        static ARMED: Cell<u64> = const { Cell::new(u64::MAX) };
    }

    fn mallopt(param: i32, value: i32) -> bool {
        // SAFETY: mallopt only changes allocator parameters, under its lock.
        unsafe { libc::mallopt(param, value) == 1 }
    }

    pub(in crate::warm) fn start() -> bool {
        ON.store(true, Ordering::Release);
        mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) && mallopt(libc::M_TOP_PAD, PAD)
    }

    pub(in crate::warm) fn stop() {
        ON.store(false, Ordering::Release);
        mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_IDLE);
        trim();
    }

    /// Back to decision 0091's settings without freeing anything (a forked
    /// child: its tickets belong to threads it does not have, and are left).
    pub(in crate::warm) fn forget() {
        ON.store(false, Ordering::Release);
        mallopt(libc::M_TOP_PAD, 0);
        mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_IDLE);
    }

    pub(in crate::warm) fn arm() {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        let generation = GENERATION.load(Ordering::Acquire);
        if ARMED.with(Cell::get) == generation {
            return;
        }
        ARMED.with(|a| a.set(generation));
        // SAFETY: a plain allocation, freed once by `trim`.
        let p = unsafe { libc::malloc(TICKET) };
        if p.is_null() {
            return;
        }
        match tickets() {
            Some(mut tickets) => tickets.push(Ticket(p)),
            None => {
                // Being released right now: no ticket this time.
                ARMED.with(|a| a.set(u64::MAX));
                // SAFETY: just allocated above, not shared.
                unsafe { libc::free(p) };
            }
        }
    }

    pub(in crate::warm) fn trim() {
        mallopt(libc::M_TOP_PAD, 0);
        let tickets = tickets()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        for Ticket(p) in tickets {
            // SAFETY: allocated by `arm` and freed only here, once.
            unsafe { libc::free(p) };
        }
        // The main arena's top and the free pages inside every arena.
        // SAFETY: no preconditions; releases only pages nothing uses.
        unsafe { libc::malloc_trim(0) };
        if ON.load(Ordering::Acquire) {
            mallopt(libc::M_TOP_PAD, PAD);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(in crate::warm) fn start() -> bool {
        false
    }
    pub(in crate::warm) fn forget() {}
    pub(in crate::warm) fn stop() {}
    pub(in crate::warm) fn arm() {}
    pub(in crate::warm) fn trim() {}
}

pub(super) use imp::{arm, forget, start, stop, trim};
