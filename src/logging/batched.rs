//! The log writer: lines are gathered in memory and written to standard error in batches,
//! every [`INTERVAL`] or as soon as [`LIMIT`] bytes are waiting, by a thread of its own.
//!
//! A busy server logs a line per transaction; writing each line on its own costs a system
//! call per message on the thread that handles the mail. Batched, thousands of lines cost
//! one call, and the mail threads only append to a buffer under a short lock. A line waits
//! at most [`INTERVAL`] (plus the time to write what is ahead of it). Lines keep their
//! order. Dropping the [`BatchGuard`] writes out what is left; after that, lines are
//! written as they come.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// How many bytes may wait before the thread that adds a line writes them out itself.
pub const LIMIT: usize = 256 * 1024;

struct Shared<W> {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches go out in order.
    out: Mutex<W>,
    /// Set once by the guard; read by every line, so not behind a lock.
    stopped: AtomicBool,
    /// What the writer thread sleeps on between batches.
    sleep: Mutex<()>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding a lock left a buffer that is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<W: Write> Shared<W> {
    fn flush(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut *lock(&self.pending));
        if !batch.is_empty() {
            // Nowhere to report a failure to write the log; the next batch tries again.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// A [`MakeWriter`] for `tracing_subscriber` that batches lines (see the module
/// documentation).
pub struct Batched<W> {
    shared: Arc<Shared<W>>,
}

/// Stops the writer thread when dropped, after it has written out every waiting line.
pub struct BatchGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W: Write + Send + 'static> Batched<W> {
    /// Starts the writer thread for `out`.
    pub fn new(out: W) -> std::io::Result<(Batched<W>, BatchGuard<W>)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::new()),
            out: Mutex::new(out),
            stopped: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("notify-inbound-log".into())
            .spawn(move || {
                let mut asleep = lock(&worker.sleep);
                // The flag is read under the lock the guard takes to wake the thread, so the
                // wake-up cannot fall between the read and the wait.
                while !worker.stopped.load(Ordering::SeqCst) {
                    asleep = match worker.wake.wait_timeout(asleep, INTERVAL) {
                        Ok((guard, _)) => guard,
                        Err(e) => e.into_inner().0,
                    };
                    worker.flush();
                }
            })?;
        Ok((
            Batched {
                shared: shared.clone(),
            },
            BatchGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl<W: Write + Send + 'static> Drop for BatchGuard<W> {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        drop(lock(&self.shared.sleep));
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Lines added between the thread's last batch and `stopped`.
        self.shared.flush();
    }
}

impl<W> std::fmt::Debug for BatchGuard<W>
where
    W: Write + Send + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchGuard")
    }
}

/// What one log event writes through (the formatter writes a whole line at once).
pub struct Line<'a, W: Write> {
    shared: &'a Shared<W>,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = lock(&self.shared.pending);
            pending.extend_from_slice(buf);
            pending.len() >= LIMIT
        };
        if full || self.shared.stopped.load(Ordering::SeqCst) {
            self.shared.flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[derive(Clone, Default)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.data).extend_from_slice(buf);
            *lock(&self.writes) += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.data).clone()).unwrap()
        }
    }

    #[test]
    fn lines_are_written_in_order_in_few_writes_and_soon() {
        let sink = Sink::default();
        let (writer, guard) = Batched::new(sink.clone()).unwrap();
        for n in 0..1000 {
            writeln!(writer.make_writer(), "line {n}").unwrap();
        }
        let started = Instant::now();
        while !sink.text().contains("line 999\n") {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "lines never written"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let want: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(sink.text(), want);
        assert!(*lock(&sink.writes) < 10, "{} writes", *lock(&sink.writes));
        drop(guard);
    }

    #[test]
    fn dropping_the_guard_writes_what_waits_and_later_lines_go_straight_out() {
        let sink = Sink::default();
        let (writer, guard) = Batched::new(sink.clone()).unwrap();
        writeln!(writer.make_writer(), "last before exit").unwrap();
        drop(guard);
        assert_eq!(sink.text(), "last before exit\n");
        writeln!(writer.make_writer(), "after").unwrap();
        assert_eq!(sink.text(), "last before exit\nafter\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        let sink = Sink::default();
        let (writer, _guard) = Batched::new(sink.clone()).unwrap();
        let line = vec![b'x'; LIMIT];
        writer.make_writer().write_all(&line).unwrap();
        assert_eq!(lock(&sink.data).len(), LIMIT);
    }
}
