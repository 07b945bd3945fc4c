//! The one task that acts for every source: it wakes every [`TICK`] (or at once for an
//! explicit trigger), decides which sources are due, sends their files one at a time, and
//! follows the objects until the CSS acknowledged them.
//!
//! Triggers and the files they send, each file once it has settled:
//! - `periodic` (within its daily window) and `explicit`/`remote` passes send every matching
//!   file that differs from what was sent last;
//! - `onChange` scans send the files that differ; a change event in the folder brings a
//!   scan once the settle time has passed since the last event;
//! - a file that changed while it was read, or whose send did not finish before a restart,
//!   is sent again; a failed send is retried after a backoff.
//!
//! The records of files gone from a folder are forgotten once nothing is left to follow,
//! so the state does not grow with every file a folder ever held.

use super::report::StatusReport;
use super::scan::{matching_files, Seen, Settling};
use super::send::{send_file, SendError, Sent};
use super::sign::Signer;
use super::sources::UPLOAD_REQUEST_TYPE;
use super::state::{FileRecord, UploadState};
use super::status::{Phase, UploadStatus};
use super::watch::FolderWatches;
use super::Uploads;
use crate::auth::Identity;
use crate::backoff::Backoff;
use crate::clock::{now_secs, Instant};
use crate::config::UploadSource as Source;
use crate::engine::{EngineError, Node, OwnDelivery, Report};
use crate::model::ObjectKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the worker looks at its sources, its retries and the CSS's acknowledgements.
const TICK: Duration = Duration::from_secs(1);
/// Retries of a failed send: after 2 s, doubling up to 5 minutes.
const RETRY: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300)).jittered();

/// What the worker keeps per source between ticks.
struct SourceRun {
    settling: Settling,
    next_scan: Option<Instant>,
    /// A change event was seen: a scan is due at this time, when what changed has settled.
    scan_after_change: Option<Instant>,
    next_periodic: Option<Instant>,
    /// A pass of every differing file is due (periodic, explicit, remote).
    pass_wanted: bool,
    /// Files to send once settled, with when they may be tried and how often they failed.
    retry: HashMap<String, (Instant, u32)>,
    /// Why the folder could not be read at the last look, logged once per new reason.
    scan_error: Option<String>,
}

pub(super) struct Worker {
    node: Node,
    identity: Identity,
    uploads: Arc<Uploads>,
    state: UploadState,
    runs: Vec<SourceRun>,
    /// Per source with a `signingKey`: its signer, or why the key could not be read (the
    /// configuration read it at start; the file may have changed since).
    signers: HashMap<String, Result<Signer, String>>,
    report: StatusReport,
    watches: FolderWatches,
}

impl Worker {
    pub(super) fn new(node: Node, identity: Identity, uploads: Arc<Uploads>, state_file: &Path) -> Self {
        let state = UploadState::load(state_file);
        let now = Instant::now();
        let runs = uploads
            .sources
            .iter()
            .map(|source| {
                // A send wanted before a restart and not finished is done again.
                let unfinished = state
                    .files
                    .get(&source.name)
                    .into_iter()
                    .flatten()
                    .filter(|(_, record)| !record.created)
                    .map(|(relpath, _)| (relpath.clone(), (now, 0)))
                    .collect();
                SourceRun {
                    settling: Settling::default(),
                    next_scan: source.on_change.map(|_| now),
                    scan_after_change: None,
                    next_periodic: source.periodic.map(|_| now),
                    pass_wanted: false,
                    retry: unfinished,
                    scan_error: None,
                }
            })
            .collect();
        let signers = uploads
            .sources
            .iter()
            .filter_map(|source| {
                let key = source.signing_key.as_ref()?;
                Some((source.name.clone(), Signer::load(key)))
            })
            .collect();
        let worker = Self {
            node,
            identity,
            state,
            runs,
            signers,
            report: StatusReport::new(),
            watches: FolderWatches::start(&uploads),
            uploads,
        };
        worker.show_recorded();
        worker
    }

    /// Puts what the state file says on the status board.
    fn show_recorded(&self) {
        for source in &self.uploads.sources {
            for (relpath, record) in self.state.files.get(&source.name).into_iter().flatten() {
                let phase = match (record.created, record.delivered) {
                    (true, true) => Phase::Delivered,
                    (true, false) => Phase::Sending,
                    (false, _) => Phase::Selected,
                };
                self.uploads.board.put(status_of(source, relpath, record, phase));
            }
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
                _ = self.uploads.wake.notified() => {}
            }
            self.take_triggers().await;
            for index in 0..self.runs.len() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.serve_source(index) => {}
                }
            }
            self.follow_deliveries().await;
            self.report
                .send_if_due(&self.node, &self.identity, &self.uploads.board)
                .await;
        }
    }

    /// Explicit triggers from the API, upload requests the CSS sent, and change events.
    async fn take_triggers(&mut self) {
        let now = Instant::now();
        for index in self.uploads.take_changed() {
            // Each event moves the scan on: a file being written costs no scan until quiet.
            self.runs[index].scan_after_change = Some(now + self.uploads.sources[index].settle);
        }
        let requested = self.uploads.take_requested();
        for (source, run) in self.uploads.sources.iter().zip(self.runs.iter_mut()) {
            if requested.contains(&source.name) {
                tracing::info!(source = %source.name, "uploads: explicit trigger");
                run.pass_wanted = true;
            }
        }
        let org = self.node.org_for(None).to_string();
        let requests = match self
            .node
            .list_updated(&self.identity, &org, UPLOAD_REQUEST_TYPE, false)
            .await
        {
            Ok(requests) => requests,
            Err(EngineError::NotFound) => return,
            Err(e) => {
                tracing::warn!(error = %e, "uploads: reading the upload requests failed");
                return;
            }
        };
        for request in requests {
            let wanted = request.description.trim();
            let mut matched = false;
            for (source, run) in self.uploads.sources.iter().zip(self.runs.iter_mut()) {
                if source.remote && (wanted.is_empty() || wanted == source.name) {
                    run.pass_wanted = true;
                    matched = true;
                }
            }
            if matched {
                tracing::info!(request = %request.object_id, source = wanted, "uploads: upload requested by the CSS");
            } else {
                tracing::warn!(request = %request.object_id, source = wanted, "uploads: the CSS asked for a source that does not exist or does not allow remote triggers");
            }
            let key = ObjectKey::new(org.clone(), UPLOAD_REQUEST_TYPE, request.object_id.clone());
            if let Err(e) = self.node.report(&self.identity, &key, Report::Consumed).await {
                tracing::warn!(request = %request.object_id, error = %e, "uploads: marking the upload request consumed failed");
            }
        }
    }

    /// Sends what is due for the source at `index`.
    async fn serve_source(&mut self, index: usize) {
        let now = Instant::now();
        let Some(scan_due) = self.due(index, now) else {
            return;
        };
        let Some(files) = self.scan(index).await else {
            return;
        };
        let chosen = self.choose(index, files, scan_due, now).await;
        let source = self.uploads.sources[index].clone();
        for (relpath, seen) in &chosen {
            self.uploads
                .board
                .put(fresh_status(&source, relpath, *seen, Phase::Selected));
        }
        for (relpath, seen) in chosen {
            self.send(index, &source, &relpath, seen).await;
        }
    }

    /// Whether the source at `index` has anything to do now: `None` when not, else whether
    /// its `onChange` scan is due.
    fn due(&mut self, index: usize, now: Instant) -> Option<bool> {
        let source = &self.uploads.sources[index];
        let run = &mut self.runs[index];
        if let (Some(next), Some(periodic)) = (run.next_periodic, source.periodic) {
            if now >= next {
                run.next_periodic = Some(now + periodic.interval);
                if periodic.window.is_none_or(|w| w.contains(now_secs())) {
                    run.pass_wanted = true;
                }
            }
        }
        let scan_due = match (run.next_scan, source.on_change) {
            (Some(next), Some(every)) if now >= next => {
                run.next_scan = Some(now + every);
                true
            }
            _ => false,
        };
        let changed = run.scan_after_change.is_some_and(|at| now >= at);
        if changed {
            run.scan_after_change = None;
        }
        let scan_due = scan_due || changed;
        (run.pass_wanted || scan_due || !run.retry.is_empty()).then_some(scan_due)
    }

    /// The matching files of the source at `index`; `None` when its folder cannot be read
    /// (looked at again at the next tick; its files keep their records meanwhile, so nothing
    /// is sent twice when it is back).
    async fn scan(&mut self, index: usize) -> Option<Vec<(String, Seen)>> {
        let source = self.uploads.sources[index].clone();
        let run = &mut self.runs[index];
        let scanned = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || matching_files(&source)).await
        };
        match scanned {
            Ok(Ok(files)) => {
                run.scan_error = None;
                // The folder is there: its watch can be placed if it could not be before.
                self.watches.retry(&self.uploads, index);
                Some(files)
            }
            Ok(Err(e)) => {
                let reason = e.to_string();
                if run.scan_error.as_ref() != Some(&reason) {
                    tracing::warn!(source = %source.name, folder = %source.folder.display(), error = %reason, "uploads: cannot read the folder");
                    run.scan_error = Some(reason);
                }
                None
            }
            Err(e) => {
                tracing::error!(source = %source.name, error = %e, "uploads: the folder scan failed");
                None
            }
        }
    }

    /// The files of the source at `index` to send now, of those its folder holds: settled,
    /// different from what was sent, and wanted by a pass or a retry that is due, or by the
    /// `onChange` scan (a file waiting for its retry's backoff waits for it). Also forgets
    /// what no longer needs following.
    async fn choose(
        &mut self,
        index: usize,
        files: Vec<(String, Seen)>,
        scan_due: bool,
        now: Instant,
    ) -> Vec<(String, Seen)> {
        let source = &self.uploads.sources[index];
        let run = &mut self.runs[index];
        let present: HashMap<&str, Seen> = files.iter().map(|(relpath, seen)| (relpath.as_str(), *seen)).collect();
        let state = &self.state;
        let changed = |relpath: &str, seen: Seen| differs(state, source, relpath, seen);
        if std::mem::take(&mut run.pass_wanted) {
            for (&relpath, &seen) in &present {
                if changed(relpath, seen) {
                    run.retry.entry(relpath.to_string()).or_insert((now, 0));
                }
            }
        }
        // A file to retry that is gone, or is again what was sent, needs nothing more.
        run.retry.retain(|relpath, _| {
            present
                .get(relpath.as_str())
                .is_some_and(|&seen| changed(relpath, seen))
        });
        // Records of files gone from the folder, with nothing left to follow.
        let forgotten = self.state.forget(&source.name, |relpath, record| {
            present.contains_key(relpath) || (record.created && !record.delivered && record.instance_id != 0)
        });
        drop(present);
        // The state file first: what the list no longer shows is no longer in the file.
        if !forgotten.is_empty() {
            self.save().await;
        }
        let source = &self.uploads.sources[index];
        for relpath in &forgotten {
            self.uploads.board.remove(&source.name, relpath);
        }
        let source = &self.uploads.sources[index];
        let run = &mut self.runs[index];
        let state = &self.state;
        let seen = files.len();
        let settled = run
            .settling
            .observe(files, source.settle, now, crate::clock::now_nanos());
        // A file still being written is looked at again once it could have settled, so an
        // event missed (a file written in a folder before its watch was placed) delays it by
        // the settle time, not by a whole scan interval.
        if settled.len() < seen && source.on_change.is_some() && run.scan_after_change.is_none() {
            run.scan_after_change = Some(now + source.settle);
        }
        settled
            .into_iter()
            .filter(|(relpath, seen)| {
                let wanted = match run.retry.get(relpath) {
                    Some(&(at, _)) => now >= at,
                    None => scan_due,
                };
                wanted && differs(state, source, relpath, *seen)
            })
            .collect()
    }

    async fn send(&mut self, index: usize, source: &Source, relpath: &str, seen: Seen) {
        // Recorded first, so that a send cut short by a restart is done again.
        let mut pending = self.state.get(&source.name, relpath).cloned().unwrap_or(FileRecord {
            created: false,
            delivered: false,
            size: seen.size,
            mtime_nanos: seen.mtime_nanos,
            sha256: String::new(),
            object_id: String::new(),
            instance_id: 0,
        });
        pending.created = false;
        pending.delivered = false;
        self.state.set(&source.name, relpath, pending);
        self.save().await;
        self.uploads
            .board
            .put(fresh_status(source, relpath, seen, Phase::Hashing));
        let sent = match self.signers.get(&source.name) {
            Some(Err(reason)) => Err(SendError::Failed(reason.clone())),
            Some(Ok(signer)) => send_file(&self.node, &self.identity, source, (relpath, seen), Some(signer)).await,
            None => send_file(&self.node, &self.identity, source, (relpath, seen), None).await,
        };
        match sent {
            Ok(sent) => {
                tracing::info!(source = %source.name, file = relpath, object = %sent.object_id, size = sent.size, sha256 = %sent.sha256, "uploads: file sent as an object");
                self.runs[index].retry.remove(relpath);
                let record = created_record(&sent, seen);
                let status = status_of(source, relpath, &record, Phase::Sending);
                self.state.set(&source.name, relpath, record);
                self.save().await;
                self.uploads.board.put(status);
            }
            Err(error) => {
                let failures = match &error {
                    // A change is not a failure: the file is tried once it settles again.
                    SendError::Changed => 0,
                    SendError::Failed(_) => self.runs[index].retry.get(relpath).map_or(0, |&(_, n)| n) + 1,
                };
                let at = Instant::now()
                    + if failures == 0 {
                        Duration::ZERO
                    } else {
                        RETRY.delay(failures)
                    };
                tracing::warn!(source = %source.name, file = relpath, %error, "uploads: file not sent");
                self.runs[index].retry.insert(relpath.to_string(), (at, failures));
                self.uploads
                    .board
                    .phase(&source.name, relpath, Phase::Failed, &error.to_string());
            }
        }
    }

    /// Marks delivered the objects the CSS acknowledged since the last look.
    async fn follow_deliveries(&mut self) {
        let org = self.node.org_for(None).to_string();
        // New phases, shown once the state file holds them.
        let mut shown: Vec<(String, String, Phase, &'static str)> = Vec::new();
        for (source, run) in self.uploads.sources.iter().zip(self.runs.iter_mut()) {
            let Some(files) = self.state.files.get_mut(&source.name) else {
                continue;
            };
            for (relpath, record) in files.iter_mut() {
                if !record.created || record.delivered || record.instance_id == 0 {
                    continue;
                }
                let key = ObjectKey::new(org.clone(), source.object_type.clone(), record.object_id.clone());
                match self.node.own_delivery(&key, record.instance_id).await {
                    Ok(OwnDelivery::Delivered) => {
                        record.delivered = true;
                        tracing::info!(source = %source.name, file = %relpath, object = %record.object_id, "uploads: the CSS acknowledged the object");
                        shown.push((source.name.clone(), relpath.clone(), Phase::Delivered, ""));
                    }
                    Ok(OwnDelivery::Pending) => {}
                    Ok(OwnDelivery::Missing) => {
                        // Gone before the CSS had it, not deleted (an in-memory store
                        // restarted): the file is sent again.
                        record.created = false;
                        run.retry.insert(relpath.clone(), (Instant::now(), 0));
                        shown.push((
                            source.name.clone(),
                            relpath.clone(),
                            Phase::Selected,
                            "the object went before the CSS acknowledged it; sent again",
                        ));
                    }
                    Ok(ended @ (OwnDelivery::Replaced | OwnDelivery::Deleted)) => {
                        // Another instance took its ID (another file with the same object ID,
                        // or an application's write), or an application deleted it: nothing
                        // more to follow for this file until it changes.
                        record.instance_id = 0;
                        let reason = if ended == OwnDelivery::Deleted {
                            "the object was deleted on this node before the CSS acknowledged it"
                        } else {
                            "the object was replaced by another instance before the CSS acknowledged it"
                        };
                        shown.push((source.name.clone(), relpath.clone(), Phase::Failed, reason));
                    }
                    Err(e) => tracing::warn!(error = %e, "uploads: reading an object's delivery failed"),
                }
            }
        }
        if shown.is_empty() {
            return;
        }
        self.save().await;
        for (source, relpath, phase, reason) in shown {
            self.uploads.board.phase(&source, &relpath, phase, reason);
        }
    }

    /// Writes the state file off the async threads; a failure is logged (the state in
    /// memory stays right, and the next save writes it all).
    async fn save(&self) {
        let snapshot = self.state.clone();
        match tokio::task::spawn_blocking(move || snapshot.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "uploads: writing the state file failed"),
            Err(e) => tracing::error!(error = %e, "uploads: writing the state file failed"),
        }
    }
}

/// True when the file is not what was last sent of it.
fn differs(state: &UploadState, source: &Source, relpath: &str, seen: Seen) -> bool {
    !state
        .get(&source.name, relpath)
        .is_some_and(|record| record.created && record.size == seen.size && record.mtime_nanos == seen.mtime_nanos)
}

fn created_record(sent: &Sent, seen: Seen) -> FileRecord {
    FileRecord {
        created: true,
        delivered: false,
        size: sent.size,
        mtime_nanos: seen.mtime_nanos,
        sha256: sent.sha256.clone(),
        object_id: sent.object_id.clone(),
        instance_id: sent.instance_id,
    }
}

fn fresh_status(source: &Source, relpath: &str, seen: Seen, phase: Phase) -> UploadStatus {
    let object_id = source.object_id(relpath, seen.mtime_nanos.div_euclid(1_000_000_000));
    status(source, relpath, (object_id, seen.size, String::new()), phase)
}

fn status_of(source: &Source, relpath: &str, record: &FileRecord, phase: Phase) -> UploadStatus {
    let object = (record.object_id.clone(), record.size, record.sha256.clone());
    status(source, relpath, object, phase)
}

/// The status of the file at `relpath` whose object is `(ID, size, SHA-256)`.
fn status(
    source: &Source,
    relpath: &str,
    (object_id, size, sha256): (String, u64, String),
    phase: Phase,
) -> UploadStatus {
    UploadStatus {
        source: source.name.clone(),
        path: relpath.to_string(),
        phase,
        reason: String::new(),
        object_type: source.object_type.clone(),
        object_id,
        size,
        sha256,
        updated: now_secs(),
    }
}
