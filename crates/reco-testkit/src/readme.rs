//! The README's shell examples, read from README.md itself so a test runs what a reader runs.

use std::path::Path;

/// The repository's README.md.
pub fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README.md")
}

/// The first ```sh block after the heading `heading`.
pub fn block_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has {heading:?}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the block ends");
    section[start..start + end].to_owned()
}

/// The commands of a shell block as a reader types them: continuation lines (`\`) joined,
/// comments (`# …`, alone or after a command) dropped.
pub fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let code = match line.find(" #") {
            Some(at) => &line[..at],
            None if line.trim_start().starts_with('#') => "",
            None => line,
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        match code.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(code);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_join_continuations_and_drop_comments() {
        let block = "# a heading comment\nreco gen --rate 2000   # live\n                 # more comment\n\
                     reco replay a.csv --x 1 \\\n    --y 2       # a log\n";
        assert_eq!(commands(block), ["reco gen --rate 2000", "reco replay a.csv --x 1 --y 2"]);
    }
}
