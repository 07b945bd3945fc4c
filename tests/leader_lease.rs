//! The leader lease on PostgreSQL (spec: css-ess-protocol.md §9), with the election loop of
//! the service against a throw-away cluster: never two leaders; a leader that stops cleanly
//! hands over at once; one that dies without a word is replaced once its lease timed out,
//! and not before.

mod common;

use edge_sync_service::cluster::leadership::{campaign, Leadership};
use edge_sync_service::store::postgres::PostgresStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(3);

struct Candidate {
    leadership: Arc<Leadership>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn candidate(url: &str, name: &str) -> Candidate {
    let (store, _) = PostgresStore::connect(url, None, Duration::from_secs(30))
        .await
        .expect("connect");
    let leadership = Leadership::elected();
    let stop = CancellationToken::new();
    let task = tokio::spawn(campaign(
        leadership.clone(),
        Arc::new(store),
        name.to_string(),
        TIMEOUT,
        stop.clone(),
    ));
    Candidate { leadership, stop, task }
}

async fn wait_leading(who: &Candidate, within: Duration) -> Duration {
    let started = Instant::now();
    while !who.leadership.is_leader() {
        assert!(started.elapsed() < within, "no takeover within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn one_leader_at_a_time_and_takeovers_after_a_stop_or_a_crash() {
    let url = common::postgres::shared().create_database().await;
    let first = candidate(&url, "first").await;
    wait_leading(&first, Duration::from_secs(10)).await;
    let second = candidate(&url, "second").await;
    let third = candidate(&url, "third").await;
    // Several renewal periods: the others keep trying and never get it.
    for _ in 0..50 {
        let leaders = [&first, &second, &third]
            .iter()
            .filter(|c| c.leadership.is_leader())
            .count();
        assert_eq!(leaders, 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // A clean stop gives the lease up: another one leads at its next attempt.
    first.stop.cancel();
    first.task.await.expect("campaign ended");
    assert!(!first.leadership.is_leader());
    let successor = tokio::select! {
        _ = wait_leading(&second, TIMEOUT) => &second,
        _ = wait_leading(&third, TIMEOUT) => &third,
    };
    let other = if std::ptr::eq(successor, &second) {
        &third
    } else {
        &second
    };
    assert!(!other.leadership.is_leader());

    // A crash (no release): the lease is taken over only once it timed out.
    let crashed_at = Instant::now();
    successor.task.abort();
    let waited = wait_leading(other, TIMEOUT * 4).await;
    let taken_after = crashed_at.elapsed();
    assert!(
        taken_after >= TIMEOUT - TIMEOUT / 6,
        "taken over after {taken_after:?} ({waited:?} of waiting), before the lease could time out"
    );
    other.stop.cancel();
}
