//! storesync: a GitOps reconciler for e-commerce stores on Kubernetes.
//!
//! Data flows one way: a Git commit ([`source`]) becomes desired state ([`desired`]), which is
//! compared with live state into a [`plan`], which is printed, applied and reported.
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
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod source;
pub mod sync;
pub mod untrusted;

pub use error::Error;
