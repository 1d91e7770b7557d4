//! Prometheus metrics, kept in one process-wide registry and served at `GET /metrics`
//! (OpenMetrics text). Labels hold route names, methods, status codes, dialects and
//! outcomes only: never an id, a name or an e-mail.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    dialect: &'static str,
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    commit_rounds: Counter,
    commit_writes: Histogram,
    flush_seconds: Histogram,
    logins: Family<LoginLabels, Counter>,
    lockouts: Counter,
    connections: Gauge,
    client_profiles: Gauge,
    accounts: Gauge,
    resident_bytes: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~13 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("profiled");
    let requests = Family::<RequestLabels, Counter>::default();
    registry.register(
        "http_requests",
        "Requests answered, by route name, method and status",
        requests.clone(),
    );
    let latency = Family::<RouteLabel, Histogram>::new_with_constructor(
        latency_histogram as fn() -> Histogram,
    );
    registry.register(
        "http_request_duration_seconds",
        "Time from the request head to the answer, by route name",
        latency.clone(),
    );
    let commit_rounds = Counter::default();
    registry.register(
        "group_commit_rounds",
        "Group-commit rounds (one flush and fdatasync each) that succeeded",
        commit_rounds.clone(),
    );
    let commit_writes = Histogram::new(exponential_buckets(1.0, 2.0, 12));
    registry.register(
        "group_commit_writes_per_round",
        "Writes acknowledged by one group-commit round",
        commit_writes.clone(),
    );
    let flush_seconds = latency_histogram();
    registry.register(
        "group_commit_flush_seconds",
        "Time one group-commit round took to make its writes durable",
        flush_seconds.clone(),
    );
    let logins = Family::<LoginLabels, Counter>::default();
    registry.register(
        "logins",
        "Sign-in requests by dialect and outcome (success, failure, locked, mfa_required, invalid, error)",
        logins.clone(),
    );
    let lockouts = Counter::default();
    registry.register(
        "lockouts",
        "Accounts locked after repeated failed sign-ins",
        lockouts.clone(),
    );
    let connections = Gauge::default();
    registry.register(
        "open_connections",
        "Open client connections",
        connections.clone(),
    );
    let client_profiles = Gauge::default();
    registry.register(
        "client_profiles",
        "Client profiles stored",
        client_profiles.clone(),
    );
    let accounts = Gauge::default();
    registry.register(
        "accounts",
        "Admin profiles (accounts) stored",
        accounts.clone(),
    );
    let resident_bytes = Gauge::default();
    registry.register(
        "process_resident_memory_bytes",
        "Resident memory of the process",
        resident_bytes.clone(),
    );
    Metrics {
        registry,
        requests,
        latency,
        commit_rounds,
        commit_writes,
        flush_seconds,
        logins,
        lockouts,
        connections,
        client_profiles,
        accounts,
        resident_bytes,
    }
});

/// A method as a label: the standard ones by name, anything else as `other` (a client chooses
/// the method, and labels must stay few).
fn method_label(m: &hyper::Method) -> &'static str {
    use hyper::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outcome of a sign-in route's answer, and its dialect; `None` for other routes.
fn login_outcome(route: &str, status: u16) -> Option<(&'static str, &'static str)> {
    let dialect = match route {
        "appgate.login" | "appgate.authentication" | "appgate.authentication.otp" => "appgate",
        r if r.starts_with("occ.login") || r.starts_with("occ.mfalogin") => "occ",
        _ => return None,
    };
    let outcome = match status {
        200 => "success",
        401 => "failure",
        429 => "locked",
        412 => "mfa_required",
        400 | 406 | 413 | 415 | 422 => "invalid",
        _ => "error",
    };
    Some((dialect, outcome))
}

impl Metrics {
    pub fn request(
        &self,
        route: &'static str,
        method: &hyper::Method,
        status: u16,
        took: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
        if let Some((dialect, outcome)) = login_outcome(route, status) {
            self.logins
                .get_or_create(&LoginLabels { dialect, outcome })
                .inc();
        }
    }

    pub fn commit_round(&self, writes: usize, took: Duration) {
        self.commit_rounds.inc();
        self.commit_writes.observe(writes as f64);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// The OpenMetrics text of every metric, with the stored counts and the process's memory
    /// read now.
    pub fn render(&self, client_profiles: u64, accounts: u64) -> String {
        self.client_profiles.set(client_profiles as i64);
        self.accounts.set(accounts as i64);
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(bytes as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Resident memory from `/proc/self/statm` (pages × 4 KiB pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_routes_are_counted_by_dialect_and_outcome() {
        assert_eq!(
            login_outcome("occ.login_slash", 200),
            Some(("occ", "success"))
        );
        assert_eq!(
            login_outcome("appgate.login", 429),
            Some(("appgate", "locked"))
        );
        assert_eq!(
            login_outcome("appgate.authentication.otp", 401),
            Some(("appgate", "failure"))
        );
        assert_eq!(login_outcome("appgate.client_profiles.get", 401), None);
    }
}
