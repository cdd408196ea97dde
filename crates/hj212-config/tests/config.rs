//! Config loading and checking, including every sample config in `config/` and `deploy/`.

use std::path::PathBuf;

use hj212_config::{Config, CrcSetting, check, default_toml, from_str, load};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample_configs() -> Vec<PathBuf> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["config", "deploy"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_some_and(|e| e == "toml") && !name.starts_with("sites") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn every_sample_config_loads_and_checks_clean() {
    let files = sample_configs();
    assert!(!files.is_empty(), "config/ has sample configs");
    for path in files {
        let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut problems = check(&config);
        // deploy/hj212d.toml names the key the package's postinst makes; on a host without it
        // that is the one problem expected.
        let installed_key = std::path::Path::new("/etc/hj212d/archive-signing.key");
        if path.starts_with(root().join("deploy")) && !installed_key.exists() {
            problems.retain(|p| !(p.key == "archive.signing_key_file" && p.message.contains("does not exist")));
        }
        assert_eq!(problems, [], "{}", path.display());
    }
}

#[test]
fn a_bogus_key_in_every_table_is_rejected_by_name() {
    for path in sample_configs() {
        let text = std::fs::read_to_string(&path).unwrap();
        let tables: Vec<String> = text.lines().filter(|l| l.starts_with('[')).map(|l| l.trim().to_owned()).collect();
        for table in tables {
            let injected = text.replacen(&table, &format!("{table}\nbogus_key_xyz = 1"), 1);
            let err = from_str(&injected).expect_err(&format!("{}: bogus key in {table} accepted", path.display()));
            assert!(err.to_string().contains("bogus_key_xyz"), "{table}: {err}");
        }
        let injected = format!("bogus_top_level = 1\n{text}");
        assert!(from_str(&injected).unwrap_err().to_string().contains("bogus_top_level"));
    }
}

#[test]
fn defaults_round_trip_and_match_the_documentation() {
    let text = default_toml().unwrap();
    let parsed = from_str(&text).unwrap();
    assert_eq!(parsed, Config::default());
    let c = Config::default();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9212");
    assert_eq!(c.server.http_listen.to_string(), "127.0.0.1:9213");
    assert_eq!((c.limits.max_connections, c.limits.max_frame_len, c.limits.max_auth_failures), (10_000, 9999, 5));
    assert_eq!((c.limits.future_skew_secs, c.time_sync.max_offset_secs), (60, 30));
    assert_eq!(c.archive.retention_days, 0);
}

#[test]
fn check_reports_every_problem_with_its_key() {
    let config = from_str(
        r#"
        [server]
        listen = "127.0.0.1:9000"
        http_listen = "127.0.0.1:9000"
        [limits]
        max_frame_len = 10000
        max_connections = 0
        stop_drain_secs = 0
        [[sites]]
        mn = "A;B"
        password = "secret;1"
        factors = ["a21026-Rtd"]
        [[sites]]
        mn = "A;B"
        password = "x"
        crc = "modbus_swapped"
        "#,
    )
    .unwrap();
    assert_eq!(config.sites[1].crc, CrcSetting::ModbusSwapped);
    let problems: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "server.http_listen: 127.0.0.1:9000 is also server.listen",
            "limits.max_frame_len: 10000 is outside 1..=9999",
            "limits.max_connections: must be at least 1",
            "limits.stop_drain_secs: must be at least 1 second",
            "sites[0].mn: \"A;B\" is not 1-24 characters without separators",
            "sites[0].password: must be non-empty and contain no ; , = & CR LF",
            "sites[0].factors[0]: \"a21026-Rtd\" is not a factor code",
            "sites[1].mn: \"A;B\" is not 1-24 characters without separators",
            "sites[1].mn: A;B is configured twice",
        ]
    );
    assert!(problems.iter().all(|p| !p.contains("secret")), "passwords never echoed");
}

#[test]
fn sites_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), "[[sites]]\nmn = \"M2\"\npassword = \"p\"\n").unwrap();
    let config_path = dir.path().join("hj212d.toml");
    std::fs::write(&config_path, "[server]\nsites_file = \"sites.toml\"\n[[sites]]\nmn = \"M1\"\npassword = \"p\"\n")
        .unwrap();
    let config = load(&config_path).unwrap();
    let mns: Vec<&str> = config.sites.iter().map(|s| s.mn.as_str()).collect();
    assert_eq!(mns, ["M1", "M2"]);
    assert_eq!(check(&config), []);
    std::fs::remove_file(dir.path().join("sites.toml")).unwrap();
    // The error names the key as well as the file (the configs trial of scripts/reliability).
    let err = load(&config_path).unwrap_err().to_string();
    assert!(err.starts_with("server.sites_file: cannot read ") && err.contains("sites.toml"), "{err}");
}

#[test]
fn influx_section_is_checked_and_its_token_never_printed() {
    let config = from_str(
        r#"
        [influx]
        url = "127.0.0.1:8086"
        api = "v2"
        token = "s3cr3t-token"
        token_file = "influx.token"
        batch_points = 0
        max_in_flight = 65
        "#,
    )
    .unwrap();
    let problems: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "influx.url: \"127.0.0.1:8086\" is not an http:// or https:// URL",
            "influx.bucket: api = \"v2\" needs org and bucket",
            "influx.token: set token or token_file, not both",
            "influx.token_file: cannot read ./influx.token: No such file or directory (os error 2)",
            "influx.batch_points: must be at least 1",
            "influx.max_in_flight: must be 1 to 64",
        ]
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cr3t-token") && debug.contains("token: Some(\"***\")"), "{debug}");
    let v1 = from_str("[influx]\nurl = \"http://127.0.0.1:8428\"\napi = \"v1\"\ndb = \"hj212\"\n").unwrap();
    assert_eq!(check(&v1), []);
    assert!(from_str("[influx]\nurl = \"http://x\"\napi = \"v3\"\n").is_err());
}

#[test]
fn site_passwords_never_appear_in_debug_output() {
    let config = from_str("[[sites]]\nmn = \"M\"\npassword = \"pa55word\"\n").unwrap();
    assert!(!format!("{config:?}").contains("pa55word"));
}

#[test]
fn alert_rules_limits_and_mqtt_are_checked() {
    let config = from_str(
        r#"
        [mqtt]
        url = "tcp://127.0.0.1:1883"
        topic_prefix = "hj212/#"
        password_file = "/nonexistent/mqtt-password"
        [alerts]
        offline_intervals = 0
        hysteresis_percent = 100
        [[sites]]
        mn = "88888880000001"
        password = "123456"
        [sites.alerts]
        clock_drift_secs = 0
        [[sites.limits]]
        factor = "a21026"
        max = 35.0
        min = 40.0
        reference_o2 = 21.0
        [[sites.limits]]
        factor = "a21026"
        range = [500.0, 0.0]
        [[sites.limits]]
        factor = "w01018"
        "#,
    )
    .unwrap();
    let problems: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "mqtt.url: \"tcp://127.0.0.1:1883\": unknown scheme \"tcp\" (expected mqtt:// or mqtts://)",
            "mqtt.topic_prefix: \"hj212/#\" must be a topic without wildcards, NUL, a leading $ or a leading/trailing /",
            "mqtt.password_file: a password needs a username (MQTT 3.1.1)",
            "mqtt.password_file: cannot read /nonexistent/mqtt-password: No such file or directory (os error 2)",
            "alerts.offline_intervals: must be at least 1",
            "alerts.hysteresis_percent: must be below 100",
            "sites[0].alerts.clock_drift_secs: must be at least 1",
            "sites[0].limits[0].min: 40 is not below max 35",
            "sites[0].limits[0].reference_o2: must be between 0 and 20 (%)",
            "sites[0].limits[1].factor: a21026 has two limits entries; merge them",
            "sites[0].limits[1].range: [500, 0] is not [low, high]",
            "sites[0].limits[2].max: set at least one of max, min, max_step or range",
        ]
    );
    let defaults = hj212_config::AlertRules::default();
    assert_eq!(
        (defaults.expected_interval_secs, defaults.offline_intervals, defaults.record_grace_minutes),
        (300, 3, 10)
    );
    assert_eq!((defaults.clock_drift_secs, defaults.hysteresis_percent.0), (60, 500));
}

#[test]
fn encryption_needs_a_readable_key_and_never_echoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "secret-but-wrong-length").unwrap();
    let text = format!(
        "[[sites]]\nmn = \"A\"\npassword = \"1\"\nencryption = \"required\"\n\
         [[sites]]\nmn = \"B\"\npassword = \"1\"\nencryption = \"optional\"\nkey_file = \"{}\"\nprevious_key_file = \"/nonexistent.key\"\n",
        bad.display()
    );
    let problems: Vec<String> = check(&from_str(&text).unwrap()).iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0], "sites[0].key_file: encryption = required needs a key_file");
    assert!(problems[1].starts_with("sites[1].key_file: ") && problems[1].contains("found 23 characters"));
    assert!(problems[2].starts_with("sites[1].previous_key_file: cannot read /nonexistent.key"));
    assert!(problems.iter().all(|p| !p.contains("secret")), "key contents never echoed");
}

#[test]
fn admin_http_bounds_and_the_read_token_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.token"), "short\n").unwrap();
    let config_path = dir.path().join("hj212d.toml");
    std::fs::write(
        &config_path,
        "[server]\nadmin_read_token_file = \"read.token\"\n\
         [http]\nmax_connections = 0\nheader_read_timeout_secs = 0\nmax_range_days = 4000\nmax_minute_range_days = 0\n",
    )
    .unwrap();
    let config = load(&config_path).unwrap();
    let problems: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
    let read_token = dir.path().join("read.token");
    assert_eq!(
        problems,
        [
            format!("server.admin_read_token_file: {} holds a token shorter than 16 characters", read_token.display()),
            "http.max_connections: must be at least 1".to_owned(),
            "http.header_read_timeout_secs: must be at least 1".to_owned(),
            "http.max_range_days: 4000 is outside 1..=3660 (one query's memory grows with its range)".to_owned(),
            "http.max_minute_range_days: 0 is outside 1..=366 (one query's memory grows with its range)".to_owned(),
        ]
    );
    std::fs::write(&read_token, "reader-token-0123456789\n").unwrap();
    assert_eq!(hj212_config::admin_read_token(&config).unwrap().as_deref(), Some("reader-token-0123456789"));
    let http = Config::default().http;
    assert_eq!((http.max_connections, http.header_read_timeout_secs, http.request_timeout_secs), (64, 10, 30));
    assert_eq!((http.max_range_days, http.max_minute_range_days, http.max_concurrent_queries), (366, 31, 2));
    assert_eq!((http.shutdown_grace_secs, http.query_wait_secs), (5, 5));
}

#[test]
fn every_mqtt_value_is_checked_here_once() {
    let config = from_str(
        r#"
        [mqtt]
        url = "mqtt://127.0.0.1"
        topic_prefix = "$SYS"
        client_id = " hj212d"
        ca_file = "/etc/ssl/certs/ca-certificates.crt"
        keep_alive_secs = 70000
        max_in_flight = 0
        max_backoff_secs = 0
        "#,
    )
    .unwrap();
    let keys: Vec<String> = check(&config).into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "mqtt.ca_file",
            "mqtt.topic_prefix",
            "mqtt.client_id",
            "mqtt.keep_alive_secs",
            "mqtt.max_in_flight",
            "mqtt.max_backoff_secs"
        ]
    );
    let mut good = config.clone();
    good.mqtt = Some(hj212_config::Mqtt { url: "mqtts://[::1]:8884".into(), ..config.mqtt.clone().unwrap() });
    let mqtt = good.mqtt.as_mut().unwrap();
    (mqtt.topic_prefix, mqtt.client_id, mqtt.keep_alive_secs) = ("plant/a".into(), "hj212d".into(), 30);
    (mqtt.max_in_flight, mqtt.max_backoff_secs) = (64, 30);
    assert!(check(&good).is_empty(), "{:?}", check(&good));
}

#[test]
fn the_nodes_of_a_cluster_connect_to_the_broker_each_with_an_id_of_its_own() {
    let node = |name: &str, client_id: Option<&str>| {
        let id = client_id.map(|id| format!("client_id = \"{id}\"\n")).unwrap_or_default();
        from_str(&format!(
            "[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\nnode = \"{name}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1\"\n{id}"
        ))
        .unwrap()
    };
    let id = |config: &Config| config.mqtt.as_ref().unwrap().node_client_id(config.cluster.as_ref());
    // The same [mqtt] on both nodes: the broker would drop one whenever the other connects.
    assert_eq!((id(&node("a", None)), id(&node("b", None))), ("hj212d-a".into(), "hj212d-b".into()));
    assert_eq!(id(&node("a", Some("plant-a"))), "plant-a", "an id set in the config is used as is");
    let single = from_str("[mqtt]\nurl = \"mqtt://127.0.0.1\"\n").unwrap();
    assert_eq!(id(&single), "hj212d");
    assert!(check(&node("sixteen-chars-ab", None)).is_empty(), "hj212d-{{16 characters}} fits in 23");
    let long = check(&node("seventeen-chars-a", None));
    assert_eq!(long.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["mqtt.client_id"], "{long:?}");
    assert!(long[0].message.contains("hj212d-seventeen-chars-a"), "{long:?}");
    assert!(check(&node("seventeen-chars-a", Some("hj212d-node-17"))).is_empty());
}

#[test]
fn forward_rewrites_and_encrypting_sites_are_checked_and_never_echo_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("site.key");
    std::fs::write(&key, "0123456789ABCDEF").unwrap();
    let text = format!(
        "[[sites]]\nmn = \"A\"\npassword = \"1\"\nencryption = \"required\"\nkey_file = \"{key}\"\n\
         [[sites]]\nmn = \"B\"\npassword = \"1\"\n\
         [[forward]]\nname = \"up\"\naddress = \"127.0.0.1:1\"\nconnections = 0\nresends = 0\n\
         [[forward.rewrite]]\nmn = \"B\"\nupstream_mn = \"has;semicolon\"\nupstream_password = \"p w-secret\"\n\
         [[forward.rewrite]]\nmn = \"B\"\n\
         [[forward.rewrite]]\nmn = \"Z\"\nkey_file = \"/nonexistent.key\"\n",
        key = key.display()
    );
    let problems: Vec<String> = check(&from_str(&text).unwrap()).iter().map(ToString::to_string).collect();
    let expected = [
        "forward[0].connections: 0 is outside 1..=64",
        "forward[0].resends: must be at least 1",
        "forward[0].rewrite[0].upstream_mn: \"has;semicolon\" must be 1-24 characters",
        "forward[0].rewrite[0].upstream_password: must be 1 or more characters",
        "forward[0].rewrite[1].mn: \"B\" is rewritten twice",
        "forward[0].rewrite[2].mn: \"Z\" is not a site this target forwards",
        "forward[0].rewrite[2].key_file: cannot read /nonexistent.key",
        "forward[0].rewrite: site A sends HJ 212-2025 encrypted frames: give it a key_file",
    ];
    for wanted in expected {
        assert!(problems.iter().any(|p| p.starts_with(wanted)), "{wanted:?} not in {problems:?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:?}");
    assert!(problems.iter().all(|p| !p.contains("secret")), "the upstream password is never echoed");
    let plain = text.replace("resends = 0\n", "resends = 1\nsend_plain = true\n");
    let problems: Vec<String> = check(&from_str(&plain).unwrap()).iter().map(ToString::to_string).collect();
    assert!(!problems.iter().any(|p| p.contains("site A sends")), "send_plain = true is a choice: {problems:?}");
}

#[test]
fn public_url_and_fleet_settings_are_checked() {
    let config = from_str(
        r#"
        [http]
        public_url = "hj212.example.cn/console"
        [alerts]
        fleet_outage_window_secs = 0
        [[sites]]
        mn = "fleet"
        password = "123456"
        [sites.alerts]
        fleet_outage_sites = 3
        "#,
    )
    .unwrap();
    let problems: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "alerts.fleet_outage_window_secs: must be at least 1 (or fleet_outage_sites = 0: off)",
            "sites[0].mn: \"fleet\" is reserved (fleet-wide alerts use it)",
            "sites[0].alerts.fleet_outage_sites: a fleet setting: set it in the top-level [alerts]",
            "http.public_url: \"hj212.example.cn/console\" is not an absolute http:// or https:// URL",
        ]
    );
    for (url, ok) in [
        ("https://hj212.example.cn", true),
        ("http://10.0.0.5:9213/hj212/", true),
        ("https://", false),
        ("https://user:pw@host", false),
        ("https://host/a b", false),
        ("https://host/?x=1", false),
        ("ftp://host", false),
    ] {
        let config = from_str(&format!("[http]\npublic_url = {url:?}\n")).unwrap();
        assert_eq!(check(&config).is_empty(), ok, "{url}: {:?}", check(&config));
    }
    let defaults = hj212_config::AlertRules::default();
    assert_eq!((defaults.fleet_outage_sites, defaults.fleet_outage_window_secs), (10, 300));
}
