//! The log outputs' writer, as nginx's `access_log ... buffer= flush=`,
//! with the writing moved off the request threads: each line is copied
//! into a 64 KiB buffer under a short lock; a full buffer joins a queue
//! that a writer thread writes out, and the writer also writes out what is
//! buffered every 200 ms. A request thread makes no system call for its
//! line and waits for no disk: a slow write (page-cache writeback can hold
//! one for a tenth of a second) holds only the writer. Nothing is dropped:
//! when the output cannot keep up with 64 queued buffers (4 MiB), the
//! thread that fills the buffer waits for room.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The buffer a line goes into before it is written out.
const BUFFER_BYTES: usize = 64 * 1024;

/// Full buffers that may wait for the writer before a line waits too.
const MAX_QUEUED: usize = 64;

/// How often the writer writes out what is buffered.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// A buffered, shared output; `Arc<BufferedOutput<W>>` is a tracing
/// `MakeWriter`.
pub struct BufferedOutput<W: Write> {
    pending: Mutex<Pending>,
    /// Signalled when a buffer is queued.
    queued: Condvar,
    /// Signalled when queued buffers were written.
    room: Condvar,
    /// The output; held while writing, so that whoever takes buffers from
    /// `pending` writes them before anyone takes later ones.
    output: Mutex<W>,
}

/// Lines not yet written: the buffer being filled, the full ones in order,
/// and emptied buffers to reuse.
#[derive(Default)]
struct Pending {
    current: Vec<u8>,
    full: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl<W: Write + Send + 'static> BufferedOutput<W> {
    /// The output over `inner`, with a writer thread named `name` that runs
    /// until the process exits.
    pub fn start(inner: W, name: &str) -> io::Result<Arc<Self>> {
        let output = Arc::new(Self {
            pending: Mutex::new(Pending {
                current: Vec::with_capacity(BUFFER_BYTES),
                ..Pending::default()
            }),
            queued: Condvar::new(),
            room: Condvar::new(),
            output: Mutex::new(inner),
        });
        let writer = output.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || loop {
                writer.wait_for_work();
                writer.write_out(false);
            })?;
        Ok(output)
    }

    /// Write out everything buffered, in order (at exit, and by the
    /// writer).
    pub fn flush_buffered(&self) {
        self.write_out(true);
    }

    /// Wait until a buffer is queued, or the flush interval passed.
    fn wait_for_work(&self) {
        let pending = self.lock_pending();
        if pending.full.is_empty() {
            let _ = self.queued.wait_timeout(pending, FLUSH_INTERVAL);
        }
    }

    /// Write out the queued buffers, and the one being filled too when
    /// `everything` or when nothing else was queued (a quiet output).
    fn write_out(&self, everything: bool) {
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch: Vec<Vec<u8>> = {
            let mut pending = self.lock_pending();
            let quiet = pending.full.is_empty();
            let mut batch: Vec<Vec<u8>> = pending.full.drain(..).collect();
            if (everything || quiet) && !pending.current.is_empty() {
                let fresh = pending.spare.pop().unwrap_or_default();
                batch.push(std::mem::replace(&mut pending.current, fresh));
            }
            batch
        };
        for buffer in &batch {
            // A failed write has nowhere to be reported but the log itself.
            let _ = output.write_all(buffer);
        }
        let _ = output.flush();
        drop(output);
        let mut pending = self.lock_pending();
        for mut buffer in batch.drain(..) {
            if pending.spare.len() < 2 {
                buffer.clear();
                pending.spare.push(buffer);
            }
        }
        self.room.notify_all();
    }

    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked mid-copy leaves whole lines behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copy `line` into the buffer; queue the buffer for the writer when it
    /// is full, waiting for room when too many are queued.
    fn push(&self, line: &[u8]) {
        let mut pending = self.lock_pending();
        pending.current.extend_from_slice(line);
        if pending.current.len() < BUFFER_BYTES {
            return;
        }
        let fresh = pending
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_BYTES));
        let full = std::mem::replace(&mut pending.current, fresh);
        pending.full.push_back(full);
        self.queued.notify_one();
        while pending.full.len() > MAX_QUEUED {
            pending = self.room.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<W: Write + Send + 'static> Write for &BufferedOutput<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.push(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log output as the loggers use it: whole lines in, written out later.
pub trait LogOutput: Send + Sync {
    /// Copy one whole line (its newline included) into the buffer.
    fn write_line(&self, line: &[u8]);
    /// Write out what is buffered.
    fn flush_buffered(&self);
}

impl<W: Write + Send + 'static> LogOutput for BufferedOutput<W> {
    fn write_line(&self, line: &[u8]) {
        self.push(line);
    }

    fn flush_buffered(&self) {
        BufferedOutput::flush_buffered(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sink that counts the writes it gets, and can be made slow.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>, Arc<Mutex<Duration>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let delay = *self.1.lock().unwrap();
            std::thread::sleep(delay);
            let mut sink = self.0.lock().unwrap();
            sink.0.extend_from_slice(bytes);
            sink.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_out_together_and_flushed_in_order() {
        let sink = Sink::default();
        let output = BufferedOutput::start(sink.clone(), "test-writer").unwrap();
        for i in 0..20_000 {
            writeln!(&*output, "line {i}").unwrap();
        }
        output.flush_buffered();
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("line {i}"));
        }
        // About 200 KB of lines: a handful of writes, not one per line.
        assert!(writes <= 10, "{writes} writes for 20000 lines");
    }

    #[test]
    fn the_writer_writes_out_a_quiet_buffer() {
        let sink = Sink::default();
        let output = BufferedOutput::start(sink.clone(), "test-writer").unwrap();
        writeln!(&*output, "alone").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn a_slow_output_holds_the_writer_not_the_lines() {
        let sink = Sink::default();
        *sink.1.lock().unwrap() = Duration::from_millis(300);
        let output = BufferedOutput::start(sink.clone(), "test-writer").unwrap();
        // Four buffers' worth of lines, while every write takes 300 ms: the
        // lines are only copied (the claim is no wait for the output; the
        // bound leaves a loaded machine a wide margin).
        let line = [b'x'; 1023];
        let started = Instant::now();
        for _ in 0..256 {
            (&*output).write_all(&line).unwrap();
            (&*output).write_all(b"\n").unwrap();
        }
        let copying = started.elapsed();
        assert!(
            copying < Duration::from_millis(250),
            "lines waited {copying:?} for a slow output"
        );
        *sink.1.lock().unwrap() = Duration::ZERO;
        output.flush_buffered();
        assert_eq!(sink.0.lock().unwrap().0.len(), 256 * 1024);
    }
}
