//! A parser for the Prometheus/OpenMetrics text format, so tests assert on values and
//! labels rather than grepping for substrings.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    /// Parses exposition text; panics on a malformed line (a test failure is what we want).
    pub fn parse(text: &str) -> Samples {
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, rest) = match line.find('{') {
                Some(_) => {
                    let close = line.rfind('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                    (&line[..close + 1], line[close + 1..].trim())
                }
                None => line.split_once(' ').unwrap_or_else(|| panic!("no value: {line}")),
            };
            let value: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad value: {line}"));
            let (name, labels) = match series.find('{') {
                Some(open) => (&series[..open], parse_labels(&series[open + 1..series.len() - 1])),
                None => (series, BTreeMap::new()),
            };
            out.push(Sample { name: name.to_owned(), labels, value });
        }
        Samples(out)
    }

    /// The value of the one series named `name` whose labels include all of `labels`;
    /// `None` when absent. Panics when several series match (the test is ambiguous).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(matching.len() <= 1, "{name}{labels:?} matches {} series", matching.len());
        matching.first().map(|s| s.value)
    }

    /// Like [`Samples::get`] but absent counts as 0 (a counter not yet touched).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    pub fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> {
        self.0.iter().filter(move |s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Distinct values of label `label` across series named `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> =
            self.0.iter().filter(|s| s.name == name).filter_map(|s| s.labels.get(label).cloned()).collect();
        values.sort();
        values.dedup();
        values
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} value must be quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), value);
    }
    labels
}
