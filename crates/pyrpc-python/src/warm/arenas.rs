//! The interpreter's freed object arenas, kept while a server runs and given
//! back when it goes quiet (issue 10, decision 0025).
//!
//! CPython's small-object allocator takes memory from the OS in arenas
//! (256 KiB before 3.10, 1 MiB since) and unmaps an arena as soon as the last
//! object in it dies. A call that decodes a million ints fills 31 of them,
//! and they are all unmapped once the reply is sent, so the next call maps
//! them again and faults in every page afresh: some 8,000 page faults, about
//! a fifth of the server's CPU for that call. The client's side and pickle's
//! pay the same, but a server sees the same shapes call after call.
//!
//! While a Python server runs, the interpreter's arena allocator is wrapped
//! (`PyObject_SetArenaAllocator`, public C API since 3.4, looked up by name
//! because the abi3 wheel cannot link to it): a freed arena is kept, up to
//! [`KEEP_MAX`] bytes, and handed out again before a new one is mapped. When
//! the server goes quiet after load (`ServerBuilder::on_idle`), or when the
//! last server stops, the kept arenas go back through the interpreter's own
//! allocator. With no server running, arenas pass straight through.
//!
//! Arena memory is not expected to be zeroed by CPython (it runs on
//! `malloc`-based arenas too), so a kept arena is handed out as it is.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;

/// The most arena memory kept for reuse, in bytes.
pub(super) const KEEP_MAX: usize = 64 << 20;

/// `PyObjectArenaAllocator` (cpython/objimpl.h), the same in every CPython 3.
#[repr(C)]
#[derive(Clone, Copy)]
struct ArenaAllocator {
    ctx: *mut c_void,
    alloc: Option<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>,
    free: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, usize)>,
}

// SAFETY: `ctx` is the interpreter's own allocator context, only ever passed
// back to the interpreter's functions.
#[allow(unsafe_code)]
unsafe impl Send for ArenaAllocator {}
#[allow(unsafe_code)]
unsafe impl Sync for ArenaAllocator {}

type GetSet = unsafe extern "C" fn(*mut ArenaAllocator);

/// Arenas kept for reuse: (address, size).
struct Kept {
    arenas: Vec<(usize, usize)>,
    bytes: usize,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    arenas: Vec::new(),
    bytes: 0,
});

/// The kept arenas, unless another thread holds them right now. Never waits:
/// the lock is only held for a few instructions, and a process forked while
/// the idle release held it (no GIL there) must not hang on its first arena;
/// its arenas just pass straight through.
fn try_kept() -> Option<std::sync::MutexGuard<'static, Kept>> {
    match KEPT.try_lock() {
        Ok(kept) => Some(kept),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Whether freed arenas are kept (while a server runs).
static KEEPING: AtomicBool = AtomicBool::new(false);

/// The interpreter's allocator that ours wraps, known before ours is set.
static INNER: OnceLock<ArenaAllocator> = OnceLock::new();

/// Whether ours is installed (once per process; false when the interpreter
/// does not export the functions).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Wraps the interpreter's arena allocator (once per process; false when
/// the interpreter does not export the functions) and starts keeping
/// freed arenas. Call with the GIL held.
pub(super) fn keep(py: Python<'_>) -> bool {
    let _ = py;
    let installed = *INSTALLED.get_or_init(install);
    KEEPING.store(installed, Ordering::Release);
    installed
}

/// Stops keeping freed arenas; those kept are still handed out first.
pub(super) fn stop_keeping() {
    KEEPING.store(false, Ordering::Release);
}

/// Stops keeping freed arenas and gives the kept ones back.
pub(super) fn stop() {
    KEEPING.store(false, Ordering::Release);
    release();
}

/// Gives every kept arena back to the interpreter's allocator. Safe to call
/// from any thread: the default arena allocator is `munmap`, and a custom
/// one set before ours is called as the interpreter would, one arena at a
/// time, outside our lock.
#[allow(unsafe_code)]
pub(super) fn release() {
    let arenas = match try_kept() {
        Some(mut kept) => {
            kept.bytes = 0;
            std::mem::take(&mut kept.arenas)
        }
        // Held this instant by the interpreter's allocation: next time.
        None => return,
    };
    let Some(inner) = INNER.get() else {
        return;
    };
    for (ptr, size) in arenas {
        if let Some(free) = inner.free {
            // SAFETY: `ptr` came from `inner.alloc` with this `size` and is
            // no longer used by the interpreter (it freed it to us).
            unsafe { free(inner.ctx, ptr as *mut c_void, size) };
        }
    }
    // Room for the next load's arenas, so that keeping one never allocates.
    if let Some(mut kept) = try_kept() {
        kept.arenas.reserve(KEEP_MAX / (256 << 10));
    }
}

#[allow(unsafe_code)]
fn lookup(name: &std::ffi::CStr) -> Option<GetSet> {
    #[cfg(unix)]
    {
        // SAFETY: a NUL-terminated name looked up in the global scope; a
        // non-NULL result is the interpreter's function of that name, whose
        // signature is public C API.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if f.is_null() {
            return None;
        }
        Some(unsafe { std::mem::transmute::<*mut c_void, GetSet>(f) })
    }
    #[cfg(not(unix))]
    {
        let _ = name;
        None
    }
}

#[allow(unsafe_code)]
fn install() -> bool {
    let (Some(get), Some(set)) = (
        lookup(c"PyObject_GetArenaAllocator"),
        lookup(c"PyObject_SetArenaAllocator"),
    ) else {
        return false;
    };
    let mut inner = ArenaAllocator {
        ctx: std::ptr::null_mut(),
        alloc: None,
        free: None,
    };
    // SAFETY: the GIL is held (the caller's `py`); the interpreter fills in
    // its current allocator.
    unsafe { get(&mut inner) };
    if inner.alloc.is_none() || inner.free.is_none() || INNER.set(inner).is_err() {
        return false;
    }
    if let Some(mut kept) = try_kept() {
        kept.arenas.reserve(KEEP_MAX / (256 << 10));
    }
    let mut ours = ArenaAllocator {
        ctx: std::ptr::null_mut(),
        alloc: Some(alloc),
        free: Some(free),
    };
    // SAFETY: the GIL is held; the interpreter copies the struct. INNER is
    // set above, so `alloc` and `free` can reach the interpreter's own.
    unsafe { set(&mut ours) };
    true
}

fn inner() -> ArenaAllocator {
    match INNER.get() {
        Some(inner) => *inner,
        // Unreachable: ours is installed only after INNER is set.
        None => std::process::abort(),
    }
}

/// The interpreter asks for an arena (GIL held).
#[allow(unsafe_code)]
unsafe extern "C" fn alloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    if let Some(mut kept) = try_kept() {
        if let Some(i) = kept.arenas.iter().rposition(|&(_, s)| s == size) {
            let (ptr, _) = kept.arenas.swap_remove(i);
            kept.bytes -= size;
            drop(kept);
            // A reused arena is load that keeping them is for.
            super::moved(super::BIG.max(size));
            return ptr as *mut c_void;
        }
    }
    let inner = inner();
    match inner.alloc {
        // SAFETY: the interpreter's own allocator, called as it would be.
        Some(f) => unsafe { f(inner.ctx, size) },
        None => std::ptr::null_mut(),
    }
}

/// The interpreter frees an arena (GIL held).
#[allow(unsafe_code)]
unsafe extern "C" fn free(_ctx: *mut c_void, ptr: *mut c_void, size: usize) {
    if let Some(mut kept) = KEEPING.load(Ordering::Acquire).then(try_kept).flatten() {
        if kept.bytes + size <= KEEP_MAX && kept.arenas.len() < kept.arenas.capacity() {
            kept.arenas.push((ptr as usize, size));
            kept.bytes += size;
            return;
        }
    }
    let inner = inner();
    if let Some(f) = inner.free {
        // SAFETY: `ptr` came from the interpreter's allocator (directly, or
        // through a kept arena that did) with this `size`.
        unsafe { f(inner.ctx, ptr, size) };
    }
}
