//! Long-running helper processes (emulators) that must never outlive a test.
//!
//! Each one runs in its own process group with stdout and stderr going to a
//! log file. On drop the whole group gets SIGTERM, then SIGKILL after a grace
//! period, so nothing the server started survives it. If the test process
//! itself dies without dropping (SIGKILL, `abort`), the Python servers still
//! go away: they are started under a small watchdog that exits the group when
//! its stdin, a pipe held by the test process, reaches end-of-file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::error::{HarnessError, Result};
use crate::net::{POLL_INTERVAL, http_request};

/// How long a stopped server gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How many bytes of a log end up in error messages.
const LOG_TAIL_BYTES: u64 = 4000;

/// Runs a Python console entry point (`module:function`) under a watchdog: a
/// thread blocks reading stdin and, at end-of-file (the harness process is
/// gone, e.g. a never-dropped shared server at exit), removes the directory
/// named by `SECRETBRIDGE_WATCHDOG_REMOVE` (its scratch dir) and kills the
/// server's whole process group.
pub(crate) const PYTHON_WATCHDOG: &str = r#"
import importlib, os, shutil, signal, sys, threading

def _exit_with_parent():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        scratch = os.environ.get("SECRETBRIDGE_WATCHDOG_REMOVE")
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        os.killpg(os.getpgid(0), signal.SIGKILL)

threading.Thread(target=_exit_with_parent, daemon=True).start()
module, function = sys.argv[1].split(":")
sys.argv = [module] + sys.argv[2:]
sys.exit(getattr(importlib.import_module(module), function)())
"#;

/// A started server process, stopped (with its whole group) on drop.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
    /// Held open so the watchdog sees end-of-file only when we are gone.
    _stdin: Option<ChildStdin>,
}

impl ServerProcess {
    /// Spawns `command` in a new process group, stdout+stderr to `log_path`,
    /// stdin a pipe kept open by the returned value.
    pub(crate) fn spawn(name: &'static str, mut command: Command, log_path: &Path) -> Result<Self> {
        let log = File::create(log_path).map_err(|source| HarnessError::WriteFile {
            path: log_path.to_path_buf(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| HarnessError::WriteFile {
            path: log_path.to_path_buf(),
            source,
        })?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            program: format!("{name} ({})", command.get_program().to_string_lossy()),
            source,
        })?;
        let stdin = child.stdin.take();
        Ok(Self {
            name,
            child,
            log_path: log_path.to_path_buf(),
            _stdin: stdin,
        })
    }

    /// The log file with the server's stdout and stderr.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last few KB of the log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        read_tail(&self.log_path)
    }

    /// Err if the server has exited.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(HarnessError::ServerExited {
                name: self.name,
                status: status.to_string(),
                log_path: self.log_path.clone(),
                log_tail: self.log_tail(),
            }),
            Err(source) => Err(HarnessError::Wait {
                program: self.name.to_owned(),
                source,
            }),
        }
    }

    /// Polls `GET path` at `addr` until it answers 2xx, the process exits,
    /// or `timeout` passes.
    pub(crate) fn wait_until_http_ready(
        &mut self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            self.ensure_running()?;
            if let Ok(response) = http_request(addr, "GET", path, &[], &[])
                && (200..300).contains(&response.status)
            {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(HarnessError::ServerNotReady {
                    name: self.name,
                    url: format!("http://{addr}{path}"),
                    waited: started.elapsed(),
                    log_path: self.log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let group = Pid::from_child(&self.child);
        if matches!(self.child.try_wait(), Ok(None)) {
            // ESRCH (group already gone) is fine: there is nothing left to stop.
            let _ = kill_process_group(group, Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        // Whatever is left of the group (children that ignored SIGTERM).
        let _ = kill_process_group(group, Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last [`LOG_TAIL_BYTES`] of a file as lossy UTF-8 (empty if unreadable).
pub(crate) fn read_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The watchdog is what stops an emulator when the test process dies
    /// without running destructors: closing its stdin must end it.
    #[test]
    fn python_watchdog_kills_server_when_stdin_closes() {
        let Ok(python) = crate::paths::require_tool("moto", "venv-moto/bin/python") else {
            panic!("run `make setup`: .tools/venv-moto is missing");
        };
        let scratch = tempfile::tempdir().unwrap().keep();
        let mut child = Command::new(python)
            .env("SECRETBRIDGE_WATCHDOG_REMOVE", &scratch)
            .arg("-c")
            .arg(PYTHON_WATCHDOG)
            .arg("signal:pause")
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        // Still blocked in signal.pause() while the pipe is open.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited with the pipe open"
        );

        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after stdin closed"
            );
            std::thread::sleep(POLL_INTERVAL);
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
        assert!(!scratch.exists(), "{} left behind", scratch.display());
    }
}
