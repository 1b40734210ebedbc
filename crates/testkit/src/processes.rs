//! Processes of the workspace: the server as a process of its own (to `kill -9` it), and the
//! binaries and shared libraries tests run.
//!
//! Must never: leave a process running after its test (dropping stops it).

use super::*;

/// A test server's database and keys served by the real `elevate-server` binary, as its own
/// process on the same address, so that a test can `kill -9` the server and start it again.
#[derive(Debug)]
pub struct ServerProcess {
    pub url: String,
    listen: std::net::SocketAddr,
    dir: std::path::PathBuf,
    /// PostgreSQL's URL (none: SQLite in `dir`), and the database to drop at the end.
    database: Option<(String, String)>,
    child: Option<std::process::Child>,
}

impl TestServer {
    /// Stops the in-process server (its database stays) and serves the same database, keys and
    /// address from an `elevate-server` process.
    pub async fn into_process(mut self) -> ServerProcess {
        let database = self
            .pg_database
            .take()
            .map(|name| (self.database_url_of(Some(&name)), name));
        let running = self.running.take().expect("the server runs");
        let listen = running.addr;
        running.stop().await;
        // The same keys as `spawn_at` gives the in-process server, as the binary reads them.
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).expect("key folder");
        for (file, byte) in [("policy-signing.key", 1u8), ("device-master.key", 2u8)] {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(keys.join(file))
                .expect("key file");
            std::io::Write::write_all(&mut f, hex_bytes(&[byte; 32]).as_bytes()).expect("key");
        }
        let mut process = ServerProcess {
            url: self.url.clone(),
            listen,
            dir: std::mem::take(&mut self.dir),
            database,
            child: None,
        };
        process.start().await;
        process
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ServerProcess {
    /// Starts the server and waits until it answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the server already runs");
        let mut command = std::process::Command::new(cargo_bin("elevate-server"));
        if let Some((url, _)) = &self.database {
            command.env("ELEVATE_DATABASE_URL", url);
        }
        let child = command
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(self.listen.to_string())
            .env("ELEVATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("elevate-server starts");
        self.child = Some(child);
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("elevate-server did not become ready at {}", self.url);
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// `kill -9`: no shutdown, requests in flight cut off.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((_, name)) = self.database.take() {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        }
    }
}

/// The path of a workspace binary (e.g. `elevate`, `elevated`), built on demand: tests of one
/// crate sometimes need another crate's binary, which cargo does not build for them.
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("a target folder");
    let path = dir.join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--bin", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A shared library of the workspace (`lib<name>.so`, e.g. the sudo plugin). The test's crate
/// names its package as a dev-dependency, so cargo builds it fresh into `deps/` before the test
/// runs (a cdylib is built with every crate type as a dependency; only a top-level build copies
/// it up, and that copy can be stale).
pub fn cargo_cdylib(package: &str, name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let deps = exe.parent().expect("a deps folder");
    let path = deps.join(format!("lib{name}.so"));
    assert!(
        path.exists(),
        "{} is missing: add {package} to the test crate's dev-dependencies",
        path.display()
    );
    path
}
