//! `hj212-audit report`: a site's or the fleet's daily or monthly report from the data dir
//! alone (the sites and service targets as the archive's config history has them).

use hj212_config::DataDir;
use hj212_report::{Opened, Period};

use crate::{EX_NOINPUT, EX_USAGE, Failure};

pub struct ReportArgs {
    pub data_dir: DataDir,
    pub date: Option<String>,
    pub month: Option<String>,
    pub mn: Option<String>,
    pub format: String,
}

fn usage(message: String) -> Failure {
    Failure { message, exit_code: EX_USAGE }
}

pub fn report(args: &ReportArgs) -> Result<String, Failure> {
    let period = match (&args.date, &args.month) {
        (Some(date), None) => Period::day(date),
        (None, Some(month)) => Period::month(month),
        _ => return Err(usage("give --date YYYY-MM-DD or --month YYYY-MM".into())),
    }
    .map_err(usage)?;
    if !["json", "csv", "html"].contains(&args.format.as_str()) {
        return Err(usage(format!("--format {:?} is not json, csv or html", args.format)));
    }
    let input = |message: String| Failure { message, exit_code: EX_NOINPUT };
    let db = args.data_dir.store();
    if !db.is_file() {
        return Err(input(format!("no embedded store at {}", db.display())));
    }
    let opened = Opened::read(&args.data_dir).map_err(input)?;
    let service = opened.store.latest_service().map_err(|e| input(e.to_string()))?;
    let mut sites = opened.store.latest_config_sites().map_err(|e| input(e.to_string()))?;
    if let Some(mn) = &args.mn {
        sites.retain(|s| &s.mn == mn);
        if sites.is_empty() {
            return Err(usage(format!("no site in the data dir's config history with MN {mn}")));
        }
    }
    let sources = opened.sources(&service, hj212_archive::now_ms());
    let report = match &args.mn {
        Some(_) => hj212_report::site_report(&sources, &sites[0], &period),
        None => hj212_report::fleet_report(&sources, &sites, &period),
    }
    .map_err(input)?;
    Ok(match args.format.as_str() {
        "html" => hj212_report::html(&report),
        "csv" => match report["reports"].as_array() {
            Some(reports) => hj212_report::csv(&reports.iter().collect::<Vec<_>>()),
            None => hj212_report::csv(&[&report]),
        },
        _ => format!("{report}\n"),
    })
}
