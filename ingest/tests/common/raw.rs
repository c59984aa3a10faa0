//! Raw HTTP/1.1 over TCP, for what a well-behaved client cannot send: bodies without a
//! length, and requests that drip a few bytes a second (headers or body). Loopback only;
//! every operation is bounded in time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long any raw exchange may take before the test gives up on it.
pub const RAW_BOUND: Duration = Duration::from_secs(30);
/// A drip sends one byte this often: about three bytes a second.
pub const DRIP_EVERY: Duration = Duration::from_millis(300);

/// A request head for `path` with `extra` header lines (each ending in `\r\n`).
pub fn head(path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         x-github-event: issues\r\nx-github-delivery: raw\r\n\
         x-hub-signature-256: sha256={}\r\n{extra}\r\n",
        "0".repeat(64)
    )
}

/// How the server ended a raw exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The response's status, or `None` when the connection closed without one.
    pub status: Option<u16>,
    /// The response head (status line and headers), lowercased.
    pub head: String,
    /// From the first byte sent to the answer (or the close).
    pub after: Duration,
}

impl Ended {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// Reads until a response head is complete or the connection closes (bounded).
async fn read_answer(mut reader: OwnedReadHalf, started: Instant) -> Ended {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(RAW_BOUND, async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed within {RAW_BOUND:?}"
    );
    let text = String::from_utf8_lossy(&buffer).to_ascii_lowercase();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Ended {
        status,
        head,
        after: started.elapsed(),
    }
}

/// Sends `head` and then `body` in `chunk`-sized writes as fast as the server takes them
/// (stopping quietly if it closes), and returns its answer.
pub async fn send(addr: SocketAddr, head: String, body: Vec<u8>, chunk: usize) -> Ended {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the ingest");
    let (reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let write = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for piece in body.chunks(chunk.max(1)) {
            if writer.write_all(piece).await.is_err() {
                return;
            }
        }
        let _ = writer.flush().await;
        // Keep the write half open until the answer is read.
        std::future::pending::<()>().await;
    });
    let ended = read_answer(reader, started).await;
    write.abort();
    ended
}

/// A chunked (no `Content-Length`) body of `size` bytes in 16 KiB chunks.
pub fn chunked(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + size / 1000 + 16);
    let piece = vec![b' '; 16 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&piece[..n]);
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What a drip sends slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drip {
    /// The request head itself, a byte at a time (slowloris).
    Headers,
    /// A complete head announcing 1000 bytes, then the body a byte at a time.
    Body,
}

/// A slow-drip request under way.
pub struct Dripping {
    /// Fires once the first byte (headers) or the whole head (body) was written.
    pub started: Option<oneshot::Receiver<()>>,
    pub answer: tokio::task::JoinHandle<Ended>,
}

/// Opens a connection that drips `what` (an unsigned request: the signature is zeros)
/// until the server answers or closes, or `stop` fires.
pub async fn drip(addr: SocketAddr, what: Drip, stop: CancellationToken) -> Dripping {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the ingest");
    let (reader, mut writer) = stream.into_split();
    let (started_tx, started_rx) = oneshot::channel();
    let started = Instant::now();
    let head = head("/webhooks/github", "content-length: 1000\r\n");
    let (at_once, slowly): (Vec<u8>, Vec<u8>) = match what {
        Drip::Headers => (Vec::new(), head.into_bytes()),
        Drip::Body => (head.into_bytes(), vec![b' '; 1000]),
    };
    let writing = stop.clone();
    let write = tokio::spawn(async move {
        if writer.write_all(&at_once).await.is_err() {
            return;
        }
        let mut started_tx = Some(started_tx);
        for byte in slowly {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            if let Some(tx) = started_tx.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                () = tokio::time::sleep(DRIP_EVERY) => {}
                () = writing.cancelled() => return,
            }
        }
    });
    let answer = tokio::spawn(async move {
        let ended = tokio::select! {
            ended = read_answer(reader, started) => ended,
            () = stop.cancelled() => Ended { status: None, head: "stopped".into(), after: started.elapsed() },
        };
        write.abort();
        ended
    });
    Dripping {
        started: Some(started_rx),
        answer,
    }
}

/// What a flood saw: how often each dripper was answered, and with what.
#[derive(Debug, Default)]
pub struct FloodStats {
    /// Drippers that have sent their first bytes at least once.
    pub opened: AtomicUsize,
    /// Drippers that have been answered or cut off at least once.
    pub ended_once: AtomicUsize,
    /// Every end, by status (`None`: closed without an answer).
    pub ends: Mutex<BTreeMap<Option<u16>, usize>>,
    /// 503 answers that carried a `Retry-After`.
    pub retry_after: AtomicUsize,
    /// The longest a dripper waited for its end.
    pub longest: Mutex<Duration>,
}

/// `headers` + `bodies` drippers that each keep one slow unsigned request open: when the
/// server answers or closes, the dripper reconnects (after a short pause) and drips
/// again, until stopped or `bound` has passed.
pub struct Flood {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<FloodStats>,
}

/// The pause before a refused dripper reconnects: keeps the load bounded.
const RECONNECT_AFTER: Duration = Duration::from_millis(100);

impl Flood {
    pub fn start(addr: SocketAddr, headers: usize, bodies: usize, bound: Duration) -> Self {
        let stop = CancellationToken::new();
        let stats = Arc::new(FloodStats::default());
        let deadline = Instant::now() + bound;
        let kinds = std::iter::repeat_n(Drip::Headers, headers)
            .chain(std::iter::repeat_n(Drip::Body, bodies));
        let tasks = kinds
            .map(|what| {
                let (stop, stats) = (stop.clone(), stats.clone());
                tokio::spawn(async move {
                    let (mut opened, mut ended) = (false, false);
                    while !stop.is_cancelled() && Instant::now() < deadline {
                        let mut dripping = drip(addr, what, stop.clone()).await;
                        let started = dripping.started.take().expect("started");
                        if started.await.is_ok() && !std::mem::replace(&mut opened, true) {
                            stats.opened.fetch_add(1, Ordering::SeqCst);
                        }
                        let Ok(end) = dripping.answer.await else {
                            return;
                        };
                        if end.head == "stopped" {
                            return;
                        }
                        if end.status == Some(503) && end.header("retry-after").is_some() {
                            stats.retry_after.fetch_add(1, Ordering::SeqCst);
                        }
                        {
                            let mut longest = stats.longest.lock().expect("lock");
                            *longest = (*longest).max(end.after);
                        }
                        *stats
                            .ends
                            .lock()
                            .expect("lock")
                            .entry(end.status)
                            .or_default() += 1;
                        if !std::mem::replace(&mut ended, true) {
                            stats.ended_once.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::select! {
                            () = tokio::time::sleep(RECONNECT_AFTER) => {}
                            () = stop.cancelled() => return,
                        }
                    }
                })
            })
            .collect();
        Self { stop, tasks, stats }
    }

    /// Waits (bounded) until every dripper has sent its first bytes.
    pub async fn wait_open(&self, count: usize) {
        wait_for(
            || self.stats.opened.load(Ordering::SeqCst) >= count,
            "drippers open",
        )
        .await;
    }

    /// Waits (within `bound`) until every dripper has been answered or cut off once.
    pub async fn wait_all_ended(&self, count: usize, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        while self.stats.ended_once.load(Ordering::SeqCst) < count {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops every dripper and closes its connection.
    pub async fn stop(self) -> Arc<FloodStats> {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(RAW_BOUND, task).await;
        }
        self.stats
    }
}

/// Polls `done` (bounded by `RAW_BOUND`).
pub async fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + RAW_BOUND;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {RAW_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
