//! A local SMTP sink that requires STARTTLS (or speaks TLS at once, SMTPS): Debian's `aiosmtpd` (package python3-aiosmtpd)
//! on a free loopback port, with a certificate for 127.0.0.1 signed by a CA made at start
//! (openssl), delivering into a Maildir the test reads.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The SMTP sink; stops on drop.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

impl SmtpSink {
    /// Starts one that requires STARTTLS and waits until it accepts connections.
    ///
    /// # Panics
    /// If aiosmtpd or openssl is missing or it does not listen within 10 s.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts one that speaks TLS from the first byte (SMTPS, as on port 465).
    ///
    /// # Panics
    /// As [`SmtpSink::start`].
    pub fn start_implicit_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(implicit: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=hj212d test CA"],
            ]
            .concat(),
        );
        openssl(
            d,
            &[&["req"][..], &ec, &["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        );
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        let addr = free_port();
        let binary = ["/usr/bin/aiosmtpd", "/usr/local/bin/aiosmtpd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("aiosmtpd is not installed: run scripts/install-test-deps (Debian package python3-aiosmtpd)");
        let log = std::fs::File::create(d.join("aiosmtpd.log")).expect("log file");
        let child = Command::new(binary)
            .args(["-n", "-l", &addr.to_string()])
            .args(if implicit {
                ["--smtpscert", "cert.pem", "--smtpskey", "key.pem"]
            } else {
                ["--tlscert", "cert.pem", "--tlskey", "key.pem"]
            })
            .args(["-c", "aiosmtpd.handlers.Mailbox", "maildir"])
            .current_dir(d)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("aiosmtpd starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir, addr }
    }

    /// The CA certificate that signed the server's (for the client's `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The messages delivered so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir/new");
        let Ok(entries) = std::fs::read_dir(new) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect()
    }

    /// Waits until `n` messages arrived.
    ///
    /// # Panics
    /// If they do not within `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            let log = std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{n} mails within {timeout:?}, got {}; aiosmtpd log:\n{log}",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
