//! The broken configs of the configs trial: each one thing wrong, with the key the daemon's
//! answer must name.

use std::path::Path;

/// Which listener the harness holds before the case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Listen,
    Http,
}

/// One broken config.
#[derive(Debug, Clone)]
pub struct Case {
    pub class: &'static str,
    pub name: &'static str,
    /// What the output must name (a key, or a file).
    pub key: &'static str,
    pub listen: Option<&'static str>,
    pub http: Option<&'static str>,
    pub data_dir: &'static str,
    /// Extra `[server]` lines.
    pub server: String,
    /// Tables after `[server]`.
    pub tables: String,
    /// Lines added to the one site (its keys, then its sub-tables).
    pub site: String,
    /// Replaces the whole `[[sites]]` part.
    pub sites: Option<String>,
    /// Replaces the whole file.
    pub raw: Option<String>,
    /// Files made in the case folder first.
    pub setup: fn(&Path) -> std::io::Result<()>,
    pub held: Option<Held>,
    /// Only the start can tell (the service's open-file limit is not the checking shell's).
    pub start_only: bool,
    /// Run with the working directory elsewhere (a folder holding a `sites.toml`).
    pub cwd_elsewhere: bool,
    /// Check a config file that does not exist.
    pub missing_file: bool,
}

#[expect(clippy::unnecessary_wraps, reason = "the shape of every case's setup")]
fn nothing(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn case(class: &'static str, name: &'static str, key: &'static str) -> Case {
    Case {
        class,
        name,
        key,
        listen: None,
        http: None,
        data_dir: "data",
        server: String::new(),
        tables: String::new(),
        site: String::new(),
        sites: None,
        raw: None,
        setup: nothing,
        held: None,
        start_only: false,
        cwd_elsewhere: false,
        missing_file: false,
    }
}

impl Case {
    fn server(mut self, lines: &str) -> Self {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    fn table(mut self, text: &str) -> Self {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    fn site(mut self, text: &str) -> Self {
        self.site.push_str(text);
        self.site.push('\n');
        self
    }

    fn sites(mut self, text: &str) -> Self {
        self.sites = Some(text.to_owned());
        self
    }

    fn start_only(mut self) -> Self {
        self.start_only = true;
        self
    }

    fn setup(mut self, f: fn(&Path) -> std::io::Result<()>) -> Self {
        self.setup = f;
        self
    }

    /// The file's text, `{listen}` and `{http}` being free ports.
    pub fn render(&self, listen: &str, http: &str) -> String {
        if let Some(raw) = &self.raw {
            return raw.replace("{listen}", listen).replace("{http}", http);
        }
        let sites = self.sites.clone().unwrap_or_else(|| {
            format!("[[sites]]\nmn = \"SITE0001\"\npassword = \"123456\"\nfactors = [\"a21026\"]\n{}", self.site)
        });
        format!(
            "[server]\nlisten = \"{}\"\nhttp_listen = \"{}\"\ndata_dir = \"{}\"\n{}{}{sites}",
            self.listen.unwrap_or(listen),
            self.http.unwrap_or(http),
            self.data_dir,
            self.server,
            self.tables
        )
    }
}

fn file(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(name), text)
}

fn unknown_keys() -> Vec<Case> {
    let c = |name, key| case("unknown key", name, key);
    vec![
        c("[server] bogus_key", "bogus_key").server("bogus_key = 1"),
        c("[limits] misspelt max_conections", "max_conections").table("[limits]\nmax_conections = 10"),
        c("[archive] retention (for retention_days)", "retention").table("[archive]\nretention = 5"),
        c("[http] max_range", "max_range").table("[http]\nmax_range = 10"),
        c("[time_sync] enable", "enable").table("[time_sync]\nenable = true"),
        c("[alerts] offline_after", "offline_after").table("[alerts]\noffline_after = 3"),
        c("[[sites]] passwd", "passwd").site("passwd = \"x\""),
        c("[sites.rate] target", "target").site("[sites.rate]\ntarget = 90"),
        c("[[sites.limits]] maximum", "maximum").site("[[sites.limits]]\nfactor = \"a21026\"\nmaximum = 10"),
        c("[influx] urls", "urls")
            .table("[influx]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\nurls = 1"),
        c("[mqtt] host", "host").table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\nhost = \"x\""),
        c("a [database] table", "database").table("[database]\npath = \"x\""),
    ]
}

fn wrong_types() -> Vec<Case> {
    let c = |name, key| case("wrong type", name, key);
    let mut listen_number = c("listen = 9212 (a number)", "listen");
    listen_number.raw = Some(
        "[server]\nlisten = 9212\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\n[[sites]]\nmn = \"S1\"\npassword = \"1\"\n"
            .into(),
    );
    let mut hostname = c("listen = \"localhost:9212\" (a name, not an address)", "listen");
    hostname.listen = Some("localhost:9212");
    vec![
        listen_number,
        hostname,
        c("max_connections = \"many\"", "max_connections").table("[limits]\nmax_connections = \"many\""),
        c("time_sync.enabled = \"yes\"", "enabled").table("[time_sync]\nenabled = \"yes\""),
        c("segment_max_bytes = -1", "segment_max_bytes").table("[archive]\nsegment_max_bytes = -1"),
        c("retention_days = 1.5", "retention_days").table("[archive]\nretention_days = 1.5"),
        c("factors = \"a21026\" (not a list)", "factors")
            .sites("[[sites]]\nmn = \"S1\"\npassword = \"1\"\nfactors = \"a21026\"\n"),
        c("log_level = 5", "log_level").server("log_level = 5"),
        c("[sites] as a table, not [[sites]]", "sites").sites("[sites]\nmn = \"S1\"\npassword = \"1\"\n"),
        c("password = 123456 (a number)", "password").sites("[[sites]]\nmn = \"S1\"\npassword = 123456\n"),
    ]
}

fn impossible_values() -> Vec<Case> {
    let c = |name, key| case("impossible value", name, key);
    let mut same = c("http_listen = listen", "server.http_listen");
    same.raw = Some(
        "[server]\nlisten = \"{listen}\"\nhttp_listen = \"{listen}\"\ndata_dir = \"data\"\n[[sites]]\nmn = \"S1\"\npassword = \"1\"\n"
            .into(),
    );
    vec![
        same,
        c("max_connections = 0", "limits.max_connections").table("[limits]\nmax_connections = 0"),
        c("max_frame_len = 20000", "limits.max_frame_len").table("[limits]\nmax_frame_len = 20000"),
        c("first_frame_timeout_secs = 0", "limits.first_frame_timeout_secs").table("[limits]\nfirst_frame_timeout_secs = 0"),
        c("idle_timeout_secs = 0", "limits.idle_timeout_secs").table("[limits]\nidle_timeout_secs = 0"),
        c("archive_queue = 0", "limits.archive_queue").table("[limits]\narchive_queue = 0"),
        c("segment_max_bytes = 1000", "archive.segment_max_bytes").table("[archive]\nsegment_max_bytes = 1000"),
        c("checkpoint_interval_secs = 0", "archive.checkpoint_interval_secs").table("[archive]\ncheckpoint_interval_secs = 0"),
        c("http.max_range_days = 5000", "http.max_range_days").table("[http]\nmax_range_days = 5000"),
        c("http.max_minute_range_days = 400", "http.max_minute_range_days").table("[http]\nmax_minute_range_days = 400"),
        c("http.max_concurrent_queries = 0", "http.max_concurrent_queries").table("[http]\nmax_concurrent_queries = 0"),
        c("http.max_connections = 0", "http.max_connections").table("[http]\nmax_connections = 0"),
        c("log_format = \"xml\"", "log_format").server("log_format = \"xml\""),
        c("log_utc_offset = \"+25:00\"", "log_utc_offset").server("log_utc_offset = \"+25:00\""),
        c("log_level = \"hj212=loud\"", "log_level").server("log_level = \"hj212=loud\""),
        c("limits.max_connections beyond the open-file limit", "limits.max_connections")
            .table("[limits]\nmax_connections = 100000000")
            .start_only(),
        c("alerts.hysteresis_percent = 100", "alerts.hysteresis_percent").table("[alerts]\nhysteresis_percent = 100.0"),
        c("MN of 25 characters", "sites[0].mn").sites("[[sites]]\nmn = \"ABCDEFGHIJKLMNOPQRSTUVWXY\"\npassword = \"1\"\n"),
        c("MN with a ;", "sites[0].mn").sites("[[sites]]\nmn = \"AB;CD\"\npassword = \"1\"\n"),
        c("the same MN twice", "sites[1].mn")
            .sites("[[sites]]\nmn = \"S1\"\npassword = \"1\"\n[[sites]]\nmn = \"S1\"\npassword = \"2\"\n"),
        c("empty password", "sites[0].password").sites("[[sites]]\nmn = \"S1\"\npassword = \"\"\n"),
        c("factor \"a21026-Rtd\"", "sites[0].factors[0]").sites("[[sites]]\nmn = \"S1\"\npassword = \"1\"\nfactors = [\"a21026-Rtd\"]\n"),
        c("crc = \"crc32\"", "crc").site("crc = \"crc32\""),
        c("encryption = \"required\" without key_file", "sites[0].key_file").site("encryption = \"required\""),
        c("rate basis \"week\"", "basis").site("[sites.rate]\nbasis = \"week\""),
        c("rate minute_interval = 7", "sites[0].rate.minute_interval").site("[sites.rate]\nminute_interval = 7"),
        c("rate target_percent = 150", "target_percent").site("[sites.rate]\ntarget_percent = 150.0"),
        c("rate min_valid_minutes = 61", "sites[0].rate.min_valid_minutes").site("[sites.rate]\nmin_valid_minutes = 61"),
        c("limits entry without max, min, max_step or range", "sites[0].limits[0]").site("[[sites.limits]]\nfactor = \"a21026\""),
        c("limits min above max", "sites[0].limits[0].min").site("[[sites.limits]]\nfactor = \"a21026\"\nmin = 10.0\nmax = 5.0"),
        c("limits range [10, 5]", "sites[0].limits[0].range").site("[[sites.limits]]\nfactor = \"a21026\"\nrange = [10.0, 5.0]"),
        c("reference_o2 = 25", "sites[0].limits[0].reference_o2")
            .site("[[sites.limits]]\nfactor = \"a21026\"\nmax = 100.0\nreference_o2 = 25.0"),
        c("influx url ftp://", "influx.url").table("[influx]\nurl = \"ftp://127.0.0.1\"\norg = \"o\"\nbucket = \"b\""),
        c("influx v2 without org and bucket", "influx.bucket").table("[influx]\nurl = \"http://127.0.0.1:8086\""),
        c("influx api = \"v3\"", "api").table("[influx]\nurl = \"http://127.0.0.1:8086\"\napi = \"v3\""),
        c("influx token and token_file", "influx.token")
            .table("[influx]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\ntoken_file = \"t.txt\"")
            .setup(|d| file(d, "t.txt", "token")),
        c("mqtt client_id of 30 characters", "mqtt.client_id")
            .table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\nclient_id = \"abcdefghijabcdefghijabcdefghij\""),
        c("mqtt topic_prefix with a wildcard", "mqtt.topic_prefix").table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\ntopic_prefix = \"hj212/#\""),
        c("mqtt credentials in the URL", "mqtt.url").table("[mqtt]\nurl = \"mqtt://user:secret@127.0.0.1\""),
        c("mqtt password_file without username", "mqtt.password_file")
            .table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\npassword_file = \"pw\"")
            .setup(|d| file(d, "pw", "secret")),
        c("mqtts:// in a build without TLS", "mqtt.url").table("[mqtt]\nurl = \"mqtts://127.0.0.1:8883\""),
    ]
}

fn files() -> Vec<Case> {
    let c = |name, key| case("file", name, key);
    let mut elsewhere = c("relative sites_file present only in the working directory", "server.sites_file")
        .server("sites_file = \"sites.toml\"");
    elsewhere.cwd_elsewhere = true;
    let mut missing = c("the config file itself missing", "hj212d.toml");
    missing.missing_file = true;
    vec![
        c("admin_token_file missing", "server.admin_token_file").server("admin_token_file = \"admin.token\""),
        c("admin_token_file of 5 characters", "server.admin_token_file")
            .server("admin_token_file = \"admin.token\"")
            .setup(|d| file(d, "admin.token", "short")),
        c("admin_token_file is a folder", "server.admin_token_file")
            .server("admin_token_file = \"tokendir\"")
            .setup(|d| std::fs::create_dir_all(d.join("tokendir"))),
        c("admin_read_token_file missing", "server.admin_read_token_file")
            .server("admin_read_token_file = \"read.token\""),
        c("influx token_file missing", "influx.token_file")
            .table("[influx]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"nope\""),
        c("mqtt password_file missing", "mqtt.password_file")
            .table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\nusername = \"u\"\npassword_file = \"nope\""),
        c("mqtt ca_file missing", "mqtt.ca_file").table("[mqtt]\nurl = \"mqtt://127.0.0.1\"\nca_file = \"nope.pem\""),
        c("SM4 key_file missing", "sites[0].key_file").site("encryption = \"optional\"\nkey_file = \"nope.key\""),
        c("SM4 key_file of the wrong length", "sites[0].key_file")
            .site("encryption = \"optional\"\nkey_file = \"sm4.key\"")
            .setup(|d| file(d, "sm4.key", "0123456789")),
        c("signing_key_file not 64 hex digits", "archive.signing_key_file")
            .table("[archive]\nsigning_key_file = \"signing.key\"")
            .setup(|d| file(d, "signing.key", "not a key")),
        c("signing_key_file in a folder that does not exist", "archive.signing_key_file")
            .table("[archive]\nsigning_key_file = \"no/such/folder/signing.key\""),
        c("sites_file missing", "server.sites_file").server("sites_file = \"sites.toml\""),
        c("sites_file with an unknown key", "colour")
            .server("sites_file = \"sites.toml\"")
            .setup(|d| file(d, "sites.toml", "[[sites]]\nmn = \"S2\"\npassword = \"1\"\ncolour = \"red\"\n")),
        elsewhere,
        missing,
    ]
}

fn syntax() -> Vec<Case> {
    let c = |name, key| case("TOML syntax", name, key);
    let raw = |name, key, text: &str| {
        let mut case = c(name, key);
        case.raw = Some(text.to_owned());
        case
    };
    vec![
        raw("an unclosed string", "line", "[server]\nlisten = \"{listen}\nhttp_listen = \"{http}\"\n"),
        raw(
            "a key given twice",
            "listen",
            "[server]\nlisten = \"{listen}\"\nlisten = \"{listen}\"\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\n",
        ),
        raw(
            "[server] twice",
            "server",
            "[server]\nlisten = \"{listen}\"\n[server]\nhttp_listen = \"{http}\"\ndata_dir = \"data\"\n",
        ),
        raw("not TOML at all", "line", "<config><listen>0.0.0.0:9212</listen></config>\n"),
    ]
}

fn host() -> Vec<Case> {
    let c = |name, key| case("host", name, key);
    let mut file_dir = c("data_dir is a file", "server.data_dir").setup(|d| file(d, "datafile", "x"));
    file_dir.data_dir = "datafile";
    let mut under_file = c("data_dir under a file", "server.data_dir").setup(|d| file(d, "datafile", "x"));
    under_file.data_dir = "datafile/data";
    let mut relative = c("relative data_dir resolving under a file (../)", "server.data_dir")
        .setup(|d| file(d.parent().unwrap_or(d), "sibling-file", "x"));
    relative.data_dir = "../sibling-file/data";
    let mut sysfs = c("data_dir where no file can be created (/sys/kernel)", "server.data_dir");
    sysfs.data_dir = "/sys/kernel";
    let mut foreign = c("listen address not on this host (192.0.2.1)", "server.listen");
    foreign.listen = Some("192.0.2.1:9212");
    let mut foreign_http = c("http_listen address not on this host (10.255.255.1)", "server.http_listen");
    foreign_http.http = Some("10.255.255.1:9213");
    let mut held = c("listen port in use by another program", "server.listen");
    held.held = Some(Held::Listen);
    let mut held_http = c("http_listen port in use by another program", "server.http_listen");
    held_http.held = Some(Held::Http);
    vec![file_dir, under_file, relative, sysfs, foreign, foreign_http, held, held_http]
}

/// Every case.
pub fn corpus() -> Vec<Case> {
    [unknown_keys(), wrong_types(), impossible_values(), files(), syntax(), host()].concat()
}
