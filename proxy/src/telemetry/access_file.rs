//! The access log's file, when `server.access_log.output` names one: opened
//! for appending (created if missing) at start, and opened again at its path
//! on SIGUSR1, so logrotate's rename-then-signal rotation copies nothing and
//! loses nothing. Lines written before the signal go to the renamed file,
//! lines after it to the new one; the switch happens between two writes of
//! the buffered log output, which holds the file only while it writes.

use async_trait::async_trait;
use pingora::services::background::BackgroundService;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The file the running process writes its access log to, if any.
static ACCESS_FILE: OnceLock<Arc<ReopeningFile>> = OnceLock::new();

/// A file that can be opened again at its path while it is being written.
pub struct ReopeningFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl ReopeningFile {
    /// Open `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(append(path)?),
        })
    }

    /// Open the path again and write there from now on.
    pub fn reopen(&self) -> io::Result<()> {
        let file = append(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer under the buffered log output: writes go to the file open now.
#[derive(Clone)]
pub struct AccessFileWriter(pub Arc<ReopeningFile>);

impl Write for AccessFileWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush()
    }
}

/// Remember `file` as the process's access log file (the first one only).
pub fn install(file: Arc<ReopeningFile>) {
    let _ = ACCESS_FILE.set(file);
}

/// The process's access log file, when it writes one.
pub fn installed() -> Option<Arc<ReopeningFile>> {
    ACCESS_FILE.get().cloned()
}

/// Reopens the access log file on every SIGUSR1 until shutdown.
pub struct ReopenOnSignal(pub Arc<ReopeningFile>);

#[async_trait]
impl BackgroundService for ReopenOnSignal {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut user1 = match signal(SignalKind::user_defined1()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!(
                    "cannot listen for SIGUSR1, the access log will not be reopened: {e}"
                );
                return;
            }
        };
        loop {
            tokio::select! {
                Some(()) = user1.recv() => match self.0.reopen() {
                    Ok(()) => tracing::info!(path = %self.0.path().display(), "SIGUSR1: access log reopened"),
                    Err(e) => tracing::error!(path = %self.0.path().display(), "SIGUSR1: cannot reopen the access log, still writing to the old file: {e}"),
                },
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_writes_to_a_new_file_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let file = Arc::new(ReopeningFile::open(&path).unwrap());
        let mut writer = AccessFileWriter(file.clone());
        writer.write_all(b"one\n").unwrap();
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        writer.write_all(b"two\n").unwrap();
        file.reopen().unwrap();
        writer.write_all(b"three\n").unwrap();
        writer.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
