//! The vocabulary storesync writes on what it owns, defined once: every label, annotation and
//! field manager name that marks an object as storesync's or records what it did.

/// Marks every object storesync owns, with the value [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "storesync";
/// The server-side apply field manager of storesync's writes.
pub const FIELD_MANAGER: &str = "storesync";
pub const STORE_LABEL: &str = "storesync.dev/store";
pub const OWNER_LABEL: &str = "storesync.dev/owner";
pub const ENGINE_LABEL: &str = "storesync.dev/engine";
pub const PLAN_LABEL: &str = "storesync.dev/plan";
/// `"true"` on the namespace of a protected store: it is never pruned, even once its file is gone.
pub const PROTECTED_LABEL: &str = "storesync.dev/protected";
/// The commit that last changed the store.
pub const COMMIT_ANNOTATION: &str = "storesync.dev/commit";
/// The digest of the guardrails storesync applied to the namespace.
pub const SPEC_HASH_ANNOTATION: &str = "storesync.dev/spec-hash";
/// The last error applying the store, on its namespace; removed once it applies.
pub const LAST_ERROR_ANNOTATION: &str = "storesync.dev/last-error";
/// Label Helm stores on the release (its Secret) with the digest of chart, version and values.
pub const RELEASE_HASH_LABEL: &str = "storesync.dev/release-hash";
/// `retired` on the namespace of a store whose file is gone and which waits, stopped, for its
/// purge; absent on every other store.
pub const STATE_LABEL: &str = "storesync.dev/state";
pub const RETIRED_STATE: &str = "retired";
/// When the store was retired (RFC 3339, UTC): its purge is due `prune.retention` later.
pub const RETIRED_AT_ANNOTATION: &str = "storesync.dev/retired-at";
/// When the retired store is purged (RFC 3339): `retired-at` plus the `prune.retention` of the
/// last sync, kept in step by every sync, for readers that know no catalog (`storesync status`).
pub const PURGE_AT_ANNOTATION: &str = "storesync.dev/purge-at";
/// The commit that retired the store (the first one without its file).
pub const RETIRED_BY_ANNOTATION: &str = "storesync.dev/retired-by";
/// The release hash label of a release upgraded to stop the store (`retired: true`).
pub const RETIRED_RELEASE_HASH: &str = "retired";
