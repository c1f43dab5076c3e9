//! storesync: a GitOps reconciler for e-commerce stores on Kubernetes.
//!
//! Data flows one way: a Git commit is read ([`source`]) into a catalog that is validated and
//! rendered ([`desired`]), compared with what the cluster holds ([`live`]) into a [`plan`], which
//! is applied ([`apply`]) by one [`sync`], and reported ([`report`], [`metrics`]) by the daemon
//! ([`daemon`], [`server`]) or the CLI ([`config`], [`commands`]).
//!
//! Imports go one way too, each module using only those listed before it (`tests/it/layering.rs`
//! checks it): [`error`], [`untrusted`], [`text`], [`secret`], [`shutdown`] (shared pieces);
//! [`desired`] (pure: the catalog's model, rules and rendering, below [`source`], which reads
//! bytes into desired's raw catalog); [`source`]; [`live`]; [`plan`]; [`apply`] (the only code
//! that writes to the cluster); [`rollout`] (updates in waves, carried by syncs); [`sync`];
//! [`report`]; [`metrics`]; [`daemon`]; [`server`]; [`config`]; [`commands`].
#![forbid(unsafe_code)]

pub mod apply;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod desired;
pub mod error;
pub mod live;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod rollout;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod source;
pub mod sync;
pub mod text;
pub mod untrusted;

pub use error::Error;
