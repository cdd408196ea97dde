//! A local HTTP receiver standing in for a webhook and the DingTalk and WeCom robot
//! endpoints: a real HTTP/1.1 server on a free loopback port (one thread per connection),
//! recording every request, answering as the test says (accept, HTTP 500, a robot errcode,
//! garbage, a huge body, or no answer at all).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200, with `{"errcode":0,"errmsg":"ok"}` (what the robots say on success).
    Accept,
    /// HTTP 500 with a short text.
    ServerError,
    /// 200 with a robot's error, e.g. 310000 (bad signature) or 130101 (rate limit).
    Errcode(i64),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a 1 MiB body.
    Huge,
    /// Reads the request and never answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query, as on the request line.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The answer it was given.
    pub answer: Answer,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// A query parameter's raw (still URL-encoded) value.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }
}

#[derive(Debug, Default)]
struct State {
    answer: Mutex<Vec<(String, Answer)>>,
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    stopped: AtomicBool,
}

/// The receiver; stops on drop.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    /// Starts one on a free loopback port, accepting everything.
    ///
    /// # Panics
    /// If it cannot bind.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(State::default());
        let accepting = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = accepting.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { addr, state }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How requests to paths starting with `prefix` are answered from now on ("" = all).
    ///
    /// # Panics
    /// If a lock is poisoned.
    pub fn answer(&self, prefix: &str, answer: Answer) {
        let mut answers = self.state.answer.lock().unwrap();
        answers.retain(|(p, _)| p != prefix);
        answers.push((prefix.to_owned(), answer));
        // Longest prefix first.
        answers.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// Every request so far.
    ///
    /// # Panics
    /// If a lock is poisoned.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests to `path` that were accepted.
    pub fn accepted(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path() == path && r.answer == Answer::Accept).collect()
    }

    /// Waits until `n` requests to `path` were accepted; returns them.
    ///
    /// # Panics
    /// If they do not arrive within `timeout`.
    pub fn wait_accepted(&self, path: &str, n: usize, timeout: Duration) -> Vec<Request> {
        self.wait_for(path, n, timeout, |r| r.answer == Answer::Accept, "accepted requests")
    }

    /// Waits until `n` requests to `path` arrived, whatever they were answered; returns them.
    ///
    /// # Panics
    /// If they do not arrive within `timeout`.
    pub fn wait_requests(&self, path: &str, n: usize, timeout: Duration) -> Vec<Request> {
        self.wait_for(path, n, timeout, |_| true, "requests")
    }

    fn wait_for(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
        wanted: impl Fn(&Request) -> bool,
        what: &str,
    ) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.state.requests.lock().unwrap();
        loop {
            let found: Vec<Request> = requests.iter().filter(|r| r.path() == path && wanted(r)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{n} {what} to {path} within {timeout:?}, got {}", found.len());
            requests = self.state.arrived.wait_timeout(requests, left).unwrap().0;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    // Keep-alive: several requests per connection.
    while let Some(mut request) = read_request(&mut reader) {
        let answer = {
            let answers = state.answer.lock().unwrap();
            answers.iter().find(|(p, _)| request.path().starts_with(p.as_str())).map_or(Answer::Accept, |(_, a)| *a)
        };
        request.answer = answer;
        state.requests.lock().unwrap().push(request);
        state.arrived.notify_all();
        let (status, body): (&str, Vec<u8>) = match answer {
            Answer::Accept => ("200 OK", br#"{"errcode":0,"errmsg":"ok"}"#.to_vec()),
            Answer::ServerError => ("500 Internal Server Error", b"down for maintenance".to_vec()),
            Answer::Errcode(code) => {
                ("200 OK", format!(r#"{{"errcode":{code},"errmsg":"refused by test"}}"#).into_bytes())
            }
            Answer::Garbage => ("200 OK", b"<html>not a robot</html>".to_vec()),
            Answer::Huge => ("200 OK", vec![b'x'; 1 << 20]),
            Answer::Hang => {
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
        };
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&body)).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { target, headers, body, answer: Answer::Accept, at: Instant::now() })
}
