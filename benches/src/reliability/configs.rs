//! Trial 6: a corpus of broken configs. Each must fail `hj212d check-config` with 78 naming
//! the key, or, where only the start can tell (a port in use), fail the start with 78; and no
//! broken config may pass check-config and then fail the start with another code.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::configs_corpus::{Case, Held, corpus};
use super::daemon::free_port;
use super::{Ctx, Report};

/// What one case gave.
#[derive(Debug)]
struct Outcome {
    check_code: i32,
    check_names_key: bool,
    /// Exit of `hj212d --config`, or `running` if it still ran after 10 s.
    start: String,
    start_names_key: bool,
}

/// Runs `command` with a time limit: (exit code or -1, stdout and stderr).
fn run_for(mut command: Command, limit: Duration) -> Result<(Option<i32>, String)> {
    let dir = tempfile::tempdir()?;
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .context("run hj212d")?;
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!("{}{}", std::fs::read_to_string(out)?, std::fs::read_to_string(err)?);
    Ok((code, text))
}

fn try_case(ctx: &Ctx, dir: &Path, case: &Case) -> Result<Outcome> {
    std::fs::create_dir_all(dir)?;
    (case.setup)(dir).with_context(|| format!("set up {}", case.name))?;
    let (listen, http) = (free_port()?, free_port()?);
    // Held for the whole case: the daemon must find the port taken.
    let _held = match case.held {
        Some(Held::Listen) => Some(TcpListener::bind(listen)?),
        Some(Held::Http) => Some(TcpListener::bind(http)?),
        None => None,
    };
    let path = dir.join("hj212d.toml");
    if !case.missing_file {
        std::fs::write(&path, case.render(&listen.to_string(), &http.to_string()))?;
    }
    let cwd = if case.cwd_elsewhere {
        let elsewhere = dir.join("cwd");
        std::fs::create_dir_all(&elsewhere)?;
        std::fs::write(elsewhere.join("sites.toml"), "[[sites]]\nmn = \"S9\"\npassword = \"1\"\n")?;
        elsewhere
    } else {
        dir.to_path_buf()
    };
    let mut check = Command::new(&ctx.hj212d);
    check.arg("check-config").arg(&path).current_dir(&cwd);
    let (check_code, check_text) = run_for(check, Duration::from_secs(20))?;
    let mut start = Command::new(&ctx.hj212d);
    start.arg("--config").arg(&path).current_dir(&cwd);
    let (start_code, start_text) = run_for(start, Duration::from_secs(10))?;
    std::fs::write(dir.join("check.txt"), &check_text)?;
    std::fs::write(dir.join("start.txt"), &start_text)?;
    Ok(Outcome {
        check_code: check_code.unwrap_or(-1),
        check_names_key: check_text.contains(case.key),
        start: start_code.map_or_else(|| "running".to_owned(), |c| format!("exit {c}")),
        start_names_key: start_text.contains(case.key),
    })
}

/// Runs the trial.
///
/// # Errors
/// If a case cannot be set up.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.dir("configs")?;
    let cases = corpus();
    let mut report = Report::new(
        "configs",
        format!(
            "{} broken configs made by the harness (unknown keys, wrong types, impossible values, missing or unusable \
             secret and key files, TOML syntax, data_dir unusable, listen addresses not on this host or in use, \
             relative paths), each given to `hj212d check-config` and to `hj212d --config` (as root)",
            cases.len()
        ),
    );
    let (mut by_class, mut failures, mut defects, mut start_codes) =
        (BTreeMap::<&str, (usize, usize)>::new(), Vec::new(), Vec::new(), BTreeMap::<String, usize>::new());
    for (i, case) in cases.iter().enumerate() {
        let outcome = try_case(ctx, &dir.join(format!("{i:03}")), case)?;
        let by_check = outcome.check_code == 78 && outcome.check_names_key;
        // A port in use is a warning at check time (the running daemon holds its own ports), and
        // the service's open-file limit is not the checking shell's: only the start can tell.
        let by_start =
            (case.held.is_some() || case.start_only) && outcome.start == "exit 78" && outcome.start_names_key;
        let entry = by_class.entry(case.class).or_default();
        entry.1 += 1;
        *start_codes.entry(outcome.start.clone()).or_default() += 1;
        if by_check || by_start {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{i:03} {}: check-config exit {}{}, start {}",
                case.name,
                outcome.check_code,
                if outcome.check_names_key { "" } else { " without naming the key" },
                outcome.start
            ));
        }
        if outcome.check_code == 0 && outcome.start != "exit 78" {
            defects.push(format!("{i:03} {}: passes check-config, start {}", case.name, outcome.start));
        }
    }
    for (class, (held, total)) in &by_class {
        report.figure(format!("{class}: refused naming the key"), format!("{held} / {total}"));
    }
    let codes: Vec<String> = start_codes.iter().map(|(code, n)| format!("{code}: {n}")).collect();
    report.figure("`hj212d --config` on the corpus", codes.join(", "));
    report.check(
        "each broken config fails check-config with 78 naming the key (a port in use, the open-file limit: the start, with 78)",
        failures.is_empty(),
        if failures.is_empty() { format!("{} / {}", cases.len(), cases.len()) } else { failures.join("; ") },
    );
    report.check(
        "no broken config passes check-config and then fails the start with another code, or runs",
        defects.is_empty(),
        if defects.is_empty() { "none".to_owned() } else { defects.join("; ") },
    );
    let running = start_codes.get("running").copied().unwrap_or(0);
    report.check(
        "the daemon refuses every broken config at start with 78",
        start_codes.len() == 1 && start_codes.contains_key("exit 78"),
        format!("{}{}", codes.join(", "), if running > 0 { " (running: started on a broken config)" } else { "" }),
    );
    Ok(report)
}
