//! A TCP proxy on loopback between the workers and Redis, whose connections can be cut at once:
//! what a network blip, a failover or a NAT timeout looks like to a worker.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    port: u16,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Listen on a free loopback port and forward every connection to `upstream`.
    pub(crate) async fn start(upstream: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            port: listener.local_addr()?.port(),
            connections: Arc::default(),
        };
        let connections = proxy.connections.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    // Redis may be restarting: then the client is dropped, as a real outage would.
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut connections = connections.lock().unwrap();
                connections.retain(|handle| !handle.is_finished());
                connections.push(forward.abort_handle());
            }
        });
        Ok(proxy)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Drop every open connection; new ones are accepted again at once.
    pub(crate) fn cut(&self) -> usize {
        let connections = std::mem::take(&mut *self.connections.lock().unwrap());
        connections.iter().for_each(AbortHandle::abort);
        connections.len()
    }
}
