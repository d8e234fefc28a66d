//! Traffic for reco: [`synthetic::Generator`] makes interactions with a realistic shape (pure,
//! seeded, injected clock); [`send`] delivers them to the HTTP API (batched, on concurrent
//! keep-alive connections) or straight to Kafka, at a rate or as fast as possible.

pub mod replay;
pub mod send;
pub mod synthetic;
