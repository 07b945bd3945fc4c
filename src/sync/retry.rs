//! How often and how long the ESS's tasks retry a request that failed in passing.

use crate::backoff::Backoff;
use crate::config::Config;
use std::time::Duration;

/// Exponential backoff for transient failures: `ESSCallSPIRetryInterval x 2^k`, up to the
/// node's cadence with its CSS (at most 60 s), for at most `ESSSPIMaxRetry` attempts (the
/// spec's fixed 2 s x 1000 with the flaw fixes of §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub max_attempts: u64,
}

/// Upper bound of one backoff step.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl RetryPolicy {
    /// From `ESSCallSPIRetryInterval` and `ESSSPIMaxRetry`; the delays stop doubling at
    /// `cadence`, how often the node turns to its CSS anyway (its polling interval over
    /// HTTP, its resend interval over MQTT). Backing off further saves little, as the node's
    /// other requests go out at that pace, and holds its objects back long after a network
    /// fault is gone: retried at most `cadence` apart, a transfer resumes within that time
    /// of the heal.
    pub fn from_config(config: &Config, cadence: Duration) -> Self {
        let base = Duration::from_secs(u64::try_from(config.ess_call_spi_retry_interval).unwrap_or(0).max(1));
        Self {
            backoff: Backoff::new(base, cadence.clamp(base, MAX_BACKOFF.max(base))),
            max_attempts: u64::try_from(config.ess_spi_max_retry).unwrap_or(0).max(1),
        }
    }

    /// Delay after the `failures`-th consecutive transient failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        self.backoff.delay(failures)
    }

    /// True while another attempt is allowed after `failures` failures.
    pub fn may_retry(&self, failures: u32) -> bool {
        u64::from(failures) < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute_and_is_bounded() {
        let policy = RetryPolicy {
            backoff: Backoff::new(Duration::from_secs(2), MAX_BACKOFF),
            max_attempts: 5,
        };
        let delays: Vec<u64> = (1..=7).map(|k| policy.delay(k).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.delay(100), MAX_BACKOFF);
        assert!(policy.may_retry(4));
        assert!(!policy.may_retry(5));
    }
}
