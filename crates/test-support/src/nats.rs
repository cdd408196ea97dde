//! A real NATS JetStream cluster on loopback (Debian package `nats-server`): N servers routed
//! to each other, each with its own store under a temp dir, that can be killed and restarted
//! one by one.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_sbin_binary, free_port};

/// One server of the cluster.
#[derive(Debug)]
struct Server {
    name: String,
    client: SocketAddr,
    route: SocketAddr,
    monitor: SocketAddr,
    child: Option<Child>,
}

/// A JetStream cluster of `servers.len()` nodes named `n1`, `n2`, ...
#[derive(Debug)]
pub struct NatsCluster {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

impl NatsCluster {
    /// Starts `size` servers and waits until each accepts clients. Ports are chosen free and
    /// released before the servers bind them, so a test running beside may take one: a start
    /// that fails is tried again on other ports (three times).
    ///
    /// # Panics
    /// If nats-server is not installed or the servers do not start three times.
    pub fn start(size: usize) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let servers = (1..=size)
                .map(|i| Server {
                    name: format!("n{i}"),
                    client: free_port(),
                    route: free_port(),
                    monitor: free_port(),
                    child: None,
                })
                .collect();
            let mut cluster = Self { dir, servers };
            match (0..size).try_for_each(|index| cluster.launch(index)) {
                Ok(()) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the NATS cluster did not start: {failures:?}");
    }

    /// Every server's client url.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| format!("nats://{}", s.client)).collect()
    }

    /// The process ids of the servers running now (a benchmark counts their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.as_ref().map(Child::id)).collect()
    }

    /// The index of the server named `name` (`n1` is 0).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// Starts server `index` again on its ports and store (killing it first if it runs).
    ///
    /// # Panics
    /// If it exits or does not listen within 10 s.
    pub fn restart(&mut self, index: usize) {
        self.launch(index).unwrap_or_else(|failure| panic!("{failure}"));
    }

    fn launch(&mut self, index: usize) -> Result<(), String> {
        self.kill(index);
        let routes: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, s)| format!("nats-route://{}", s.route))
            .collect();
        let server = &self.servers[index];
        let store = self.dir.path().join(&server.name);
        let log = self.dir.path().join(format!("{}.log", server.name));
        let config = self.dir.path().join(format!("{}.conf", server.name));
        let text = format!(
            "server_name: {name}\nlisten: {client}\nhttp: {monitor}\n\
             jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 4GB }}\n\
             cluster {{ name: hj212test, listen: {route}, routes: [{routes}] }}\n",
            name = server.name,
            client = server.client,
            monitor = server.monitor,
            store = store.display(),
            route = server.route,
            routes = routes.join(", "),
        );
        std::fs::write(&config, text).expect("write nats-server config");
        let log_file = std::fs::File::create(&log).expect("nats-server log");
        let mut child = Command::new(find_sbin_binary("nats-server"))
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = server.client;
        loop {
            if TcpStream::connect(addr).is_ok() {
                self.servers[index].child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("nats-server exited ({status}) before listening on {addr}: {log}"));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("nats-server did not listen on {addr} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every running server says JetStream is ready (`/healthz`: a meta leader
    /// elected, streams current).
    ///
    /// # Panics
    /// If that takes longer than `within`.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for server in self.servers.iter().filter(|s| s.child.is_some()) {
            // The monitoring port may open after the client port the start waited for.
            while crate::status_once_listening(server.monitor, "/healthz") != Some(200) {
                assert!(Instant::now() < deadline, "nats-server {} not healthy within {within:?}", server.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Kills server `index` (SIGKILL, a crash) and waits.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.servers[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.servers.len() {
            self.kill(index);
        }
    }
}
