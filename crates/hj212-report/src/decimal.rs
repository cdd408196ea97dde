//! Exact sums of decimal numbers as sent (Cou fields): no float drift, the result has as many
//! decimals as the most precise addend.

/// A decimal as an integer count of 10^-scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

/// Decimals kept at most (HJ 212 numbers have a few; more would overflow nothing but mean nothing).
const MAX_SCALE: u32 = 18;

impl Decimal {
    /// A number as HJ 212 writes it: an optional sign, digits, an optional point and digits.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let scale = u32::try_from(fraction.len()).ok().filter(|s| *s <= MAX_SCALE)?;
        let units: i128 = format!("{whole}{fraction}").parse().ok()?;
        Some(Self { units: if negative { -units } else { units }, scale })
    }

    fn rescaled(self, scale: u32) -> Option<i128> {
        self.units.checked_mul(10_i128.checked_pow(scale - self.scale)?)
    }

    /// The exact sum, or `None` on overflow (beyond 38 digits).
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        Some(Self { units: self.rescaled(scale)?.checked_add(other.rescaled(scale)?)?, scale })
    }

    /// As an f64, for comparisons with limits (never for sums).
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        if self.scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[&str]) -> String {
        values
            .iter()
            .map(|v| Decimal::parse(v).unwrap())
            .try_fold(Decimal::default(), Decimal::checked_add)
            .unwrap()
            .to_string()
    }

    #[test]
    fn sums_are_exact_to_the_last_digit_sent() {
        assert_eq!(sum(&["0.1", "0.2"]), "0.3", "0.1 + 0.2 is 0.30000000000000004 in floats");
        assert_eq!(sum(&["1234.567", "0.003", "10"]), "1244.570");
        // A month of hourly Cou values of 0.01 kg: 720 of them.
        assert_eq!(sum(&["0.01"; 720]), "7.20");
        assert_eq!(sum(&["-1.5", "0.25"]), "-1.25");
        assert_eq!(sum(&[".5", "2."]), "2.5");
    }

    #[test]
    fn what_is_not_a_number_is_refused() {
        for bad in ["", "-", ".", "1e3", "1.2.3", "abc", "NaN", "1,5"] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
    }
}
