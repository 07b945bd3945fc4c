//! Which files a source wants and the object IDs they become.

use crate::config::UploadSource;
use crate::model::names::is_valid_name;

pub use crate::config::UPLOAD_REQUEST_TYPE;

impl UploadSource {
    /// True when the file at `relpath` (relative to the folder, `/`-separated) is wanted: a
    /// pattern without `/` is matched against the file's name in any subfolder, one with
    /// `/` against the whole relative path.
    pub fn wants(&self, relpath: &str) -> bool {
        let name = relpath.rsplit('/').next().unwrap_or(relpath);
        self.patterns.iter().any(|pattern| {
            let subject = if pattern.contains('/') { relpath } else { name };
            glob_match(pattern.as_bytes(), subject.as_bytes())
        })
    }

    /// The object ID of the file at `relpath` modified at `mtime_secs`: the rule with its
    /// placeholders filled, `/` made `~` and any other character not allowed in an ID `_`.
    pub fn object_id(&self, relpath: &str, mtime_secs: i64) -> String {
        let name = relpath.rsplit('/').next().unwrap_or(relpath);
        let filled = self
            .id_rule
            .replace("{relpath}", relpath)
            .replace("{name}", name)
            .replace("{mtime}", &mtime_secs.to_string())
            .replace("{source}", &self.name);
        safe_id(&filled)
    }
}

/// `text` as an object ID: `/` made `~`, any other character not allowed in an ID `_`.
pub fn safe_id(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '/' => '~',
            c if is_valid_name(c.encode_utf8(&mut [0; 4])) => c,
            _ => '_',
        })
        .collect()
}

/// Glob matching: `?` one character and `*` any run of characters, neither crossing `/`;
/// `**` any run including `/`. Iterative, resuming at the last `*` (or, when that cannot
/// grow past a `/`, at the last `**`), so a hostile pattern cannot make it exponential.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a star: (pattern index after it, text index it took up to).
    let mut shallow: Option<(usize, usize)> = None;
    let mut deep: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            if pattern.get(p + 1) == Some(&b'*') {
                p += 2;
                deep = Some((p, t));
                shallow = None;
            } else {
                p += 1;
                shallow = Some((p, t));
            }
            continue;
        }
        if p < pattern.len() && (pattern[p] == text[t] || (pattern[p] == b'?' && text[t] != b'/')) {
            p += 1;
            t += 1;
            continue;
        }
        if let Some((after, from)) = shallow.filter(|&(_, from)| text[from] != b'/') {
            shallow = Some((after, from + 1));
            (p, t) = (after, from + 1);
            continue;
        }
        if let Some((after, from)) = deep {
            deep = Some((after, from + 1));
            shallow = None;
            (p, t) = (after, from + 1);
            continue;
        }
        return false;
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::upload_sources::tests::{source, MINIMAL};

    #[test]
    fn globs_match_names_and_paths() {
        let yes = [
            ("*.log", "a.log"),
            ("a?c", "abc"),
            ("**/*.csv", "x/y/z.csv"),
            ("x/*.csv", "x/z.csv"),
            ("*", ""),
            ("**", "a/b/c"),
            ("**/x*/*.csv", "a/x1/b/x2/z.csv"),
            ("a*b*c", "aXbYbZc"),
        ];
        for (pattern, text) in yes {
            assert!(glob_match(pattern.as_bytes(), text.as_bytes()), "{pattern} {text}");
        }
        let no = [
            ("*.log", "a.txt"),
            ("x/*.csv", "x/y/z.csv"),
            ("a?c", "a/c"),
            ("abc", "ab"),
            ("*.csv", "x/z.csv"),
            ("**/x*/*.csv", "a/x1/b/z.csv"),
        ];
        for (pattern, text) in no {
            assert!(!glob_match(pattern.as_bytes(), text.as_bytes()), "{pattern} {text}");
        }
        let s = &source(MINIMAL).unwrap()[0];
        assert!(s.wants("deep/down/app.log"));
        assert!(!s.wants("app.log.1"));
    }

    #[test]
    fn object_ids_are_made_valid() {
        let mut s = source(MINIMAL).unwrap().remove(0);
        assert_eq!(s.object_id("a/b c.log", 7), "a~b_c.log");
        s.id_rule = "{source}-{name}-{mtime}".into();
        assert_eq!(s.object_id("a/b.log", 1700000000), "logs-b.log-1700000000");
    }
}
