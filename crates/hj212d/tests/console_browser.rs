//! The console in a real browser: Debian Chromium driven through ChromeDriver (WebDriver).
//! An operator signs in, watches a site come online when its logger sends a frame (the page
//! refreshes itself), switches to English, records a downtime mark, opens the site's daily
//! report, sees the fleet on a phone-sized screen and acknowledges an alert with a note. A screenshot
//! of each page is taken; with `HJ212D_SCREENSHOTS=DIR` they are kept there (docs/images holds
//! the ones the docs show).

mod common;

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use common::{MN, TestDaemon, frame};
use fantoccini::{Client, ClientBuilder, Locator};
use hj212_config::{Role, User};
use test_support::chromedriver::ChromeDriver;

const PASSWORD: &str = "correct horse 1";

async fn browser(driver: &ChromeDriver) -> Client {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(driver.capabilities()).connect(&driver.url()).await.expect("a session")
}

/// Waits up to `secs` for `css` to hold `text` (the page refreshes its live part every 10 s).
async fn wait_text(browser: &Client, css: &str, text: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && element.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{css} did not show {text:?} within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn screenshot(browser: &Client, dir: &std::path::Path, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(format!("console-{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_site_come_online_and_acknowledges_its_alert_in_chromium() {
    let hash = Argon2::default().hash_password(PASSWORD.as_bytes()).unwrap().to_string();
    let daemon = TestDaemon::start_with(|config| {
        config.users = vec![User { name: "wang".into(), password_hash: hash, role: Role::Operator }];
        config.sites[0].name = "华能电厂 1 号机组".into();
    })
    .await;
    let shots = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("HJ212D_SCREENSHOTS").map(std::path::PathBuf::from);
    let shot_dir = kept.as_deref().unwrap_or(shots.path());
    let driver = ChromeDriver::start();
    let browser = browser(&driver).await;
    let base = format!("http://{}", daemon.running.http_addr);

    browser.goto(&format!("{base}/console/")).await.unwrap();
    browser.find(Locator::Css("input[name=user]")).await.unwrap().send_keys("wang").await.unwrap();
    browser.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    screenshot(&browser, shot_dir, "sign-in").await;
    browser.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
    let row = format!("tr[data-mn='{MN}']");
    wait_text(&browser, &row, "离线", 10).await;

    // The logger connects and sends: the open page shows the site online by itself.
    let mut logger = daemon.client().await;
    logger.send(&common::realtime("20261201000000001", &common::beijing_in(0), 5)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    wait_text(&browser, &row, "在线", 25).await;
    screenshot(&browser, shot_dir, "fleet").await;

    browser.find(Locator::Css(&format!("{row} a"))).await.unwrap().click().await.unwrap();
    wait_text(&browser, "#latest", "二氧化硫", 10).await;
    browser.find(Locator::Css("a.lang")).await.unwrap().click().await.unwrap();
    wait_text(&browser, "#latest", "sulphur dioxide", 10).await;
    screenshot(&browser, shot_dir, "site").await;

    // A downtime mark through the site's form (the date pickers filled as a person's picks).
    let pick = "document.querySelector('#mark-form [name=from]').value = '2026-11-30T08:00';\
                document.querySelector('#mark-form [name=to]').value = '2026-11-30T20:00';";
    browser.execute(pick, vec![]).await.unwrap();
    browser.find(Locator::Css("#mark-form [name=reason]")).await.unwrap().send_keys("停产检修").await.unwrap();
    browser.find(Locator::Css("#mark-form [name=evidence]")).await.unwrap().send_keys("TZ-2026-118").await.unwrap();
    browser.find(Locator::Css("#mark-form button")).await.unwrap().click().await.unwrap();
    wait_text(&browser, "#marks", "TZ-2026-118", 15).await;
    assert!(browser.find(Locator::Css("#marks")).await.unwrap().text().await.unwrap().contains("wang"));

    // Yesterday's daily report of the site, as the page links it.
    browser.find(Locator::Css("ul.reports li:first-child a")).await.unwrap().click().await.unwrap();
    wait_text(&browser, "body", MN, 15).await;
    browser.back().await.unwrap();

    // On a phone's screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/console/?lang=zh")).await.unwrap();
    wait_text(&browser, &row, "在线", 10).await;
    screenshot(&browser, shot_dir, "fleet-phone").await;
    browser.set_window_size(1280, 900).await.unwrap();

    // A wrong password from the site's MN: an alert, acknowledged with a note.
    let wrong = frame(&format!(
        "QN=20261201000000002;ST=31;CN=2011;PW=999999;MN={MN};Flag=5;CP=&&DataTime={};a21026-Rtd=1&&",
        common::beijing_in(0)
    ));
    logger.send(&wrong).await;
    browser.goto(&format!("{base}/console/alerts")).await.unwrap();
    wait_text(&browser, "main", "密码错误", 25).await;
    browser.find(Locator::Css("form.ack input[name=note]")).await.unwrap().send_keys("已电话联系运维").await.unwrap();
    screenshot(&browser, shot_dir, "alerts").await;
    browser.find(Locator::Css("form.ack button")).await.unwrap().click().await.unwrap();
    wait_text(&browser, "main", "wang · 已电话联系运维", 10).await;

    let listed: serde_json::Value = serde_json::from_str(&daemon.http("/api/v1/alerts").1).unwrap();
    assert_eq!(listed["alerts"][0]["acked_by"], "wang");
    browser.close().await.unwrap();
    daemon.stop().await;
}
