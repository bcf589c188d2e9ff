//! The operator's view of the queue, the only part of it the main server and the portal get:
//! depth by state, the dead letters, and putting dead letters back ("retry now"). It cannot
//! enqueue, lease, acknowledge or dead-letter, so the roles that hold it cannot take part in
//! delivery or forge an entry; the compiler keeps it that way (docs/design.md, "The queue outside
//! delivery").

use msgrelay_core::MessageId;

use crate::{FailedEntry, Queue, QueueError, QueueStats};

/// A queue handle restricted to inspection and to the retry of failed messages; cheap to clone.
#[derive(Clone)]
pub struct QueueMonitor(Queue);

impl QueueMonitor {
    /// Counts messages per state.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.0.stats().await
    }

    /// Up to `limit` failed messages (oldest failure first).
    pub async fn list_failed(&self, limit: usize) -> Result<Vec<FailedEntry>, QueueError> {
        self.0.list_failed(limit).await
    }

    /// Failed → ready (attempts kept); `None` = all failed. Returns the count.
    pub async fn retry_failed(&self, ids: Option<&[MessageId]>) -> Result<u64, QueueError> {
        self.0.retry_failed(ids).await
    }
}

impl Queue {
    /// The inspection-only view of this queue, for the main server and the portal.
    pub fn monitor(&self) -> QueueMonitor {
        QueueMonitor(self.clone())
    }
}
