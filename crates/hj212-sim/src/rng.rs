//! A tiny seeded generator (SplitMix64): reproducible runs without the `rand` crate.
//! Good enough for plausible noise and fault decisions; not for anything secret.

/// SplitMix64 (Steele, Lea, Flood 2014): one add, three xor-shift-multiply steps.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one purpose of one station, independent of the others'.
    pub fn derive(seed: u64, station: usize, purpose: u64) -> Self {
        let mut mix = Self(seed ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F));
        let _ = mix.next_u64();
        Self(mix.next_u64() ^ (station as u64).wrapping_mul(0xE703_7ED1_A0B4_28DB))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        #[expect(clippy::cast_precision_loss, reason = "a 53-bit integer is exact in f64")]
        let top = (self.next_u64() >> 11) as f64;
        top / (1u64 << 53) as f64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: f64) -> bool {
        percent > 0.0 && self.unit() * 100.0 < percent
    }

    /// Roughly standard-normal noise (Irwin-Hall: the sum of 12 uniforms, minus 6), within ±6.
    pub fn noise(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let len = items.len() as u64;
        let at = usize::try_from(self.next_u64() % len).unwrap_or_default();
        items[at]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_and_ranges() {
        // SplitMix64 reference output for seed 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut rng = Rng::new(42);
        let (mut hits, mut sum) = (0, 0.0);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            hits += u32::from(rng.chance(10.0));
            sum += rng.noise();
        }
        assert!((800..1200).contains(&hits), "{hits}");
        assert!((sum / 10_000.0).abs() < 0.1);
        assert!(!rng.chance(0.0));
        assert!(rng.chance(100.0));
    }

    #[test]
    fn derived_streams_differ() {
        let a = Rng::derive(1, 0, 1).next_u64();
        assert_ne!(a, Rng::derive(1, 1, 1).next_u64());
        assert_ne!(a, Rng::derive(1, 0, 2).next_u64());
        assert_eq!(a, Rng::derive(1, 0, 1).next_u64());
    }
}
