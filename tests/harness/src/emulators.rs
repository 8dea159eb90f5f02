//! The third-party emulators, run as real servers on loopback.
//!
//! * [`Moto`]: `moto_server` 5.2.5 from `.tools/venv-moto`, AWS IAM, STS, SSM,
//!   Secrets Manager and KMS on one port. By hand:
//!   `.tools/venv-moto/bin/moto_server -H 127.0.0.1 -p 5000`;
//!   management API under `/moto-api/` (`POST /moto-api/reset`).
//! * [`Drongo`]: `drongo` 0.8.0 from `.tools/venv-drongo`, a GCP emulator whose
//!   Secret Manager REST API (`/v1/projects/{p}/secrets...`) the GCP stand-in
//!   is compared against. By hand:
//!   `.tools/venv-drongo/bin/drongo server --host 127.0.0.1 --port 5001`;
//!   `GET /drongo/health`, `POST /drongo/reset`. Clients point at
//!   `http://127.0.0.1:<port>` as their Secret Manager endpoint (REST
//!   transport); drongo routes on the path only and ignores the Host.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{HarnessError, Result};
use crate::net::{free_port, http_request};
use crate::paths::require_tool;
use crate::process::{PYTHON_WATCHDOG, ServerProcess};

/// Upper bound for an emulator to start answering (Python imports on a loaded
/// 2-core machine can take a while; typical is 2-5 s).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Attempts when the port picked by [`free_port`] was taken in between.
const START_ATTEMPTS: usize = 3;

/// What differs between the Python emulators.
struct PythonServer {
    name: &'static str,
    tool: &'static str,
    /// The venv's python, relative to `.tools/`.
    python: &'static str,
    /// The console script, relative to `.tools/` (checked to exist).
    script: &'static str,
    /// `module:function` of the console script.
    entry: &'static str,
    /// Arguments after the program name, given the port.
    args: fn(u16) -> Vec<String>,
    /// Readiness path answering 2xx once the server serves.
    ready_path: &'static str,
}

/// A running emulator: its process, its address and its scratch dir.
struct Running {
    process: ServerProcess,
    addr: SocketAddr,
    /// Holds the log file; removed on drop after the process is stopped.
    _dir: TempDir,
}

impl PythonServer {
    fn start(&self) -> Result<Running> {
        let python = require_tool(self.tool, self.python)?;
        require_tool(self.tool, self.script)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("secretbridge-{}-", self.name))
            .tempdir()
            .map_err(|source| HarnessError::CreateTempDir {
                purpose: self.name,
                source,
            })?;
        let log_path = dir.path().join(format!("{}.log", self.name));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut command = Command::new(&python);
            command
                .arg("-c")
                .arg(PYTHON_WATCHDOG)
                .arg(self.entry)
                .args((self.args)(port))
                .current_dir(dir.path())
                .env("SECRETBRIDGE_WATCHDOG_REMOVE", dir.path())
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1");
            let mut process = ServerProcess::spawn(self.name, command, &log_path)?;
            match process.wait_until_http_ready(addr, self.ready_path, START_TIMEOUT) {
                Ok(()) => {
                    return Ok(Running {
                        process,
                        addr,
                        _dir: dir,
                    });
                }
                Err(HarnessError::ServerExited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("Address already in use") =>
                {
                    continue;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl Running {
    fn post_expect_ok(&self, action: &'static str, path: &str) -> Result<()> {
        let response = http_request(self.addr, "POST", path, &[], &[])?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(HarnessError::HttpStatus {
                action,
                url: format!("http://{}{path}", self.addr),
                status: response.status,
                body: response.text(),
            })
        }
    }
}

/// A `moto_server` on a free 127.0.0.1 port, stopped (with any children) on drop.
///
/// ```no_run
/// let moto = secretbridge_harness::Moto::start()?;
/// let endpoint = moto.endpoint(); // the endpoint URL for the SDK or the provider
/// moto.reset()?; // between test cases sharing one server
/// # drop(endpoint);
/// # Ok::<(), secretbridge_harness::HarnessError>(())
/// ```
pub struct Moto {
    running: Running,
}

impl Moto {
    /// Starts moto and waits until its management API answers.
    pub fn start() -> Result<Self> {
        let server = PythonServer {
            name: "moto",
            tool: "moto 5.2.5",
            python: "venv-moto/bin/python",
            script: "venv-moto/bin/moto_server",
            entry: "moto.server:main",
            args: |port| {
                vec![
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ]
            },
            ready_path: "/moto-api/data.json",
        };
        Ok(Self {
            running: server.start()?,
        })
    }

    /// One moto per test process, started on first use and shared by every
    /// test in it: saves a start per test. Tests sharing it must not depend
    /// on an empty server (use unique names, never [`Moto::reset`]). It is
    /// never dropped; its watchdog stops it when the test process exits.
    pub fn shared() -> Result<&'static Moto> {
        static SHARED: OnceLock<std::result::Result<Moto, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Moto::start().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|message| HarnessError::SharedServerFailed {
                name: "moto",
                message: message.clone(),
            })
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for every AWS service.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// The socket address moto listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Clears all of moto's state (`POST /moto-api/reset`).
    pub fn reset(&self) -> Result<()> {
        self.running.post_expect_ok("reset moto", "/moto-api/reset")
    }

    /// The file holding moto's stdout and stderr (its request log).
    pub fn log_path(&self) -> &Path {
        self.running.process.log_path()
    }

    /// The end of moto's log, to print when a test fails.
    pub fn log_tail(&self) -> String {
        self.running.process.log_tail()
    }

    /// Moto's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.running.process.pid()
    }
}

/// A `drongo server` (GCP emulator) on a free 127.0.0.1 port, stopped on drop.
pub struct Drongo {
    running: Running,
}

impl Drongo {
    /// Starts drongo and waits until `GET /drongo/health` answers.
    pub fn start() -> Result<Self> {
        let server = PythonServer {
            name: "drongo",
            tool: "drongo 0.8.0",
            python: "venv-drongo/bin/python",
            script: "venv-drongo/bin/drongo",
            entry: "drongo.cli:main",
            args: |port| {
                vec![
                    "server".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                ]
            },
            ready_path: "/drongo/health",
        };
        Ok(Self {
            running: server.start()?,
        })
    }

    /// One drongo per test process, shared like [`Moto::shared`].
    pub fn shared() -> Result<&'static Drongo> {
        static SHARED: OnceLock<std::result::Result<Drongo, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Drongo::start().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|message| HarnessError::SharedServerFailed {
                name: "drongo",
                message: message.clone(),
            })
    }

    /// `http://127.0.0.1:<port>`: the Secret Manager REST endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// The socket address drongo listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Clears every emulated service's state (`POST /drongo/reset`).
    pub fn reset(&self) -> Result<()> {
        self.running.post_expect_ok("reset drongo", "/drongo/reset")
    }

    /// The file holding drongo's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        self.running.process.log_path()
    }

    /// The end of drongo's log, to print when a test fails.
    pub fn log_tail(&self) -> String {
        self.running.process.log_tail()
    }

    /// Drongo's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.running.process.pid()
    }
}
