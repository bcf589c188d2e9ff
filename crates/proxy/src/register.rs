//! Batched registration of accepted messages with the main server. Best effort by design: the
//! message is already durable in the queue, and delivery creates the row if registration is lost.

use std::sync::Arc;
use std::time::Duration;

use msgrelay_core::wire::{RegisterItem, RegisterRequest};
use msgrelay_ops::Metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::upstream::Upstream;

const MAX_BATCH: usize = 500;
const WINDOW: Duration = Duration::from_millis(20);

/// Hands accepted messages to the registration task without waiting.
#[derive(Clone)]
pub(crate) struct RegisterSender(mpsc::Sender<RegisterItem>);

impl RegisterSender {
    pub fn send(&self, item: RegisterItem) {
        if self.0.try_send(item).is_err() {
            tracing::debug!("registration backlog full; the delivery will create the row");
        }
    }
}

pub(crate) fn spawn(
    upstream: Upstream,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> RegisterSender {
    let (tx, mut rx) = mpsc::channel::<RegisterItem>(20_000);
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = rx.recv() => match item { Some(i) => i, None => break },
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
            let n = batch.len() as u64;
            match upstream
                .register(&RegisterRequest { messages: batch })
                .await
            {
                Ok(()) => {
                    metrics.registered.inc_by(n);
                }
                Err(e) => {
                    tracing::warn!(count = n, error = %e, "registering queued messages failed; delivery will create them")
                }
            }
        }
    });
    RegisterSender(tx)
}
