/// System code (ST), HJ 212-2017 Table 5 (after GB/T 16706) plus the 2025 additions.
///
/// ST is two characters (`0-9`, `A-Z`) but real devices send others (`101`); unknown
/// codes map to `Other` and the raw text stays in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SystemType {
    SurfaceWater,
    AirQuality,
    AcousticEnvironment,
    Groundwater,
    Soil,
    Seawater,
    Voc,
    FlueGasSource,
    WastewaterSource,
    GroundwaterSource,
    MarineSource,
    SoilSource,
    NoiseSource,
    VibrationSource,
    RadioactiveSource,
    ConstructionDust,
    ElectromagneticSource,
    ElectricityUse,
    ProductionConditions,
    FlueGasProcess,
    WastewaterProcess,
    SystemInteraction,
    Other,
}

impl SystemType {
    /// The typed value of a wire ST.
    pub fn from_wire(st: &str) -> Self {
        match st {
            "21" => Self::SurfaceWater,
            "22" => Self::AirQuality,
            "23" => Self::AcousticEnvironment,
            "24" => Self::Groundwater,
            "25" => Self::Soil,
            "26" => Self::Seawater,
            "27" => Self::Voc,
            "31" => Self::FlueGasSource,
            "32" => Self::WastewaterSource,
            "33" => Self::GroundwaterSource,
            "34" => Self::MarineSource,
            "35" => Self::SoilSource,
            "36" => Self::NoiseSource,
            "37" => Self::VibrationSource,
            "38" => Self::RadioactiveSource,
            "39" => Self::ConstructionDust,
            "41" => Self::ElectromagneticSource,
            "44" => Self::ElectricityUse,
            "45" => Self::ProductionConditions,
            "51" => Self::FlueGasProcess,
            "52" => Self::WastewaterProcess,
            "91" => Self::SystemInteraction,
            _ => Self::Other,
        }
    }

    /// Which factor table the system's HJ/T 212-2005 codes come from.
    pub fn medium(self) -> Option<super::Medium> {
        use super::Medium;
        match self {
            Self::AirQuality | Self::FlueGasSource | Self::FlueGasProcess => Some(Medium::Gas),
            Self::SurfaceWater | Self::WastewaterSource | Self::WastewaterProcess => Some(Medium::Water),
            Self::AcousticEnvironment | Self::NoiseSource => Some(Medium::Noise),
            _ => None,
        }
    }

    /// What the standard calls it.
    pub fn description(self) -> Option<&'static str> {
        Some(match self {
            Self::SurfaceWater => "surface water quality",
            Self::AirQuality => "ambient air quality",
            Self::AcousticEnvironment => "acoustic environment quality",
            Self::Groundwater => "groundwater quality",
            Self::Soil => "soil quality",
            Self::Seawater => "seawater quality",
            Self::Voc => "VOC monitoring",
            Self::FlueGasSource => "atmospheric (flue gas) pollution source",
            Self::WastewaterSource => "surface-water (wastewater) pollution source",
            Self::GroundwaterSource => "groundwater pollution source",
            Self::MarineSource => "marine pollution source",
            Self::SoilSource => "soil pollution source",
            Self::NoiseSource => "noise pollution source",
            Self::VibrationSource => "vibration pollution source",
            Self::RadioactiveSource => "radioactive pollution source",
            Self::ConstructionDust => "construction-site dust",
            Self::ElectromagneticSource => "electromagnetic pollution source",
            Self::ElectricityUse => "electricity-usage monitoring (2025)",
            Self::ProductionConditions => "key production conditions (2025)",
            Self::FlueGasProcess => "flue-gas process monitoring",
            Self::WastewaterProcess => "wastewater process monitoring",
            Self::SystemInteraction => "system interaction",
            Self::Other => return None,
        })
    }
}
