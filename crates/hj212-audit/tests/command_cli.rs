//! `hj212-audit command` against a running daemon: send a command and wait for it to complete
//! while a logger answers, list it, and see the daemon's refusals as exit codes.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use hj212_proto::encode;

const BIN: &str = env!("CARGO_BIN_EXE_hj212-audit");
const MN: &str = "010000A8900016F000169DC0";
const TOKEN: &str = "admin-test-token-0123456789";

/// A logger that sends one real-time frame, then answers the first command it gets (9011, 9012).
fn logger(addr: std::net::SocketAddr) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let time = hj212_proto::time::BeijingTime::from_unix_millis(hj212_archive::now_ms()).to_seconds_string();
        let upload = format!(
            "QN=20261130101500001;ST=31;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&DataTime={time};a21026-Rtd=1,a21026-Flag=N&&"
        );
        stream.write_all(&encode::frame(upload.as_bytes()).unwrap()).unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 1024];
        // The 9014, then the command.
        while !seen.contains("CN=1011") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the daemon closed the connection: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let command = &seen[seen.find("CN=1011").unwrap() - 40..];
        let qn = &command[command.find("QN=").unwrap() + 3..][..17];
        for (cn, cp) in [(9011, "QnRtn=1"), (9012, "ExeRtn=1")] {
            let answer = format!("QN={qn};ST=91;CN={cn};PW=123456;MN={MN};Flag=4;CP=&&{cp}&&");
            stream.write_all(&encode::frame(answer.as_bytes()).unwrap()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        qn.to_owned()
    })
}

fn audit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_for_completion_and_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config_path = dir.path().join("hj212d.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
             admin_token_file = \"admin.token\"\n[recovery]\nenabled = false\n\
             [[sites]]\nmn = \"{MN}\"\npassword = \"123456\"\n"
        ),
    )
    .unwrap();
    let running = hj212d::Daemon::start(hj212_config::load(&config_path).unwrap()).await.unwrap();
    let url = format!("http://{}", running.http_addr);
    let token = token_file.to_str().unwrap().to_owned();
    let answered = logger(running.hj212_addr);

    let send = {
        let (url, token) = (url.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            audit(&[
                "command",
                "send",
                "--url",
                &url,
                "--token-file",
                &token,
                "--mn",
                MN,
                "--cn",
                "1011",
                "--wait",
                "20",
            ])
        })
    };
    let (code, stdout, stderr) = send.await.unwrap();
    let qn = answered.join().unwrap();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let view: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((view["state"].as_str(), view["qn"].as_str()), (Some("completed"), Some(&*qn)));
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token is never printed");

    let list = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || audit(&["command", "list", "--url", &url, "--mn", MN, "--json"]))
    };
    let (code, stdout, _) = list.await.unwrap();
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()[0]["state"], "completed");

    let refused = tokio::task::spawn_blocking(move || {
        audit(&[
            "command",
            "send",
            "--url",
            &url,
            "--token-file",
            &token,
            "--mn",
            MN,
            "--cn",
            "1062",
            "--cp",
            "RtdInterval=5",
        ])
    });
    let (code, _, stderr) = refused.await.unwrap();
    assert_eq!(code, 65, "a 400 is refused data: {stderr}");
    assert!(stderr.contains("RtdInterval"), "{stderr}");
    running.stop().await.unwrap();
}
