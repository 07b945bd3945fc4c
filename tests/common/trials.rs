//! What `kill -9` trials share: a seeded schedule (a splitmix64 generator, so that a failing
//! trial can be replayed from the seed it printed), a ledger of every acknowledged write with
//! the SHA-256 of its data, the objects the receiving applications were shown, and the tally
//! each kind of trial prints and fails on.

use super::app::{ReceivingApp, Seen};
use super::TestNode;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Trials per kind when `KILL_TRIALS` does not say.
const DEFAULT_TRIALS: u64 = 5;

/// Deterministic pseudo-random numbers (splitmix64): the same seed gives the same schedule.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// `len` bytes of the sequence: distinct data for every object and version.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len + 8);
        while data.len() < len {
            data.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        data.truncate(len);
        data
    }
}

/// The trials of one kind: how many (`KILL_TRIALS`) and the seed of each. Trial `i` uses
/// `TRIAL_SEED + i`; without `TRIAL_SEED` the base seed comes from the clock, so each run
/// tries other kill points. Setting `TRIAL_SEED` to a printed seed replays from that trial on.
pub struct Schedule {
    pub kind: &'static str,
    pub trials: u64,
    base_seed: u64,
}

impl Schedule {
    pub fn from_env(kind: &'static str) -> Self {
        let trials = std::env::var("KILL_TRIALS")
            .ok()
            .map(|v| v.parse().expect("KILL_TRIALS is a number"))
            .unwrap_or(DEFAULT_TRIALS);
        let base_seed = std::env::var("TRIAL_SEED")
            .ok()
            .map(|v| v.parse().expect("TRIAL_SEED is a number"))
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.expect("clock after 1970").as_nanos() as u64
            });
        println!("kill trials {kind}: {trials} trials from TRIAL_SEED={base_seed}");
        Self {
            kind,
            trials,
            base_seed,
        }
    }

    /// The generator of trial `index`, after printing its seed.
    pub fn trial(&self, index: u64) -> SplitMix64 {
        let seed = self.base_seed.wrapping_add(index);
        println!("kill trials {}: trial {index} seed {seed}", self.kind);
        SplitMix64::new(seed)
    }
}

/// SHA-256 of `data`, in hex.
pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a node serves of an object, judged against the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The last acknowledged data, or the data of a later write that was cut off.
    Intact,
    /// Nothing, or older data, where a write had been acknowledged.
    Lost,
    /// Data no write had.
    Corrupt,
}

struct Write {
    sha: String,
    acknowledged: bool,
}

/// Every write of object data tried at the node the application writes to, in order, and
/// whether the node acknowledged it with a 2xx.
#[derive(Default)]
pub struct Ledger {
    writes: HashMap<String, Vec<Write>>,
}

impl Ledger {
    /// Records a write of `data` to `id` about to be sent; returns its number for
    /// [`Ledger::acknowledge`].
    pub fn attempt(&mut self, id: &str, data: &[u8]) -> usize {
        let writes = self.writes.entry(id.to_string()).or_default();
        writes.push(Write {
            sha: sha256(data),
            acknowledged: false,
        });
        writes.len() - 1
    }

    pub fn acknowledge(&mut self, id: &str, write: usize) {
        self.writes.get_mut(id).expect("a recorded object")[write].acknowledged = true;
    }

    /// Whether the last write of `id` was acknowledged.
    pub fn settled(&self, id: &str) -> bool {
        self.writes
            .get(id)
            .and_then(|w| w.last())
            .is_some_and(|w| w.acknowledged)
    }

    /// SHA-256 of the last acknowledged data of `id`.
    pub fn latest(&self, id: &str) -> Option<&str> {
        let writes = self.writes.get(id)?;
        writes.iter().rev().find(|w| w.acknowledged).map(|w| w.sha.as_str())
    }

    /// Judges what a node serves as the data of `id` (`None`: no complete data): the last
    /// acknowledged write must be there, or one tried after it.
    pub fn judge(&self, id: &str, served: Option<&str>) -> Verdict {
        let writes = self.writes.get(id).map(Vec::as_slice).unwrap_or_default();
        let last_acknowledged = writes.iter().rposition(|w| w.acknowledged);
        let since = &writes[last_acknowledged.unwrap_or(0)..];
        match served {
            None if last_acknowledged.is_some() => Verdict::Lost,
            None => Verdict::Intact,
            Some(sha) if since.iter().any(|w| w.sha == sha) => Verdict::Intact,
            Some(sha) if writes.iter().any(|w| w.sha == sha) => Verdict::Lost,
            Some(_) => Verdict::Corrupt,
        }
    }

    /// Whether some write of `id` had this data.
    pub fn knows(&self, id: &str, sha: &str) -> bool {
        self.writes.get(id).is_some_and(|w| w.iter().any(|w| w.sha == sha))
    }
}

/// The counts a kind of trial prints and fails on; `failures` says what went wrong where.
pub struct Tally {
    kind: &'static str,
    pub trials: u64,
    acknowledged: u64,
    lost: u64,
    corrupt: u64,
    duplicates: u64,
    /// `None` in kinds whose transfers go through no counting proxy.
    refetched_max: Option<u64>,
    failures: Vec<String>,
}

impl Tally {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            trials: 0,
            acknowledged: 0,
            lost: 0,
            corrupt: 0,
            duplicates: 0,
            refetched_max: None,
            failures: Vec::new(),
        }
    }

    /// Counts one check of an acknowledged write (`what`: which object where).
    pub fn check(&mut self, what: &str, verdict: Verdict) {
        self.acknowledged += 1;
        self.count(what, verdict);
    }

    /// Counts what a node serves of a write that was never acknowledged: only corruption
    /// counts (nothing, or the previous data, is what a cut-off write may leave).
    pub fn check_unacknowledged(&mut self, what: &str, verdict: Verdict) {
        if verdict == Verdict::Corrupt {
            self.count(what, verdict);
        }
    }

    fn count(&mut self, what: &str, verdict: Verdict) {
        match verdict {
            Verdict::Intact => return,
            Verdict::Lost => self.lost += 1,
            Verdict::Corrupt => self.corrupt += 1,
        }
        self.fail(format!("{what}: {verdict:?}"));
    }

    pub fn duplicate(&mut self, what: String) {
        self.duplicates += 1;
        self.fail(format!("{what}: shown again after it was consumed"));
    }

    /// Records bytes sent again after a kill (`what`: which transfer), failing over `limit`.
    pub fn refetched(&mut self, what: &str, bytes: u64, limit: u64) {
        self.refetched_max = Some(self.refetched_max.unwrap_or(0).max(bytes));
        if bytes > limit {
            self.fail(format!("{what}: {bytes} bytes sent again, more than {limit}"));
        }
    }

    /// Records a failure that is neither loss, corruption nor duplication (a refused resume).
    pub fn fail(&mut self, failure: String) {
        println!("kill trials {}: FAILED {failure}", self.kind);
        self.failures.push(failure);
    }

    /// Prints the summary line and fails the test on any failure.
    pub fn finish(self) {
        let refetched = self.refetched_max.map_or("not measured".to_string(), |b| b.to_string());
        println!(
            "kill trials {}: trials {} / acknowledged writes checked {} / lost {} / corrupt {} / \
             duplicates at the application {} / refetched bytes max {}",
            self.kind, self.trials, self.acknowledged, self.lost, self.corrupt, self.duplicates, refetched
        );
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }
}

/// What a receiving node's applications were handed over all trials: each
/// (`objectID`, `instanceID`) must come once.
pub struct Inbox {
    pub node: String,
    object_type: &'static str,
    handled: HashSet<(String, i64)>,
}

/// How long the objects of one trial may take to reach an application.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

impl Inbox {
    pub fn new(node: impl Into<String>, object_type: &'static str) -> Self {
        Self {
            node: node.into(),
            object_type,
            handled: HashSet::new(),
        }
    }

    /// Runs an application on `node` until it was handed the last acknowledged data of every
    /// object of `ids`, then judges what it saw: data no write had is corrupt, an object
    /// handed again after it was consumed is a duplicate, one that never came is lost.
    pub async fn receive(&mut self, node: &TestNode, ids: &[String], ledger: &Ledger, tally: &mut Tally) {
        let mut app = ReceivingApp::start(node, self.object_type);
        let expected: Vec<(&String, &str)> = ids
            .iter()
            .map(|id| (id, ledger.latest(id).expect("every write is settled before delivery")))
            .collect();
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        let missing = loop {
            let seen = app.seen();
            let missing: Vec<&String> = expected
                .iter()
                .filter(|(id, sha)| !seen.iter().any(|s| handed(s, id, sha)))
                .map(|(id, _)| *id)
                .collect();
            if missing.is_empty() || Instant::now() >= deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // A few more rounds, so that anything listed again after being consumed shows.
        app.wait_polls(3, &[node], Duration::from_secs(30)).await;
        app.stop().await;
        for id in &missing {
            tally.check(&format!("{id} at {}: never delivered", self.node), Verdict::Lost);
            println!("--- log of {} ---\n{}", self.node, node.log());
        }
        for (id, _) in expected.iter().filter(|(id, _)| !missing.contains(id)) {
            tally.check(&format!("{id} at {}", self.node), Verdict::Intact);
        }
        for seen in app.seen().iter().filter(|s| s.failure.is_none()) {
            let what = format!("{} instance {} at {}", seen.object_id, seen.instance_id, self.node);
            if let Some(data) = &seen.data {
                if !ledger.knows(&seen.object_id, &sha256(data)) {
                    tally.check_unacknowledged(&what, Verdict::Corrupt);
                }
            }
            if !self.handled.insert((seen.object_id.clone(), seen.instance_id)) {
                tally.duplicate(what);
            }
        }
        for ((id, _), times) in app.relisted() {
            tally.duplicate(format!("{id} at {} ({times} more listings)", self.node));
        }
    }
}

/// Whether the application took `id` with data of SHA-256 `sha`.
fn handed(seen: &Seen, id: &str, sha: &str) -> bool {
    seen.failure.is_none() && seen.object_id == id && seen.data.as_deref().is_some_and(|d| sha256(d) == sha)
}
