use super::str_enum;

str_enum! {
    /// The part of a CP key after `-` (`a21026-Rtd` → `Rtd`): HJ 212-2017 Table 4, 2025 additions, field extensions.
    FieldKind {
        Rtd = "Rtd" => "real-time value",
        Min = "Min" => "minimum over the period",
        Avg = "Avg" => "average over the period",
        Max = "Max" => "maximum over the period",
        Cou = "Cou" => "cumulative amount over the period",
        ZsRtd = "ZsRtd" => "converted real-time value",
        ZsMin = "ZsMin" => "converted minimum",
        ZsAvg = "ZsAvg" => "converted average",
        ZsMax = "ZsMax" => "converted maximum",
        Flag = "Flag" => "data flag",
        EFlag = "EFlag" => "instrument-defined extended flag",
        SampleTime = "SampleTime" => "sampling time",
        Info = "Info" => "site information value",
        Sn = "SN" => "instrument unique id",
        Rs = "RS" => "facility run state",
        Rt = "RT" => "facility running hours per day",
        Data = "Data" => "noise period value",
        DayData = "DayData" => "noise day value",
        NightData = "NightData" => "noise night value",
        ValidNum = "ValidNum" => "number of valid values (extension)",
        TotalNum = "TotalNum" => "number of values (extension)",
        SampleRd = "SampleRd" => "raw sample reading (2025)",
        StandardValue = "StandardValue" => "standard sample value (2025)",
        ResultType = "ResultType" => "result type (2025)",
    }
}

str_enum! {
    /// Data flag (`xxx-Flag`), HJ 212-2017 Table 8; the table is extensible.
    DataFlag {
        Normal = "N" => "instrument working normally",
        Stopped = "F" => "instrument stopped",
        Maintenance = "M" => "data produced during maintenance",
        ManualSetValue = "S" => "manually entered set value",
        Fault = "D" => "instrument fault",
        Calibration = "C" => "instrument in calibration",
        OverRange = "T" => "sampled value over the measuring upper limit",
        CommFault = "B" => "communication fault between instrument and data logger",
    }
}
