//! Crash test of the gold job: a child `reco gold` is killed with SIGKILL at random moments
//! (6 times) while silver keeps receiving commits, and once deliberately between publishing
//! windows and writing the checkpoint that records them; after a final clean run the published
//! tables equal a brute-force recount of silver, with one row set per window. The same with
//! both aggregates at work: users' views, clicks and ratings in sessions, and after the kills
//! the trending windows and the item neighbour lists both equal their recounts.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime},
};

use reco_lake::{Format, Lake};
use reco_testkit::{
    gold::{SilverWriter, history, published, recount, silver_events},
    neighbors::{self, Event, InteractionWriter, Kind, Step, same_lists},
    wait_until, xorshift,
};

const KILLS: usize = 6;
/// 2019-03-01T00:00:00Z.
const BASE: i64 = 1_551_398_400_000_000;
const HOUR: i64 = 3_600_000_000;

fn pseudo_random(max_ms: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005).rotate_left(17) % max_ms
}

/// Where the lake of a kill loop lives: `LAKEHOUSE_PATH` and the environment it needs.
struct Place {
    location: String,
    env: Vec<(String, String)>,
}

fn spawn_gold(lake: &Place, format: &str) -> Child {
    spawn_with(lake, format, None)
}

fn spawn_with(lake: &Place, format: &str, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reco"));
    cmd.envs(lake.env.iter().map(|(k, v)| (k, v)));
    if let Some(f) = fault {
        cmd.env("RECO_FAULT", f);
    }
    cmd.args(["gold", "--metrics-addr", "127.0.0.1:0"])
        .env("LAKEHOUSE_PATH", &lake.location)
        .env("STORAGE_FORMAT", format)
        .env("RECO_GOLD_POLL_INTERVAL_MS", "50")
        .env("RECO_GOLD_IDLE_TIMEOUT_MS", "1500")
        .env("RECO_GOLD_CHECKPOINT_INTERVAL_SECS", "0")
        .env("RECO_GOLD_TOP_N", "10")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn reco gold")
}

async fn kill_loop(format: Format, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), format).unwrap();
    let place = Place { location: dir.path().display().to_string(), env: Vec::new() };
    kill_loop_on(&lake, &place, name).await;
}

async fn kill_loop_on(lake: &Lake, place: &Place, name: &str) {
    let mut silver = SilverWriter::open(lake).await;
    let mut child = spawn_gold(place, name);
    // Twelve hours of history arriving in 48 commits, with kills in between.
    let mut chunks = Vec::new();
    for (i, seed) in [5u64, 6].into_iter().enumerate() {
        let events = history(BASE + i as i64 * 6 * HOUR, seed);
        chunks.extend(events.chunks(125).map(<[_]>::to_vec));
    }
    let per_kill = chunks.len() / KILLS;
    for (i, chunk) in chunks.iter().enumerate() {
        silver.commit(chunk).await;
        if i == chunks.len() / 2 {
            // Deliberately between "windows written" and "checkpoint".
            child.kill().unwrap();
            child.wait().unwrap();
            let mut faulty = spawn_with(place, name, Some("gold_crash_after_publish"));
            let aborted = wait_until(Duration::from_secs(30), || {
                let exited = faulty.try_wait().unwrap().is_some();
                async move { exited }
            })
            .await;
            if !aborted {
                faulty.kill().unwrap();
            }
            let status = faulty.wait().unwrap();
            assert!(aborted, "the job with the fault hook never published");
            assert!(!status.success(), "the fault hook aborts the job: {status:?}");
            child = spawn_gold(place, name);
        }
        if i % per_kill == per_kill - 1 {
            tokio::time::sleep(Duration::from_millis(pseudo_random(600))).await;
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn_gold(place, name);
        }
    }
    let expected = recount(&silver_events(lake).await, 10);
    let settled = wait_until(Duration::from_secs(60), || async { published(lake).await == expected }).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");
    assert!(settled, "after {KILLS} kills the gold tables differ from the recount of silver");
    assert!(expected.len() > 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn gold_survives_sigkill_delta() {
    kill_loop(Format::Delta, "delta").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gold_survives_sigkill_parquet() {
    kill_loop(Format::Parquet, "parquet").await;
}

/// The same on an S3 lake (a real S3 server): checkpoints, lease and tables in the bucket.
#[tokio::test(flavor = "multi_thread")]
async fn gold_survives_sigkill_on_s3() {
    let s3 = reco_testkit::s3::S3Server::start().await;
    let place = Place { location: s3.lake_url("gold-kills"), env: s3.env() };
    kill_loop_on(&s3.lake("gold-kills"), &place, "delta").await;
}

/// Users in sessions (by gaps, some named) with views, clicks and ratings, in event-time order.
fn interactions(n: usize) -> Vec<Event> {
    let mut next = xorshift(0xC0FF_EE00);
    let mut t = BASE;
    (0..n)
        .map(|_| {
            t += if next().is_multiple_of(25) { 40 * 60_000_000 } else { (next() % 90) as i64 * 1_000_000 };
            let user = (next() % 40).min(next() % 40);
            let item = (user % 4) * 10 + (next() % 10).min(next() % 10);
            let kind = match next() % 10 {
                0..=5 => Kind::View,
                6 | 7 => Kind::Click,
                _ => Kind::Rating(1.0 + (next() % 9) as f64 / 2.0),
            };
            let session = user.is_multiple_of(10).then(|| format!("s{user}-{}", (t - BASE) / (3 * HOUR)));
            Event { user: format!("u{user}"), item: format!("m{item}"), session, kind, time_us: t }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gold_with_both_aggregates_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path(), Format::Delta).unwrap();
    let place = Place { location: dir.path().display().to_string(), env: Vec::new() };
    let mut silver = InteractionWriter::open(&lake, 3).await;
    let events = interactions(4000);
    let mut child = spawn_gold(&place, "delta");
    // Uneven commits (1 to 200 events), a kill after every sixth at a random moment.
    let mut next = xorshift(91);
    let (mut rest, mut commits) = (&events[..], 0);
    while !rest.is_empty() {
        let n = (1 + next() % 200) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        silver.commit(chunk).await;
        commits += 1;
        if commits % 6 == 0 {
            tokio::time::sleep(Duration::from_millis(pseudo_random(600))).await;
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn_gold(&place, "delta");
        }
        rest = tail;
    }
    let mut steps: Vec<Step> = events.iter().cloned().map(Step::Event).collect();
    steps.push(Step::Advance(events.last().unwrap().time_us));
    let lists = neighbors::recount(&neighbors::Rules::default(), &steps);
    let windows = recount(&neighbors::trending_inputs(&events), 10);
    let settled = wait_until(Duration::from_secs(90), || async {
        same_lists(&neighbors::published(&lake).await, &lists) && published(&lake).await == windows
    })
    .await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");
    let (got_lists, got_windows) = (neighbors::published(&lake).await, published(&lake).await);
    let differ: Vec<_> = lists
        .iter()
        .filter(|(k, v)| got_lists.get(*k) != Some(v))
        .map(|(k, v)| (k, v, got_lists.get(k)))
        .take(1)
        .collect();
    assert!(
        settled,
        "after the kills: neighbours equal {}, windows equal {}; {} lists expected, {} published, e.g. (item, expected, got) {differ:?}",
        same_lists(&got_lists, &lists),
        got_windows == windows,
        lists.len(),
        got_lists.len()
    );
    assert!(commits >= 24, "{commits} commits, so at least four kills");
    assert!(lists.len() >= 30 && windows.len() > 100, "{} lists, {} windows", lists.len(), windows.len());
}
