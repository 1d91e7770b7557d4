//! Recursive descent over the tokens, one function per precedence level, with a depth limit.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lexer::{Kind, Token};
use super::{Attr, Filter, MAX_DEPTH, Op, ScimError, Value, err, shown};
use crate::clock;

/// Parses a whole filter; `end` is the input's length, the position of "unexpected end".
pub(super) fn parse(tokens: Vec<Token>, end: usize) -> Result<Filter, ScimError> {
    let mut parser = Parser { tokens, at: 0, end };
    let filter = parser.or(0)?;
    match parser.peek() {
        None => Ok(filter),
        Some(t) => err(t.pos, "expected 'and', 'or' or the end of the filter"),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Length of the input: the position reported for "unexpected end".
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn deeper(&self, depth: usize, pos: usize) -> Result<usize, ScimError> {
        if depth >= MAX_DEPTH {
            return err(pos, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(depth + 1)
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut terms = vec![self.and(depth)?];
        while self.keyword("or") {
            self.at += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Filter::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut terms = vec![self.not(depth)?];
        while self.keyword("and") {
            self.at += 1;
            terms.push(self.not(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Filter::And(terms)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            let pos = self.next().map_or(self.end, |t| t.pos);
            let depth = self.deeper(depth, pos)?;
            return Ok(Filter::Not(Box::new(self.not(depth)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let Some(token) = self.next() else {
            return err(
                self.end,
                "expected an attribute or '(' but the filter ended",
            );
        };
        match token.kind {
            Kind::Open => {
                let inner = self.or(self.deeper(depth, token.pos)?)?;
                match self.next() {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => Ok(inner),
                    Some(t) => err(t.pos, "expected ')'"),
                    None => err(self.end, "expected ')' but the filter ended"),
                }
            }
            Kind::Close => err(token.pos, "unexpected ')'"),
            Kind::Str(_) => err(token.pos, "expected an attribute name, not a string"),
            Kind::Word(w) => self.comparison(&w, token.pos),
        }
    }

    fn comparison(&mut self, word: &str, pos: usize) -> Result<Filter, ScimError> {
        let Some(attr) = Attr::parse(word) else {
            let names: Vec<&str> = Attr::ALL.iter().map(|(_, n)| *n).collect();
            return err(
                pos,
                format!(
                    "unknown attribute '{}' (known: {})",
                    shown(word),
                    names.join(", ")
                ),
            );
        };
        let (op, op_pos) = match self.next() {
            Some(Token {
                kind: Kind::Word(w),
                ..
            }) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(attr)),
            Some(Token {
                kind: Kind::Word(w),
                pos,
            }) => match Op::parse(&w) {
                Some(op) => (op, pos),
                None => return err(pos, format!("unknown operator '{}'", shown(&w))),
            },
            Some(t) => return err(t.pos, "expected an operator"),
            None => return err(self.end, "expected an operator but the filter ended"),
        };
        let Some(value) = self.next() else {
            return err(self.end, "expected a value but the filter ended");
        };
        typed_value(attr, op, op_pos, value)
    }
}

/// Checks that `op` and the value suit `attr`, and converts the value.
fn typed_value(attr: Attr, op: Op, op_pos: usize, value: Token) -> Result<Filter, ScimError> {
    let value = match (attr, value.kind) {
        (Attr::Active, Kind::Word(w)) if matches!(op, Op::Eq | Op::Ne) => {
            match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return err(value.pos, "'active' is compared with true or false"),
            }
        }
        (Attr::Active, _) => {
            return if matches!(op, Op::Eq | Op::Ne) {
                err(value.pos, "'active' is compared with true or false")
            } else {
                err(op_pos, "'active' supports only eq, ne and pr")
            };
        }
        (Attr::RegistrationDate, _) if !(op.is_ordering() || matches!(op, Op::Eq | Op::Ne)) => {
            return err(
                op_pos,
                "'registrationDate' supports eq, ne, gt, ge, lt, le and pr",
            );
        }
        (Attr::RegistrationDate, Kind::Str(s)) => match OffsetDateTime::parse(&s, &Rfc3339) {
            Ok(t) => Value::Date(clock::millis(t)),
            Err(_) => {
                return err(
                    value.pos,
                    "expected an ISO 8601 date such as \"2026-11-22T10:00:00.000Z\"",
                );
            }
        },
        (_, Kind::Str(s)) => Value::Text(s.to_lowercase()),
        (_, _) => return err(value.pos, "expected a value in double quotes"),
    };
    Ok(Filter::Compare(attr, op, value))
}
