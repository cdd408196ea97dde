//! The console's words in Chinese (the default) and English. A page picks its language from
//! `?lang=` (remembered in a cookie) or that cookie.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Zh,
    En,
}

/// The language cookie's name.
pub(crate) const LANG_COOKIE: &str = "hj212d_lang";

impl Lang {
    pub(crate) fn parse(code: &str) -> Option<Self> {
        match code {
            "zh" => Some(Self::Zh),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    /// The other language, for the switch.
    pub(crate) fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    /// The language a request asks for: `?lang=`, else the cookie, else Chinese.
    pub(crate) fn of(asked: Option<&str>, headers: &HeaderMap) -> Self {
        asked.and_then(Self::parse).or_else(|| cookie(headers).and_then(Self::parse)).unwrap_or(Self::Zh)
    }

    pub(crate) fn text(self) -> &'static Text {
        match self {
            Self::Zh => &ZH,
            Self::En => &EN,
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(LANG_COOKIE)?.strip_prefix('='))
}

/// Every word a page shows.
#[derive(Debug)]
pub(crate) struct Text {
    pub title: &'static str,
    pub switch_to: &'static str,
    pub fleet: &'static str,
    pub alerts: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub user: &'static str,
    pub password: &'static str,
    pub wrong_password: &'static str,
    pub locked_out: &'static str,
    pub site: &'static str,
    pub state: &'static str,
    pub online: &'static str,
    pub offline: &'static str,
    pub last_data: &'static str,
    pub rate_today: &'static str,
    pub rate_month: &'static str,
    pub open_alerts: &'static str,
    pub search: &'static str,
    pub sites_count: &'static str,
    pub rates_as_of: &'static str,
    pub factor: &'static str,
    pub value: &'static str,
    pub flag: &'static str,
    pub data_time: &'static str,
    pub latest_values: &'static str,
    pub no_data: &'static str,
    pub kind: &'static str,
    pub opened: &'static str,
    pub acknowledge: &'static str,
    pub acknowledged_by: &'static str,
    pub note: &'static str,
    pub active_alerts: &'static str,
    pub recent_alerts: &'static str,
    pub none: &'static str,
    pub not_allowed: &'static str,
    pub marks: &'static str,
    pub reports: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: &'static str,
    pub evidence: &'static str,
    pub arrived: &'static str,
    pub left: &'static str,
    pub work: &'static str,
    pub result: &'static str,
    pub alert_id: &'static str,
    pub record: &'static str,
    pub send_command: &'static str,
    pub record_visit: &'static str,
    pub hour_valid: &'static str,
    pub hour_missing: &'static str,
    pub hour_late: &'static str,
    pub hour_invalid: &'static str,
    pub hour_marked: &'static str,
    pub hour_later: &'static str,
    pub hourly_chart: &'static str,
    pub heat_map: &'static str,
    pub missing_periods: &'static str,
    pub commands: &'static str,
    pub visits: &'static str,
    pub daily_report: &'static str,
    pub monthly_report: &'static str,
    pub limit: &'static str,
}

static ZH: Text = Text {
    title: "hj212d 运维控制台",
    switch_to: "English",
    fleet: "站点总览",
    alerts: "告警",
    sign_in: "登录",
    sign_out: "退出",
    user: "用户名",
    password: "密码",
    wrong_password: "用户名或密码错误",
    locked_out: "尝试次数过多，请稍后再试",
    site: "站点",
    state: "状态",
    online: "在线",
    offline: "离线",
    last_data: "最新数据时间",
    rate_today: "今日有效传输率",
    rate_month: "本月有效传输率",
    open_alerts: "未恢复告警",
    search: "搜索站点名称或 MN",
    sites_count: "个站点",
    rates_as_of: "传输率统计于",
    factor: "因子",
    value: "数值",
    flag: "标记",
    data_time: "数据时间",
    latest_values: "最新数据",
    no_data: "暂无数据",
    kind: "类型",
    opened: "发生时间",
    acknowledge: "确认",
    acknowledged_by: "已确认",
    note: "备注",
    active_alerts: "未恢复告警",
    recent_alerts: "近期告警",
    none: "无",
    not_allowed: "当前账号无此权限",
    marks: "停运标记",
    reports: "报表",
    from: "开始",
    to: "结束",
    reason: "原因（停产/停排/停运）",
    evidence: "证明材料编号",
    arrived: "到达时间",
    left: "离开时间",
    work: "工作内容",
    result: "处理结果",
    alert_id: "关联告警编号（可选）",
    record: "记录",
    send_command: "下发",
    record_visit: "记录运维",
    hour_valid: "有效",
    hour_missing: "缺失",
    hour_late: "迟到",
    hour_invalid: "无效",
    hour_marked: "停运标记",
    hour_later: "未到期",
    hourly_chart: "近 48 小时小时均值",
    heat_map: "近 7 天逐小时有效传输",
    missing_periods: "缺失时段",
    commands: "反控命令",
    visits: "运维记录",
    daily_report: "日报",
    monthly_report: "月报",
    limit: "限值",
};

static EN: Text = Text {
    title: "hj212d operations console",
    switch_to: "中文",
    fleet: "Fleet",
    alerts: "Alerts",
    sign_in: "Sign in",
    sign_out: "Sign out",
    user: "User",
    password: "Password",
    wrong_password: "Wrong user name or password",
    locked_out: "Too many attempts; try again later",
    site: "Site",
    state: "State",
    online: "online",
    offline: "offline",
    last_data: "Last data",
    rate_today: "Effective rate today",
    rate_month: "Effective rate this month",
    open_alerts: "Open alerts",
    search: "Search site name or MN",
    sites_count: "sites",
    rates_as_of: "Rates as of",
    factor: "Factor",
    value: "Value",
    flag: "Flag",
    data_time: "Data time",
    latest_values: "Latest values",
    no_data: "No data yet",
    kind: "Kind",
    opened: "Opened",
    acknowledge: "Acknowledge",
    acknowledged_by: "Acknowledged",
    note: "Note",
    active_alerts: "Open alerts",
    recent_alerts: "Recent alerts",
    none: "None",
    not_allowed: "This account may not do that",
    marks: "Downtime marks",
    reports: "Reports",
    from: "From",
    to: "To",
    reason: "Reason (停产/停排/停运)",
    evidence: "Evidence",
    arrived: "Arrived",
    left: "Left",
    work: "Work done",
    result: "Result",
    alert_id: "Alert id (optional)",
    record: "Record",
    send_command: "Send",
    record_visit: "Record a visit",
    hour_valid: "valid",
    hour_missing: "missing",
    hour_late: "late",
    hour_invalid: "invalid",
    hour_marked: "marked",
    hour_later: "not due yet",
    hourly_chart: "Hourly averages, last 48 hours",
    heat_map: "Last 7 days, hour by hour",
    missing_periods: "Missing periods",
    commands: "Commands",
    visits: "Service visits",
    daily_report: "Daily report",
    monthly_report: "Monthly report",
    limit: "limit",
};
