use std::collections::BTreeMap;

use super::*;

const MN: &str = "M1";

fn hub(dir: &Path) -> Arc<Hub> {
    let settings = Settings { request_timeout_secs: 10, sends: 3, ttl_secs: 60, ..Settings::default() };
    Hub::open(&dir.join("commands.sqlite"), settings).unwrap()
}

fn history() -> CommandSpec {
    let cp: BTreeMap<String, String> =
        [("BeginTime", "20261101030000"), ("EndTime", "20261101040000")].map(|(k, v)| (k.into(), v.into())).into();
    crate::check("2061", &cp, false).unwrap()
}

fn carrier() -> (Carrier, Arc<Mailbox>) {
    let mailbox = Arc::new(Mailbox::default());
    (Carrier { conn: 1, mailbox: mailbox.clone() }, mailbox)
}

/// The one command posted to `mailbox`.
fn posted(mailbox: &Mailbox) -> Outgoing {
    let mut taken = std::mem::take(&mut mailbox.inner.lock().unwrap().commands);
    assert_eq!(taken.len(), 1, "{taken:?}");
    taken.remove(0)
}

#[test]
fn a_queued_command_expires_when_no_connection_comes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let command = hub.submit(MN, history(), Origin::Api, Some(1000), 0).unwrap();
    hub.tick(999);
    assert_eq!(hub.get(command.id).unwrap().unwrap().state, State::Queued);
    hub.tick(1000);
    assert_eq!(hub.get(command.id).unwrap().unwrap().state, State::Expired);
}

#[test]
fn records_in_the_range_are_counted_and_the_9012_completes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let (carrier, rx) = carrier();
    hub.attach(MN, carrier);
    let command = hub.submit(MN, history(), Origin::Recovery, None, 0).unwrap();
    hub.tick(5);
    let sent = posted(&rx);
    let qn = BeijingTime::from_unix_millis(sent.qn_ms).to_qn_string();
    assert_eq!(hub.reply(MN, &qn, 9011, Some(1), 10), Matched::Command);
    let in_range = BeijingTime::parse("20261101040000").unwrap().unix_millis();
    hub.upload(MN, 2061, Some("other"), Some(in_range));
    hub.upload(MN, 2061, Some("other"), Some(in_range + 3_600_000)); // outside, fresh QN: not an answer
    hub.upload(MN, 2061, Some(&qn), None); // no DataTime, but our QN
    hub.upload(MN, 2011, Some(&qn), Some(in_range)); // another CN
    assert_eq!(hub.reply(MN, "20000101000000000", 9012, Some(1), 20), Matched::UnknownQn);
    hub.reply(MN, &qn, 9012, Some(1), 20);
    let done = hub.get(command.id).unwrap().unwrap();
    assert_eq!((done.state, done.records, done.exe_rtn), (State::Completed, 2, Some(1)));
}

#[test]
fn no_data_and_execution_timeouts_fail_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let (carrier, rx) = carrier();
    hub.attach(MN, carrier);
    let first = hub.submit(MN, history(), Origin::Api, None, 0).unwrap();
    let second = hub.submit(MN, history(), Origin::Api, None, 0).unwrap();
    hub.tick(0);
    let qn = BeijingTime::from_unix_millis(posted(&rx).qn_ms).to_qn_string();
    hub.reply(MN, &qn, 9012, Some(100), 1);
    let first = hub.get(first.id).unwrap().unwrap();
    assert_eq!((first.state, first.reason.as_deref()), (State::Failed, Some("ExeRtn=100: no data")));

    hub.tick(2);
    let qn = BeijingTime::from_unix_millis(posted(&rx).qn_ms).to_qn_string();
    hub.reply(MN, &qn, 9011, Some(1), 3);
    // 60 s plus 500 ms for each of the 2 records asked.
    hub.tick(3 + 60_999);
    assert_eq!(hub.get(second.id).unwrap().unwrap().state, State::Accepted);
    hub.tick(3 + 61_000);
    let second = hub.get(second.id).unwrap().unwrap();
    assert_eq!(second.state, State::Failed);
    assert!(second.reason.unwrap().starts_with("no 9012 within"));
}

#[test]
fn a_command_in_flight_at_a_restart_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let hub1 = hub(dir.path());
    let (carrier, _rx) = carrier();
    hub1.attach(MN, carrier);
    let command = hub1.submit(MN, history(), Origin::Api, None, 0).unwrap();
    hub1.tick(0);
    assert_eq!(hub1.get(command.id).unwrap().unwrap().state, State::Sent);
    drop(hub1);
    let hub2 = hub(dir.path());
    let again = hub2.get(command.id).unwrap().unwrap();
    assert_eq!((again.state, again.sends), (State::Queued, 0));
    assert!(hub2.has_pending(MN, Origin::Api));
    let next = hub2.submit(MN, history(), Origin::Api, None, 1).unwrap();
    assert!(next.id > command.id, "ids are never reused");
}

#[test]
fn a_full_site_queue_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings { queue_per_site: 1, ..Settings::default() };
    let hub = Hub::open(&dir.path().join("c.sqlite"), settings).unwrap();
    hub.submit(MN, history(), Origin::Api, None, 0).unwrap();
    assert!(matches!(hub.submit(MN, history(), Origin::Api, None, 0), Err(SubmitError::SiteFull { .. })));
    hub.submit("other", history(), Origin::Api, None, 0).unwrap();
}
