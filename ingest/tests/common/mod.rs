//! Test harness: the in-process ingest, signed deliveries and the queue view come from the
//! test kit (`testkit::ingest`, `testkit::queues`); here is what only these tests need: a
//! TCP proxy that can cut the ingest off from the broker, and raw HTTP (`raw`).
#![allow(dead_code, unused_imports)]

pub mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use testkit::BROKER;
pub use testkit::QueueView;
pub use testkit::ingest::TestIngest as TestApp;
pub use testkit::ingest::{AGENT_JIRA, AGENT_LOGIN, GITHUB_SECRET, JIRA_SECRET};
pub use testkit::webhook::{fixture, fixtures_dir};

/// A TCP proxy to the broker that can be switched off: when off, it refuses new connections
/// and cuts the open ones, which is what a broker outage looks like to the ingest.
pub struct BrokerProxy {
    pub port: u16,
    enabled: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
}

impl BrokerProxy {
    pub async fn start(enabled: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let enabled = Arc::new(AtomicBool::new(enabled));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (accept_enabled, accept_cut) = (enabled.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_enabled.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = accept_cut.lock().expect("lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5672").await else {
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

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            let mut token = self.cut.lock().expect("lock");
            token.cancel();
            *token = CancellationToken::new();
        }
    }
}
