//! Pollutant and parameter codes, HJ 212-2017 Appendix B, with the HJ/T 212-2005 codes they replaced.

/// What a factor is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Flue gas and ambient air (Table B.2).
    Gas,
    /// Wastewater (Table B.1).
    Water,
    /// Noise (Table B.3).
    Noise,
}

/// One row of the factor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factor {
    /// The HJ 212-2017 code.
    pub code: &'static str,
    /// The HJ/T 212-2005 code, where there was one.
    pub code_2005: Option<&'static str>,
    pub name: &'static str,
    pub name_zh: &'static str,
    /// Concentration (or value) unit.
    pub unit: &'static str,
    /// Emission-amount unit for `-Cou`, where it has one.
    pub amount_unit: Option<&'static str>,
    pub medium: Medium,
}

macro_rules! factors {
    ($($code:literal, $old:expr, $name:literal, $zh:literal, $unit:literal, $amount:expr, $medium:ident;)*) => {
        &[$(Factor {
            code: $code, code_2005: $old, name: $name, name_zh: $zh, unit: $unit,
            amount_unit: $amount, medium: Medium::$medium,
        },)*]
    };
}

const KG: Option<&str> = Some("kg");
const G: Option<&str> = Some("g");

static TABLE: &[Factor] = factors! {
    "a00000", Some("B02"), "flue-gas flow", "废气", "m3/s", Some("m3"), Gas;
    "a01011", Some("S02"), "flue-gas velocity", "烟气流速", "m/s", None, Gas;
    "a01012", Some("S03"), "flue-gas temperature", "烟气温度", "°C", None, Gas;
    "a01013", Some("S08"), "flue-gas pressure", "烟气压力", "kPa", None, Gas;
    "a01014", Some("S05"), "flue-gas humidity", "烟气湿度", "%", None, Gas;
    "a01015", Some("S06"), "cooler temperature", "制冷温度", "°C", None, Gas;
    "a01016", Some("S07"), "duct cross-section area", "烟道截面积", "m2", None, Gas;
    "a01017", Some("S04"), "flue-gas dynamic pressure", "烟气动压", "kPa", None, Gas;
    "a19001", Some("S01"), "oxygen content", "氧气含量", "%", None, Gas;
    "a21026", Some("02"), "sulphur dioxide", "二氧化硫", "mg/m3", KG, Gas;
    "a21002", Some("03"), "nitrogen oxides", "氮氧化物", "mg/m3", KG, Gas;
    "a21003", None, "nitric oxide", "一氧化氮", "mg/m3", KG, Gas;
    "a21004", None, "nitrogen dioxide", "二氧化氮", "mg/m3", KG, Gas;
    "a21005", Some("04"), "carbon monoxide", "一氧化碳", "mg/m3", KG, Gas;
    "a34013", Some("01"), "particulate matter (soot)", "烟尘", "mg/m3", KG, Gas;
    "a21024", Some("08"), "hydrogen chloride", "氯化氢", "mg/m3", KG, Gas;
    "a21028", Some("05"), "hydrogen sulphide", "硫化氢", "mg/m3", KG, Gas;
    "a05001", Some("30"), "carbon dioxide", "二氧化碳", "mg/m3", KG, Gas;
    "a24088", None, "non-methane hydrocarbons", "非甲烷总烃", "mg/m3", KG, Gas;
    "a01001", None, "ambient temperature", "温度", "°C", None, Gas;
    "a01002", None, "ambient humidity", "湿度", "%", None, Gas;
    "a01006", None, "atmospheric pressure", "气压", "kPa", None, Gas;
    "a01007", None, "wind speed", "风速", "m/s", None, Gas;
    "a01008", None, "wind direction", "风向", "°", None, Gas;
    "a34001", None, "total suspended particulates", "总悬浮颗粒物", "µg/m3", None, Gas;
    "a34002", None, "PM10", "可吸入颗粒物", "µg/m3", None, Gas;
    "a34004", None, "PM2.5", "细颗粒物", "µg/m3", None, Gas;
    "a01901", None, "furnace average temperature", "垃圾焚烧炉膛内焚烧平均温度", "°C", None, Gas;
    "a01902", None, "furnace DCS temperature", "垃圾焚烧炉膛内DCS温度", "°C", None, Gas;
    "w00000", Some("B01"), "wastewater flow", "污水", "L/s", Some("m3"), Water;
    "w01001", Some("001"), "pH", "pH值", "", None, Water;
    "w01002", Some("002"), "colour", "色度", "degree", None, Water;
    "w01010", None, "water temperature", "水温", "°C", None, Water;
    "w01012", Some("003"), "suspended solids", "悬浮物", "mg/L", KG, Water;
    "w01014", None, "conductivity", "电导率", "µS/cm", None, Water;
    "w01017", Some("010"), "BOD5", "五日生化需氧量", "mg/L", KG, Water;
    "w01018", Some("011"), "COD", "化学需氧量", "mg/L", KG, Water;
    "w01019", None, "permanganate index", "高锰酸盐指数", "mg/L", KG, Water;
    "w01020", Some("015"), "total organic carbon", "总有机碳", "mg/L", KG, Water;
    "w21001", Some("065"), "total nitrogen", "总氮", "mg/L", KG, Water;
    "w21003", Some("060"), "ammonia nitrogen", "氨氮", "mg/L", KG, Water;
    "w21011", Some("101"), "total phosphorus", "总磷", "mg/L", KG, Water;
    "w21016", Some("070"), "cyanide", "氰化物", "mg/L", KG, Water;
    "w22001", Some("080"), "petroleum oils", "石油类", "mg/L", KG, Water;
    "w23002", Some("110"), "volatile phenol", "挥发酚", "mg/L", KG, Water;
    "w20111", Some("020"), "total mercury", "总汞", "µg/L", G, Water;
    "w20115", Some("022"), "total cadmium", "总镉", "µg/L", G, Water;
    "w20116", Some("023"), "total chromium", "总铬", "mg/L", KG, Water;
    "w20117", Some("024"), "hexavalent chromium", "六价铬", "µg/L", G, Water;
    "w20119", Some("026"), "total arsenic", "总砷", "µg/L", G, Water;
    "w20120", Some("027"), "total lead", "总铅", "µg/L", G, Water;
    "w20121", Some("028"), "total nickel", "总镍", "mg/L", KG, Water;
    "w20122", Some("029"), "total copper", "总铜", "mg/L", KG, Water;
    "w20123", Some("030"), "total zinc", "总锌", "mg/L", KG, Water;
    "LA", None, "A-weighted sound level", "A声级", "dB", None, Noise;
    "L5", None, "L5 percentile level", "累积百分声级L5", "dB", None, Noise;
    "L10", None, "L10 percentile level", "累积百分声级L10", "dB", None, Noise;
    "L50", None, "L50 percentile level", "累积百分声级L50", "dB", None, Noise;
    "L90", None, "L90 percentile level", "累积百分声级L90", "dB", None, Noise;
    "L95", None, "L95 percentile level", "累积百分声级L95", "dB", None, Noise;
    "Leq", None, "equivalent continuous level", "等效声级", "dB", None, Noise;
    "Ldn", None, "day-night level", "昼夜等效声级", "dB", None, Noise;
    "Ld", None, "day level", "昼间等效声级", "dB", None, Noise;
    "Ln", None, "night level", "夜间等效声级", "dB", None, Noise;
    "LMx", None, "maximum level", "最大声级", "dB", None, Noise;
    "LMn", None, "minimum level", "最小声级", "dB", None, Noise;
};

/// The factor with this HJ 212-2017 code.
pub fn factor(code: &str) -> Option<&'static Factor> {
    TABLE.iter().find(|f| f.code == code)
}

/// The factor a wire code stands for: a 2017 code, or a 2005 code of the given medium.
///
/// 2005 codes are only unique within a medium (gas used 2-digit codes, water 3-digit
/// ones), so a frame's ST decides which table a 2005 code is looked up in; with no
/// medium known, any table is searched.
pub fn factor_for_code(code: &str, medium: Option<Medium>) -> Option<&'static Factor> {
    factor(code).or_else(|| TABLE.iter().find(|f| f.code_2005 == Some(code) && medium.is_none_or(|m| m == f.medium)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(factor("a21026").unwrap().name, "sulphur dioxide");
        assert_eq!(factor_for_code("011", None).unwrap().code, "w01018");
        assert_eq!(factor_for_code("B01", Some(Medium::Water)).unwrap().code, "w00000");
        assert_eq!(factor_for_code("02", Some(Medium::Gas)).unwrap().code, "a21026");
        // "023" is total chromium in wastewater, not a flue-gas code.
        assert_eq!(factor_for_code("023", Some(Medium::Gas)), None);
        assert_eq!(factor_for_code("ua19004", None), None);
    }

    #[test]
    fn codes_are_unique() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert_ne!(a.code, b.code);
                if a.code_2005.is_some() && a.medium == b.medium {
                    assert_ne!(a.code_2005, b.code_2005, "{} / {}", a.code, b.code);
                }
            }
        }
    }
}
