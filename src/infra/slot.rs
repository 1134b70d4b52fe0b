//! A connection's place under `--max-connections`, held by whoever serves it: the accept loop's
//! connection, and the chat socket or Socket.IO session an upgrade hands it to.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

/// A connection's place under `--max-connections`, shared by everyone serving it; the place is
/// given back when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    /// Held only to be dropped: the semaphore gets the place back then.
    _permit: Option<Arc<OwnedSemaphorePermit>>,
}

impl ConnectionSlot {
    pub(crate) fn counted(permit: OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot { _permit: Some(Arc::new(permit)) }
    }

    /// For a Socket.IO request another worker of the cluster passed on: the client's own
    /// connection is counted (and drained) in the worker that accepted it.
    pub(crate) fn counted_elsewhere() -> ConnectionSlot {
        ConnectionSlot { _permit: None }
    }
}
