//! The access log's writer: a bounded queue to a thread of its own, so that a slow disk or
//! a stalled pipe never holds a request.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// How many lines may wait for the writer by default: about a second of a busy proxy, a few
/// megabytes at most, before lines are dropped rather than requests held.
pub const DEFAULT_QUEUE: usize = 16_384;

/// Where access-log lines go: a queue of at most `capacity` lines to a writer thread that
/// appends them to a file or writes them to standard output.
///
/// Sending never waits: when the queue is full (the disk or the terminal is slower than the
/// traffic), the line is dropped and counted ([`dropped`](Self::dropped)). The writer
/// flushes whenever the queue runs empty. Clones share the queue; the thread ends, after
/// writing what is queued, when the last clone is dropped.
///
/// # Examples
///
/// ```
/// use proxy_balancer::access_log::AccessLogWriter;
///
/// # fn main() -> std::io::Result<()> {
/// let path = std::env::temp_dir().join(format!("access-{}.log", std::process::id()));
/// let writer = AccessLogWriter::file(&path, 1024)?;
/// assert!(writer.send("127.0.0.1 - - [04/Dec/2026:11:25:36 +0000] \"GET / HTTP/1.1\" 200 2\n".into()));
/// assert_eq!(writer.dropped(), 0);
/// drop(writer); // the thread writes what is queued, then ends
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AccessLogWriter {
    queue: SyncSender<String>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
}

impl fmt::Debug for AccessLogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogWriter")
            .field("dropped", &self.dropped())
            .field("written", &self.written())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

// ===== impl AccessLogWriter =====

impl AccessLogWriter {
    /// Appends to `path` (created if missing, as Apache's `CustomLog file`), with at most
    /// `capacity` lines queued (at least 1).
    ///
    /// # Errors
    ///
    /// If the file cannot be opened for appending, or the thread cannot be started.
    pub fn file(path: impl AsRef<Path>, capacity: usize) -> io::Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::new(file, capacity)
    }

    /// Writes to standard output, with at most `capacity` lines queued (at least 1).
    ///
    /// # Errors
    ///
    /// If the thread cannot be started.
    pub fn stdout(capacity: usize) -> io::Result<Self> {
        Self::new(io::stdout(), capacity)
    }

    /// Writes to `out` from a thread of its own (named `access-log`), with at most
    /// `capacity` lines queued (at least 1). A write error is logged (at most once until a
    /// write succeeds again) and counted in [`failed`](Self::failed); writing goes on.
    ///
    /// # Errors
    ///
    /// If the thread cannot be started.
    pub fn new<W: Write + Send + 'static>(out: W, capacity: usize) -> io::Result<Self> {
        let (queue, lines) = mpsc::sync_channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || write_lines(&lines, BufWriter::new(out), &shared))?;
        Ok(Self { queue, counters })
    }

    /// Queues one line (with its newline); `false` when it was dropped because the queue is
    /// full (or the writer thread is gone). Never waits.
    pub fn send(&self, line: String) -> bool {
        match self.queue.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines written (to the buffer in front of the file; flushed when the queue runs
    /// empty).
    #[must_use]
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Lines that could not be written (a full disk, a closed pipe).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }
}

/// The writer thread: lines until every sender is gone, flushing when the queue is empty.
fn write_lines<W: Write>(lines: &Receiver<String>, mut out: BufWriter<W>, counters: &Counters) {
    let mut failing = false;
    let report = |result: io::Result<()>, failing: &mut bool, what: &str| match result {
        Ok(()) => *failing = false,
        Err(error) => {
            if !*failing {
                tracing::error!(%error, "cannot {what} the access log");
            }
            *failing = true;
        }
    };
    loop {
        let line = match lines.try_recv() {
            Ok(line) => line,
            Err(mpsc::TryRecvError::Empty) => {
                report(out.flush(), &mut failing, "flush");
                match lines.recv() {
                    Ok(line) => line,
                    Err(mpsc::RecvError) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let result = out.write_all(line.as_bytes());
        if result.is_ok() {
            counters.written.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        report(result, &mut failing, "write");
    }
    report(out.flush(), &mut failing, "flush");
}
