//! Recommendation quality, checked in CI: `scripts/eval_recs.py` (the `make bench` evaluation)
//! replays MovieLens-100K with each user's last positive held out into this build's `reco up`
//! and scores `GET /users/{id}/recommendations` beside popularity and `implicit`'s item-kNN
//! models trained on the same events. reco must stay at least 1.1× the better item-kNN model
//! on HR@10 and NDCG@10 (issue 28's goal), and the references must rank as they should
//! (item-kNN above popularity), or the evaluation itself is broken.

use std::process::Command;

fn ratio(line: &str, metric: &str) -> f64 {
    let after = line.split(&format!("{metric} ")).nth(1).unwrap_or_else(|| panic!("{metric} in {line:?}"));
    after.split('x').next().unwrap().parse().unwrap()
}

fn column(table: &str, row: &str, n: usize) -> f64 {
    let line = table.lines().find(|l| l.starts_with(&format!("| {row}"))).unwrap_or_else(|| panic!("{row}: {table}"));
    line.split('|').nth(n).unwrap().trim().parse().unwrap()
}

#[test]
fn recommendations_beat_item_knn_on_movielens() {
    let python = std::env::var("RECO_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/reco-venv/bin/python", std::env::var("HOME").unwrap_or_default()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/eval_recs.py");
    let out = Command::new(python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_reco"))
        .env_remove("RECO_BENCH_REPORT")
        .output()
        .expect("run scripts/eval_recs.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let summary = stdout.lines().find(|l| l.starts_with("reco / best item-kNN")).expect("summary line");
    assert!(ratio(summary, "HR@10") >= 1.1 && ratio(summary, "NDCG@10") >= 1.1, "{stdout}");
    let popularity = column(&stdout, "popularity", 2);
    assert!(popularity > 0.05, "popularity finds some held-out items: {stdout}");
    for knn in ["implicit CosineRecommender", "implicit BM25Recommender"] {
        assert!(column(&stdout, knn, 2) > popularity, "{knn} above popularity: {stdout}");
    }
}
