//! Every TOML error at once, paths relative to the config file, and the checks against this
//! host (data_dir, listen addresses, secret files) that the daemon would otherwise fail at start.

use std::path::Path;

use hj212_config::{ConfigError, check, from_str, load, warnings};

fn messages(config: &hj212_config::Config) -> Vec<String> {
    check(config).iter().map(ToString::to_string).collect()
}

fn parse_error(text: &str) -> String {
    match from_str(text) {
        Err(ConfigError::Parse { message, .. }) => message,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn every_toml_error_is_reported_not_only_the_first() {
    // Three tables, three errors; and in [server] a wrong type beside an unknown key.
    let message = parse_error(
        "[server]\nlisten = 9212\nlog_levle = \"info\"\n\
         [limits]\nmax_connections = 10\nbogus_limit = 1\n\
         [[sites]]\nmn = \"A\"\npassword = \"p\"\n\
         [[sites]]\nmn = \"B\"\npassword = \"p\"\ncrc = \"crc32\"\n",
    );
    assert!(message.starts_with("4 errors\n"), "{message}");
    for (line, needle) in
        [(2, "expected socket address"), (3, "log_levle"), (6, "bogus_limit"), (13, "unknown variant `crc32`")]
    {
        let at = message.find(needle).unwrap_or_else(|| panic!("{needle} not reported in:\n{message}"));
        let before = &message[..at];
        let reported_line = before.rfind("at line ").map(|i| &before[i + 8..]).unwrap_or_default();
        assert!(reported_line.starts_with(&format!("{line},")), "{needle} reported at line {line}:\n{message}");
    }
}

#[test]
fn every_syntax_error_is_reported() {
    let message = parse_error("[server]\nlisten = \"0.0.0.0:9212\nhttp_listen = \"127.0.0.1:9213\"\n[limits\n");
    assert!(message.contains("at line 2") && message.contains("at line 4"), "{message}");
}

#[test]
fn a_valid_config_still_parses_and_a_single_error_is_not_counted() {
    assert!(from_str("[server]\nlog_format = \"json\"\nlog_utc_offset = \"-05:30\"\n").is_ok());
    let message = parse_error("[server]\nlog_format = \"xml\"\n");
    assert!(message.starts_with("TOML parse error at line 2") && message.contains("xml"), "{message}");
    let message = parse_error("[server]\nlog_utc_offset = \"CST\"\n");
    assert!(message.contains("\"CST\" is not a UTC offset"), "{message}");
}

#[test]
fn data_dir_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hj212d.toml");
    std::fs::write(&path, "[server]\ndata_dir = \"./data\"\n").unwrap();
    assert_eq!(load(&path).unwrap().server.data_dir, dir.path().join("./data"));
    std::fs::write(&path, "[server]\ndata_dir = \"/var/lib/hj212d\"\n").unwrap();
    assert_eq!(load(&path).unwrap().server.data_dir, Path::new("/var/lib/hj212d"));
}

#[test]
fn data_dir_must_be_creatable_and_the_check_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (data_dir, expected) in [
        (file.clone(), format!("{} is a file, not a directory", file.display())),
        (file.join("data"), format!("{} is a file, not a directory", file.display())),
        // Not even root can create files in /proc.
        ("/proc/hj212d/data".into(), "cannot create files in /proc (to create /proc/hj212d/data): ".to_owned()),
        ("".into(), "must not be empty".to_owned()),
    ] {
        let mut config = hj212_config::Config::default();
        config.server.data_dir = data_dir.clone();
        let problems = messages(&config);
        let wanted = format!("server.data_dir: {expected}");
        assert!(problems.iter().any(|p| p.starts_with(&wanted)), "{}: {problems:?}", data_dir.display());
    }
    // A creatable data_dir (its parent exists) and an existing one pass, and no probe is left.
    for data_dir in [dir.path().join("new/data"), dir.path().to_path_buf()] {
        let mut config = hj212_config::Config::default();
        config.server.data_dir = data_dir;
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        assert_eq!(messages(&config), Vec::<String>::new());
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["a-file"], "nothing created by the check");
}

#[test]
fn listen_addresses_must_be_on_this_host() {
    let dir = tempfile::tempdir().unwrap();
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is on no host; binding it sends nothing.
    let text = format!(
        "[server]\nlisten = \"192.0.2.1:9212\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
        dir.path().display()
    );
    assert_eq!(messages(&from_str(&text).unwrap()), ["server.listen: 192.0.2.1 is not an address of this host"]);
}

#[test]
fn a_port_in_use_is_a_warning_naming_the_key() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let config = from_str(&format!("[server]\nhttp_listen = \"{addr}\"\n")).unwrap();
    let found: Vec<String> = warnings(&config).iter().map(ToString::to_string).collect();
    assert!(found.iter().any(|w| w.starts_with(&format!("server.http_listen: {addr} is in use"))), "{found:?}");
}

#[test]
fn secret_files_must_be_readable_not_only_present() {
    let dir = tempfile::tempdir().unwrap();
    // A directory exists but cannot be read as a file, whoever runs the check.
    let folder = dir.path().join("token.d");
    std::fs::create_dir(&folder).unwrap();
    let path = dir.path().join("hj212d.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [influx]\nurl = \"http://127.0.0.1:8428\"\napi = \"v1\"\ndb = \"x\"\ntoken_file = \"token.d\"\n\
         [mqtt]\nurl = \"mqtts://127.0.0.1\"\nusername = \"u\"\npassword_file = \"token.d\"\nca_file = \"missing.pem\"\n",
    )
    .unwrap();
    let problems = messages(&load(&path).unwrap());
    let is_dir = format!("cannot read {}: Is a directory", folder.display());
    assert!(problems.iter().any(|p| p.starts_with(&format!("influx.token_file: {is_dir}"))), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with(&format!("mqtt.password_file: {is_dir}"))), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("mqtt.ca_file: cannot read ")), "{problems:?}");
}

#[test]
fn a_configured_signing_key_must_exist_and_only_the_default_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let text = |table: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{table}",
            data_dir.display()
        )
    };
    let mut config = from_str(&text("")).unwrap();
    config.source = Some(dir.path().join("hj212d.toml"));
    assert!(messages(&config).is_empty(), "the default key is created at start: {:?}", messages(&config));

    let mut config = from_str(&text("[archive]\nsigning_key_file = \"no/such/folder/signing.key\"\n")).unwrap();
    config.source = Some(dir.path().join("hj212d.toml"));
    let problems = messages(&config);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("archive.signing_key_file: "), "{problems:?}");
    assert!(problems[0].contains("does not exist: make it with `hj212d generate-signing-key"), "{problems:?}");
    assert!(!dir.path().join("no").exists(), "the check creates nothing");
}
