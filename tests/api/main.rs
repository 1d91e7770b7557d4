//! Integration tests: one binary, each module drives a real server over HTTP.

mod admin_profiles;
mod applications;
mod backup;
mod backup_encrypted;
mod client_profile_concurrency;
mod client_profile_export;
mod client_profile_list;
mod client_profile_storage;
mod client_profile_validation;
mod client_profiles;
mod console;
mod crash;
mod damage;
mod deploy;
#[cfg(feature = "etcd")]
mod etcd_cluster;
#[cfg(feature = "etcd")]
mod etcd_commands;
#[cfg(feature = "etcd")]
mod etcd_limits;
mod foundation;
mod global_settings;
mod hardening;
mod hardening_api;
mod hardening_auth;
mod helpers;
mod lifecycle;
mod login;
mod ops;
mod password_reset;
mod readme;
mod request_log;
mod route_access;
mod signin;
mod tls;
mod webdriver;
