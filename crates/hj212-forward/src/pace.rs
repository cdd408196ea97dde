//! The catch-up rate limit (`catch_up_rate`): a token bucket holding 20 ms of frames, so a
//! target that was down for an hour gets its backlog at that rate, not all at once, and no
//! second carries more than the rate and that small burst.

use std::time::{Duration, Instant};

/// The burst the bucket holds, as a share of one second's frames (20 ms: 2 % over the rate at most).
const BURST_PER_SECOND: u32 = 50;

#[derive(Debug)]
pub(crate) struct Pace {
    /// Frames per second; 0: no limit.
    rate: u32,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Pace {
    pub(crate) fn new(rate: u32) -> Self {
        let burst = f64::from((rate / BURST_PER_SECOND).max(1));
        Self { rate, burst, tokens: burst, refilled: Instant::now() }
    }

    /// Takes one frame's token, or says how long until the bucket holds a burst again (waits
    /// are few and not shorter than the burst's time).
    pub(crate) fn take(&mut self) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((self.burst - self.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_never_waits() {
        let mut pace = Pace::new(0);
        assert!((0..100_000).all(|_| pace.take().is_ok()));
    }

    #[test]
    fn a_burst_of_20_ms_then_a_wait_for_the_next() {
        let mut pace = Pace::new(5000);
        let taken = (0..1000).take_while(|_| pace.take().is_ok()).count();
        // 100 in the bucket, plus whatever refilled while the loop ran (microseconds).
        assert!((100..=102).contains(&taken), "{taken}");
        let wait = pace.take().unwrap_err();
        assert!(wait > Duration::from_millis(15) && wait <= Duration::from_millis(20), "{wait:?}");
    }

    #[test]
    fn a_slow_rate_still_sends_one_at_a_time() {
        let mut pace = Pace::new(10);
        assert!(pace.take().is_ok());
        let wait = pace.take().unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
    }
}
