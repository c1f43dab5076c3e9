//! GitHub webhooks: the signature check (`signature.rs`), payload parsing (`payload.rs`) and
//! replay protection (`deliveries.rs`). Pure, no I/O: the handler (in [`super`]) verifies,
//! parses, enqueues a trigger and answers 202.
//!
//! Order in the handler: [`delivery_id`] (400 when missing or malformed, before the body is
//! read), [`verify_signature`] (401 when false), then [`Deliveries::first_time`] (a replay
//! answers 200 and does nothing), then [`parse`].
mod deliveries;
mod payload;
mod signature;

pub use deliveries::{
    DEFAULT_DELIVERY_MEMORY, Deliveries, DeliveryRefusal, MAX_DELIVERY_ID_LEN, delivery_id, is_delivery_id,
};
pub use payload::{WebhookAction, WebhookError, parse};
pub use signature::{is_signature_header, verify_signature};

/// `sha256=<hex>`: HMAC-SHA256 of the raw body with the webhook secret.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The event name: `ping`, `push`, `pull_request`, …
pub const EVENT_HEADER: &str = "x-github-event";
/// A GUID per delivery; a redelivery from GitHub's settings page reuses it.
pub const DELIVERY_HEADER: &str = "x-github-delivery";
