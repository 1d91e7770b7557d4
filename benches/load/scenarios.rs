//! The requests each scenario sends, the logins that precede them, and the pool of created
//! profiles that reads and updates pick from.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION};
use serde_json::{Value, json};

use crate::client::{self, Call, Sink, Target, Workload};

pub const ACCEPT_V23: &str = "application/vnd.appgate.peer-v23+json";
const DEVICE_ID: &str = "4c07bc67-57ea-42dd-b702-c2d6c45419fc";
const JSON: &str = "application/json";
/// One profile in a hundred carries it in its name, so a `query` for it matches 1 %.
pub const NEEDLE: &str = "needle";

#[derive(Clone)]
pub struct Creds {
    pub email: String,
    pub password: String,
}

/// A created client profile: its id and its name.
#[derive(Clone)]
pub struct Profile {
    pub id: String,
    pub name: String,
}

/// Profiles created so far (up to a cap, so a million-profile load does not hold them all).
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<Vec<Profile>>>);

impl Pool {
    pub fn snapshot(&self) -> Arc<Vec<Profile>> {
        Arc::new(self.0.lock().expect("pool lock").clone())
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("pool lock").len()
    }

    /// A sink that keeps the `id` and `name` of created profiles, `cap` at most.
    pub fn sink(&self, cap: usize) -> Sink {
        let pool = self.clone();
        Arc::new(move |_conn, body: &Bytes| {
            let mut v = pool.0.lock().expect("pool lock");
            if v.len() >= cap {
                return;
            }
            let Ok(obj) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            if let (Some(id), Some(name)) = (obj["id"].as_str(), obj["name"].as_str()) {
                v.push(Profile {
                    id: id.into(),
                    name: name.into(),
                });
            }
        })
    }
}

fn appgate(call: Call, token: &str) -> Call {
    call.header(ACCEPT, ACCEPT_V23)
        .header(AUTHORIZATION, &format!("Bearer {token}"))
}

fn field(body: &[u8], name: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body).ok()?[name]
        .as_str()
        .map(String::from)
}

fn login_call(creds: &Creds) -> Call {
    let body = json!({
        "providerName": "local",
        "deviceId": DEVICE_ID,
        "username": creds.email,
        "password": creds.password,
    });
    Call::get("/admin/login")
        .header(ACCEPT, ACCEPT_V23)
        .body(Method::POST, JSON, body.to_string())
}

pub async fn appgate_login(target: &Target, creds: &Creds) -> Result<String, String> {
    match client::once(target, login_call(creds)).await? {
        (200, body) => field(&body, "token").ok_or_else(|| "login answer has no token".into()),
        (status, body) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
    }
}

pub async fn occ_login(target: &Target, creds: &Creds) -> Result<String, String> {
    let form = format!(
        "grant_type=password&username={}&password={}",
        form_encode(&creds.email),
        form_encode(&creds.password)
    );
    let call = Call::get("/ccadmin/v1/login").body(
        Method::POST,
        "application/x-www-form-urlencoded",
        form,
    );
    match client::once(target, call).await? {
        (200, body) => {
            field(&body, "access_token").ok_or_else(|| "login answer has no access_token".into())
        }
        (status, body) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Names are unique per run (`run`), connection and request; one in a hundred holds the needle.
pub fn profile_name(prefix: &str, run: &str, conn: usize, seq: u64) -> String {
    if seq.is_multiple_of(100) {
        format!("{prefix}-{run}-{NEEDLE}-{conn}-{seq}")
    } else {
        format!("{prefix}-{run}-{conn}-{seq}")
    }
}

/// Scenario 1 (and the loads): create client profiles with unique names.
pub fn create_profiles(prefix: &str, run: &str, token: &str, sink: Option<Sink>) -> Workload {
    let (prefix, run, token) = (prefix.to_string(), run.to_string(), token.to_string());
    Workload {
        build: Arc::new(move |conn, seq| {
            let body = json!({
                "name": profile_name(&prefix, &run, conn, seq),
                "identityProviderName": "local",
                "tags": ["bench"],
            });
            appgate(Call::get("/admin/client-profiles"), &token).body(
                Method::POST,
                JSON,
                body.to_string(),
            )
        }),
        expect: 200,
        sink,
    }
}

/// Spreads consecutive requests over the pool.
fn pick(pool: &[Profile], seq: u64) -> Option<&Profile> {
    (!pool.is_empty())
        .then(|| &pool[(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize % pool.len()])
}

/// An id that cannot exist, so an empty pool shows up as errors rather than a crash.
const NO_ID: &str = "00000000-0000-4000-8000-000000000000";

/// Scenario 2.
pub fn get_by_id(token: &str, pool: Arc<Vec<Profile>>) -> Workload {
    let token = token.to_string();
    Workload {
        build: Arc::new(move |_conn, seq| {
            let id = pick(&pool, seq).map_or(NO_ID, |p| p.id.as_str());
            appgate(Call::get(format!("/admin/client-profiles/{id}")), &token)
        }),
        expect: 200,
        sink: None,
    }
}

/// Scenarios 3 and 4.
pub fn list(token: &str, query: Option<&str>) -> Workload {
    let path = match query {
        None => "/admin/client-profiles?range=0-100".to_string(),
        Some(q) => format!("/admin/client-profiles?query={q}&range=0-100"),
    };
    let token = token.to_string();
    Workload {
        build: Arc::new(move |_conn, _seq| appgate(Call::get(path.clone()), &token)),
        expect: 200,
        sink: None,
    }
}

/// Scenario 5: PUT the whole object back with the same name and new notes.
pub fn update(token: &str, pool: Arc<Vec<Profile>>) -> Workload {
    let token = token.to_string();
    Workload {
        build: Arc::new(move |_conn, seq| {
            let (id, name) = pick(&pool, seq).map_or((NO_ID, "missing"), |p| (&p.id, &p.name));
            let body = json!({
                "name": name,
                "notes": format!("updated by request {seq}"),
                "identityProviderName": "local",
                "tags": ["bench", "updated"],
                "type": "Profile",
            });
            appgate(Call::get(format!("/admin/client-profiles/{id}")), &token).body(
                Method::PUT,
                JSON,
                body.to_string(),
            )
        }),
        expect: 200,
        sink: None,
    }
}

/// Scenario 6: a create whose name is taken must answer 409.
pub fn create_taken(token: &str, taken: &str) -> Workload {
    let (token, taken) = (token.to_string(), taken.to_string());
    Workload {
        build: Arc::new(move |_conn, _seq| {
            let body = json!({"name": taken, "identityProviderName": "local", "tags": ["bench"]});
            appgate(Call::get("/admin/client-profiles"), &token).body(
                Method::POST,
                JSON,
                body.to_string(),
            )
        }),
        expect: 409,
        sink: None,
    }
}

/// Scenario 7: Oracle admin profiles with unique e-mails.
pub fn create_admins(run: &str, token: &str) -> Workload {
    let (run, token) = (run.to_string(), token.to_string());
    Workload {
        build: Arc::new(move |conn, seq| {
            let body = json!({
                "firstName": "B",
                "lastName": "Bench",
                "email": format!("b-{run}-{conn}-{seq}@example.com"),
                "roles": ["clientProfileViewerRole"],
            });
            Call::get("/ccadmin/v1/adminProfiles")
                .header(AUTHORIZATION, &format!("Bearer {token}"))
                .body(Method::POST, JSON, body.to_string())
        }),
        expect: 200,
        sink: None,
    }
}

/// Scenario 8: Appgate logins (one Argon2id verification each).
pub fn logins(creds: &Creds) -> Workload {
    let creds = creds.clone();
    Workload {
        build: Arc::new(move |_conn, _seq| login_call(&creds)),
        expect: 200,
        sink: None,
    }
}

/// The baseline: the same client asking for the fixed body.
pub fn baseline() -> Workload {
    Workload {
        build: Arc::new(|_conn, _seq| Call::get("/")),
        expect: 200,
        sink: None,
    }
}
