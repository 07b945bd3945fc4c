//! How often and how long the ESS's tasks retry a request that failed in passing.

use crate::backoff::Backoff;
use crate::clock::Instant;
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

    /// How long a download keeps asking again while the CSS answers busy: the node's
    /// cadence, the longest backoff step, so that a poll cycle is held no longer than a
    /// backoff would have kept the download waiting anyway.
    pub fn busy_retry(&self) -> BusyRetry {
        BusyRetry::new(self.backoff.delay(u32::MAX))
    }
}

/// Pauses between asking again for data the CSS refused as busy (`429`: every download slot
/// taken). A slot frees as soon as another node's chunk has been sent, so the pauses are
/// short; jittered, so that the waiting nodes do not all ask at once; growing to a second,
/// so that a node refused for long asks about once a second.
const BUSY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1)).jittered();

/// Asking again for a chunk the CSS refused as busy, within the download, instead of leaving
/// the download to the outbox's next pass and its backoff: that waited a `ResendInterval`
/// (10 s by default) or more after each refusal while slots were free again within
/// milliseconds, and kept most nodes of a fleet idle while a few downloaded. Measured with
/// 20 real ESS fetching a 1 GiB object from a CSS with two slots: the last had it after
/// 95 s (the first after 6 s, the median after 45 s); asking again shortly, after 29 to 47 s.
#[derive(Debug)]
pub struct BusyRetry {
    patience: Duration,
    /// The first refusal of the current series, and the refusals since.
    since: Option<Instant>,
    refusals: u32,
}

impl BusyRetry {
    /// Asks again for up to `patience` of refusals in a row.
    pub fn new(patience: Duration) -> Self {
        Self {
            patience,
            since: None,
            refusals: 0,
        }
    }

    /// After a busy answer: waits before the next attempt and returns true, or returns false
    /// at once when the refusals have lasted `patience` (the caller gives up for now).
    pub async fn pause(&mut self) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.patience {
            return false;
        }
        self.refusals += 1;
        tokio::time::sleep(BUSY_BACKOFF.delay(self.refusals)).await;
        true
    }

    /// A request was served: the next refusal starts a new series.
    pub fn served(&mut self) {
        self.since = None;
        self.refusals = 0;
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

    #[tokio::test(start_paused = true)]
    async fn busy_answers_are_asked_again_shortly_within_the_patience() {
        let mut busy = BusyRetry::new(Duration::from_secs(10));
        let started = Instant::now();
        assert!(busy.pause().await);
        assert!(
            started.elapsed() <= Duration::from_millis(50),
            "the first pause is short"
        );
        let mut pauses = 1;
        while busy.pause().await {
            pauses += 1;
        }
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
        assert!(pauses > 10, "asked again every second at most: {pauses}");
        // Served: a new series, with all its patience.
        busy.served();
        let again = Instant::now();
        assert!(busy.pause().await);
        assert!(again.elapsed() <= Duration::from_millis(50));
    }
}
