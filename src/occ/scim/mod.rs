//! SCIM filters (RFC 7644 §3.4.2.2) for `GET /adminProfiles?q=…&queryFormat=SCIM`: a
//! tokenizer, a recursive-descent parser with a depth limit, and evaluation against an account.
//!
//! Precedence, loosest first: `or`, `and`, `not`; parentheses group. `and`/`or` chains are kept
//! as flat lists, so a long chain is not a deep tree: with the depth and length limits below,
//! neither parsing, evaluation nor dropping the tree can recurse more than a few dozen frames.

use std::cmp::Ordering;
use std::fmt;

use crate::clock;
use crate::store::Account;

mod lexer;
mod parser;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Parentheses and `not`s nested at most this deep.
pub const MAX_DEPTH: usize = 32;

/// Why a filter was refused, and the byte offset in the filter where it went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimError {
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid SCIM filter at position {}: {}",
            self.pos, self.message
        )
    }
}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, ScimError> {
    Err(ScimError {
        pos,
        message: message.into(),
    })
}

/// A word from the filter, shortened so that error messages stay small.
fn shown(word: &str) -> String {
    const MAX: usize = 40;
    match word.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &word[..cut]),
        None => word.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    Id,
    Email,
    FirstName,
    LastName,
    Active,
    RegistrationDate,
}

impl Attr {
    const ALL: [(Attr, &'static str); 6] = [
        (Attr::Id, "id"),
        (Attr::Email, "email"),
        (Attr::FirstName, "firstName"),
        (Attr::LastName, "lastName"),
        (Attr::Active, "active"),
        (Attr::RegistrationDate, "registrationDate"),
    ];

    /// SCIM attribute names are case-insensitive.
    fn parse(word: &str) -> Option<Attr> {
        Self::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(word))
            .map(|(a, _)| *a)
    }

    fn text(self, account: &Account) -> Option<&str> {
        match self {
            Attr::Id => Some(&account.id),
            Attr::Email => Some(&account.email),
            Attr::FirstName => Some(&account.first_name),
            Attr::LastName => Some(&account.last_name),
            Attr::Active | Attr::RegistrationDate => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Co | Op::Sw | Op::Ew => false,
        }
    }
}

/// A comparison value, already converted to the attribute's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Lower-cased: string comparisons ignore case.
    Text(String),
    Bool(bool),
    /// Unix milliseconds (dates are shown and compared at millisecond precision).
    Date(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Present(Attr),
    Compare(Attr, Op, Value),
}

/// Orders account ids by their number (`iuser9999` before `iuser10000`).
pub fn id_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Filter {
    pub fn parse(input: &str) -> Result<Filter, ScimError> {
        if input.len() > MAX_FILTER_LEN {
            return err(
                MAX_FILTER_LEN,
                format!("the filter is longer than {MAX_FILTER_LEN} bytes"),
            );
        }
        parser::parse(lexer::tokenize(input)?, input.len())
    }

    pub fn matches(&self, account: &Account) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(account)),
            Filter::Or(any) => any.iter().any(|f| f.matches(account)),
            Filter::Not(f) => !f.matches(account),
            Filter::Present(attr) => attr.text(account).is_none_or(|s| !s.is_empty()),
            Filter::Compare(attr, op, value) => compare(*attr, *op, value, account),
        }
    }
}

fn compare(attr: Attr, op: Op, value: &Value, account: &Account) -> bool {
    match value {
        Value::Text(want) => {
            let have = attr.text(account).unwrap_or_default().to_lowercase();
            match op {
                Op::Co => have.contains(want.as_str()),
                Op::Sw => have.starts_with(want.as_str()),
                Op::Ew => have.ends_with(want.as_str()),
                _ if attr == Attr::Id => op.holds(id_order(&have, want)),
                _ => op.holds(have.as_str().cmp(want.as_str())),
            }
        }
        Value::Bool(want) => op.holds(account.active.cmp(want)),
        Value::Date(want) => op.holds(clock::millis(account.registration_date).cmp(want)),
    }
}

#[cfg(test)]
mod tests;
