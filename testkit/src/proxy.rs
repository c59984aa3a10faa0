//! A TCP proxy that can be cut: switched off, it refuses new connections and ends the open
//! ones, which is what an outage of the service behind it (the broker, PostgreSQL) looks like
//! to the code under test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A proxy on `127.0.0.1:<port>` to a fixed target, on or off.
#[derive(Debug)]
pub struct CutProxy {
    pub port: u16,
    enabled: Arc<AtomicBool>,
    /// Cancelled (and replaced) when the proxy is switched off: ends the open connections.
    cut: Arc<Mutex<CancellationToken>>,
}

impl CutProxy {
    /// Listens on a free port and forwards each accepted connection to `target` while on.
    pub async fn start(target: &'static str, enabled: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let enabled = Arc::new(AtomicBool::new(enabled));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let (accept_enabled, accept_cut) = (Arc::clone(&enabled), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_enabled.load(Ordering::SeqCst) {
                    drop(inbound); // off: refused
                    continue;
                }
                let token = accept_cut.lock().expect("lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self { port, enabled, cut }
    }

    /// On: new connections pass. Off: refused, and the open ones are cut now.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            let mut token = self.cut.lock().expect("lock");
            token.cancel();
            *token = CancellationToken::new();
        }
    }
}
