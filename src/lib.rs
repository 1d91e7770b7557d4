//! profiled: client profiles and admin profiles in an embedded sled database, served over
//! HTTP in two vendor dialects (Appgate SDP `/admin`, Oracle Commerce `/ccadmin/v1`).
//!
//! `main.rs` only wires configuration, logging, the listener and signals; everything else is
//! here so that tests can drive it.

pub mod app;
pub mod appgate;
pub mod auth;
pub mod backup_crypt;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod error;
pub mod http;
pub mod ids;
pub mod mail;
pub mod metrics;
pub mod occ;
pub mod ops;
pub mod routes;
pub mod server;
pub mod store;
pub mod text;
pub mod tls;

pub use app::{App, StartError};
pub use config::Config;
pub use server::{Listeners, run, run_on, serve, serve_on};
