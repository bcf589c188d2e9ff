//! The binary body of `POST /internal/messages/deliver` (`Content-Type: application/vnd.msgrelay.deliver-batch`).
//! Sealed payloads travel as raw bytes: base64 inside JSON made them a third larger and cost the
//! worker (encode, escape) and the main server (parse, decode) more CPU than the rest of the hop.
//! The JSON body (`wire::DeliverRequest`) is still accepted.
//!
//! Layout, integers big-endian: `MRDB` `u8 version = 1` `u32 count`, then per message:
//! `16 bytes id (UUID)` `u8 len + client_id (UTF-8)` `i64 accepted_at_ms` `u32 attempt_count`
//! `u32 len + sealed payload`.

use crate::{ClientId, MessageId};

/// The media type of the binary batch.
pub const CONTENT_TYPE: &str = "application/vnd.msgrelay.deliver-batch";

const MAGIC: &[u8; 4] = b"MRDB";
const VERSION: u8 = 1;

/// One message of a delivery batch; `sealed` is opaque bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub id: MessageId,
    pub client_id: ClientId,
    pub accepted_at_ms: i64,
    pub attempt_count: u32,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for BatchItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchItem")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("attempt_count", &self.attempt_count)
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// Why a batch body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed delivery batch: {0}")]
pub struct BatchError(&'static str);

/// Encodes `items` (anything that yields `(id, client, accepted_at_ms, attempts, sealed)`).
pub fn encode<'a>(
    items: impl ExactSizeIterator<Item = (MessageId, &'a ClientId, i64, u32, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + items.len() * 512);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for (id, client, accepted_at_ms, attempts, sealed) in items {
        out.extend_from_slice(id.0.as_bytes());
        let c = client.as_str().as_bytes();
        // Client ids are short by construction (ClientId::parse); a longer one is a bug upstream.
        out.push(u8::try_from(c.len()).expect("client ids are at most 255 bytes"));
        out.extend_from_slice(c);
        out.extend_from_slice(&accepted_at_ms.to_be_bytes());
        out.extend_from_slice(&attempts.to_be_bytes());
        out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        out.extend_from_slice(sealed);
    }
    out
}

/// Decodes a batch, refusing anything truncated, trailing or invalid.
pub fn decode(mut b: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], BatchError> {
        if b.len() < n {
            return Err(BatchError("truncated"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn array<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], BatchError> {
        Ok(take(b, N)?.try_into().expect("take returned N bytes"))
    }
    if take(&mut b, 4)? != MAGIC || take(&mut b, 1)?[0] != VERSION {
        return Err(BatchError("not a version 1 msgrelay delivery batch"));
    }
    let count = u32::from_be_bytes(array(&mut b)?) as usize;
    // Each item is at least 33 bytes: a count larger than the body allows is refused before allocating.
    if count > b.len() / 33 + 1 {
        return Err(BatchError("count exceeds the body"));
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let id = MessageId(uuid::Uuid::from_bytes(array(&mut b)?));
        let len = take(&mut b, 1)?[0] as usize;
        let client = std::str::from_utf8(take(&mut b, len)?)
            .map_err(|_| BatchError("client_id is not UTF-8"))?;
        let client_id = ClientId::parse(client).map_err(|_| BatchError("invalid client_id"))?;
        let accepted_at_ms = i64::from_be_bytes(array(&mut b)?);
        let attempt_count = u32::from_be_bytes(array(&mut b)?);
        let len = u32::from_be_bytes(array(&mut b)?) as usize;
        let sealed = take(&mut b, len)?.to_vec();
        items.push(BatchItem {
            id,
            client_id,
            accepted_at_ms,
            attempt_count,
            sealed,
        });
    }
    if !b.is_empty() {
        return Err(BatchError("trailing bytes"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<BatchItem> {
        (0..3u8)
            .map(|n| BatchItem {
                id: MessageId::new(),
                client_id: ClientId::parse(if n == 1 { "shop-2" } else { "demo" }).unwrap(),
                accepted_at_ms: 1_700_000_000_000 + i64::from(n),
                attempt_count: u32::from(n) + 1,
                sealed: vec![n; 100 * usize::from(n)],
            })
            .collect()
    }

    fn enc(items: &[BatchItem]) -> Vec<u8> {
        encode(items.iter().map(|i| {
            (
                i.id,
                &i.client_id,
                i.accepted_at_ms,
                i.attempt_count,
                i.sealed.as_slice(),
            )
        }))
    }

    #[test]
    fn round_trips() {
        let items = sample();
        assert_eq!(decode(&enc(&items)).unwrap(), items);
        assert_eq!(decode(&enc(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn refuses_truncated_trailing_and_foreign_bodies() {
        let body = enc(&sample());
        for cut in [0, 3, 8, 20, body.len() - 1] {
            assert!(decode(&body[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(BatchError("trailing bytes")));
        assert!(decode(b"{\"messages\":[]}").is_err());
        let mut huge = body[..5].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge), Err(BatchError("count exceeds the body")));
    }
}
