//! Integration tests: one binary, each module drives a real server over HTTP.

mod admin_profiles;
mod backup;
mod foundation;
mod helpers;
mod lifecycle;
mod login;
