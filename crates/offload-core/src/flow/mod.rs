//! Flow control: the pure rules behind queue limits, throttles, fair claims and debounce.
//!
//! Limits are counters in the store, changed in the transactions that claim and finish jobs; the decisions of
//! what a claim may take ([`admission`]), when a throttle lets the next job start ([`gcra`]), what a valid limit
//! is ([`limits`]) and where a debounced job's start moves ([`debounce`]) are made here, so both stores and every
//! server decide the same way.
//!
//! Invariant: nothing here does I/O or keeps state between calls; every function takes the facts the store read
//! and returns what to write.

pub mod admission;
pub mod debounce;
pub mod gcra;
pub mod held;
pub mod limits;
