//! Reading a client-profile request body: every problem is collected as one `errors` item
//! (dotted path), so a client sees them all at once. Read-only and unknown fields are ignored,
//! and `null` counts as absent, as Appgate's own clients expect.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::export::{ParsedUrl, parse_profile_url};
use crate::error::{ApiError, FieldError};
use crate::store::ProfileType;

/// Length limits (in characters) and counts; the body itself is capped at 64 KiB.
pub const MAX_NAME: usize = 256;
pub const MAX_NOTES: usize = 4096;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG: usize = 128;
pub const MAX_KEY_NAME: usize = 256;
pub const MAX_IDP_NAME: usize = 256;
pub use crate::text::MAX_HOSTNAME;
pub const MAX_PROFILE_URLS: usize = 100;
pub const MAX_URL: usize = 4096;
pub const MAX_WEIGHT: i64 = 1_000_000;
/// Weight of a group member that does not say.
pub const DEFAULT_WEIGHT: i64 = 100;

/// A validated body, before the server adds what it owns (ids, times, parsed links).
#[derive(Debug)]
pub struct ProfileInput {
    pub id: Option<Uuid>,
    pub name: String,
    pub notes: String,
    pub tags: Vec<String>,
    pub kind: ProfileType,
    /// Empty when the client left it to the server.
    pub spa_key_name: String,
    pub identity_provider_name: String,
    pub hostname: String,
    pub profile_urls: Vec<UrlInput>,
}

#[derive(Debug)]
pub struct UrlInput {
    pub id: Option<Uuid>,
    /// `None` on an update that keeps the link stored under `id` (links are write-only, so a
    /// client that read the group cannot send them back).
    pub url: Option<(String, ParsedUrl)>,
    pub weight: i64,
}

pub use crate::text::is_hostname;

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    errors: &'a mut Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn fail(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(FieldError::new(path, message));
    }

    /// A string field; `null` and absence are `None`.
    fn string(&mut self, key: &str, max: usize) -> Option<String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() > max => {
                self.fail(key, format!("size must be at most {max} characters"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(key, "must be a string");
                None
            }
        }
    }

    fn uuid(&mut self, key: &str) -> Option<Uuid> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => match Uuid::parse_str(s) {
                Ok(id) => Some(id),
                Err(_) => {
                    self.fail(key, "must be a UUID");
                    None
                }
            },
            Some(_) => {
                self.fail(key, "must be a string");
                None
            }
        }
    }

    fn array(&mut self, key: &str, max: usize) -> &'a [Value] {
        let obj = self.obj;
        match obj.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) if items.len() > max => {
                self.fail(key, format!("must have at most {max} items"));
                &[]
            }
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.fail(key, "must be an array");
                &[]
            }
        }
    }
}

/// Validates a client-profile body. Everything wrong is reported together (422). On an
/// update, `path_id` is the id in the path, which a body `id` must match.
pub fn parse(body: &Value, path_id: Option<Uuid>) -> Result<ProfileInput, ApiError> {
    let Value::Object(obj) = body else {
        return Err(ApiError::bad_request("The body must be a JSON object."));
    };
    let mut errors = Vec::new();
    let mut r = Reader {
        obj,
        prefix: String::new(),
        errors: &mut errors,
    };
    let id = r.uuid("id");
    if let (Some(body_id), Some(path_id)) = (id, path_id)
        && body_id != path_id
    {
        r.fail("id", "must match the id in the path");
    }
    let name = match r.string("name", MAX_NAME) {
        Some(n) if crate::text::name_problem(&n).is_some() => {
            r.fail("name", crate::text::name_problem(&n).unwrap_or_default());
            String::new()
        }
        Some(n) if !n.trim().is_empty() => n,
        Some(_) => {
            r.fail("name", "may not be empty");
            String::new()
        }
        None => {
            if matches!(obj.get("name"), None | Some(Value::Null)) {
                r.fail("name", "may not be null");
            }
            String::new()
        }
    };
    let notes = r.string("notes", MAX_NOTES).unwrap_or_default();
    let tags = tags(&mut r);
    // An unknown type has no type-specific fields to check.
    let kind = match obj.get("type") {
        None | Some(Value::Null) => Some(ProfileType::Profile),
        Some(Value::String(s)) if s == "Profile" => Some(ProfileType::Profile),
        Some(Value::String(s)) if s == "Group" => Some(ProfileType::Group),
        Some(_) => {
            r.fail("type", "must be one of Profile, Group");
            None
        }
    };
    let mut input = ProfileInput {
        id,
        name,
        notes,
        tags,
        kind: kind.unwrap_or_default(),
        spa_key_name: String::new(),
        identity_provider_name: String::new(),
        hostname: String::new(),
        profile_urls: Vec::new(),
    };
    match kind {
        Some(ProfileType::Profile) => profile_fields(&mut r, &mut input),
        Some(ProfileType::Group) => input.profile_urls = profile_urls(&mut r),
        None => {}
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Lower-cased, duplicates dropped (first one kept), empty ones refused.
fn tags(r: &mut Reader) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in r.array("tags", MAX_TAGS).iter().enumerate() {
        let key = format!("tags.{i}");
        match item {
            Value::String(s) if s.trim().is_empty() => r.fail(&key, "may not be empty"),
            Value::String(s) if s.chars().count() > MAX_TAG => {
                r.fail(&key, format!("size must be at most {MAX_TAG} characters"))
            }
            Value::String(s) => {
                let tag = s.to_lowercase();
                if !out.contains(&tag) {
                    out.push(tag);
                }
            }
            _ => r.fail(&key, "must be a string"),
        }
    }
    out
}

fn profile_fields(r: &mut Reader, input: &mut ProfileInput) {
    input.spa_key_name = r.string("spaKeyName", MAX_KEY_NAME).unwrap_or_default();
    match r.string("identityProviderName", MAX_IDP_NAME) {
        Some(s) if !s.trim().is_empty() => input.identity_provider_name = s,
        Some(_) => r.fail("identityProviderName", "may not be empty"),
        None => {
            if matches!(r.obj.get("identityProviderName"), None | Some(Value::Null)) {
                r.fail("identityProviderName", "may not be null");
            }
        }
    }
    match r.string("hostname", MAX_HOSTNAME) {
        Some(h) if h.is_empty() => {}
        Some(h) if !is_hostname(&h) => r.fail(
            "hostname",
            "must be a host name or address (letters, digits and - . _ : [ ])",
        ),
        Some(h) => input.hostname = h,
        None => {}
    }
}

fn profile_urls(r: &mut Reader) -> Vec<UrlInput> {
    let mut out = Vec::new();
    for (i, item) in r.array("profileUrls", MAX_PROFILE_URLS).iter().enumerate() {
        let prefix = format!("{}profileUrls.{i}.", r.prefix);
        let Value::Object(obj) = item else {
            r.fail(&format!("profileUrls.{i}"), "must be an object");
            continue;
        };
        let mut m = Reader {
            obj,
            prefix,
            errors: &mut *r.errors,
        };
        let id = m.uuid("id");
        let url = match m.string("url", MAX_URL) {
            Some(url) => match parse_profile_url(&url) {
                Ok(parsed) => Some((url, parsed)),
                Err(why) => {
                    m.fail("url", why);
                    None
                }
            },
            None => None,
        };
        let weight = match obj.get("weight") {
            None | Some(Value::Null) => DEFAULT_WEIGHT,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(w) if (0..=MAX_WEIGHT).contains(&w) => w,
                _ => {
                    m.fail(
                        "weight",
                        format!("must be an integer from 0 to {MAX_WEIGHT}"),
                    );
                    DEFAULT_WEIGHT
                }
            },
            Some(_) => {
                m.fail("weight", "must be an integer");
                DEFAULT_WEIGHT
            }
        };
        out.push(UrlInput { id, url, weight });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        parse(&body, None)
            .unwrap_err()
            .errors
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        assert_eq!(
            fields(json!({"name": 3, "tags": ["a", "", 4], "notes": [], "id": "x"})),
            [
                "id",
                "name",
                "notes",
                "tags.1",
                "tags.2",
                "identityProviderName"
            ]
        );
        assert_eq!(
            fields(
                json!({"name": "g", "type": "Group", "profileUrls": [{"url": "http://x/"}, 5, {"url": null, "weight": -1}]})
            ),
            ["profileUrls.0.url", "profileUrls.1", "profileUrls.2.weight"]
        );
        assert_eq!(
            fields(json!({"name": " ", "type": "group"})),
            ["name", "type"]
        );
        let other = Uuid::new_v4();
        let e = parse(
            &json!({"id": Uuid::nil(), "name": "n", "identityProviderName": "i"}),
            Some(other),
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "id");
    }

    #[test]
    fn tags_are_lowercased_and_deduplicated_and_nulls_are_absent() {
        let p = parse(&json!({"name": "n", "identityProviderName": "local", "tags": ["B", "a", "b"], "notes": null, "hostname": null, "exported": "x"}), None).unwrap();
        assert_eq!(p.tags, ["b", "a"]);
        assert_eq!(p.notes, "");
        assert_eq!(p.kind, ProfileType::Profile);
    }
}
