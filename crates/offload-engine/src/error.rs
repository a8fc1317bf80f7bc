//! Engine errors: a store error, or a request the engine refuses because it is stopping.

use offload_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is draining: it hands out no new work.
    #[error("the server is shutting down and hands out no new jobs")]
    ShuttingDown,
}

/// Result of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
