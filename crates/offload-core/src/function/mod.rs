//! Durable functions: the pure rules behind events, functions, runs and their steps.
//!
//! A **function** ([`definition`]) is user code with triggers; an **event** ([`event`]) that matches a trigger
//! starts a **run**; a run is a sequence of **calls**, each an ordinary job whose payload is the call request
//! and whose result is the call response ([`protocol`]). The server records each finished step once and plans
//! the next call ([`record`]); a run moves through the states of [`run`].
//!
//! Invariant: nothing here does I/O. Stores read the facts, call these functions, and write the plans they
//! return, so both stores (and every server sharing a database) decide the same way.

pub mod definition;
pub mod event;
pub mod filter;
pub mod flow;
pub mod names;
pub mod path;
pub mod protocol;
pub mod raw;
pub mod record;
pub mod run;
