//! `hj212-audit rate` (offline, from the data dir: the daemon's own figures) and
//! `hj212-audit mark add` (through the daemon's admin API, which alone writes the archive).

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use hj212_compliance::Range;
use hj212_config::DataDir;
use hj212_store::{CSV_HEADER, Store, parse_bound, rules_with_basis};

use crate::{EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_USAGE, Failure};

fn usage(message: String) -> Failure {
    Failure { message, exit_code: EX_USAGE }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
}

pub struct RateArgs {
    pub config: Option<PathBuf>,
    /// One data dir, or several: the union of what the cluster's nodes received.
    pub data_dir: Vec<PathBuf>,
    pub store: Option<PathBuf>,
    pub mn: Option<String>,
    pub from: String,
    pub to: String,
    pub basis: Option<String>,
    pub format: Format,
}

pub fn rate(args: &RateArgs) -> Result<String, Failure> {
    let config = match &args.config {
        Some(path) => {
            Some(hj212_config::load(path).map_err(|e| Failure { message: e.to_string(), exit_code: EX_CONFIG })?)
        }
        None => None,
    };
    let range = Range {
        from_ms: parse_bound(&args.from).map_err(|e| usage(format!("--from: {e}")))?,
        to_ms: parse_bound(&args.to).map_err(|e| usage(format!("--to: {e}")))?,
    };
    if range.to_ms <= range.from_ms {
        return Err(usage("--to must be after --from".into()));
    }
    let data_dirs: Vec<DataDir> = match (args.data_dir.as_slice(), &config) {
        ([], Some(config)) => vec![config.data_dir()],
        ([], None) => return Err(usage("give --data-dir (or --config)".into())),
        (dirs, _) => dirs.iter().cloned().map(DataDir::new).collect(),
    };
    let data_dir = data_dirs[0].clone();
    let union = data_dirs.len() > 1;
    if union && args.store.is_some() {
        return Err(usage("--store reads one data dir's store; with several --data-dir the union is built".into()));
    }
    // Several nodes: their archives applied together to a store of their own, removed after.
    let scratch = if union { Some(union_store(&data_dirs)?) } else { None };
    let db = match &scratch {
        Some(dir) => dir.path().join("union.sqlite"),
        None => args.store.clone().unwrap_or_else(|| data_dir.store()),
    };
    if !db.is_file() {
        return Err(Failure { message: format!("no embedded store at {}", db.display()), exit_code: EX_NOINPUT });
    }
    let store = Store::open_read_only(&db).map_err(|e| Failure { message: e.to_string(), exit_code: EX_NOINPUT })?;
    let read = |e: hj212_store::StoreError| Failure { message: e.to_string(), exit_code: EX_NOINPUT };
    // The sites: the given config's, or every site the archived history names.
    let known = match &config {
        Some(config) => config.sites.clone(),
        None => store.latest_config_sites().map_err(read)?,
    };
    let sites: Vec<_> = known.iter().filter(|s| args.mn.as_ref().is_none_or(|mn| &s.mn == mn)).collect();
    if sites.is_empty() {
        let whence = if config.is_some() { "configured" } else { "in the data dir's config history" };
        return Err(usage(format!("no site {whence} with MN {}", args.mn.as_deref().unwrap_or("?"))));
    }
    if args.format == Format::Html && args.mn.is_none() {
        return Err(usage("--format html reports one site: give --mn".into()));
    }
    // Periods not yet ended at this moment are not due yet (the evidence says where it stopped).
    let now_ms = hj212_archive::now_ms();
    let mut json = Vec::new();
    let mut csv = vec![CSV_HEADER.to_owned()];
    let mut html = String::new();
    for site in sites {
        let archived = if config.is_none() && args.basis.is_none() {
            store.site_rate_as_configured(&site.mn, range, now_ms).map_err(read)?
        } else {
            None
        };
        let mut evidence = if let Some(evidence) = archived {
            evidence
        } else {
            let rules = rules_with_basis(site, args.basis.as_deref()).map_err(|e| usage(format!("--{e}")))?;
            store.site_rate(site, &rules, range, now_ms).map_err(read)?
        };
        // Each record's hash is in its own node's archive: with several, the evidence names none.
        if args.mn.is_some() && !union {
            evidence
                .attach_archive_hashes(&data_dir.archive())
                .map_err(|e| Failure { message: format!("reading the archive: {e}"), exit_code: EX_NOINPUT })?;
        }
        csv.push(evidence.to_csv_row(&site.mn));
        json.push(evidence.to_json(&site.mn));
        html = crate::html::report(&site.mn, &site.name, &evidence);
    }
    Ok(if args.format == Format::Html {
        html
    } else if args.format == Format::Csv {
        csv.join("\n")
    } else if args.mn.is_some() {
        json.pop().map(|j| j.to_string()).unwrap_or_default()
    } else {
        serde_json::Value::Array(json).to_string()
    })
}

/// The union of several nodes' archives in a store in a new temporary folder.
fn union_store(data_dirs: &[DataDir]) -> Result<tempfile::TempDir, Failure> {
    let scratch = tempfile::tempdir()
        .map_err(|e| Failure { message: format!("cannot make a temporary folder: {e}"), exit_code: EX_NOINPUT })?;
    crate::union::build(data_dirs, &scratch.path().join("union.sqlite"))?;
    Ok(scratch)
}

/// Records applied to the rebuilt store per transaction (memory: about this x 3 KiB).
const REBUILD_BATCH: usize = 20_000;

/// Applies every archive record to a new store: the ledger rebuilt from the raw evidence.
/// Each record is checked against the chain first; at a break, the records before it are
/// applied (the store is kept, saying so) and the break is the error (exit 65).
pub fn rebuild(data_dir: &DataDir, out: &std::path::Path) -> Result<String, Failure> {
    let fail = |message: String| Failure { message, exit_code: EX_NOINPUT };
    if out.exists() {
        return Err(usage(format!("{} exists; choose a new --out", out.display())));
    }
    let archive = data_dir.archive();
    if !archive.is_dir() {
        return Err(fail(format!("no archive at {}", archive.display())));
    }
    let mut store = Store::open_bulk(out).map_err(|e| fail(e.to_string()))?;
    let (mut records, mut rows, mut last_seq) = (0, 0, 0);
    let mut batch = Vec::with_capacity(REBUILD_BATCH);
    let mut store_error = None;
    let mut apply = |batch: &mut Vec<hj212_follow::Interpreted>| -> Result<(), hj212_store::StoreError> {
        let applied = store.apply(batch)?;
        records += applied.records;
        rows += applied.rows;
        last_seq = batch.last().map_or(last_seq, |r| r.record.seq);
        batch.clear();
        Ok(())
    };
    let walked = hj212_archive::walk(&archive, |record| {
        batch.push(hj212_follow::Interpreted::new(record));
        if batch.len() < REBUILD_BATCH {
            return ControlFlow::Continue(());
        }
        apply(&mut batch).map_or_else(
            |e| {
                store_error = Some(e);
                ControlFlow::Break(())
            },
            |()| ControlFlow::Continue(()),
        )
    });
    if let Some(e) = store_error {
        return Err(fail(e.to_string()));
    }
    apply(&mut batch).map_err(|e| fail(e.to_string()))?;
    let done = format!("{records} archive records, {rows} readings, up to seq {last_seq}");
    match walked {
        Ok(_) => Ok(format!("rebuilt {}: {done}", out.display())),
        Err(broken) => Err(Failure {
            message: format!(
                "{}; {} holds the records before it ({done}), nothing after",
                crate::archive::describe(&broken),
                out.display()
            ),
            exit_code: EX_DATAERR,
        }),
    }
}

pub struct MarkArgs {
    pub url: String,
    pub token_file: PathBuf,
    pub mn: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub evidence: String,
    pub author: String,
    pub supersedes: Option<u64>,
}

/// Posts a mark to the daemon; returns its answer.
pub fn add_mark(args: &MarkArgs) -> Result<String, Failure> {
    let token = std::fs::read_to_string(&args.token_file).map_err(|e| Failure {
        message: format!("cannot read {}: {e}", args.token_file.display()),
        exit_code: EX_NOINPUT,
    })?;
    let body = serde_json::json!({
        "from": args.from, "to": args.to, "reason": args.reason, "evidence": args.evidence,
        "author": args.author, "supersedes": args.supersedes,
    })
    .to_string();
    let path = format!("/api/v1/sites/{}/marks", args.mn);
    let (status, answer) = post(&args.url, &path, token.trim(), &body)?;
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err(Failure { message: format!("the daemon answered {status}: {answer}"), exit_code: EX_USAGE })
    }
}

/// `hj212-audit key rotate`: schedules an SM4 key rotation of one site through the daemon.
///
/// # Errors
/// The token file cannot be read, the daemon cannot be reached, or it refuses.
pub fn rotate_key(url: &str, token_file: &std::path::Path, mn: &str) -> Result<String, Failure> {
    let token = std::fs::read_to_string(token_file).map_err(|e| Failure {
        message: format!("cannot read {}: {e}", token_file.display()),
        exit_code: EX_NOINPUT,
    })?;
    let (status, answer) = post(url, &format!("/api/v1/sites/{mn}/key"), token.trim(), "")?;
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err(Failure { message: format!("the daemon answered {status}: {answer}"), exit_code: EX_USAGE })
    }
}

/// A plain HTTP/1.1 POST: the admin API listens on loopback without TLS.
fn post(url: &str, path: &str, token: &str, body: &str) -> Result<(u16, String), Failure> {
    let host = url
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .ok_or_else(|| usage(format!("--url {url:?} must be http://HOST:PORT (the admin listener)")))?;
    let io = |e: std::io::Error| Failure { message: format!("{url}: {e}"), exit_code: EX_NOINPUT };
    let mut stream = std::net::TcpStream::connect(host).map_err(io)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let answer = response.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_owned()).unwrap_or_default();
    Ok((status, answer))
}
