//! Splits a SCIM filter into tokens, each with its byte position; decodes JSON-style strings.

use super::{ScimError, err};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    Open,
    Close,
    Str(String),
    Word(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) pos: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'$' | b'+')
}

pub(super) fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let kind = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => Kind::Open,
            b')' => Kind::Close,
            b'"' => {
                let (s, next) = string(input, i)?;
                tokens.push(Token {
                    kind: Kind::Str(s),
                    pos: i,
                });
                i = next;
                continue;
            }
            _ if is_word_byte(b) => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Kind::Word(input[start..i].to_string()),
                    pos: start,
                });
                continue;
            }
            _ => {
                let c = input[i..].chars().next().unwrap_or('?');
                return err(i, format!("unexpected character '{}'", c.escape_default()));
            }
        };
        tokens.push(Token { kind, pos: i });
        i += 1;
    }
    Ok(tokens)
}

/// Reads the JSON-style string that opens at byte `start`; returns it and the byte after it.
fn string(input: &str, start: usize) -> Result<(String, usize), ScimError> {
    let mut out = String::new();
    let mut chars = input[start + 1..]
        .char_indices()
        .map(|(i, c)| (start + 1 + i, c));
    while let Some((pos, c)) = chars.next() {
        match c {
            '"' => return Ok((out, pos + 1)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => unicode_escape(input, pos, &mut chars)?,
                    other => {
                        return err(
                            pos,
                            format!("invalid escape '\\{}'", other.escape_default()),
                        );
                    }
                });
            }
            c if c.is_control() => return err(pos, "control character in a string"),
            c => out.push(c),
        }
    }
    err(start, "unterminated string")
}

/// `\uXXXX`, with a following `\uXXXX` when the first is a high surrogate. `pos` is the
/// backslash's position.
fn unicode_escape(
    input: &str,
    pos: usize,
    chars: &mut impl Iterator<Item = (usize, char)>,
) -> Result<char, ScimError> {
    let hex4 = |chars: &mut dyn Iterator<Item = (usize, char)>| -> Option<u32> {
        let mut n = 0;
        for _ in 0..4 {
            n = n * 16 + chars.next()?.1.to_digit(16)?;
        }
        Some(n)
    };
    let bad = || err(pos, "invalid \\u escape");
    let Some(hi) = hex4(chars) else { return bad() };
    if !(0xD800..0xDC00).contains(&hi) {
        return char::from_u32(hi).map_or_else(bad, Ok);
    }
    // A high surrogate must be followed by `\u` and a low surrogate.
    let rest = &input[pos + 6..];
    if !rest.starts_with("\\u") {
        return bad();
    }
    chars.next();
    chars.next();
    match hex4(chars) {
        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).map_or_else(bad, Ok)
        }
        _ => bad(),
    }
}
