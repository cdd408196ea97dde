//! Alert kinds, states and severities: stable names for topics, metrics, the API and the store.

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A valid hourly or daily average outside its limit (超标).
    Exceedance,
    /// A real-time value outside the limit: the average may follow (pre-alert).
    ExceedanceWarning,
    /// O2 at or above 20 %: no converted concentration can be computed.
    ImplausibleO2,
    Negative,
    /// Zero while the source runs.
    Zero,
    /// The same value for hours (恒值).
    FlatLine,
    /// A step between consecutive values beyond the step limit (突变).
    Jump,
    /// Outside the instrument's range, or flagged T.
    OutOfRange,
    /// A data flag other than N.
    AbnormalFlag,
    /// M, C or D flags for hours in a row.
    FlagRun,
    /// No frame from the site for too long (掉线).
    Offline,
    /// A period's record (hourly at HH+10 min) has not arrived.
    RecordMissing,
    /// The logger's clock is off.
    ClockDrift,
    /// Frames with this site's MN and a wrong password (misconfiguration or spoofing).
    AuthFailure,
    /// A resend of a stored record with different values (possible tampering).
    Tamper,
    /// Many sites offline at once (the platform's link, not the sites): one message for all.
    FleetOutage,
}

impl AlertKind {
    pub const ALL: [Self; 16] = [
        Self::Exceedance,
        Self::ExceedanceWarning,
        Self::ImplausibleO2,
        Self::Negative,
        Self::Zero,
        Self::FlatLine,
        Self::Jump,
        Self::OutOfRange,
        Self::AbnormalFlag,
        Self::FlagRun,
        Self::Offline,
        Self::RecordMissing,
        Self::ClockDrift,
        Self::AuthFailure,
        Self::Tamper,
        Self::FleetOutage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exceedance => "exceedance",
            Self::ExceedanceWarning => "exceedance_warning",
            Self::ImplausibleO2 => "implausible_o2",
            Self::Negative => "negative",
            Self::Zero => "zero",
            Self::FlatLine => "flat_line",
            Self::Jump => "jump",
            Self::OutOfRange => "out_of_range",
            Self::AbnormalFlag => "abnormal_flag",
            Self::FlagRun => "flag_run",
            Self::Offline => "offline",
            Self::RecordMissing => "record_missing",
            Self::ClockDrift => "clock_drift",
            Self::AuthFailure => "auth_failure",
            Self::Tamper => "tamper",
            Self::FleetOutage => "fleet_outage",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// How urgent: exceedance, offline and tampering need someone now.
    pub fn severity(self) -> Severity {
        match self {
            Self::Exceedance | Self::Offline | Self::Tamper | Self::FleetOutage => Severity::Critical,
            Self::AbnormalFlag => Severity::Info,
            _ => Severity::Warning,
        }
    }

    /// What it is called, in Chinese and English.
    pub fn titles(self) -> (&'static str, &'static str) {
        match self {
            Self::Exceedance => ("超标", "exceedance"),
            Self::ExceedanceWarning => ("超标预警", "exceedance warning"),
            Self::ImplausibleO2 => ("氧含量异常，无法折算", "implausible O2, no conversion"),
            Self::Negative => ("负值", "negative value"),
            Self::Zero => ("运行中零值", "zero while running"),
            Self::FlatLine => ("恒值", "flat line"),
            Self::Jump => ("突变", "sudden jump"),
            Self::OutOfRange => ("超量程", "out of instrument range"),
            Self::AbnormalFlag => ("数据标记异常", "abnormal data flag"),
            Self::FlagRun => ("维护/校准/故障标记持续", "maintenance, calibration or fault flags persist"),
            Self::Offline => ("掉线", "offline"),
            Self::RecordMissing => ("数据缺失", "record missing"),
            Self::ClockDrift => ("时钟偏差", "clock drift"),
            Self::AuthFailure => ("密码错误", "authentication failure"),
            Self::Tamper => ("重传数据不一致（疑似篡改）", "resend with different values (possible tampering)"),
            Self::FleetOutage => ("大面积掉线", "fleet-wide outage"),
        }
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    /// Still active, and worse than reported so far.
    Updated,
    Cleared,
}

impl AlertState {
    pub const ALL: [Self; 3] = [Self::Raised, Self::Updated, Self::Cleared];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Updated => "updated",
            Self::Cleared => "cleared",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}
