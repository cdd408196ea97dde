//! `hj212-audit command`: commands to a site's data logger (CN 2061 "send the hourly data of
//! this period", ...) through the running daemon, which queues each one until the logger is
//! connected and records how it answered (QnRtn, ExeRtn, the records it sent back).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use reqwest::Method;

use crate::admin::AdminClient;
use crate::{EX_PROTOCOL, EX_USAGE, EXIT_NOT_COMPLETED, Failure};

#[derive(Debug, Subcommand)]
pub enum CommandAction {
    /// Queue a command for a site; the daemon sends it while the logger is connected.
    Send {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token (server.admin_token_file).
        #[arg(long)]
        token_file: PathBuf,
        /// The site's MN.
        #[arg(long)]
        mn: String,
        /// The command code, e.g. 2061 (hourly data of a period).
        #[arg(long)]
        cn: String,
        /// One CP field, e.g. BeginTime=20261130000000; repeat for each field.
        #[arg(long, value_name = "KEY=VALUE")]
        cp: Vec<String>,
        /// Seconds the command may wait in the queue before it expires; default: the daemon's.
        #[arg(long)]
        ttl_secs: Option<u64>,
        /// Follow the command until it ends (or SECS pass) and print its last state; exit 0 only
        /// when it completed.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// A site's commands, newest first, as a table.
    List {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token, if the daemon asks for it on reads.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The site's MN.
        #[arg(long)]
        mn: String,
        /// Print the daemon's JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One command, as JSON.
    Show {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token, if the daemon asks for it on reads.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The command's id, e.g. c-000123.
        id: String,
    },
    /// Cancel a command that is still queued (one already sent cannot be called back).
    Cancel {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token (server.admin_token_file).
        #[arg(long)]
        token_file: PathBuf,
        /// The command's id, e.g. c-000123.
        id: String,
    },
}

/// How often `send --wait` asks for the command's state: a logger answers within seconds, so a
/// few requests a second show the end promptly at no cost to the daemon.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// States the daemon never leaves: the command is over.
const FINAL_STATES: [&str; 5] = ["rejected", "completed", "failed", "expired", "cancelled"];

/// The fields of the daemon's command view that this CLI reads; the rest is printed as sent.
#[derive(Debug, serde::Deserialize)]
struct View {
    id: String,
    cn: String,
    state: String,
    qn: Option<String>,
    qn_rtn: Option<i64>,
    exe_rtn: Option<i64>,
    records: u64,
    created: String,
    finished: Option<String>,
    reason: Option<String>,
}

/// Runs one `command` action, printing the daemon's answer.
///
/// # Errors
/// A [`Failure`] from the arguments, the daemon, or a command that did not complete.
pub fn run(action: CommandAction) -> Result<(), Failure> {
    match action {
        CommandAction::Send { url, token_file, mn, cn, cp, ttl_secs, wait } => {
            let cp = parse_cp(&cp).map_err(|message| Failure { message, exit_code: EX_USAGE })?;
            let client = AdminClient::new(&url, Some(&token_file))?;
            let body = request_body(&cn, &cp, ttl_secs);
            let queued = client.call(Method::POST, &["api", "v1", "sites", &mn, "commands"], Some(body))?;
            let Some(secs) = wait else {
                println!("{}", queued.trim());
                return Ok(());
            };
            follow(&client, queued, Duration::from_secs(secs))
        }
        CommandAction::List { url, token_file, mn, json } => {
            let client = AdminClient::new(&url, token_file.as_deref())?;
            let answer = client.call(Method::GET, &["api", "v1", "sites", &mn, "commands"], None)?;
            if json {
                println!("{}", answer.trim());
            } else {
                let views: Vec<View> = serde_json::from_str(&answer).map_err(|e| bad_answer(&e))?;
                print!("{}", table(&views));
            }
            Ok(())
        }
        CommandAction::Show { url, token_file, id } => {
            let client = AdminClient::new(&url, token_file.as_deref())?;
            println!("{}", client.call(Method::GET, &["api", "v1", "commands", &id], None)?.trim());
            Ok(())
        }
        CommandAction::Cancel { url, token_file, id } => {
            let client = AdminClient::new(&url, Some(&token_file))?;
            println!("{}", client.call(Method::DELETE, &["api", "v1", "commands", &id], None)?.trim());
            Ok(())
        }
    }
}

/// `--cp KEY=VALUE` arguments as the CP map. Only the syntax is checked here: which keys a
/// command takes is the daemon's decision, answered with a 400 naming the key.
fn parse_cp(pairs: &[String]) -> Result<BTreeMap<&str, &str>, String> {
    let mut cp = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("--cp takes KEY=VALUE, got {pair:?}"))?;
        if cp.insert(key, value).is_some() {
            return Err(format!("--cp {key} is given twice"));
        }
    }
    Ok(cp)
}

/// The POST body; without `--ttl-secs` the field is left out, so the daemon applies its default.
fn request_body(cn: &str, cp: &BTreeMap<&str, &str>, ttl_secs: Option<u64>) -> String {
    let mut body = serde_json::json!({ "cn": cn, "cp": cp });
    if let Some(ttl_secs) = ttl_secs {
        body["ttl_secs"] = ttl_secs.into();
    }
    body.to_string()
}

/// Polls the command until it reaches a final state or `wait` passes. Only the last view goes
/// to stdout, so `--wait` output is one JSON document like every other action's.
fn follow(client: &AdminClient, queued: String, wait: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + wait;
    let mut answer = queued;
    let mut view = parse_view(&answer)?;
    let id = view.id.clone();
    eprintln!("{id} is {}; waiting up to {} s", view.state, wait.as_secs());
    while !FINAL_STATES.contains(&view.state.as_str()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            println!("{}", answer.trim());
            let message = format!(
                "{id} is still {} after {} s (it may yet finish: hj212-audit command show {id})",
                view.state,
                wait.as_secs()
            );
            return Err(Failure { message, exit_code: EXIT_NOT_COMPLETED });
        }
        std::thread::sleep(POLL_INTERVAL.min(left));
        answer = client.call(Method::GET, &["api", "v1", "commands", &id], None)?;
        view = parse_view(&answer)?;
    }
    println!("{}", answer.trim());
    if view.state == "completed" {
        return Ok(());
    }
    let reason = view.reason.map(|r| format!(": {r}")).unwrap_or_default();
    Err(Failure { message: format!("{id} ended {}{reason}", view.state), exit_code: EXIT_NOT_COMPLETED })
}

fn parse_view(answer: &str) -> Result<View, Failure> {
    serde_json::from_str(answer).map_err(|e| bad_answer(&e))
}

fn bad_answer(e: &serde_json::Error) -> Failure {
    Failure {
        message: format!("the daemon's answer is not the command JSON this CLI knows: {e}"),
        exit_code: EX_PROTOCOL,
    }
}

const COLUMNS: [&str; 10] =
    ["id", "cn", "state", "qn", "qn_rtn", "exe_rtn", "records", "created", "finished", "reason"];

impl View {
    /// The table row, in [`COLUMNS`] order; `-` where the daemon has nothing yet.
    fn cells(&self) -> [String; 10] {
        let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        [
            self.id.clone(),
            self.cn.clone(),
            self.state.clone(),
            or_dash(self.qn.clone()),
            or_dash(self.qn_rtn.map(|n| n.to_string())),
            or_dash(self.exe_rtn.map(|n| n.to_string())),
            self.records.to_string(),
            self.created.clone(),
            or_dash(self.finished.clone()),
            or_dash(self.reason.clone()),
        ]
    }
}

/// Left-aligned columns two spaces apart, a header first. The reason comes last, so its free
/// text (Chinese included) never pushes a column out of line.
fn table(views: &[View]) -> String {
    let rows: Vec<[String; 10]> = views.iter().map(View::cells).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(COLUMNS.map(str::to_owned)).chain(rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|&p| p.to_owned()).collect()
    }

    #[test]
    fn cp_pairs_split_at_the_first_equals_sign() {
        let pairs = args(&["BeginTime=20261130000000", "EndTime=20261130235959", "Expr=a=b", "Empty="]);
        let cp = parse_cp(&pairs).unwrap();
        let expected = [("BeginTime", "20261130000000"), ("Empty", ""), ("EndTime", "20261130235959"), ("Expr", "a=b")];
        assert_eq!(cp.into_iter().collect::<Vec<_>>(), expected);
        assert!(parse_cp(&[]).unwrap().is_empty());
    }

    #[test]
    fn cp_without_a_key_or_given_twice_is_a_usage_error() {
        assert_eq!(parse_cp(&args(&["BeginTime"])).unwrap_err(), r#"--cp takes KEY=VALUE, got "BeginTime""#);
        assert_eq!(parse_cp(&args(&["=1"])).unwrap_err(), r#"--cp takes KEY=VALUE, got "=1""#);
        assert_eq!(parse_cp(&args(&["A=1", "A=2"])).unwrap_err(), "--cp A is given twice");
    }

    #[test]
    fn the_request_omits_ttl_when_not_given() {
        let pairs = args(&["EndTime=2", "BeginTime=1"]);
        let cp = parse_cp(&pairs).unwrap();
        assert_eq!(request_body("2061", &cp, None), r#"{"cn":"2061","cp":{"BeginTime":"1","EndTime":"2"}}"#);
        let with_ttl: serde_json::Value = serde_json::from_str(&request_body("2061", &cp, Some(600))).unwrap();
        assert_eq!(with_ttl["ttl_secs"], 600);
    }

    const LIST: &str = r#"[
        {"id": "c-000124", "mn": "010000A8900016F000169DC0", "cn": "2061",
         "cp": {"BeginTime": "20261130000000", "EndTime": "20261130235959"}, "state": "completed",
         "origin": "api", "qn": "20261130101500123", "qn_rtn": 1, "exe_rtn": 1, "sends": 1, "records": 24,
         "reason": null, "created": "2026-11-30T10:15:00+08:00", "sent": "2026-11-30T10:15:00+08:00",
         "accepted": "2026-11-30T10:15:01+08:00", "finished": "2026-11-30T10:15:09+08:00",
         "expires": "2026-11-30T11:15:00+08:00"},
        {"id": "c-000123", "mn": "010000A8900016F000169DC0", "cn": "2061", "cp": {}, "state": "expired",
         "origin": "recovery", "qn": null, "qn_rtn": null, "exe_rtn": null, "sends": 0, "records": 0,
         "reason": "站点离线 for 1 h", "created": "2026-11-30T09:00:00+08:00", "sent": null,
         "accepted": null, "finished": "2026-11-30T10:00:00+08:00", "expires": "2026-11-30T10:00:00+08:00"}
    ]"#;

    #[test]
    fn the_table_aligns_columns_and_dashes_what_is_missing() {
        let views: Vec<View> = serde_json::from_str(LIST).unwrap();
        let expected = "\
id        cn    state      qn                 qn_rtn  exe_rtn  records  created                    finished                   reason
c-000124  2061  completed  20261130101500123  1       1        24       2026-11-30T10:15:00+08:00  2026-11-30T10:15:09+08:00  -
c-000123  2061  expired    -                  -       -        0        2026-11-30T09:00:00+08:00  2026-11-30T10:00:00+08:00  站点离线 for 1 h
";
        assert_eq!(table(&views), expected);
    }

    #[test]
    fn an_empty_list_is_the_header_alone() {
        assert_eq!(table(&[]), format!("{}\n", COLUMNS.join("  ")));
    }
}
