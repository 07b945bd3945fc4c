//! Periodic work (spec: lifecycle.md §14, css-ess-protocol.md §6, §8): on the CSS,
//! re-queueing deliveries that failed, removing edge nodes that stopped registering and
//! pinging, expiring objects, and collecting object data left in the database by
//! interrupted writes; on both roles, activating objects whose time has come.
//! Each loop waits on its timer or the shutdown token, never spins. When several CSS
//! instances share a store, only the leader runs the passes (spec: css-ess-protocol.md §9);
//! the others skip their ticks until they lead.

use super::{EngineResult, Node};
use crate::clock::now_secs;
use crate::model::sync::{Notification, NotificationStatus};
use crate::model::Role;
use crate::store::{StoreError, StoreOp};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Periods of the timers; `None` disables a timer.
#[derive(Debug, Clone, Copy)]
pub struct TimerSettings {
    pub resend: Duration,
    pub remove_inactive_nodes: Option<Duration>,
    /// `ObjectActivationInterval`.
    pub activation: Duration,
    /// `StorageMaintenanceInterval`: the expiration pass.
    pub maintenance: Duration,
}

impl Node {
    /// One resend pass: deliveries that failed (record `error`) whose time has come are
    /// queued again for the node's next poll, if the object still has that instance.
    pub async fn resend_due(&self) -> EngineResult<usize> {
        let now = now_secs();
        let mut queued = 0;
        for record in self.0.store.due_notifications(now).await? {
            if record.status.pending_form().is_some() {
                // Sent over MQTT and not answered in time: queue it again for sending.
                if self.requeue_sent(&record).await? {
                    queued += 1;
                }
                continue;
            }
            if record.status.sent_form().is_some() {
                // Still queued: a node that is pushed its messages gets it now (one that
                // polls finds it at its next poll anyway).
                self.0.pollers.wake(&record.key.org, &record.remote);
                continue;
            }
            if record.status != NotificationStatus::Error {
                continue;
            }
            let instance = record.instance_id;
            self.target_unless_changed(&record.key, &record.remote, Vec::new(), |current| {
                current.meta.instance_id == instance && super::delivery::deliverable(current)
            })
            .await?;
            self.0.pollers.wake(&record.key.org, &record.remote);
            queued += 1;
        }
        Ok(queued)
    }

    /// Queues a message that was sent to a node over MQTT and is not acknowledged yet
    /// (`record`, in a sent status) again, for sending now; false when the record is in no
    /// sent status, or its object or the record itself changed since it was read.
    pub(super) async fn requeue_sent(&self, record: &Notification) -> EngineResult<bool> {
        let Some(pending) = record.status.pending_form() else {
            return Ok(false);
        };
        let again = Notification {
            status: pending,
            resend_time: now_secs() + self.resend_delay(),
            ..record.clone()
        };
        // Guarded by the object's revision: a deletion or a new instance committed since the
        // read wrote newer records, which must not be overwritten.
        let Some(object) = self.0.store.object(&record.key).await? else {
            return Ok(false);
        };
        let ops = vec![
            StoreOp::expect_object(&object),
            StoreOp::expect_notification(record),
            StoreOp::PutNotification(again),
        ];
        match self.commit(&record.key, ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Node {
    /// Removes object data that interrupted writes left in a store shared by several
    /// instances, which no instance's start-up can tell apart from writes in progress.
    async fn collect_data_garbage(&self) -> EngineResult<()> {
        let removed = self.0.blobs.collect_garbage(self.0.store.as_ref(), None).await?;
        if removed > 0 {
            tracing::info!(data = removed, "removed object data left over by an interrupted write");
        }
        Ok(())
    }
}

/// Starts the node's periodic work on `tracker`, until `shutdown`: the activation pass on
/// both roles, the rest on the CSS only.
pub fn spawn_timers(node: Node, settings: TimerSettings, tracker: &TaskTracker, shutdown: &CancellationToken) {
    spawn_pass(
        &node,
        settings.activation,
        tracker,
        shutdown,
        "activation",
        |node| async move { node.activation_pass().await.map(|_| ()) },
    );
    if node.role() != Role::Css {
        return;
    }
    spawn_pass(&node, settings.resend, tracker, shutdown, "resend", |node| async move {
        node.resend_due().await.map(|_| ())
    });
    spawn_pass(
        &node,
        settings.maintenance,
        tracker,
        shutdown,
        "expiration",
        |node| async move { node.expiration_pass().await.map(|_| ()) },
    );
    if node.0.blobs.collects_itself() {
        spawn_pass(
            &node,
            settings.maintenance,
            tracker,
            shutdown,
            "object data collection",
            |node| async move { node.collect_data_garbage().await },
        );
    }
    if let Some(period) = settings.remove_inactive_nodes {
        let since = SinceLastPass::starting_now();
        spawn_pass(&node, period, tracker, shutdown, "inactive node removal", move |node| {
            let since = since.next();
            async move { node.remove_inactive_nodes(since).await.map(|_| ()) }
        });
    }
}

/// A node is removed when it did not register or ping since the previous pass (or since
/// start), so a silent node goes after one to two periods, as in the original. Every tick
/// moves the mark, the leader's and the followers' alike.
struct SinceLastPass(std::sync::atomic::AtomicI64);

impl SinceLastPass {
    fn starting_now() -> Self {
        Self(std::sync::atomic::AtomicI64::new(now_secs()))
    }

    /// The previous pass's time; this pass's becomes the next one's.
    fn next(&self) -> i64 {
        self.0.swap(now_secs(), std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs `pass` every `period`; a failed pass is logged and the next one tries again.
fn spawn_pass<F, Fut>(
    node: &Node,
    period: Duration,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    name: &'static str,
    pass: F,
) where
    F: Fn(Node) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = EngineResult<()>> + Send + 'static,
{
    let node = node.clone();
    tracker.spawn(every(period, shutdown.clone(), move || {
        let leads = node.is_leader();
        let run = pass(node.clone());
        async move {
            if !leads {
                return;
            }
            if let Err(e) = run.await {
                tracing::warn!(error = %e, "{name} pass failed");
            }
        }
    }));
}

async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => work().await,
        }
    }
}

#[cfg(test)]
mod tests;
