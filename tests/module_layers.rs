//! The crate's top-level modules keep the layer order written in `docs/ARCHITECTURE.md`: a
//! module uses only modules of the layers before its own, so there is no import cycle between
//! them. Reads the `crate::` paths of every source file (the composition root, `lib.rs` and
//! `main.rs`, and the benchmark binary may use everything).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers of the architecture document's `layers` block, lowest first.
fn documented_layers(root: &Path) -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```layers block in docs/ARCHITECTURE.md");
    block
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .map(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|modules| !modules.is_empty())
        .collect()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to, or `None` for the composition root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    match name {
        "lib.rs" | "main.rs" | "bin" => None,
        _ => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The names that follow `crate::` in `text` (comment lines left out): `crate::a::b` gives
/// `a`, `crate::{a::b, c}` gives `a` and `c`.
fn crate_references(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| format!("{line}\n"))
        .collect();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| is_name(c) || c == '$') {
            continue; // `some_crate::` or a macro's `$crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: those right after `{` or a `,` at depth 0.
            let mut depth = 0;
            let mut expecting = true;
            let mut chars = group.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expecting = true,
                    c if depth == 0 && expecting && is_name(c) => {
                        let end = group[i..].find(|c: char| !is_name(c)).map_or(group.len(), |n| i + n);
                        names.insert(group[i..end].to_string());
                        expecting = false;
                        while chars.peek().is_some_and(|&(j, _)| j < end) {
                            chars.next();
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            if end > 0 {
                names.insert(rest[..end].to_string());
            }
        }
    }
    names
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let text = "use crate::engine::Node;\nuse crate::{model::{a, b}, store,\n  auth::x};\n// crate::api in a comment\nlet v = crate::STOP;\nuse other_crate::thing;\n";
    let expected: BTreeSet<String> = ["engine", "model", "store", "auth", "STOP"].map(String::from).into();
    assert_eq!(crate_references(text), expected);
}

#[test]
fn modules_use_only_the_layers_below_their_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let layers = documented_layers(root);
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(n, modules)| modules.iter().map(move |m| (m.as_str(), n)))
        .collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        modules.insert(module.clone());
        let Some(&own) = layer_of.get(module.as_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file");
        for used in crate_references(&text) {
            if used == module {
                continue;
            }
            let shown = file.strip_prefix(root).unwrap_or(file).display();
            match layer_of.get(used.as_str()) {
                Some(&layer) if layer < own => {}
                Some(_) => problems.push(format!(
                    "{shown}: `{module}` uses `{used}`, which is not in a layer below"
                )),
                None => problems.push(format!(
                    "{shown}: `{module}` uses `crate::{used}`, which no layer holds"
                )),
            }
        }
    }
    for module in &modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!("the module `{module}` is in no layer of docs/ARCHITECTURE.md"));
        }
    }
    for listed in layer_of.keys() {
        if !modules.contains(*listed) {
            problems.push(format!(
                "docs/ARCHITECTURE.md lists `{listed}`, which src/ does not have"
            ));
        }
    }
    assert!(problems.is_empty(), "layer order broken:\n{}", problems.join("\n"));
}
