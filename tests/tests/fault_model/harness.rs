//! Workers on threads of their own (so that a fault can freeze or crash exactly one), a TCP
//! proxy per worker (so that its connections can be cut), and the few places where this test
//! depends on docket's newest API.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use docket::{Docket, Worker};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::log::{SeqLog, WorkerId, set_worker};

/// The typed error of a refused key. (Versions without key validation: see the top of
/// `fault_model.rs`.)
pub(crate) fn is_invalid_key(error: &docket::Error) -> bool {
    matches!(error, docket::Error::InvalidKey { .. })
}

/// The typed error of a due time out of range.
pub(crate) fn is_invalid_due(error: &docket::Error) -> bool {
    matches!(error, docket::Error::InvalidDue { .. })
}

/// Where a worker finds its docket.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The sequence's own memory docket, shared with the producer.
    Memory(Docket),
    /// A docket of its own on Redis, reached through `url` (its proxy).
    Redis {
        url: String,
        name: String,
        redelivery: Duration,
        /// `Connect::partitions`.
        partitions: u16,
    },
}

/// Connect to a Redis docket with the sequence's settings.
pub(crate) async fn connect(
    url: &str,
    name: &str,
    redelivery: Duration,
    partitions: u16,
) -> docket::Result<Docket> {
    Docket::connect(url)
        .name(name)
        .partitions(partitions)
        .redelivery_timeout(redelivery)
        .max_deliveries(3)
        .in_process_fallback(false)
        .await
}

#[derive(Debug)]
enum Exit {
    Stopped,
    Crashed,
}

/// A worker on a thread and a current-thread runtime of its own.
#[derive(Debug)]
pub(crate) struct WorkerThread {
    pub(crate) index: usize,
    /// The worker's name (its consumer on Redis), once it has one.
    pub(crate) id: Arc<std::sync::OnceLock<String>>,
    pub(crate) crashed: bool,
    pub(crate) proxy: Option<Proxy>,
    stop: Option<oneshot::Sender<()>>,
    crash: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<Exit, String>>>,
}

impl WorkerThread {
    pub(crate) fn spawn(
        index: usize,
        concurrency: usize,
        read_ahead: usize,
        log: Arc<SeqLog>,
        target: Target,
        proxy: Option<Proxy>,
    ) -> WorkerThread {
        let (stop, stopped) = oneshot::channel::<()>();
        let (crash, crashed) = oneshot::channel::<()>();
        let id = WorkerId { index, log };
        let name = Arc::new(std::sync::OnceLock::new());
        let named = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-model-worker-{index}"))
            .spawn(move || {
                set_worker(Some(id));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the worker");
                let exit = runtime.block_on(async move {
                    let docket =
                        match target {
                            Target::Memory(docket) => docket,
                            Target::Redis {
                                url,
                                name,
                                redelivery,
                                partitions,
                            } => connect(&url, &name, redelivery, partitions).await.map_err(
                                |error| format!("worker {index} could not connect: {error}"),
                            )?,
                        };
                    let worker = Worker::new(&docket)
                        .concurrency(concurrency)
                        .read_ahead(read_ahead);
                    let _ = named.set(worker.id().to_owned());
                    let crash = async {
                        if crashed.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        biased;
                        () = crash => Ok(Exit::Crashed),
                        result = worker.run_until(async { let _ = stopped.await; }) => result
                            .map(|()| Exit::Stopped)
                            .map_err(|error| format!("worker {index} failed: {error}")),
                    }
                });
                // A crash: every task of the worker is dropped where it stands; nothing settles.
                match exit {
                    Ok(Exit::Crashed) => runtime.shutdown_background(),
                    _ => drop(runtime),
                }
                set_worker(None);
                exit
            })
            .expect("spawn a worker thread");
        WorkerThread {
            index,
            id: name,
            crashed: false,
            proxy,
            stop: Some(stop),
            crash: Some(crash),
            thread: Some(thread),
        }
    }

    /// A worker that ended on its own (it panicked or failed) although nobody stopped it.
    pub(crate) fn ended_early(&self) -> Option<String> {
        let thread = self.thread.as_ref()?;
        (self.stop.is_some() && !self.crashed && thread.is_finished()).then(|| {
            format!(
                "worker {} stopped by itself (it panicked or failed)",
                self.index
            )
        })
    }

    pub(crate) fn live(&self) -> bool {
        !self.crashed
    }

    /// Drop the worker's runtime at once.
    pub(crate) fn crash(&mut self) {
        self.crashed = true;
        if let Some(crash) = self.crash.take() {
            let _ = crash.send(());
        }
    }

    /// Ask the worker to stop (it finishes its running tasks first).
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Wait for the thread, up to `patience`; an error names what went wrong.
    pub(crate) async fn join(&mut self, patience: Duration) -> Result<(), String> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + patience;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                // Leave it: it is stuck; the sequence fails.
                self.thread = Some(thread);
                return Err(format!(
                    "worker {} did not stop within {patience:?} of being asked to",
                    self.index
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(proxy) = &self.proxy {
            proxy.stop();
        }
        match thread.join() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!("worker {} panicked", self.index)),
        }
    }
}

/// A loopback TCP proxy in front of Redis for one worker; cutting it drops every connection
/// and refuses new ones for a while, as a network partition does.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
    listener: AbortHandle,
}

#[derive(Debug, Default)]
struct ProxyState {
    connections: Vec<AbortHandle>,
    refuse_until: Option<Instant>,
}

impl Proxy {
    pub(crate) async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy port");
        let port = listener.local_addr().expect("a bound port").port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if state
                    .refuse_until
                    .is_some_and(|until| Instant::now() < until)
                {
                    drop(client);
                    continue;
                }
                let forward = tokio::spawn(async move {
                    // Redis may be restarting: then the client is dropped, as in a real outage.
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                state.connections.retain(|handle| !handle.is_finished());
                state.connections.push(forward.abort_handle());
            }
        });
        Proxy {
            port,
            state,
            listener: accept.abort_handle(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drop every connection now and refuse new ones for `pause`.
    pub(crate) fn cut_for(&self, pause: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.refuse_until = Some(Instant::now() + pause);
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    pub(crate) fn stop(&self) {
        self.listener.abort();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }
}
