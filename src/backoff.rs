//! The one backoff of the service: the wait before retrying after consecutive failures
//! doubles from a first delay up to a ceiling, optionally jittered so that many nodes failing
//! together do not retry together.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: bool,
}

impl Backoff {
    /// `first`, doubling at each further failure, never above `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: false,
        }
    }

    /// Each delay drawn at random from the upper half of its step.
    pub const fn jittered(self) -> Self {
        Self { jitter: true, ..self }
    }

    /// The wait after the `failures`-th consecutive failure (1-based; 0 counts as 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let step = self.first.saturating_mul(1 << exponent).min(self.max);
        if self.jitter {
            step.mul_f64(0.5 + crate::random::fraction() / 2.0)
        } else {
            step
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (0..=6).map(|k| backoff.delay(k).as_millis()).collect();
        assert_eq!(delays, vec![100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_each_step() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jittered();
        let mut seen = std::collections::HashSet::new();
        for failures in [1, 3, 40] {
            let step = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).delay(failures);
            for _ in 0..50 {
                let delay = backoff.delay(failures);
                assert!(delay >= step / 2 && delay <= step, "{delay:?} for {step:?}");
                seen.insert(delay);
            }
        }
        assert!(seen.len() > 10, "the delays do not vary: {seen:?}");
    }
}
