//! The ESS's synchronization tasks over an [`EssLink`] (spec: css-ess-protocol.md §3.6-3.8, §6, §7):
//!
//! - **registration**: `register` at start (retried every `ResendInterval` until accepted);
//!   an unknown node cleans up (§7.3) and registers as new. Then a `ping` every
//!   `ESSPingInterval` hours; an unknown node there, or in answer to a poll, registers again.
//! - **poll**: notifications (a long poll, or pushed messages) while registered; `update` and `delete` elements
//!   are handled at once (the data is downloaded inside the poll cycle, as in the spec), with
//!   one attempt per follow-up request; what fails is left to the outbox.
//! - **outbox**: every `ResendInterval`, or when an application report recorded something,
//!   sends what the records still owe the CSS (`received`, `consumed`, `deleted`) and resumes
//!   `getdata` downloads, with exponential backoff per object for transient failures; and
//!   for the ESS's own objects `update`, the data upload and `delete` (`ess_origin`).
//!
//! Both the poll and the outbox may act on an object; a per-key lock makes them take turns.
//! Every wait is on a timer, the long poll or the cancellation token.

use super::download::FEEDBACK_INTERNAL;
use super::link::{EssLink, NotificationDelivery, Reply};
use super::schedule::{LoopSettings, PollResult, PollSchedule};
use crate::clock::Instant;
use crate::config::Config;
use crate::engine::receive::UpdateReply;
use crate::engine::Node;
use crate::model::sync::{Action, Feedback, NotificationStatus, PollItem};
use crate::model::{MetaData, ObjectKey};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How handling one message ended, for the poll's progress and the outbox's backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Done and acknowledged where an answer was due.
    Progress,
    /// Nothing to do (stale, busy, already handled).
    Nothing,
    /// A transient failure: try again after a backoff.
    Retry(Reply),
    /// A final refusal: try again only at the normal resend cadence.
    Final(Reply),
}

pub(super) fn step_of(outcome: Reply) -> Step {
    if outcome.acknowledged() {
        Step::Progress
    } else if outcome.is_transient() {
        Step::Retry(outcome)
    } else {
        Step::Final(outcome)
    }
}

#[derive(Debug, Clone, Copy)]
struct RetryState {
    failures: u32,
    next: Instant,
}

/// The sync state of one ESS.
pub(super) struct EssSync {
    pub(super) node: Node,
    pub(super) client: Arc<dyn EssLink>,
    pub(super) settings: LoopSettings,
    org: String,
    registered: watch::Sender<bool>,
    reregister: Notify,
    busy: Mutex<HashSet<ObjectKey>>,
    /// Signalled whenever a key is released, for handlers waiting for one.
    released: Notify,
    backoff: Mutex<HashMap<ObjectKey, RetryState>>,
}

/// Releases an object key when handling ends.
pub(super) struct KeyGuard<'a> {
    set: &'a Mutex<HashSet<ObjectKey>>,
    released: &'a Notify,
    key: ObjectKey,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
        self.released.notify_waiters();
    }
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Longest wait for the CSS to confirm an unregistration at shutdown: well within the
/// grace a stopping node gives its tasks, so that the outcome is known before it stops.
const UNREGISTER_TIMEOUT: Duration = crate::signals::STOP_GRACE.saturating_sub(Duration::from_secs(2));

/// Starts the sync tasks of an HTTP ESS on `tracker`; they end when `shutdown` is cancelled.
pub fn spawn(
    node: Node,
    config: &Config,
    client: Arc<dyn EssLink>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let (registered, _) = watch::channel(false);
    let sync = Arc::new(EssSync {
        node,
        client,
        settings: LoopSettings::from_config(config),
        org: config.org_id.clone(),
        registered,
        reregister: Notify::new(),
        busy: Mutex::new(HashSet::new()),
        released: Notify::new(),
        backoff: Mutex::new(HashMap::new()),
    });

    // On a stop requested with essunregister=true: one attempt, bounded, and the stop goes on
    // whatever the answer (the original could hang on it).
    let (leaving, token) = (sync.clone(), shutdown.clone());
    tracker.spawn(async move {
        token.cancelled().await;
        if !leaving.node.unregister_requested() {
            return;
        }
        let Some(unregistration) = leaving.client.unregistration() else {
            tracing::warn!("ESS: the transport has no unregistration; stopping without it");
            return;
        };
        match tokio::time::timeout(UNREGISTER_TIMEOUT, unregistration.unregister()).await {
            Ok(Reply::Accepted | Reply::UnknownNode) => {
                tracing::info!("ESS: unregistered from the CSS; the local store is wiped");
                leaving.node.mark_unregistered();
            }
            Ok(other) => tracing::warn!(outcome = %other, "ESS: unregistering failed; stopping anyway"),
            Err(_) => tracing::warn!("ESS: unregistering timed out; stopping anyway"),
        }
    });
    let tasks: [(&str, Task); 3] = [
        ("registration", Box::pin(sync.clone().registration())),
        ("poll", Box::pin(sync.clone().poll_loop())),
        ("outbox", Box::pin(sync.outbox_loop())),
    ];
    for (name, task) in tasks {
        let token = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => tracing::debug!(task = name, "ESS sync task stopped"),
                _ = task => {}
            }
        });
    }
}

impl EssSync {
    fn key_of(&self, meta: &MetaData) -> ObjectKey {
        ObjectKey::new(&self.org, &meta.object_type, &meta.object_id)
    }

    pub(super) fn lock(&self, key: &ObjectKey) -> Option<KeyGuard<'_>> {
        let mut busy = self.busy.lock();
        busy.insert(key.clone()).then(|| KeyGuard {
            set: &self.busy,
            released: &self.released,
            key: key.clone(),
        })
    }

    /// Takes `key` for handling a notification: skipped while another task handles it when
    /// the CSS hands the notification out again (HTTP polls); waited for when it comes only
    /// once (MQTT).
    pub(super) async fn lock_for_notification(&self, key: &ObjectKey) -> Option<KeyGuard<'_>> {
        if self.client.notification_delivery() == NotificationDelivery::RepeatedUntilAnswered {
            return self.lock(key);
        }
        Some(self.lock_wait(key).await)
    }

    /// Takes `key`, waiting while another task handles it.
    async fn lock_wait(&self, key: &ObjectKey) -> KeyGuard<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(guard) = self.lock(key) {
                return guard;
            }
            released.await;
        }
    }

    /// The backoff delay after one more transient failure of `key`.
    pub(super) fn retry_delay(&self, key: &ObjectKey) -> Duration {
        let failures = self.backoff.lock().get(key).map_or(0, |b| b.failures);
        self.settings.retry.delay(failures + 1)
    }

    /// True when the outbox may act on `key` now.
    pub(super) fn due(&self, key: &ObjectKey) -> bool {
        let backoff = self.backoff.lock();
        backoff.get(key).is_none_or(|b| b.next <= Instant::now())
    }

    /// Records how handling `key` ended: success clears its backoff, a transient failure
    /// doubles it (given up after `ESSSPIMaxRetry` attempts until the next restart or a new
    /// message), a final refusal waits for the normal resend cadence.
    pub(super) fn note(&self, key: &ObjectKey, step: &Step) {
        let mut backoff = self.backoff.lock();
        match step {
            Step::Progress | Step::Nothing => {
                backoff.remove(key);
            }
            Step::Retry(outcome) => {
                let failures = backoff.get(key).map_or(0, |b| b.failures) + 1;
                let delay = if self.settings.retry.may_retry(failures) {
                    self.settings.retry.delay(failures)
                } else {
                    tracing::error!(%key, %outcome, failures, "giving up sending to the CSS until the next restart");
                    Duration::from_secs(365 * 24 * 3600)
                };
                tracing::debug!(%key, %outcome, ?delay, "CSS request failed; retrying later");
                backoff.insert(
                    key.clone(),
                    RetryState {
                        failures,
                        next: Instant::now() + delay,
                    },
                );
            }
            Step::Final(outcome) => {
                tracing::warn!(%key, %outcome, "the CSS refused a message; resending later");
                backoff.insert(
                    key.clone(),
                    RetryState {
                        failures: 0,
                        next: Instant::now() + self.settings.resend_interval * 6,
                    },
                );
            }
        }
    }

    async fn wait_registered(&self) {
        let mut registered = self.registered.subscribe();
        let _ = registered.wait_for(|r| *r).await;
    }

    fn is_registered(&self) -> bool {
        *self.registered.borrow()
    }

    // ---- registration and ping (§7.1, §7.3, §8) ----

    async fn registration(self: Arc<Self>) {
        let mut as_new = false;
        loop {
            // Register until accepted.
            loop {
                let outcome = self.client.register(as_new).await;
                match outcome {
                    Reply::Accepted => break,
                    Reply::UnknownNode if !as_new => {
                        tracing::info!("ESS: the CSS does not know this node; registering as new");
                        if let Err(e) = self.node.reset_for_new_registration(self.client.persistent()).await {
                            tracing::error!(error = %e, "cleaning up for a new registration failed");
                        }
                        self.backoff.lock().clear();
                        as_new = true;
                        continue;
                    }
                    other => {
                        tracing::warn!(outcome = %other, as_new, "ESS: registration with the CSS failed; retrying");
                    }
                }
                tokio::time::sleep(self.settings.resend_interval).await;
            }
            tracing::info!(as_new, "ESS: registered with the CSS");
            as_new = false;
            self.registered.send_replace(true);
            // Registered: ping until told to register again.
            loop {
                let ping = async {
                    match self.settings.ping_interval {
                        Some(interval) => tokio::time::sleep(interval).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = ping => {
                        match self.client.ping().await {
                            Reply::Accepted => continue,
                            Reply::UnknownNode => {
                                tracing::info!("ESS: the CSS no longer knows this node; registering as new");
                                self.registered.send_replace(false);
                                if let Err(e) = self.node.reset_for_new_registration(self.client.persistent()).await {
                                    tracing::error!(error = %e, "cleaning up for a new registration failed");
                                }
                                as_new = true;
                                break;
                            }
                            other => tracing::warn!(outcome = %other, "ESS: ping failed"),
                        }
                    }
                    _ = self.reregister.notified() => {
                        self.registered.send_replace(false);
                        break;
                    }
                    _ = self.client.session_lost() => {
                        tracing::info!("ESS: new session with the CSS; registering again");
                        self.registered.send_replace(false);
                        break;
                    }
                }
            }
        }
    }

    // ---- polling (§3.7) ----

    async fn poll_loop(self: Arc<Self>) {
        let mut schedule = PollSchedule::new(self.settings.polling_interval);
        let mut long_poll = false;
        loop {
            self.wait_registered().await;
            let started = Instant::now();
            let result = match self.client.poll(self.settings.polling_interval).await {
                Ok(answer) => {
                    if answer.long_poll != long_poll {
                        tracing::info!(long_poll = answer.long_poll, "ESS: CSS long-poll support");
                        long_poll = answer.long_poll;
                    }
                    if answer.items.is_empty() {
                        PollResult::Empty {
                            held: started.elapsed() >= Duration::from_secs(1),
                        }
                    } else {
                        self.handle_items(answer.items).await
                    }
                }
                Err(Reply::UnknownNode) => {
                    tracing::warn!("ESS: the CSS no longer knows this node; registering again");
                    self.reregister.notify_one();
                    // Wait until the registration task took notice.
                    let mut registered = self.registered.subscribe();
                    let _ = tokio::time::timeout(self.settings.resend_interval, registered.wait_for(|r| !*r)).await;
                    PollResult::Failed
                }
                Err(outcome) => {
                    tracing::warn!(%outcome, "ESS: poll failed");
                    PollResult::Failed
                }
            };
            let delay = schedule.next(result, long_poll);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn handle_items(&self, items: Vec<PollItem>) -> PollResult {
        let mut progress = false;
        for item in items {
            let key = self.key_of(&item.meta);
            let step = match item.kind.as_str() {
                "update" => self.handle_update(&key, item.meta).await,
                "delete" => self.handle_delete(&key, item.meta).await,
                // These concern objects this ESS created (engine::origin).
                "received" | "consumed" | "deleted" => self.handle_origin_item(&key, &item.kind, item.meta).await,
                other => {
                    tracing::debug!(kind = other, %key, "ESS: poll element not handled");
                    continue;
                }
            };
            if step == Step::Progress {
                progress = true;
            }
            self.note(&key, &step);
        }
        if progress {
            PollResult::Progress
        } else {
            PollResult::NoProgress
        }
    }

    async fn handle_update(&self, key: &ObjectKey, meta: MetaData) -> Step {
        let Some(_guard) = self.lock_for_notification(key).await else {
            return Step::Nothing;
        };
        let (instance, data_id) = (meta.instance_id, meta.data_id);
        match self.node.receive_update(meta).await {
            Err(e) if e.is_disk_full() => self.disk_full(key, instance, data_id, None).await,
            Err(e) => {
                tracing::error!(%key, error = %e, "ESS: storing an update failed");
                Step::Nothing
            }
            Ok(UpdateReply::Nothing) => Step::Nothing,
            Ok(UpdateReply::Received) => self.send_received(key, instance, data_id).await,
            Ok(UpdateReply::Fetch) => {
                // 409 means the CSS already has the record past `update` (a duplicate): go on.
                let updated = self.client.action(key, instance, data_id, Action::Updated, None).await;
                let acknowledged = updated.acknowledged();
                if !acknowledged {
                    tracing::debug!(%key, outcome = %updated, "ESS: updated not acknowledged");
                }
                match self.download(key, instance, data_id).await {
                    Step::Nothing if acknowledged => Step::Progress,
                    other => other,
                }
            }
            Ok(UpdateReply::Feedback(reason)) => {
                tracing::warn!(%key, %reason, "ESS: refusing an update");
                let feedback = Feedback::error(FEEDBACK_INTERNAL, reason);
                step_of(self.client.feedback(key, instance, data_id, &feedback).await)
            }
        }
    }

    async fn handle_delete(&self, key: &ObjectKey, meta: MetaData) -> Step {
        let Some(_guard) = self.lock_for_notification(key).await else {
            return Step::Nothing;
        };
        let (instance, data_id) = (meta.instance_id, meta.data_id);
        match self.node.receive_delete(meta).await {
            Ok(true) => step_of(
                self.client
                    .action(key, instance, data_id, Action::AckDelete, None)
                    .await,
            ),
            Ok(false) => Step::Nothing,
            Err(e) => {
                tracing::error!(%key, error = %e, "ESS: marking a copy deleted failed");
                Step::Nothing
            }
        }
    }

    pub(super) async fn send_received(&self, key: &ObjectKey, instance: i64, data_id: i64) -> Step {
        let outcome = self.client.action(key, instance, data_id, Action::Received, None).await;
        if outcome.acknowledged() {
            if let Err(e) = self.node.ack_received(key, instance).await {
                tracing::error!(%key, error = %e, "ESS: recording ackreceived failed");
            }
        }
        step_of(outcome)
    }

    // ---- outbox and resends (§6) ----

    async fn outbox_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.resend_interval) => {}
                _ = self.node.outbox_signal().notified() => {}
            }
            if !self.is_registered() {
                continue;
            }
            if self.node.take_resend_request() {
                let outcome = self.client.resend().await;
                if !outcome.acknowledged() {
                    tracing::warn!(%outcome, "ESS: the resend request was not acknowledged; repeating it");
                    self.node.keep_resend_request();
                }
            }
            // Objects this ESS created: update, upload, delete (sync::ess_origin).
            self.origin_pass().await;
            let owed = match self.node.owed_messages().await {
                Ok(owed) => owed,
                Err(e) => {
                    tracing::error!(error = %e, "ESS: reading the outbox failed");
                    continue;
                }
            };
            for message in owed {
                let record = message.record;
                let key = record.key.clone();
                if !self.due(&key) {
                    continue;
                }
                let Some(_guard) = self.lock(&key) else {
                    continue;
                };
                let (instance, data_id) = (record.instance_id, record.data_id);
                let step = match record.status {
                    NotificationStatus::GetData => self.download(&key, instance, data_id).await,
                    NotificationStatus::Received => self.send_received(&key, instance, data_id).await,
                    NotificationStatus::Consumed => {
                        let outcome = self
                            .client
                            .action(&key, instance, data_id, Action::Consumed, None)
                            .await;
                        self.finish(&key, instance, NotificationStatus::Consumed, outcome).await
                    }
                    NotificationStatus::Deleted => match message.object {
                        Some(object) => {
                            let outcome = self.client.deleted(&object.meta).await;
                            self.finish(&key, instance, NotificationStatus::Deleted, outcome).await
                        }
                        None => Step::Nothing,
                    },
                    _ => Step::Nothing,
                };
                self.note(&key, &step);
            }
        }
    }

    /// After `consumed`/`deleted`: on `204`/`409` the copy and its records go (§3.6).
    async fn finish(&self, key: &ObjectKey, instance: i64, expected: NotificationStatus, outcome: Reply) -> Step {
        if outcome.acknowledged() {
            match self.node.finish_handshake(key, instance, expected).await {
                Ok(_) => tracing::info!(%key, kind = expected.as_str(), "ESS: acknowledged by the CSS; copy removed"),
                Err(e) => tracing::error!(%key, error = %e, "ESS: removing an acknowledged copy failed"),
            }
        }
        step_of(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_steps() {
        assert_eq!(step_of(Reply::Accepted), Step::Progress);
        assert_eq!(step_of(Reply::Superseded), Step::Progress);
        assert!(matches!(step_of(Reply::RetryLater("reset".into())), Step::Retry(_)));
        assert!(matches!(step_of(Reply::Refused("status 500".into())), Step::Final(_)));
        assert!(matches!(step_of(Reply::UnknownObject), Step::Final(_)));
    }
}
