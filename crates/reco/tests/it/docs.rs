//! The docs describe the system as it is: README.md and docs/ carry results with their date
//! and commit, never a numbered story of the attempts that led there (that belongs in
//! CHANGELOG.md, by date, and in git history).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `word` followed by a number, as in "session 6", "round 3", "attempt 2", "session-7".
fn numbered(text: &str, word: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for (at, _) in lower.match_indices(word) {
        let before = lower[..at].chars().next_back();
        let rest = lower[at + word.len()..].trim_start_matches(['s', ' ', '-', '#']);
        if before.is_none_or(|c| !c.is_alphanumeric()) && rest.starts_with(|c: char| c.is_ascii_digit()) {
            let line = lower[..at].matches('\n').count() + 1;
            found.push(format!("line {line}: {}", &text[at..(at + word.len() + 12).min(text.len())]));
        }
    }
    found
}

#[test]
fn readme_and_docs_carry_no_numbered_history() {
    let mut files = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    assert!(files.len() >= 5, "README and the docs: {files:?}");
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for word in ["session", "round", "attempt", "iteration", "try"] {
            for hit in numbered(&text, word) {
                offenders.push(format!("{}: {hit}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "numbered history (move it to CHANGELOG.md by date):\n{}", offenders.join("\n"));

    // Dated results name their commit.
    let benchmarks = std::fs::read_to_string(repo().join("docs/BENCHMARKS.md")).unwrap();
    let reliability = std::fs::read_to_string(repo().join("docs/RELIABILITY.md")).unwrap();
    // A shallow clone lacks the history to look commits up in.
    let shallow = Command::new("git")
        .args(["rev-parse", "--is-shallow-repository"])
        .current_dir(repo())
        .output()
        .map_or(true, |o| String::from_utf8_lossy(&o.stdout).trim() != "false");
    for (name, text) in [("BENCHMARKS", &benchmarks), ("RELIABILITY", &reliability)] {
        for paragraph in text.split("\n\n") {
            // A dated result (not a pointer to a dated CHANGELOG entry) names an existing commit.
            let pointers = paragraph.match_indices("CHANGELOG.md, ").map(|(i, p)| i + p.len()..i + p.len() + 10);
            let mut text = paragraph.to_owned();
            for range in pointers.collect::<Vec<_>>().into_iter().rev() {
                text.replace_range(range.start..range.end.min(text.len()), "");
            }
            if !has_date(&text) {
                continue;
            }
            let commits: Vec<&str> = paragraph
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.len() >= 7 && w.len() <= 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
                .collect();
            let known = shallow
                || commits.iter().any(|c| {
                    Command::new("git")
                        .args(["cat-file", "-e", &format!("{c}^{{commit}}")])
                        .current_dir(repo())
                        .status()
                        .is_ok_and(|s| s.success())
                });
            assert!(known, "docs/{name}.md: a dated result names no commit of this repository: {paragraph}");
        }
    }
    // And the history has its place, by date.
    let changelog = std::fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    assert!(changelog.lines().any(|l| l.starts_with("## 2026-")), "CHANGELOG.md has dated entries");
}

#[test]
fn the_check_finds_numbered_history() {
    assert_eq!(numbered("as session 6 found", "session").len(), 1);
    assert_eq!(numbered("(sessions 4-6)", "session").len(), 1);
    assert_eq!(numbered("the session-7 figures", "session").len(), 1);
    assert!(numbered("session_id and the session timeout of 10 s", "session").is_empty());
    assert!(numbered("19 repetitions, background rounds", "round").is_empty());
    assert!(numbered("entry 3", "try").is_empty(), "a word ending in the keyword is not it");
}

/// Whether `text` holds a date written `YYYY-MM-DD`.
fn has_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(10)
        .any(|w| w.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() }))
}

/// ARCHITECTURE's module map lists every source file, and nothing that is gone: a newcomer
/// looking for where a change goes finds each module there.
#[test]
fn the_module_map_lists_every_source_file() {
    let text = std::fs::read_to_string(repo().join("docs/ARCHITECTURE.md")).unwrap();
    let map = text.split("## Module map").nth(1).expect("a Module map section");
    let block = map.split("```").nth(1).expect("the map in a code block");
    let (mut listed, mut krate) = (std::collections::BTreeSet::new(), String::new());
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(' ') {
            listed.insert(format!("{krate}/{}", line.split_whitespace().next().unwrap()));
        } else {
            krate = line.trim().trim_end_matches('/').to_owned();
        }
    }
    let mut on_disk = std::collections::BTreeSet::new();
    let crates = repo().join("crates");
    let mut dirs = vec![crates.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&crates).unwrap().to_string_lossy().into_owned();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && name != "tests" && name != "target" {
                dirs.push(path);
            } else if rel.contains("/src/")
                && name.ends_with(".rs")
                && !name.ends_with("_tests.rs")
                && name != "tests.rs"
            {
                on_disk.insert(rel);
            }
        }
    }
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&on_disk).collect();
    assert!(missing.is_empty() && stale.is_empty(), "module map: missing {missing:?}, gone {stale:?}");
}
