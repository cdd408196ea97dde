//! A real mosquitto broker on a free loopback port (Debian package `mosquitto`), and a
//! blocking subscriber that records what it receives.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::{find_sbin_binary, free_port};

/// A mosquitto broker: `listener PORT 127.0.0.1`, anonymous access, persistence in a temp dir
/// (so a [`Mosquitto::stop`]/[`Mosquitto::restart`] keeps persistent sessions and retained
/// messages, as a broker restart in the field does).
#[derive(Debug)]
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Mosquitto {
    /// Starts one on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// If it is not installed or does not listen within 10 s.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Self { child: None, dir, addr: free_port() };
        broker.restart();
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Starts it again on the same port and data (stopping it first if it runs).
    ///
    /// # Panics
    /// As [`Mosquitto::start`].
    pub fn restart(&mut self) {
        self.stop();
        let binary = find_sbin_binary("mosquitto");
        let config = self.dir.path().join("mosquitto.conf");
        let log = self.dir.path().join("mosquitto.log");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\
             persistence true\npersistence_location {dir}/\nautosave_interval 1\n\
             log_dest file {log}\nlog_type error\nlog_type warning\n\
             # Run as root (CI), mosquitto would switch to the `mosquitto` user and lose the temp dir.\n\
             user root\n",
            port = self.addr.port(),
            dir = self.dir.path().display(),
            log = log.display(),
        );
        std::fs::write(&config, text).expect("write mosquitto.conf");
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(self.addr).is_ok() {
                self.child = Some(child);
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("mosquitto exited ({status}) before listening on {}: {log}", self.addr);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mosquitto did not listen on {} within 10 s", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it gracefully (SIGTERM, as `systemctl stop` does) and waits: mosquitto writes its
    /// persistence file, so persistent sessions and retained messages survive a restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let signalled = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
            if !signalled {
                let _ = child.kill();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.wait();
        }
    }

    /// Kills it (SIGKILL, a crash) and waits; only what was autosaved (every second) survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message a [`Subscriber`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap_or("<not UTF-8>")
    }
}

#[derive(Debug, Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    arrived: Condvar,
    subscribed: AtomicBool,
}

/// A QoS 1 subscriber on its own thread (rumqttc's blocking client) that records every
/// message. It reconnects by itself; a clean-session one subscribes again after each
/// reconnect, a persistent one gets what the broker queued for it meanwhile.
pub struct Subscriber {
    inbox: Arc<Inbox>,
    client: Client,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("received", &self.inbox.messages.lock().map(|m| m.len()))
            .field("stopped", &self.stop)
            .finish_non_exhaustive()
    }
}

static NEXT_CLIENT: AtomicU32 = AtomicU32::new(1);

impl Subscriber {
    /// A clean-session subscriber to `filter`; returns once the broker confirmed the subscription.
    ///
    /// # Panics
    /// If the subscription is not confirmed within 10 s.
    pub fn connect(addr: SocketAddr, filter: &str) -> Self {
        let id = format!("test-sub-{}-{}", std::process::id(), NEXT_CLIENT.fetch_add(1, Ordering::Relaxed));
        Self::start(addr, filter, &id, true)
    }

    /// A persistent-session subscriber (`clean_session = false`) with this client id: messages
    /// published while it is disconnected are queued by the broker and delivered on reconnect.
    ///
    /// # Panics
    /// As [`Subscriber::connect`].
    pub fn connect_persistent(addr: SocketAddr, filter: &str, client_id: &str) -> Self {
        Self::start(addr, filter, client_id, false)
    }

    fn start(addr: SocketAddr, filter: &str, client_id: &str, clean_session: bool) -> Self {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options
            .set_clean_session(clean_session)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1024 * 1024, 64 * 1024);
        let (client, mut connection) = Client::new(options, 16);
        let inbox = Arc::new(Inbox::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_client, thread_inbox, thread_stop, thread_filter) =
            (client.clone(), inbox.clone(), stop.clone(), filter.to_owned());
        std::thread::spawn(move || {
            for event in connection.iter() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        let _ = thread_client.try_subscribe(thread_filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        thread_inbox.subscribed.store(true, Ordering::Release);
                        thread_inbox.arrived.notify_all();
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let received = Received {
                            topic: publish.topic,
                            payload: publish.payload.to_vec(),
                            retain: publish.retain,
                        };
                        thread_inbox.messages.lock().expect("inbox lock").push(received);
                        thread_inbox.arrived.notify_all();
                    }
                    Ok(_) => {}
                    // The broker is down: retry without spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let subscriber = Self { inbox, client, stop };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut guard = subscriber.inbox.messages.lock().expect("inbox lock");
        while !subscriber.inbox.subscribed.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "subscriber {client_id} to {filter} on {addr}: no SUBACK within 10 s");
            guard = subscriber.inbox.arrived.wait_timeout(guard, left.min(Duration::from_millis(50))).expect("lock").0;
        }
        drop(guard);
        subscriber
    }

    /// Waits until at least `n` messages arrived or `timeout` passed; returns all received so
    /// far (fewer than `n` on timeout: the caller's assertion says what was missing).
    ///
    /// # Panics
    /// If the receiving thread panicked.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut messages = self.inbox.messages.lock().expect("inbox lock");
        while messages.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            messages = self.inbox.arrived.wait_timeout(messages, left).expect("inbox lock").0;
        }
        messages.clone()
    }

    /// Everything received so far.
    ///
    /// # Panics
    /// If the receiving thread panicked.
    pub fn received(&self) -> Vec<Received> {
        self.inbox.messages.lock().expect("inbox lock").clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the thread; it ends at its next event (detached, so a dead broker cannot hang a test).
        let _ = self.client.try_disconnect();
    }
}
