//! Unit tests of the SCIM filter parser and evaluator, including hostile input.

use super::*;
use time::macros::datetime;

fn account(id: &str, first: &str, last: &str, email: &str, active: bool) -> Account {
    Account {
        id: id.into(),
        first_name: first.into(),
        last_name: last.into(),
        email: email.into(),
        active,
        roles: vec![],
        registration_date: datetime!(2026-11-22 10:00:00.123 UTC),
        roles_last_modified: datetime!(2026-11-22 10:00:00 UTC),
        last_login: None,
        created_by: None,
        external: false,
        tour_complete: false,
        password_hash: None,
        totp: None,
    }
}

fn amber() -> Account {
    account("iuser10060", "Amber", "Admin", "amber@example.com", true)
}

fn check(filter: &str, acc: &Account) -> bool {
    Filter::parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(acc)
}

fn error(filter: &str) -> ScimError {
    match Filter::parse(filter) {
        Ok(f) => panic!("{filter} parsed as {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn operators_on_strings_ignore_case() {
    let a = amber();
    assert!(check(r#"email eq "AMBER@example.com""#, &a));
    assert!(!check(r#"email ne "amber@EXAMPLE.com""#, &a));
    assert!(check(r#"firstName co "mbe""#, &a));
    assert!(check(r#"firstName sw "am""#, &a));
    assert!(check(r#"lastName ew "MIN""#, &a));
    assert!(!check(r#"lastName ew "adm""#, &a));
    assert!(check(r#"lastName gt "Aaa""#, &a));
    assert!(check(r#"lastName ge "admin""#, &a));
    assert!(check(r#"lastName lt "b""#, &a));
    assert!(check(r#"lastName le "ADMIN""#, &a));
    assert!(check("email pr", &a));
    assert!(!check(
        "lastName pr",
        &account("iuser1", "x", "", "x@y", true)
    ));
}

#[test]
fn keywords_and_attribute_names_ignore_case() {
    assert!(check(
        r#"EMAIL EQ "amber@example.com" AND Active Eq TRUE"#,
        &amber()
    ));
}

#[test]
fn ids_order_by_number() {
    let a = account("iuser100000", "a", "b", "c@d", true);
    assert!(check(r#"id gt "iuser99999""#, &a));
    assert!(check(r#"id eq "IUSER100000""#, &a));
    assert_eq!(id_order("iuser9", "iuser10"), Ordering::Less);
}

#[test]
fn booleans_and_dates() {
    let a = amber();
    assert!(check("active eq true", &a));
    assert!(check("active ne false", &a));
    assert!(check("active pr", &a));
    assert!(check(
        r#"registrationDate eq "2026-11-22T10:00:00.123Z""#,
        &a
    ));
    assert!(check(
        r#"registrationDate gt "2026-11-22T10:00:00.122Z""#,
        &a
    ));
    assert!(check(
        r#"registrationDate lt "2026-11-22T11:00:00+00:30""#,
        &a
    ));
    assert!(!check(r#"registrationDate ge "2027-01-01T00:00:00Z""#, &a));
    assert!(check(
        r#"registrationDate le "2026-11-22T10:00:00.123Z""#,
        &a
    ));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let a = amber();
    // or is loosest: true or (false and false).
    assert!(check(
        r#"firstName eq "Amber" or lastName eq "x" and email eq "y""#,
        &a
    ));
    // Parentheses change it: (true or false) and false.
    assert!(!check(
        r#"(firstName eq "Amber" or lastName eq "x") and email eq "y""#,
        &a
    ));
    // not applies to the next term only: (not false) and true.
    assert!(check(r#"not lastName eq "x" and firstName eq "Amber""#, &a));
    // not of a group.
    assert!(!check(
        r#"not (lastName eq "x" or firstName eq "Amber")"#,
        &a
    ));
    // (not true) or true.
    assert!(check(r#"not active eq true or active eq true"#, &a));
    assert!(check("not not active eq true", &a));
}

#[test]
fn the_tree_has_the_expected_shape() {
    let f = Filter::parse(r#"id eq "a" or id eq "b" and not id eq "c""#).unwrap();
    let cmp = |v: &str| Filter::Compare(Attr::Id, Op::Eq, Value::Text(v.into()));
    assert_eq!(
        f,
        Filter::Or(vec![
            cmp("a"),
            Filter::And(vec![cmp("b"), Filter::Not(Box::new(cmp("c")))])
        ])
    );
}

#[test]
fn string_escapes() {
    let a = account("iuser1", "Quote\"d \\ back", "Snow☃", "x@y", true);
    assert!(check(r#"firstName eq "Quote\"d \\ back""#, &a));
    assert!(check(r#"lastName eq "Snow\u2603""#, &a));
    assert!(check(r#"lastName eq "snow☃""#, &a));
    let b = account("iuser2", "😀", "b", "x@y", true);
    assert!(check(r#"firstName eq "\ud83d\ude00""#, &b));
    assert!(check(r#"firstName co "\/" or firstName eq "😀""#, &b));
}

#[test]
fn errors_name_the_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "filter ended"),
        ("email", 5, "operator"),
        ("email eq", 8, "value"),
        (r#"email xx "a""#, 6, "unknown operator"),
        (r#"nickname eq "a""#, 0, "unknown attribute"),
        (r#"email eq "a" and"#, 16, "filter ended"),
        (r#"email eq "a" email eq "b""#, 13, "expected 'and'"),
        (r#"(email eq "a""#, 13, "expected ')'"),
        (r#"email eq "a")"#, 12, "expected 'and'"),
        (r#")"#, 0, "unexpected ')'"),
        (r#"email eq "abc"#, 9, "unterminated"),
        (r#"email eq "a\qb""#, 11, "invalid escape"),
        (r#"email eq "\u12""#, 10, "\\u escape"),
        (r#"email eq "\ud83d""#, 10, "\\u escape"),
        (r#"email eq "\udc00""#, 10, "\\u escape"),
        (r#"email eq a"#, 9, "double quotes"),
        (r#"email eq 5"#, 9, "double quotes"),
        (r#"email[type eq "x"]"#, 5, "unexpected character '['"),
        ("é eq \"a\"", 0, "unexpected character"),
        (r#"email eq "a" and é"#, 17, "unexpected character"),
        (r#""email" eq "a""#, 0, "not a string"),
        ("active eq \"true\"", 10, "true or false"),
        ("active eq maybe", 10, "true or false"),
        ("active co true", 7, "only eq, ne and pr"),
        (r#"registrationDate co "2026""#, 17, "supports eq"),
        (r#"registrationDate gt "yesterday""#, 20, "ISO 8601"),
        ("email eq \"a\tb\"", 11, "control character"),
    ];
    for (filter, pos, needle) in cases {
        let e = error(filter);
        assert_eq!(e.pos, *pos, "{filter}: {e}");
        assert!(e.message.contains(needle), "{filter}: {e}");
        assert!(e.to_string().contains(&format!("position {pos}")));
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!(
        "{}active eq true{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(check(&ok, &amber()));
    let deep = format!(
        "{}active eq true{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let e = error(&deep);
    assert_eq!(e.pos, MAX_DEPTH);
    assert!(e.message.contains("nested"));
    let nots = format!("{}active eq true", "not ".repeat(MAX_DEPTH + 1));
    assert!(error(&nots).message.contains("nested"));
    let mixed = "not (".repeat(MAX_DEPTH) + "active eq true";
    assert!(error(&mixed).message.contains("nested"));
}

#[test]
fn hostile_input_fails_cleanly() {
    // Far deeper than any stack could take, if the parser recursed without a bound.
    let e = error(&"(".repeat(1_000_000));
    assert_eq!(e.pos, MAX_FILTER_LEN);
    assert!(e.message.contains("longer than"));
    // Just under the length limit, still refused by depth before recursing far.
    let e = error(&"(".repeat(MAX_FILTER_LEN));
    assert_eq!(e.pos, MAX_DEPTH);
    let e = error(&"not ".repeat(MAX_FILTER_LEN / 4));
    assert!(e.message.contains("nested"));
    // A very long string literal and a very long word.
    let long = format!("email eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    assert!(error(&long).message.contains("longer than"));
    let word = "x".repeat(MAX_FILTER_LEN - 10);
    let e = error(&word);
    assert_eq!(e.pos, 0);
    assert!(e.message.len() < 200, "the message echoes a bounded prefix");
    // An unterminated string up to the limit; a lone backslash at the end.
    assert!(
        error(&format!("email eq \"{}", "b".repeat(4000)))
            .message
            .contains("unterminated")
    );
    assert!(error("email eq \"\\").message.contains("unterminated"));
    // A long flat chain is fine: it is a list, not a deep tree.
    let chain = vec!["active eq true"; 200].join(" and ");
    assert!(chain.len() <= MAX_FILTER_LEN);
    assert!(check(&chain, &amber()));
    let chain = vec!["active eq false"; 200].join(" or ");
    assert!(!check(&chain, &amber()));
    // Control bytes and NULs outside strings.
    assert!(
        error("email\0eq \"a\"")
            .message
            .contains("unexpected character")
    );
}
