//! Console page times with a large fleet: a release hj212d with N sites (default 10,000), each
//! sent 48 hours of hourly records and one real-time frame (a tenth of them over their limit,
//! so there are alerts), then the fleet, site and alerts pages asked for repeatedly by a signed-in
//! user. Times are from the request written to the last byte read on loopback (an upper bound
//! of the server's time), with the page sizes; and how long the fleet's rates take to compute.
//!
//! Run: `cargo build --release -p hj212d -p hj212-benches --bin hj212d --bin console-bench &&
//! target/release/console-bench [--sites N] [--rounds N]`

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_benches::load::{Daemon, PASSWORD, mn, sites_config};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The console user's password; its hash is made with `hj212d hash-password`.
const USER_PASSWORD: &str = "console bench password";
const HOUR_MS: i64 = 3_600_000;
const HOURS: i64 = 48;
/// Loggers sending at once.
const CONNECTIONS: usize = 64;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/hj212d")]
    daemon: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    sites: usize,
    /// Requests of each page measured.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let hash = password_hash(&args.daemon);
    let per_site = "factors = [\"a21026\", \"a21002\", \"a34013\"]\n\
                    [[sites.limits]]\nfactor = \"a21026\"\nmax = 50.0\n";
    let extra = format!(
        "[http]\nmax_concurrent_queries = 2\n[[users]]\nname = \"bench\"\npassword_hash = \"{hash}\"\nrole = \"operator\"\n"
    );
    let daemon = Daemon::start_config(&args.daemon, 2 * CONNECTIONS, &extra, &sites_config(args.sites, per_site)).await;
    let started = Instant::now();
    let frames = send_fleet(daemon.addr, args.sites).await;
    println!("{} sites: {frames} frames acknowledged in {:.1} s", args.sites, started.elapsed().as_secs_f64());
    wait_store_caught_up(daemon.http);
    let cookie = sign_in(daemon.http);

    // The first fleet page starts the rates' computation; it is done when the page says when.
    let asked = Instant::now();
    get(daemon.http, "/console/", &cookie);
    while !get(daemon.http, "/console/", &cookie).1.contains("传输率统计于") {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "fleet rates (today and this month, every site) ready {:.1} s after the first page",
        asked.elapsed().as_secs_f64()
    );

    println!("| page | answers | p50 | p99 | max | size |");
    println!("|---|---|---|---|---|---|");
    measure(daemon.http, &cookie, "fleet `/console/`", args.rounds, |_| "/console/".to_owned());
    measure(daemon.http, &cookie, "site `/console/sites/{mn}`", args.rounds, |i| {
        format!("/console/sites/{}", mn(i * 7919 % args.sites))
    });
    measure(daemon.http, &cookie, "alerts `/console/alerts`", args.rounds, |_| "/console/alerts".to_owned());
    daemon.stop();
}

/// `hj212d hash-password` for the user.
fn password_hash(daemon: &std::path::Path) -> String {
    let mut child = std::process::Command::new(daemon)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run hj212d hash-password");
    child.stdin.take().expect("stdin").write_all(format!("{USER_PASSWORD}\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("hash-password");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// Every site's last 48 hourly records and one real-time frame, over [`CONNECTIONS`] loggers
/// each waiting for every 9014.
async fn send_fleet(addr: SocketAddr, sites: usize) -> usize {
    let now = hj212_archive::now_ms();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut sent = 0;
            let mut reply = [0u8; 512];
            for site in (c..sites).step_by(CONNECTIONS) {
                let over = site % 10 == 0;
                let mut frames: Vec<Vec<u8>> = (1..=HOURS)
                    .map(|h| hourly(site, (now / HOUR_MS - h) * HOUR_MS, if over && h == 1 { 61.5 } else { 20.0 }))
                    .collect();
                frames.push(realtime(site, now));
                for frame in frames {
                    stream.write_all(&frame).await.expect("send");
                    let n = stream.read(&mut reply).await.expect("reply");
                    assert!(n > 0, "the daemon closed the connection");
                    sent += 1;
                }
            }
            sent
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("logger");
    }
    total
}

fn hourly(site: usize, start_ms: i64, so2: f64) -> Vec<u8> {
    let time = BeijingTime::from_unix_millis(start_ms).to_seconds_string();
    let qn = BeijingTime::from_unix_millis(start_ms).to_qn_string();
    let segment = format!(
        "QN={qn};ST=31;CN=2061;PW={PASSWORD};MN={};Flag=5;CP=&&DataTime={time};a21026-Avg={so2},a21026-Flag=N;\
         a21002-Avg=48.1,a21002-Flag=N;a34013-Avg=10.5,a34013-Flag=N&&",
        mn(site)
    );
    encode::frame(segment.as_bytes()).expect("fits")
}

fn realtime(site: usize, now_ms: i64) -> Vec<u8> {
    let time = BeijingTime::from_unix_millis(now_ms);
    let segment = format!(
        "QN={};ST=31;CN=2011;PW={PASSWORD};MN={};Flag=5;CP=&&DataTime={};a21026-Rtd=20.5,a21026-Flag=N;\
         a21002-Rtd=48.1,a21002-Flag=N;a34013-Rtd=10.5,a34013-Flag=N&&",
        time.to_qn_string(),
        mn(site),
        time.to_seconds_string()
    );
    encode::frame(segment.as_bytes()).expect("fits")
}

fn wait_store_caught_up(http: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let metrics = get(http, "/metrics", "").1;
        let lag = metrics.lines().find(|l| l.starts_with("hj212_follower_lag_records{follower=\"store\"}"));
        if lag.is_some_and(|l| l.ends_with(" 0")) {
            return;
        }
        assert!(Instant::now() < deadline, "the store did not catch up");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sign_in(http: SocketAddr) -> String {
    let form = format!("user=bench&password={}", USER_PASSWORD.replace(' ', "+"));
    let (head, _) = exchange(http, "POST", "/console/login", "", Some(&form));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

fn get(http: SocketAddr, path: &str, cookie: &str) -> (String, String) {
    exchange(http, "GET", path, cookie, None)
}

fn exchange(http: SocketAddr, method: &str, path: &str, cookie: &str, form: Option<&str>) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(http).expect("connect");
    let cookie = if cookie.is_empty() { String::new() } else { format!("Cookie: {cookie}\r\n") };
    let body = form.unwrap_or_default();
    let content = form.map_or(String::new(), |f| {
        format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", f.len())
    });
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{cookie}{content}\r\n{body}").expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

fn measure(http: SocketAddr, cookie: &str, name: &str, rounds: usize, path: impl Fn(usize) -> String) {
    let mut times = Vec::with_capacity(rounds);
    let mut size = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let (head, body) = get(http, &path(round), cookie);
        times.push(started.elapsed());
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        size = body.len();
    }
    times.sort();
    let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "| {name} | {rounds} | {:.1} ms | {:.1} ms | {:.1} ms | {} KB |",
        at(50),
        at(99),
        times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0),
        size / 1024
    );
}
