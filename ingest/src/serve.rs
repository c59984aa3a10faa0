//! The HTTP/1 accept loop. `axum::serve` sets no timer, so hyper never times out a request
//! whose headers arrive a byte at a time (slowloris); this loop serves each connection with
//! a header read timeout, and shuts down gracefully within a bound.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the server treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// A request's headers must arrive within this (the connection is closed otherwise);
    /// an idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// How long shutdown waits for open connections before dropping them.
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// requests under way finish (within `limits.drain`) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    // Past the drain bound, the connections still open are dropped through this.
    let abandon = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                accept_error(error).await;
                continue;
            }
        };
        // Webhook answers are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let abandoned = abandon.clone();
        tokio::spawn(async move {
            // A client that goes away or times out is not the server's error.
            tokio::select! {
                _ = connection => {}
                () = abandoned.cancelled() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limits.drain.as_secs(),
            "connections still open after the shutdown grace; closing them"
        );
    }
    abandon.cancel();
}

/// Per-connection errors are the client's; anything else (e.g. out of file descriptors)
/// would spin the loop, so wait a moment, as hyper 0.14 and axum do.
async fn accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
