//! Recognising a full disk, once for every write path (data files, the SQLite database, the
//! PostgreSQL server): each maps it to [`StoreError::Full`], which the API answers with
//! `507 Insufficient Storage` and an ESS reports to its CSS. Nothing else about a full disk
//! needs handling: every write path already leaves the previous state in place when a write
//! fails, and writes succeed again once space is freed.

use std::io;

/// `ENOSPC` ("No space left on device") on Linux and the other Unix systems we run on.
const ENOSPC: i32 = 28;
/// `EDQUOT` ("Disk quota exceeded") on Linux: the same condition for a user with a quota.
const EDQUOT: i32 = 122;

/// True when a file operation failed because the file system has no room left.
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// True when SQLite failed because its file could not grow (`SQLITE_FULL`).
pub fn is_sqlite_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn enospc_and_quota_errors_mean_a_full_disk() {
        assert!(is_out_of_space(&io::Error::from_raw_os_error(ENOSPC)));
        assert!(is_out_of_space(&io::Error::from_raw_os_error(EDQUOT)));
        assert!(is_out_of_space(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(
            !is_out_of_space(&io::Error::from_raw_os_error(5)),
            "EIO is another failure"
        );
        assert!(
            !is_out_of_space(&io::Error::other("no space left")),
            "text is not looked at"
        );
    }

    #[test]
    fn sqlite_full_is_a_full_disk() {
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(is_sqlite_full(&full));
        assert!(matches!(StoreError::from(full), StoreError::Full));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(!is_sqlite_full(&busy));
        assert!(matches!(StoreError::from(busy), StoreError::Backend(_)));
    }
}
