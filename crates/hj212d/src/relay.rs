//! The command hub as the forwarders' relay (`relay_commands`): an upstream's command is
//! checked like an operator's (the site's `allow_raw_commands` included) and queued for the
//! logger; its progress is read back from the command book.

use std::collections::BTreeMap;
use std::sync::Arc;

use hj212_commands::{Command, Exchange, Origin, State};
use hj212_forward::{Progress, Relay};
use hj212_server::Shared;

/// HJ 212-2017 Table 6: ExeRtn 4 (communication timeout) for a command that was never answered
/// or never delivered, 2 (failed, reason unknown) for one an operator cancelled.
const EXE_TIMEOUT: u16 = 4;
const EXE_FAILED: u16 = 2;

pub(crate) struct HubRelay(pub Arc<Shared>);

impl Relay for HubRelay {
    fn submit(&self, mn: &str, cn: u16, cp: &str) -> Result<u64, String> {
        let sites = self.0.registry.snapshot();
        let site = sites.get(mn).ok_or_else(|| format!("no configured site with MN {mn}"))?;
        let fields: BTreeMap<String, String> = cp
            .split([';', ','])
            .filter_map(|field| field.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let spec = hj212_commands::check(&format!("{cn:04}"), &fields, site.config.allow_raw_commands)
            .map_err(|e| e.to_string())?;
        let command = self.0.commands.submit(mn, spec, Origin::Upstream, None, hj212_commands::now_ms());
        command.map(|c| c.id).map_err(|e| e.to_string())
    }

    fn progress(&self, id: u64) -> Option<Progress> {
        self.0.commands.get(id).ok().flatten().map(|command| progress(&command))
    }
}

fn progress(command: &Command) -> Progress {
    let exe_rtn = command.exe_rtn.or(match command.state {
        State::Failed | State::Expired => Some(EXE_TIMEOUT),
        State::Cancelled => Some(EXE_FAILED),
        _ => None,
    });
    Progress {
        qn_rtn: command.qn_rtn,
        exe_rtn,
        notified: command.spec.exchange == Exchange::Notification && command.state == State::Completed,
        finished: command.state.is_final(),
    }
}
