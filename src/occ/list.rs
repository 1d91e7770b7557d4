//! Oracle's list conventions: the `limit`, `offset`, `sort`, `totalResults` and `fields`
//! parameters, sorting, and the envelope `{total, totalResults, offset, limit, sort, items,
//! links}`.

use std::cmp::Ordering;

use hyper::header::HOST;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, FieldError};
use crate::http::{self, Head};

/// Items per page by default and at most (a larger `limit` is lowered to this).
pub const MAX_LIMIT: usize = 250;

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(param, message).code("22007")])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// One of the sortable properties, spelled as the resource spells it.
    pub property: &'static str,
    pub descending: bool,
}

/// The query parameters of one list request, checked.
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    pub limit: usize,
    pub offset: usize,
    pub sort: Vec<SortKey>,
    pub total_results: bool,
    pub fields: Option<Vec<String>>,
    href: String,
}

impl ListQuery {
    /// Reads the list parameters of a request; `sortable` names the properties `sort` accepts,
    /// the first being the default. Unknown parameters are ignored.
    pub fn parse(head: &Head, sortable: &[&'static str]) -> Result<ListQuery, ApiError> {
        let pairs = http::query_pairs(head);
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        let number = |name: &str, default: usize| match get(name) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| invalid(name, format!("{name} must be a whole number of 0 or more."))),
        };
        let limit = number("limit", MAX_LIMIT)?.min(MAX_LIMIT);
        let offset = number("offset", 0)?;
        let sort = match get("sort") {
            None | Some("") => vec![SortKey {
                property: sortable[0],
                descending: false,
            }],
            Some(v) => parse_sort(v, sortable)?,
        };
        let total_results = match get("totalResults").map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("true") => true,
            Some("false") => false,
            Some(_) => {
                return Err(invalid(
                    "totalResults",
                    "totalResults must be true or false.",
                ));
            }
        };
        let fields = fields_of(get("fields"));
        Ok(ListQuery {
            href: self_url(head),
            pairs,
            limit,
            offset,
            sort,
            total_results,
            fields,
        })
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sorts by the requested keys, then by id so that pages are stable.
    pub fn sort<T>(&self, items: &mut [T], cmp: impl Fn(&T, &T, &str) -> Ordering) {
        items.sort_by(|a, b| {
            self.sort
                .iter()
                .map(|k| {
                    let o = cmp(a, b, k.property);
                    if k.descending { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| cmp(a, b, "id"))
        });
    }

    /// The envelope around one page of already rendered items; `total` counts every match.
    pub fn envelope<T>(&self, all: &[T], render: impl Fn(&T) -> Value) -> Value {
        let items: Vec<Value> = all
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|item| keep_fields(render(item), self.fields.as_deref()))
            .collect();
        let sort: Vec<Value> = self
            .sort
            .iter()
            .map(|k| {
                json!({"property": k.property, "order": if k.descending { "desc" } else { "asc" }})
            })
            .collect();
        let mut body = Map::new();
        body.insert("total".into(), json!(all.len()));
        if self.total_results {
            body.insert("totalResults".into(), json!(all.len()));
        }
        body.insert("offset".into(), json!(self.offset));
        body.insert("limit".into(), json!(self.limit));
        body.insert("sort".into(), Value::Array(sort));
        body.insert("items".into(), Value::Array(items));
        body.insert("links".into(), json!([{"rel": "self", "href": self.href}]));
        Value::Object(body)
    }
}

fn parse_sort(value: &str, sortable: &[&'static str]) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, order) = item.split_once(':').unwrap_or((item, "asc"));
        let Some(property) = sortable
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name.trim()))
        else {
            return Err(invalid(
                "sort",
                format!(
                    "Cannot sort by '{}'; sortable properties: {}.",
                    name.chars().take(64).collect::<String>(),
                    sortable.join(", ")
                ),
            ));
        };
        let descending = match order.trim().to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            _ => {
                return Err(invalid(
                    "sort",
                    format!("The sort order of '{property}' must be asc or desc."),
                ));
            }
        };
        keys.push(SortKey {
            property,
            descending,
        });
    }
    if keys.is_empty() {
        return Err(invalid("sort", "sort names no property."));
    }
    Ok(keys)
}

/// `fields=a,b`: the properties to keep in each item (`None` keeps all).
pub fn fields_of(param: Option<&str>) -> Option<Vec<String>> {
    let fields: Vec<String> = param?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (!fields.is_empty()).then_some(fields)
}

/// Keeps only `fields` of an object (names the object lacks are ignored).
pub fn keep_fields(item: Value, fields: Option<&[String]>) -> Value {
    match (item, fields) {
        (Value::Object(map), Some(fields)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        (item, _) => item,
    }
}

/// This request's URL as the client addressed it: `http://<Host><path>[?<query>]`, or
/// `https://` when it came over TLS.
pub fn self_url(head: &Head) -> String {
    // A `Host` that is no host name is not repeated: the address the request came in on is.
    let host = head
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))
        .filter(|h| crate::text::is_hostname(h))
        .map(str::to_string)
        .or_else(|| {
            let local = head.extensions.get::<http::LocalAddr>()?;
            Some(local.0.to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    let scheme = match head.extensions.get::<http::OverTls>() {
        Some(_) => "https",
        None => "http",
    };
    let mut url = format!("{scheme}://{host}{}", head.uri.path());
    if let Some(q) = head.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    url
}
