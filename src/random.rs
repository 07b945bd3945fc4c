//! The one source of randomness: the operating system's generator. Identifiers that must
//! differ between starts and nodes, salts and jitter all come from here.

/// A random 64-bit number.
pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Only without any OS generator (not seen on supported systems): std's randomly
        // keyed hasher over the time still differs between processes.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        return hasher.finish();
    }
    u64::from_le_bytes(bytes)
}

/// Fills `buffer` from the OS generator, for secrets such as salts: with no generator the
/// caller must do without rather than use something guessable.
pub fn fill(buffer: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::getrandom(buffer)
}

/// `len` random bytes: data with no structure a compressor could use, for tests and
/// benchmarks of what does not compress.
pub fn noise(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    if fill(&mut bytes).is_err() {
        for piece in bytes.chunks_mut(8) {
            piece.copy_from_slice(&u64().to_le_bytes()[..piece.len()]);
        }
    }
    bytes
}

/// A random number in `[0, 1)`.
pub fn fraction() -> f64 {
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_differ_and_fractions_stay_below_one() {
        let draws: std::collections::HashSet<u64> = (0..100).map(|_| super::u64()).collect();
        assert_eq!(draws.len(), 100);
        assert!((0..1000).map(|_| super::fraction()).all(|f| (0.0..1.0).contains(&f)));
        let mut salt = [0u8; 13];
        super::fill(&mut salt).expect("the OS generator");
        assert_ne!(salt, [0u8; 13]);
    }
}
