//! A real `redis-server` on loopback for tests: started on a free port with
//! no persistence, ready once it answers `PING`, stoppable and restartable
//! on the same port mid-test, killed on drop. Optionally with TLS (a private
//! CA and a server certificate for 127.0.0.1, made with the `openssl` tool).
//!
//! Include it with `#[path = "support/redis_server.rs"] mod redis_server;`.
//!
//! A missing `redis-server` binary FAILS the test (never skips it): install
//! it with `apt-get install -y redis-server`, or point `M2M_REDIS_SERVER` at one.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const READY_WITHIN: Duration = Duration::from_secs(10);
const INSTALL_HINT: &str = "install it with `apt-get update && apt-get install -y redis-server` \
     (Debian/Ubuntu), or set M2M_REDIS_SERVER to the path of a redis-server binary";

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// A `redis-server` process owned by the test.
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    cluster_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl RedisServer {
    /// A running server on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A running server that also accepts TLS on a second port
    /// ([`RedisServer::tls_url`], trusted through [`RedisServer::ca_pem`]).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// A server that is not running yet: its port is chosen, and
    /// [`RedisServer::run`] starts it there.
    pub fn reserve() -> Self {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("m2m-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory for redis-server");
        Self {
            port: free_port(),
            tls_port: None,
            cluster_port: None,
            dir,
            child: None,
            starts: 0,
        }
    }

    /// A running server with `--cluster-enabled yes`, not yet part of a
    /// cluster (see `redis_cluster.rs`). Its cluster bus listens on a port
    /// of its own (not port + 10000, which may not exist), and it keeps
    /// its `nodes.conf` across [`RedisServer::restart`].
    pub fn start_cluster_node() -> Self {
        Self::start_with_options(false, true)
    }

    fn start_with(tls: bool) -> Self {
        Self::start_with_options(tls, false)
    }

    fn start_with_options(tls: bool, cluster: bool) -> Self {
        // A free port can be taken by another process before redis-server
        // binds it: try a few.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let mut server = Self::reserve();
            if tls {
                server.make_certificates();
                server.tls_port = Some(free_port());
            }
            if cluster {
                server.cluster_port = Some(free_port());
            }
            match server.try_run() {
                Ok(()) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("redis-server did not start after 5 tries: {last_failure}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> url::Url {
        format!("redis://127.0.0.1:{}/", self.port)
            .parse()
            .expect("valid URL")
    }

    /// `rediss://127.0.0.1:<tls port>/` (only for [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> url::Url {
        let port = self.tls_port.expect("server started with start_tls");
        format!("rediss://127.0.0.1:{port}/")
            .parse()
            .expect("valid URL")
    }

    /// The private CA certificate (PEM) the TLS port's certificate chains to.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("CA certificate written at start")
    }

    /// The plain port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: clients see their connections drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, as with a Redis that is overloaded or paused.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT): it answers what was queued.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("the `kill` command");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Stops the server if it runs and starts it again on the same port,
    /// empty (nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Starts the server on its port; panics with its log if it does not
    /// answer `PING` in time.
    pub fn run(&mut self) {
        if let Err(failure) = self.try_run() {
            panic!("{failure}");
        }
    }

    fn try_run(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "redis-server already running");
        self.starts += 1;
        let binary =
            std::env::var("M2M_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let mut command = Command::new(&binary);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(cluster_port) = self.cluster_port {
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .arg("--cluster-port")
                .arg(cluster_port.to_string())
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"));
        }
        if let Some(tls_port) = self.tls_port {
            command
                .arg("--tls-port")
                .arg(tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                "`{binary}` not found: the Redis tests need a real redis-server; {INSTALL_HINT}"
            ),
            Err(error) => panic!("could not start `{binary}`: {error}; {INSTALL_HINT}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                let mut child = self.child.take().expect("child present");
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} exited with {status}: {stderr}{}",
                    self.port,
                    tail(&log)
                ));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_WITHIN:?}{}",
                    self.port,
                    tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn make_certificates(&self) {
        let dir = &self.dir;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write certificate extensions");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            dir,
            &["req", "-x509", "-nodes", "-days", "2"],
            &ec,
            &[
                "-subj",
                "/CN=m2m test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        );
        openssl(
            dir,
            &["req", "-nodes"],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            dir,
            &["x509", "-req", "-days", "2"],
            &[],
            &[
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// One `PING` over a fresh connection; `true` on `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

fn openssl(dir: &Path, head: &[&str], middle: &[&str], tail_args: &[&str]) {
    let output = Command::new("openssl")
        .args(head)
        .args(middle)
        .args(tail_args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "the TLS test needs the `openssl` tool to make certificates ({error}): \
                 install it with `apt-get install -y openssl`"
            )
        });
    assert!(
        output.status.success(),
        "openssl {head:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(15);
            format!("\n--- {} ---\n{}", log.display(), lines[start..].join("\n"))
        }
        Err(_) => String::new(),
    }
}
