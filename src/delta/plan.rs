//! Which bytes of the new data a receiver copies from its old data.

use super::manifest::{Digest, Manifest};
use std::collections::HashMap;

/// `len` bytes of the old data at `from` are the new data's bytes at `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRun {
    pub to: u64,
    pub from: u64,
    pub len: u64,
}

/// The copies that put every chunk of `manifest` found in the old data (`found`, from
/// [`super::locate`]) in place, in the new data's order; neighbours that are neighbours in
/// both become one run, so unchanged stretches are copied in one piece.
pub fn copy_runs(manifest: &Manifest, found: &HashMap<Digest, (u64, u32)>) -> Vec<CopyRun> {
    let mut runs: Vec<CopyRun> = Vec::new();
    for (to, len, hash) in manifest.located() {
        let Some(&(from, found_len)) = found.get(hash) else {
            continue;
        };
        if found_len != len {
            continue;
        }
        let len = u64::from(len);
        match runs.last_mut() {
            Some(run) if run.to + run.len == to && run.from + run.len == from => run.len += len,
            _ => runs.push(CopyRun { to, from, len }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{build, locate, noise};
    use std::collections::HashSet;

    /// Rebuilds the new data from the old through the runs, the rest from the new data.
    fn rebuilt(old: &[u8], new: &[u8]) -> (Vec<u8>, u64) {
        let manifest = build(new).unwrap();
        let wanted: HashSet<Digest> = manifest.chunks.iter().map(|(_, h)| *h).collect();
        let runs = copy_runs(&manifest, &locate(old, &wanted).unwrap());
        let mut out = vec![0u8; new.len()];
        let mut covered = vec![false; new.len()];
        let mut copied = 0;
        for run in &runs {
            let (to, from, len) = (run.to as usize, run.from as usize, run.len as usize);
            out[to..to + len].copy_from_slice(&old[from..from + len]);
            covered[to..to + len].iter_mut().for_each(|c| *c = true);
            copied += run.len;
        }
        for (i, byte) in new.iter().enumerate() {
            if !covered[i] {
                out[i] = *byte;
            }
        }
        (out, copied)
    }

    #[test]
    fn scattered_changes_leave_most_bytes_to_copy() {
        let old = noise(2_000_000, 1);
        let mut new = old.clone();
        for at in (100_000..1_900_000).step_by(300_000) {
            new[at..at + 100].copy_from_slice(&noise(100, at as u64));
        }
        new.splice(50_000..50_000, noise(777, 9));
        new.drain(1_000_000..1_000_500);
        let (out, copied) = rebuilt(&old, &new);
        assert_eq!(out, new);
        let fetched = new.len() as u64 - copied;
        assert!(fetched < 10 * 2 * 64 * 1024, "{fetched} bytes to fetch");
        assert!(copied > 0);
    }

    #[test]
    fn unrelated_data_copies_nothing_and_identical_data_copies_all_in_one_run() {
        let old = noise(500_000, 1);
        let (_, copied) = rebuilt(&old, &noise(500_000, 2));
        assert_eq!(copied, 0);
        let manifest = build(&old[..]).unwrap();
        let wanted: HashSet<Digest> = manifest.chunks.iter().map(|(_, h)| *h).collect();
        let runs = copy_runs(&manifest, &locate(&old[..], &wanted).unwrap());
        assert_eq!(
            runs,
            vec![CopyRun {
                to: 0,
                from: 0,
                len: 500_000
            }]
        );
    }
}
