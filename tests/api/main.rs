//! Integration tests: one binary, each module drives a real server over HTTP.

mod client_profile_concurrency;
mod client_profile_export;
mod client_profile_list;
mod client_profile_validation;
mod client_profiles;
mod foundation;
mod global_settings;
mod helpers;
