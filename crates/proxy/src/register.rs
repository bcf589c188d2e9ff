//! Batched registration of accepted messages with the main server, so the portal lists a message
//! as `queued` while it waits. Best effort by design: the message is already durable in the
//! queue, and delivery creates the row if registration is lost.
//!
//! Registration waits [`DELAY`] after the acceptance. A message delivered within that time (at
//! full load almost all of them) then finds its row already there, and `INSERT IGNORE` writes
//! nothing: one row write per message in the database instead of two, the insert as `queued`
//! and the update to `delivered` with its secondary indexes (issue 14).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use msgrelay_core::wire::{RegisterItem, RegisterRequest};
use msgrelay_ops::Metrics;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::upstream::Upstream;

const MAX_BATCH: usize = 500;
/// How long a batch waits for more items after its first.
const WINDOW: Duration = Duration::from_millis(20);
/// How old an accepted message is before it is registered.
const DELAY: Duration = Duration::from_secs(1);
/// Items waiting: [`DELAY`] at 50,000 messages a second, a few MB. Beyond it an item is dropped
/// (the delivery creates its row).
const CAPACITY: usize = 50_000;

/// Hands accepted messages to the registration task without waiting.
#[derive(Clone)]
pub(crate) struct RegisterSender(mpsc::Sender<(Instant, RegisterItem)>);

impl RegisterSender {
    pub fn send(&self, item: RegisterItem) {
        if self.0.try_send((Instant::now(), item)).is_err() {
            tracing::debug!("registration backlog full; the delivery will create the row");
        }
    }
}

pub(crate) fn spawn(
    upstream: Upstream,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> RegisterSender {
    spawn_with(DELAY, shutdown, move |req: RegisterRequest| {
        let (upstream, metrics) = (upstream.clone(), metrics.clone());
        async move {
            let n = req.messages.len() as u64;
            match upstream.register(&req).await {
                Ok(()) => {
                    metrics.registered.inc_by(n);
                }
                Err(e) => tracing::warn!(count = n, error = %e,
                    "registering queued messages failed; delivery will create them"),
            }
        }
    })
}

/// The registration loop, with the call to the main server as `register`: batches of up to
/// [`MAX_BATCH`] items gathered within [`WINDOW`], each sent once its youngest item is `delay` old.
fn spawn_with<F, Fut>(delay: Duration, shutdown: CancellationToken, register: F) -> RegisterSender
where
    F: Fn(RegisterRequest) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, RegisterItem)>(CAPACITY);
    tokio::spawn(async move {
        loop {
            let (mut youngest, first) = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = rx.recv() => match item { Some(i) => i, None => break },
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((at, item))) => {
                        youngest = at;
                        batch.push(item);
                    }
                    _ => break,
                }
            }
            // Sent once its youngest item is `delay` old (items waiting in the channel while the
            // previous batch slept may be far younger than the first).
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(youngest + delay) => {}
            }
            register(RegisterRequest { messages: batch }).await;
        }
    });
    RegisterSender(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgrelay_core::{ClientId, MessageId};
    use std::sync::Mutex;

    fn item() -> RegisterItem {
        RegisterItem {
            id: MessageId::new(),
            client_id: ClientId::parse("shop").unwrap(),
            accepted_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn an_accepted_message_is_registered_once_it_is_the_delay_old_and_not_before() {
        let delay = Duration::from_millis(300);
        let seen: Arc<Mutex<Vec<(Instant, MessageId)>>> = Arc::default();
        let sink = seen.clone();
        let sender = spawn_with(delay, CancellationToken::new(), move |req| {
            let sink = sink.clone();
            async move {
                let now = Instant::now();
                sink.lock()
                    .unwrap()
                    .extend(req.messages.iter().map(|m| (now, m.id)));
            }
        });
        let mut sent = Vec::new();
        for _ in 0..3 {
            let it = item();
            sent.push((Instant::now(), it.id));
            sender.send(it);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.lock().unwrap().len() < sent.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.iter().map(|s| s.1).collect::<Vec<_>>(),
            sent.iter().map(|s| s.1).collect::<Vec<_>>(),
            "every item registered once, in order"
        );
        for ((registered_at, id), (sent_at, _)) in seen.iter().zip(&sent) {
            assert!(
                *registered_at >= *sent_at + delay,
                "{id} registered {:?} after it was accepted",
                *registered_at - *sent_at
            );
        }
    }
}
