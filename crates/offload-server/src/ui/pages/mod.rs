//! One module per dashboard page: what the page shows, read from the engine and shaped for its template.
//!
//! Invariant: every page reads bounded data (maintained counters, per-minute rows, one keyset page, capped
//! lists), so it renders in the same time with a million jobs as with ten; and every stored value a page
//! shows is cut to a bounded size before it is rendered ([`crate::ui::format`]).

pub(crate) mod dead;
pub(crate) mod events;
pub(crate) mod functions;
pub(crate) mod job;
pub(crate) mod jobs;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod push;
pub(crate) mod queue;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod schedules;
