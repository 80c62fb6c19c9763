//! The pool on real threads and an embedded interpreter.

use std::sync::mpsc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::{Job, Pool};

/// How long any step may take before the test fails.
const T: Duration = Duration::from_secs(10);

fn job(f: impl FnOnce() + Send + 'static) -> Job {
    Box::new(move |_py: Python<'_>| f())
}

/// Submits a job that reports the thread it ran on, retrying while the
/// pool gives it back (its workers busy or not yet waiting), until `T`.
fn submit_until_taken(pool: &Pool) -> ThreadId {
    let (tx, rx) = mpsc::channel();
    let deadline = Instant::now() + T;
    let mut next = job(move || tx.send(std::thread::current().id()).unwrap_or(()));
    loop {
        match pool.submit(next) {
            Ok(()) => break,
            Err(given_back) => {
                assert!(Instant::now() < deadline, "no worker took the job");
                next = given_back;
                std::thread::yield_now();
            }
        }
    }
    rx.recv_timeout(T).expect("the job ran")
}

fn threads(pool: &Pool) -> usize {
    pool.shared
        .threads
        .load(std::sync::atomic::Ordering::Acquire)
}

#[test]
fn an_idle_worker_takes_the_next_job_instead_of_a_new_thread() {
    Python::initialize();
    let pool = Pool::new(1);
    let first = submit_until_taken(&pool);
    assert_ne!(first, std::thread::current().id());
    // With one worker allowed, the next job can only go to the same one,
    // once it waits again.
    assert_eq!(submit_until_taken(&pool), first);
    assert_eq!(threads(&pool), 1);
}

#[test]
fn a_job_is_given_back_when_every_worker_is_busy() {
    Python::initialize();
    let pool = Pool::new(2);
    let (started_tx, started) = mpsc::channel();
    let mut release = Vec::new();
    for _ in 0..2 {
        let (go_tx, go) = mpsc::channel::<()>();
        let started_tx = started_tx.clone();
        let submitted = pool.submit(Box::new(move |py: Python<'_>| {
            started_tx.send(()).unwrap_or(());
            // As a Python method that blocks does: without the GIL.
            let _ = py.detach(move || go.recv_timeout(T));
        }));
        assert!(
            submitted.is_ok(),
            "a new worker starts for each of the first two"
        );
        release.push(go_tx);
    }
    for _ in 0..2 {
        started.recv_timeout(T).expect("both jobs run at once");
    }
    assert!(pool.submit(job(|| ())).is_err(), "both workers are busy");
    assert_eq!(threads(&pool), 2);
    drop(release);
    submit_until_taken(&pool);
    assert_eq!(threads(&pool), 2);
}

#[test]
fn a_panicking_job_leaves_its_worker_serving() {
    Python::initialize();
    let pool = Pool::new(1);
    let (tx, rx) = mpsc::channel();
    let submitted = pool.submit(job(move || {
        tx.send(()).unwrap_or(());
        panic!("the job's own panic");
    }));
    assert!(submitted.is_ok());
    rx.recv_timeout(T).expect("the job ran");
    submit_until_taken(&pool);
    assert_eq!(threads(&pool), 1);
}

#[test]
fn a_closed_pool_gives_jobs_back_and_its_workers_exit() {
    Python::initialize();
    let pool = Pool::new(3);
    let (go_tx, go) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    let submitted = pool.submit(Box::new(move |py: Python<'_>| {
        let _ = py.detach(move || go.recv_timeout(T));
        done_tx.send(()).unwrap_or(());
    }));
    assert!(submitted.is_ok());
    submit_until_taken(&pool);
    pool.close();
    assert!(pool.submit(job(|| ())).is_err(), "closed");
    // The running job finishes; then every worker exits.
    drop(go_tx);
    done.recv_timeout(T).expect("the running job finished");
    let deadline = Instant::now() + T;
    while threads(&pool) > 0 {
        assert!(Instant::now() < deadline, "{} workers left", threads(&pool));
        std::thread::yield_now();
    }
}
