//! The catch-up rate limit (`catch_up_rate`): a token bucket of one second's frames, so a
//! target that was down for an hour gets its backlog at that rate, not all at once.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Pace {
    /// Frames per second; 0: no limit.
    rate: u32,
    tokens: f64,
    refilled: Instant,
}

impl Pace {
    pub(crate) fn new(rate: u32) -> Self {
        Self { rate, tokens: f64::from(rate), refilled: Instant::now() }
    }

    /// Takes one frame's token, or says how long until there is one.
    pub(crate) fn take(&mut self) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let now = Instant::now();
        // At most one second's worth banked: a quiet minute does not buy a burst later.
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
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
    fn one_seconds_frames_then_a_wait_of_one_frames_time() {
        let mut pace = Pace::new(100);
        let taken = (0..200).take_while(|_| pace.take().is_ok()).count();
        // The bucket starts full: 100, plus whatever refilled while the loop ran (microseconds).
        assert!((100..=101).contains(&taken), "{taken}");
        let wait = pace.take().unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
    }
}
