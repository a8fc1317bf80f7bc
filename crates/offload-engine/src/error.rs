//! Engine errors: a store error, an invalid request, or a request the engine refuses because it is stopping.

use offload_core::spec::ValidationError;
use offload_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is not acceptable (a function definition, an event); names the field to blame.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The server is draining: it hands out no new work.
    #[error("the server is shutting down and hands out no new jobs")]
    ShuttingDown,
}

/// Result of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
