//! Test harness: the in-process ingest, signed deliveries and the queue view come from the
//! test kit (`testkit::ingest`, `testkit::queues`); here is what only these tests need: the
//! broker behind a proxy that can be cut (`testkit::CutProxy`), and raw HTTP (`raw`).
#![allow(dead_code, unused_imports)]

pub mod raw;

use testkit::CutProxy;

pub use testkit::BROKER;
pub use testkit::QueueView;
pub use testkit::ingest::TestIngest as TestApp;
pub use testkit::ingest::{AGENT_JIRA, AGENT_LOGIN, GITHUB_SECRET, JIRA_SECRET};
pub use testkit::webhook::{fixture, fixtures_dir};

/// A proxy to the broker that can be switched off (a broker outage, to the ingest).
pub struct BrokerProxy(CutProxy);

impl BrokerProxy {
    pub async fn start(enabled: bool) -> Self {
        Self(CutProxy::start("127.0.0.1:5672", enabled).await)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.0.port)
    }

    pub fn set_enabled(&self, on: bool) {
        self.0.set_enabled(on);
    }
}
