use super::code_enum;

code_enum! {
    /// Command code (CN), HJ 212-2017 Table 9 plus the HJ 212-2025 additions.
    Cn(u16) {
        SetTimeoutRetry = 1000 => "set timeout and retry count",
        UploadLoggerSerial = 1001 => "upload data-logger hardware serial (2025)",
        SetMn = 1002 => "set data-logger MN (2025)",
        FieldTime = 1011 => "get / upload field time",
        SetFieldTime = 1012 => "set field time",
        TimeCalibrationRequest = 1013 => "field time-calibration request",
        NewKey = 1014 => "request / set SM4 key (2025)",
        RtdInterval = 1061 => "get / upload real-time data interval",
        SetRtdInterval = 1062 => "set real-time data interval",
        MinInterval = 1063 => "get / upload minute data interval",
        SetMinInterval = 1064 => "set minute data interval",
        SetPassword = 1072 => "set field access password",
        RealTimeData = 2011 => "start / upload real-time data",
        StopRealTimeData = 2012 => "stop real-time data",
        RawMonitoringData = 2013 => "get / upload raw monitoring data (2025)",
        RunState = 2021 => "start / upload equipment run state",
        StopRunState = 2022 => "stop equipment run state",
        DailyData = 2031 => "get / upload daily history data",
        DailyRunTime = 2041 => "get / upload daily equipment run time",
        MinuteData = 2051 => "get / upload minute data",
        NoiseSingleMeasurement = 2052 => "noise single-measurement data (2025)",
        HourlyData = 2061 => "get / upload hourly data",
        StandardSampleCheck = 2062 => "automatic standard-sample check data (2025)",
        RestartTime = 2081 => "upload data-logger restart time",
        FurnaceTemperature = 2111 => "furnace temperature 5-minute average (2025)",
        Calibrate = 3011 => "zero / span calibration",
        SampleNow = 3012 => "immediate sampling",
        Cleaning = 3013 => "start cleaning / blowback",
        ComparisonSampling = 3014 => "comparison sampling",
        SampleRetention = 3015 => "over-limit sample retention",
        SetSamplingPeriod = 3016 => "set sampling period",
        SamplingPeriod = 3017 => "get / upload sampling period",
        SampleOutputTime = 3018 => "get / upload sample output time",
        InstrumentId = 3019 => "get / upload instrument unique id",
        SiteInfo = 3020 => "get / upload site information",
        SetSiteParameter = 3021 => "set site parameter",
        SampleRetentionTask = 3022 => "immediate sample-retention task (2025)",
        StartStandardCheck = 3024 => "start standard-sample check (2025)",
        RequestResponse = 9011 => "request response",
        ExecutionResult = 9012 => "execution result",
        NotificationResponse = 9013 => "notification response",
        DataResponse = 9014 => "data response",
        Heartbeat = 9015 => "heartbeat (2025)",
    }
}

impl Cn {
    /// Uploads the host acknowledges with 9014 when the frame's A bit is set.
    pub fn is_data_upload(self) -> bool {
        matches!(self.code(), 2000..=2999 | 3015 | 3017..=3020)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        assert_eq!(Cn::from_code(2011), Cn::RealTimeData);
        assert_eq!(Cn::RealTimeData.code(), 2011);
        assert_eq!(Cn::from_code(4242), Cn::Other(4242));
        assert_eq!(Cn::Other(4242).description(), None);
        assert_eq!(Cn::Heartbeat.description(), Some("heartbeat (2025)"));
        assert!(Cn::HourlyData.is_data_upload());
        assert!(!Cn::TimeCalibrationRequest.is_data_upload());
    }
}
