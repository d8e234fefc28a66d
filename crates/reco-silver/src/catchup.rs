//! Flushing as soon as silver has read everything Kafka held a moment ago.
//!
//! A batch waits at most `max_batch_age` (the latency bound under any load). Under light or
//! steady traffic that wait is most of the time from "acknowledged" to "readable in silver",
//! and a shorter fixed age would cut a backlog into many small commits. So, once the oldest
//! buffered record is `min_batch_age` old, the job asks the broker for every assigned
//! partition's high watermark (one ListOffsets request for all, off the consumer loop) and
//! commits as soon as it has read up to those offsets: caught up with what was acknowledged
//! when it asked. Reading a backlog, those offsets lie far ahead, so batches still fill to
//! `max_batch_bytes` and the job asks again only when the answer is `max_batch_age` old.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, ConsumerContext, StreamConsumer},
};

/// One partition's log bounds `(log start, high watermark)` as the broker answered, `None`
/// when it did not.
pub(crate) type Mark = (String, i32, Option<(i64, i64)>);

/// Asks the broker for the log bounds of `partitions`: two ListOffsets requests for all of them
/// (earliest, latest), at once on blocking threads. librdkafka's per-partition watermark query sends
/// two requests per partition; eighteen at once from a worker of three topics, answered late
/// under load, timed out, and librdkafka closes a connection whose requests time out, the
/// consumer's fetch with it.
pub(crate) async fn ask_log_bounds<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    partitions: Vec<(String, i32)>,
) -> Vec<Mark> {
    if partitions.is_empty() {
        return Vec::new();
    }
    // ListOffsets takes "timestamps": -2 asks for the log start, -1 for its end. Both at once.
    let ask = |at: Offset| {
        let (consumer, partitions) = (Arc::clone(consumer), partitions.clone());
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (topic, p) in &partitions {
                tpl.add_partition_offset(topic, *p, at).ok()?;
            }
            consumer.offsets_for_times(tpl, ASK_TIMEOUT).ok()
        })
    };
    let (lows, highs) = futures::future::join(ask(Offset::Beginning), ask(Offset::End)).await;
    let (lows, highs) = (lows.ok().flatten(), highs.ok().flatten());
    let offset = |answer: &Option<TopicPartitionList>, topic: &str, p: i32| {
        let e = answer.as_ref()?.find_partition(topic, p)?;
        match (e.error(), e.offset()) {
            (Ok(()), Offset::Offset(o)) => Some(o),
            _ => None,
        }
    };
    partitions.iter().map(|(t, p)| (t.clone(), *p, offset(&lows, t, *p).zip(offset(&highs, t, *p)))).collect()
}

/// Longest wait for the broker's answer. Generous: the job keeps reading meanwhile (or, before
/// a commit, would rather wait than disconnect from a busy broker).
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `mark`'s partition holds records past `read` (the next offset this worker reads).
pub(crate) fn holds_more(mark: Option<(i64, i64)>, read: i64) -> bool {
    mark.is_none_or(|(low, high)| high > read.max(low))
}

/// The high watermarks the job is reading up to.
struct Targets {
    asked: Instant,
    /// Topic → partition → offset still to reach.
    remaining: HashMap<String, HashMap<i32, i64>>,
}

pub(crate) struct CatchUp {
    min_age: Duration,
    /// How long an answer is trusted: a partition whose remaining offsets are never delivered
    /// (a transaction marker at the log's end) must not stop the job from asking again.
    max_age: Duration,
    targets: Option<Targets>,
    last_asked: Option<Instant>,
}

impl CatchUp {
    /// `min_age` zero: never flush early (batches end by size or `max_age` only).
    pub(crate) fn new(min_age: Duration, max_age: Duration) -> CatchUp {
        CatchUp { min_age, max_age, targets: None, last_asked: None }
    }

    /// When to ask the broker next, given when the oldest buffered record arrived.
    pub(crate) fn ask_at(&self, oldest_pending: Option<Instant>) -> Option<Instant> {
        if self.min_age.is_zero() {
            return None;
        }
        if let Some(t) = &self.targets {
            return Some(t.asked + self.max_age);
        }
        let oldest = oldest_pending? + self.min_age;
        Some(self.last_asked.map_or(oldest, |at| oldest.max(at + self.min_age)))
    }

    pub(crate) fn asking(&mut self) {
        self.last_asked = Some(Instant::now());
    }

    /// The broker's answer, `read(topic, partition)` the offsets read by now; true when every
    /// partition is read to its high watermark already. An incomplete answer is dropped (the
    /// job asks again after `min_age`).
    pub(crate) fn answered(&mut self, marks: Vec<Mark>, read: impl Fn(&str, i32) -> i64) -> bool {
        let asked = self.last_asked.unwrap_or_else(Instant::now);
        let mut remaining: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for (topic, partition, mark) in marks {
            let Some((_, high)) = mark else {
                self.targets = None;
                return false;
            };
            if holds_more(mark, read(&topic, partition)) {
                remaining.entry(topic).or_default().insert(partition, high);
            }
        }
        let done = remaining.is_empty();
        self.targets = (!done).then_some(Targets { asked, remaining });
        done
    }

    /// A record of `topic`/`partition` was read; `next` is the offset after it. True when that
    /// was the last offset to reach.
    pub(crate) fn read(&mut self, topic: &str, partition: i32, next: i64) -> bool {
        let Some(targets) = &mut self.targets else { return false };
        let Some(partitions) = targets.remaining.get_mut(topic) else { return false };
        if partitions.get(&partition).is_some_and(|high| next >= *high) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                targets.remaining.remove(topic);
            }
            if targets.remaining.is_empty() {
                self.targets = None;
                return true;
            }
        }
        false
    }

    /// Partitions were revoked: what was asked may belong to another worker now.
    pub(crate) fn forget(&mut self) {
        self.targets = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(topic: &str, p: i32, high: i64) -> Mark {
        (topic.to_owned(), p, Some((0, high)))
    }

    #[test]
    fn flushes_when_every_partition_reaches_the_asked_offsets() {
        let mut c = CatchUp::new(Duration::from_millis(250), Duration::from_secs(2));
        c.asking();
        let marks = vec![mark("a", 0, 10), mark("a", 1, 5), mark("b", 0, 3)];
        assert!(!c.answered(marks, |t, p| if (t, p) == ("b", 0) { 3 } else { 0 }));
        assert!(!c.read("a", 0, 9));
        assert!(!c.read("a", 0, 10));
        assert!(!c.read("b", 0, 4), "already reached");
        assert!(c.read("a", 1, 7), "past the mark counts");
        assert!(!c.read("a", 1, 8), "no targets left");
    }

    #[test]
    fn an_answer_already_reached_flushes_at_once_and_a_failed_one_asks_again() {
        let mut c = CatchUp::new(Duration::from_millis(250), Duration::from_secs(2));
        let now = Instant::now();
        c.asking();
        assert!(c.answered(vec![mark("a", 0, 10)], |_, _| 10));
        let again = c.ask_at(Some(now)).unwrap();
        assert!(again >= now + Duration::from_millis(250));
        c.asking();
        assert!(!c.answered(vec![mark("a", 0, 10), ("a".into(), 1, None)], |_, _| 0));
        assert!(!c.read("a", 0, 10), "a failed answer sets no targets");
        // Low watermark past what was read: nothing there to read (retention).
        assert!(!holds_more(Some((50, 50)), 10));
        assert!(holds_more(None, 10));
    }

    #[test]
    fn targets_are_trusted_for_max_age_and_zero_min_age_never_asks() {
        let mut c = CatchUp::new(Duration::from_millis(250), Duration::from_secs(2));
        c.asking();
        let asked = Instant::now();
        assert!(!c.answered(vec![mark("a", 0, 1_000_000)], |_, _| 0));
        let next = c.ask_at(Some(asked)).unwrap();
        assert!(next >= asked + Duration::from_millis(1900) && next <= asked + Duration::from_secs(2));
        c.forget();
        assert!(!c.read("a", 0, 1_000_000));
        assert_eq!(CatchUp::new(Duration::ZERO, Duration::from_secs(2)).ask_at(Some(asked)), None);
    }
}
