//! The reco event model and its validation: pure, no I/O.
//!
//! The API validates request bodies with it and the silver job validates Kafka records with
//! exactly the same code, so an event the API accepts is an event silver keeps, and a record
//! that bypassed the API is judged by the same rules (CONTRACTS §3).
//!
//! ```
//! use reco_core::{validate_event, Mode, Rules};
//! let value = serde_json::json!({"type": "view", "user_id": 42, "item_id": "m1",
//!                                "timestamp": "2019-03-01T10:00:00Z", "event_id": "e1"});
//! let now_us = 1_800_000_000_000_000; // the caller's clock, injected
//! let event = validate_event(&value, &Rules::default(), now_us, Mode::Stored { topic_type: None })
//!     .unwrap();
//! assert_eq!(event.user_id, "42");
//! ```

mod event;
mod validate;
mod window;

pub use event::{Event, EventType, format_timestamp_us};
pub use validate::{ErrorKind, FieldError, Mode, Rules, decode_json, validate_event};
pub use window::{TRENDING_WINDOWS, WindowSpec};
