//! Where a Kafka record stands against what silver has read of its partition: the next one,
//! one already read, or proof that the log is not the one silver read. Pure: no I/O.

use std::time::Instant;

use crate::dedupe::Dedupe;

/// What the job knows about one assigned partition.
pub(crate) struct PartitionState {
    /// Next offset stored in the silver table (the compare-and-set expectation).
    pub(crate) committed: Option<i64>,
    /// Next offset to accept: committed plus what is buffered. `None`: nothing read yet, the
    /// log is read from its start.
    pub(crate) position: Option<i64>,
    /// The offset librdkafka delivered last for this partition since the job last moved its
    /// fetch position. Between the job's own seeks delivered offsets only go up; going down
    /// means librdkafka reset the fetch position, which it does when the log ended before it.
    pub(crate) last_seen: Option<i64>,
    /// `(offset, event_id)` of the row silver committed last, checked when the re-read after
    /// an assignment passes that offset: another record there means another log.
    pub(crate) last_committed: Option<(i64, String)>,
    /// The broker reported the log's end before the position (a reset, or a broker that
    /// reports its end short of what it holds), at this time. A record at or
    /// past the position's last offset clears it; the job resets the partition when the re-read
    /// has delivered all the broker reports and the log still ends early.
    pub(crate) short_log_since: Option<Instant>,
    pub(crate) dedupe: Dedupe,
}

/// The `event_id` a record's payload names, if it is a JSON object with one.
fn event_id_of(payload: Option<&[u8]>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload?).ok()?;
    value.get("event_id")?.as_str().map(str::to_owned)
}

/// Why a record arrived where it did, judged before it is decoded.
pub(crate) enum Arrival {
    /// The next record: decode it.
    Next,
    /// Below the position: already read (a re-read after an assignment or restart).
    Seen,
    /// The log is not the one silver read; the string says what was found.
    OtherLog(String),
    /// Below the position, and below an offset delivered before without a seek of the job's
    /// in between: librdkafka moved the fetch position back. A reset when the log now ends
    /// before the position (see [`Job::handle`]).
    WentBack(String),
}

/// Where a record stands against the partition's state. Pure apart from moving `state`'s
/// bookkeeping (`last_seen`, the `last_committed` check, done once).
pub(crate) fn classify(state: &mut PartitionState, offset: i64, payload: Option<&[u8]>) -> Arrival {
    let previous = state.last_seen.replace(offset);
    if state.position.is_none_or(|p| offset + 1 >= p) {
        state.short_log_since = None;
    }
    let Some(position) = state.position.filter(|p| offset < *p) else {
        state.last_committed = None;
        return Arrival::Next;
    };
    if let Some((at, id)) = state.last_committed.take_if(|(at, _)| *at <= offset)
        && at == offset
        && event_id_of(payload).as_deref() != Some(id.as_str())
    {
        return Arrival::OtherLog(format!(
            "the record at offset {at} is not event_id {id:?}, which silver committed from that offset"
        ));
    }
    match previous {
        Some(previous) if offset <= previous => {
            Arrival::WentBack(format!("the broker went back from offset {previous} to {offset}, before {position}"))
        }
        _ => Arrival::Seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(position: Option<i64>, last_committed: Option<(i64, &str)>) -> PartitionState {
        PartitionState {
            committed: position,
            position,
            last_seen: None,
            last_committed: last_committed.map(|(o, id)| (o, id.to_owned())),
            short_log_since: None,
            dedupe: Dedupe::new(1),
        }
    }

    fn event(id: &str) -> Vec<u8> {
        format!(r#"{{"event_id":"{id}","user_id":"u"}}"#).into_bytes()
    }

    #[test]
    fn a_re_read_up_to_the_position_is_seen_and_then_records_are_next() {
        let mut s = state(Some(10), None);
        for offset in 0..10 {
            assert!(matches!(classify(&mut s, offset, None), Arrival::Seen), "offset {offset}");
        }
        assert!(matches!(classify(&mut s, 10, None), Arrival::Next));
        assert!(matches!(classify(&mut s, 12, None), Arrival::Next), "a gap is the job's to count, not a reset");
    }

    #[test]
    fn the_last_committed_record_must_be_the_same_event() {
        let mut same = state(Some(10), Some((9, "e9")));
        assert!(matches!(classify(&mut same, 8, Some(&event("x"))), Arrival::Seen), "only offset 9 is checked");
        assert!(matches!(classify(&mut same, 9, Some(&event("e9"))), Arrival::Seen));
        assert!(same.last_committed.is_none(), "checked once");

        let mut other = state(Some(10), Some((9, "e9")));
        match classify(&mut other, 9, Some(&event("new"))) {
            Arrival::OtherLog(found) => assert!(found.contains("offset 9") && found.contains("e9"), "{found}"),
            _ => panic!("another event at silver's last offset is another log"),
        }
        let mut garbage = state(Some(10), Some((9, "e9")));
        assert!(matches!(classify(&mut garbage, 9, Some(b"not json")), Arrival::OtherLog(_)));
    }

    #[test]
    fn a_skipped_check_offset_is_dropped_not_failed() {
        // The record at the checked offset never came (a batch not returned): no verdict.
        let mut s = state(Some(10), Some((5, "e5")));
        assert!(matches!(classify(&mut s, 7, Some(&event("e7"))), Arrival::Seen));
        assert!(s.last_committed.is_none());
    }

    #[test]
    fn offsets_going_down_without_a_seek_are_reported() {
        let mut s = state(Some(100), None);
        assert!(matches!(classify(&mut s, 100, None), Arrival::Next));
        s.position = Some(101);
        match classify(&mut s, 0, None) {
            Arrival::WentBack(found) => assert!(found.contains("from offset 100 to 0"), "{found}"),
            _ => panic!("going back is reported"),
        }
        // After a seek of the job's (last_seen cleared) a re-read from below is ordinary.
        s.last_seen = None;
        assert!(matches!(classify(&mut s, 50, None), Arrival::Seen));
        assert!(matches!(classify(&mut s, 51, None), Arrival::Seen));
    }

    #[test]
    fn a_log_reported_short_is_cleared_by_a_record_at_the_last_offset() {
        let mut s = state(Some(10), None);
        let t0 = Instant::now();
        s.short_log_since = Some(t0);
        assert!(matches!(classify(&mut s, 5, None), Arrival::Seen));
        assert_eq!(s.short_log_since, Some(t0), "a record below keeps it");
        assert!(matches!(classify(&mut s, 9, None), Arrival::Seen));
        assert!(s.short_log_since.is_none(), "the record at offset 9 shows the log reaches 10");
    }

    #[test]
    fn nothing_read_yet_takes_any_offset_as_next() {
        let mut s = state(None, None);
        assert!(matches!(classify(&mut s, 0, None), Arrival::Next));
        let mut s = state(None, None);
        assert!(matches!(classify(&mut s, 500, None), Arrival::Next));
    }
}
