//! What a name or an e-mail address may hold (something visible, and nothing that changes how
//! the text around it is shown), and what a host name may hold.

/// Characters that show nothing by themselves: format characters (zero-width spaces and
/// joiners, the byte-order mark, invisible operators), fillers and variation selectors.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Characters a name may never hold: C0 and C1 controls (NUL, line breaks, escapes), line
/// and paragraph separators, and the bidirectional embeddings, overrides and isolates that
/// make text read differently from how it is stored.
fn disruptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why `s` cannot be a name or an e-mail address, if it cannot.
pub fn name_problem(s: &str) -> Option<&'static str> {
    if s.chars().any(disruptive) {
        Some("must not contain control characters or bidirectional overrides")
    } else if !s.is_empty() && s.chars().all(invisible) {
        Some("must contain a visible character")
    } else {
        None
    }
}

/// Longest host name (RFC 1035).
pub const MAX_HOSTNAME: usize = 253;

/// A host name or address literal, optionally with a port: nothing that could break out of
/// the `appgate://<host>/` position of a link.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HOSTNAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_a_visible_character_and_no_controls() {
        for ok in ["Office", "Zoë", "東京", "a\u{200D}b", "👩\u{200D}💻", "x y"] {
            assert_eq!(name_problem(ok), None, "{ok:?}");
        }
        for invisible in ["\u{200B}", "\u{200B}\u{FEFF} ", "\u{3164}", "\u{E0041}"] {
            assert_eq!(
                name_problem(invisible),
                Some("must contain a visible character"),
                "{invisible:?}"
            );
        }
        for bad in [
            "a\0b",
            "a\nb",
            "abc\u{202E}fdp.exe",
            "\u{2066}x",
            "a\u{1b}[31m",
            "\u{85}",
        ] {
            assert_eq!(
                name_problem(bad),
                Some("must not contain control characters or bidirectional overrides"),
                "{bad:?}"
            );
        }
    }
}
