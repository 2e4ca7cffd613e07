//! Shared by the `cli_*` tests: running the real `softadastra` binary, and long-running
//! `node start` processes that are always killed and reaped (a Drop guard), with every wait
//! bounded.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_softadastra");

/// The binary with a clean environment (no SOFTADASTRA_* variable from the caller).
pub(crate) fn command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SOFTADASTRA_") {
            c.env_remove(&k);
        }
    }
    c.env_remove("NO_COLOR");
    c
}

/// Runs `softadastra --data-dir <data> <args>`.
pub(crate) fn cli(data: &Path, args: &[&str]) -> Output {
    command()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("the binary runs")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command with `--json` and parses its output; panics (with stderr) unless it exits 0.
pub(crate) fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(data, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port nothing listens on right now (for discovery).
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config file in `dir` with discovery on 127.0.0.1:`own`, announcing to
/// 127.0.0.1:`other`; returns its path.
pub(crate) fn discovery_config(dir: &Path, own: u16, other: u16) -> String {
    let path = dir.join(format!("discovery-{own}.toml"));
    let text = format!(
        "[discovery]\nenabled = true\nhost = \"127.0.0.1\"\nport = {own}\n\
         broadcast_host = \"127.0.0.1\"\nbroadcast_port = {other}\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `limit`.
pub(crate) fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `node start` process. Killed and reaped on drop if still running.
pub(crate) struct Node {
    pub child: Option<Child>,
    pub data: PathBuf,
    pub port: u16,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Node {
    /// Starts a node on `data` listening on 127.0.0.1 (a free port, retried if taken
    /// meanwhile) and waits until it answers on its control socket.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Node {
        Self::start_limited(data, extra, None)
    }

    /// [`Node::start`] with the process's open-files limit set to `nofile`, if given.
    pub(crate) fn start_limited(data: &Path, extra: &[&str], nofile: Option<u64>) -> Node {
        for attempt in 0..5 {
            let port = free_port();
            let mut node = Node::spawn_limited(data, port, extra, attempt, nofile);
            match node.wait_ready() {
                Ok(()) => return node,
                Err(log) if log.contains("in use") && !log.contains("WAL") => continue,
                Err(log) => panic!("node did not start: {log}"),
            }
        }
        panic!("no free port after 5 attempts");
    }

    /// Spawns `node start` without waiting.
    pub(crate) fn spawn(data: &Path, port: u16, extra: &[&str], attempt: u32) -> Node {
        Self::spawn_limited(data, port, extra, attempt, None)
    }

    fn spawn_limited(
        data: &Path,
        port: u16,
        extra: &[&str],
        attempt: u32,
        nofile: Option<u64>,
    ) -> Node {
        std::fs::create_dir_all(data).unwrap();
        let stem = data.file_name().unwrap().to_string_lossy().to_string();
        let parent = data.parent().unwrap();
        let stdout_path = parent.join(format!("{stem}-{attempt}-{port}.out"));
        let stderr_path = parent.join(format!("{stem}-{attempt}-{port}.err"));
        let mut command = command();
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; it only touches the child's limits.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .arg("--data-dir")
            .arg(data)
            .args(["node", "start", "--transport-host", "127.0.0.1"])
            .args(["--transport-port", &port.to_string()])
            .args(["--log-level", "debug"])
            .env("SOFTADASTRA_TICK_INTERVAL_MS", "100")
            .env("SOFTADASTRA_SYNC_ACK_TIMEOUT_MS", "1000")
            .env("SOFTADASTRA_SYNC_RETRY_INTERVAL_MS", "100")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("node start runs");
        Node {
            child: Some(child),
            data: data.to_path_buf(),
            port,
            stdout_path,
            stderr_path,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub(crate) fn out(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Waits (10 s at most) until `status` reports the node running; `Err(output)` if it
    /// exited or never answered.
    pub(crate) fn wait_ready(&mut self) -> Result<(), String> {
        let data = self.data.clone();
        let child = self.child.as_mut().expect("spawned");
        let ready = wait_for(Duration::from_secs(10), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            if !data.join("control.sock").exists() {
                return None;
            }
            let out = cli(&data, &["status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["node"]["running"] == true).then_some(true)
        });
        if ready == Some(true) {
            return Ok(());
        }
        let _ = self.wait_exit();
        Err(format!("{}{}", self.out(), self.log()))
    }

    /// Sends `signal` and waits (10 s at most) for the exit code.
    pub(crate) fn stop_with(&mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        status.and_then(|s| s.code())
    }

    /// Waits (10 s at most) for the process to exit by itself; its exit code.
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        status.and_then(|s| s.code())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The fingerprint of the node `id` whose data directory is `data` (made by `node init`
/// when it is not there yet).
pub(crate) fn fingerprint(data: &Path, id: &str) -> String {
    json(data, &["--node-id", id, "node", "init"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Has every node (data directory, node id) trust every other one with `peers trust`, as
/// an operator enrols nodes; works whether they run or not.
pub(crate) fn enroll(nodes: &[(&Path, &str)]) {
    let prints: Vec<String> = nodes.iter().map(|(d, id)| fingerprint(d, id)).collect();
    for (i, (data, id)) in nodes.iter().enumerate() {
        for (j, (_, other)) in nodes.iter().enumerate() {
            if i != j {
                json(
                    data,
                    &["--node-id", id, "peers", "trust", other, &prints[j]],
                );
            }
        }
    }
}
