//! The plumbing every fake server shares: an axum app served on an ephemeral port of
//! 127.0.0.1, on its own thread with its own tokio runtime (so synchronous tests can use it),
//! stopped and joined when dropped.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// A running server; stops when dropped.
pub struct Served {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    /// Serves `app` on 127.0.0.1:0. Panics if the loopback socket or the runtime cannot be
    /// set up (a broken test machine).
    pub fn start(name: &str, app: axum::Router) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{name}: bind 127.0.0.1:0: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{name}: set_nonblocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name}: local_addr: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{name}: build tokio runtime: {e}"));
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("{label}: cannot adopt listener: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(e) = result {
                                eprintln!("{label}: server stopped: {e}");
                            }
                        }
                        _ = shutdown_rx => {}
                    }
                });
                // Drops open keep-alive connections without waiting for clients.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .unwrap_or_else(|e| panic!("{name}: spawn server thread: {e}"));
        Served {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only if the server already stopped.
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already reported on stderr.
            let _ = thread.join();
        }
    }
}
