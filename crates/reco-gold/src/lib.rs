//! The gold job's core: "trending now" windows over event time (DESIGN §5).
//!
//! [`window::Trending`] is a pure, synchronous state machine with an injected clock: the job
//! feeds it events (`record`) and asks which windows are due (`advance`); it does no I/O.
//! Counts live in panes that every window length shares (5-minute panes serve both the
//! 1 h / 5 min and the 24 h / 15 min windows), so each event is counted once, not once per
//! window it belongs to (Spark's `window()` copies each row 12× and 96×).
//!
//! ```
//! use reco_gold::window::{Config, Kind, Trending};
//! let mut t = Trending::new(Config::default());
//! let minute = 60_000_000;
//! t.record("m1", Kind::View, 0, 0);
//! t.record("m1", Kind::Click, 10 * minute, 0);
//! t.record("m2", Kind::View, 2 * 60 * minute, 0); // moves the watermark past the first hour
//! let due = t.advance(0);
//! let first = due.iter().find(|w| w.window == "1h" && w.start_us == 0).unwrap();
//! assert_eq!((first.rows[0].item_id.as_str(), first.rows[0].score), ("m1", 4.0));
//! ```

pub mod window;
