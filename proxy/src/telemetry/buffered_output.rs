//! The log outputs' writer, as nginx's `access_log ... buffer= flush=`:
//! each line is copied into a 64 KiB buffer under a lock and written out
//! when the buffer fills, or by a flusher thread every 200 ms. A request
//! thread makes no system call for its line unless the buffer is full, and
//! no thread is woken per line. Nothing is dropped: when the output cannot
//! keep up, the thread that fills the buffer waits for the write.

use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The buffer a line goes into before it is written out.
const BUFFER_BYTES: usize = 64 * 1024;

/// How often the flusher writes out what is buffered.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// A buffered, shared output; `Arc<BufferedOutput<W>>` is a tracing
/// `MakeWriter`.
pub struct BufferedOutput<W: Write> {
    buffer: Mutex<BufWriter<W>>,
}

impl<W: Write + Send + 'static> BufferedOutput<W> {
    /// The output over `inner`, with a flusher thread named `name` that runs
    /// until the process exits.
    pub fn start(inner: W, name: &str) -> io::Result<Arc<Self>> {
        let output = Arc::new(Self {
            buffer: Mutex::new(BufWriter::with_capacity(BUFFER_BYTES, inner)),
        });
        let flushed = output.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_INTERVAL);
                flushed.flush_buffered();
            })?;
        Ok(output)
    }

    /// Write out what is buffered (at exit, and by the flusher).
    pub fn flush_buffered(&self) {
        // A failed write has nowhere to be reported but the log itself.
        let _ = self.lock().flush();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<W>> {
        // A thread that panicked mid-write leaves whole lines behind.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write> Write for &BufferedOutput<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.write_all(line)?;
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
        // A failed write has nowhere to be reported but the log itself.
        let _ = self.lock().write_all(line);
    }

    fn flush_buffered(&self) {
        BufferedOutput::flush_buffered(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that counts the writes it gets.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
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
        let output = BufferedOutput::start(sink.clone(), "test-flusher").unwrap();
        for i in 0..1000 {
            writeln!(&*output, "line {i}").unwrap();
        }
        output.flush_buffered();
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[999], "line 999");
        assert!(writes <= 3, "{writes} writes for 1000 lines");
    }

    #[test]
    fn the_flusher_writes_out_a_quiet_buffer() {
        let sink = Sink::default();
        let output = BufferedOutput::start(sink.clone(), "test-flusher").unwrap();
        writeln!(&*output, "alone").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"alone\n");
    }
}
