//! Replay protection: the `X-GitHub-Delivery` ids seen lately.
use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use axum::http::HeaderMap;

use super::DELIVERY_HEADER;

/// How many delivery ids [`Deliveries`] remembers by default.
pub const DEFAULT_DELIVERY_MEMORY: usize = 4096;

/// Longest `X-GitHub-Delivery` accepted; GitHub's are GUIDs (36 characters).
pub const MAX_DELIVERY_ID_LEN: usize = 64;

/// Whether `id` can be a GitHub delivery id: 1 to 64 characters of `A-Za-z0-9-`. Anything
/// else is refused before it is remembered, so [`Deliveries`] stays small.
pub fn is_delivery_id(id: &str) -> bool {
    (1..=MAX_DELIVERY_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Why a request's `X-GitHub-Delivery` is refused (400, before any work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRefusal {
    /// No header: GitHub always sends one, and without it a replay of a signed delivery could
    /// not be told from a new one.
    Missing,
    /// Too long, other characters, or not even text.
    Malformed,
}

impl DeliveryRefusal {
    /// The answer's body.
    pub fn message(self) -> &'static str {
        match self {
            DeliveryRefusal::Missing => "missing X-GitHub-Delivery: every GitHub delivery carries one\n",
            DeliveryRefusal::Malformed => {
                "X-GitHub-Delivery must be 1 to 64 characters of A-Z, a-z, 0-9 and '-'\n"
            }
        }
    }
}

/// The request's delivery id: present and of GitHub's shape ([`is_delivery_id`]).
pub fn delivery_id(headers: &HeaderMap) -> Result<&str, DeliveryRefusal> {
    let value = headers.get(DELIVERY_HEADER).ok_or(DeliveryRefusal::Missing)?;
    value
        .to_str()
        .ok()
        .filter(|id| is_delivery_id(id))
        .ok_or(DeliveryRefusal::Malformed)
}

/// Remembers recent `X-GitHub-Delivery` ids (bounded: the oldest is forgotten first) so a
/// replayed delivery does nothing. Record an id only after its signature was verified, or a
/// stranger could use up the memory.
pub struct Deliveries {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Deliveries {
    pub fn new(capacity: usize) -> Self {
        Deliveries {
            capacity,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// True the first time `id` is seen (among the last `capacity` ids).
    pub fn first_time(&self, id: &str) -> bool {
        // The set stays consistent across a panic elsewhere: every update below is complete.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.ids.contains(id) {
            return false;
        }
        if self.capacity == 0 {
            return true;
        }
        if seen.order.len() >= self.capacity
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.ids.remove(&oldest);
        }
        seen.order.push_back(id.to_owned());
        seen.ids.insert(id.to_owned());
        true
    }
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries::new(DEFAULT_DELIVERY_MEMORY)
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len();
        f.debug_struct("Deliveries")
            .field("capacity", &self.capacity)
            .field("remembered", &len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_dedupe_and_evict_the_oldest() {
        let d = Deliveries::new(3);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(!d.first_time("b"));
        // A fourth id evicts the oldest, "a", and only it.
        assert!(d.first_time("d"));
        assert!(d.first_time("a"));
        assert!(!d.first_time("c"));
        assert!(!d.first_time("d"));
        assert!(d.first_time("b"));
        assert_eq!(format!("{d:?}"), "Deliveries { capacity: 3, remembered: 3 }");
    }

    #[test]
    fn deliveries_default_remembers_4096() {
        let d = Deliveries::default();
        for i in 0..4096 {
            assert!(d.first_time(&i.to_string()));
        }
        assert!(!d.first_time("0"));
        assert!(d.first_time("4096"));
        assert!(d.first_time("0"), "the oldest id is forgotten after 4096 others");
    }

    #[test]
    fn a_delivery_id_is_required_and_well_formed() {
        let mut headers = HeaderMap::new();
        assert_eq!(delivery_id(&headers), Err(DeliveryRefusal::Missing));
        headers.insert(DELIVERY_HEADER, "a b".parse().unwrap());
        assert_eq!(delivery_id(&headers), Err(DeliveryRefusal::Malformed));
        headers.insert(DELIVERY_HEADER, "".parse().unwrap());
        assert_eq!(delivery_id(&headers), Err(DeliveryRefusal::Malformed));
        let guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        headers.insert(DELIVERY_HEADER, guid.parse().unwrap());
        assert_eq!(delivery_id(&headers), Ok(guid));
    }

    #[test]
    fn deliveries_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Deliveries>();
    }
}
