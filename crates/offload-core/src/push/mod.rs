//! Push delivery's domain: the [`Target`] a job is sent to and its validation ([`target`]), what an HTTP
//! answer means for the job ([`outcome`]), that meaning read back from a recorded error ([`recorded`]), and
//! the callback jobs that report a job's end ([`callback`]).
//! No I/O: the engine sends the requests and the stores persist what these functions decide.

pub mod callback;
pub mod outcome;
pub mod recorded;
pub mod target;

pub use callback::{CALLBACK_QUEUE, callback_job};
pub use outcome::{Classified, Delivery, MAX_RESPONSE_BODY, PushOutcome, Response, classify};
pub use target::Target;
