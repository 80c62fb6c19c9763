//! `ConnectionBalancer`: the listening side of `Server(processes=N)`'s
//! supervisor. It binds the server's address and, on the pyrpc runtime (no
//! GIL), accepts each connection and hands it to the worker process with the
//! fewest open connections ([`pyrpc_transport::Balancer`]); a worker serves
//! it as one of its own (`ServerCore.bind(handoff=...)`), TLS and all.

use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyrpc_transport::{Address, Balancer, Listener, ListenerOptions, TransportError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{address as parse_address, address_to_py};
use crate::runtime;

/// Accepts on the server's address and hands connections to the workers.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct ConnectionBalancer {
    balancer: Balancer,
    address: Address,
    /// The workers' ends of the channels made before accepting began, each
    /// until its first `attach`: a connection accepted before a worker
    /// process is started waits in its channel rather than being closed.
    first_ends: Mutex<Vec<Option<StdUnixStream>>>,
    /// Stops the accept loop; `None` once closed.
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

#[pymethods]
impl ConnectionBalancer {
    /// Binds `address` (a Unix socket file with `unix_mode`) for `workers`
    /// workers and starts accepting; connections wait in the channel of a
    /// worker until it starts.
    #[new]
    #[pyo3(signature = (address, workers, unix_mode = None))]
    fn new(
        py: Python<'_>,
        address: &Bound<'_, PyAny>,
        workers: usize,
        unix_mode: Option<u32>,
    ) -> PyResult<Self> {
        let addr = parse_address(address)?;
        let mut options = ListenerOptions::default();
        if let Some(mode) = unix_mode {
            options = options.unix_mode(mode);
        }
        let listener = runtime::block_on(
            py,
            async move { Listener::bind_with(&addr, &options).await },
        )?
        .map_err(bind_error)?;
        let address = listener.local_address().map_err(bind_error)?;
        let balancer = Balancer::new(workers);
        let first_ends = (0..workers)
            .map(|i| balancer.attach(i).map(Some))
            .collect::<std::io::Result<Vec<_>>>()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime::get()?.spawn(balancer.clone().run(listener, async move {
            let _ = stopped.await;
        }));
        Ok(ConnectionBalancer {
            balancer,
            address,
            first_ends: Mutex::new(first_ends),
            stop: Mutex::new(Some((stop, task))),
        })
    }

    /// The channel for worker `i`: the one made with the balancer the first
    /// time (connections accepted since wait in it), a new one after that
    /// (replacing a dead worker's). Returns the file descriptor of the
    /// worker's end, which the caller owns.
    fn attach(&self, py: Python<'_>, i: usize) -> PyResult<i32> {
        // Without the GIL: the balancer's lock is also taken on the runtime,
        // whose log lines take the GIL.
        let end = crate::exit::detach(py, || {
            let first = self
                .first_ends
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(i)
                .and_then(Option::take);
            match first {
                Some(end) => Ok(end),
                None => self.balancer.attach(i),
            }
        })?;
        Ok(end.into_raw_fd())
    }

    /// Open connections per worker as last reported (None: not attached,
    /// not ready yet, or gone).
    fn open_counts(&self, py: Python<'_>) -> Vec<Option<usize>> {
        // Without the GIL, as `attach`: the lock is the runtime's too.
        crate::exit::detach(py, || self.balancer.open_counts())
    }

    /// The address bound (the real port for port 0).
    fn local_address(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        address_to_py(py, &self.address)
    }

    /// Stops accepting and closes the listener (removing its Unix socket
    /// file); returns once done.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, task)) = taken {
            let _ = stop.send(());
            let _ = runtime::block_on(py, task)?;
        }
        Ok(())
    }
}

/// An `OSError` with the OS's errno when there is one (`EADDRINUSE` for a
/// port in use), as Python's own `bind` raises.
fn bind_error(e: TransportError) -> PyErr {
    let message = pyrpc_proto::Report(&e).to_string();
    let errno = match &e {
        TransportError::Bind { source, .. } => source.raw_os_error(),
        TransportError::InUse { .. } => Some(libc::EADDRINUSE),
        TransportError::NotASocket { .. } => Some(libc::EEXIST),
        _ => None,
    };
    match errno {
        Some(n) => pyo3::exceptions::PyOSError::new_err((n, message)),
        None => pyo3::exceptions::PyOSError::new_err(message),
    }
}

/// Registers the class in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ConnectionBalancer>()
}
