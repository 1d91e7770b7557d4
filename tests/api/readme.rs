//! The README's examples, pasted in order into one fresh shell, against a freshly started server:
//! every ```sh block that calls curl runs, as written, in one `bash` with `set -eu`
//! (so a variable no earlier line set, or a failing command, stops it). Only the address is
//! changed, to the test server's. Every HTTP status the examples get is recorded (a `curl`
//! function adds `--write-out` to standard error), and any answer outside 2xx must be one the
//! README says it shows.

use std::path::Path;
use std::process::Command;

use crate::helpers::Process;

/// The non-2xx answers the README shows on purpose: (status, method, path without its
/// trailing slash).
const SHOWN_NON_2XX: &[(u16, &str, &str)] = &[
    // sdpctl's version probe with an unknown version.
    (406, "POST", "/admin/authentication"),
    // sdpctl's authorization before the one-time code is given.
    (412, "GET", "/admin/authorization"),
    // Oracle's password-only login while MFA covers the account; a wrong application key.
    (401, "POST", "/ccadmin/v1/login"),
    // The console's redirect.
    (302, "HEAD", ""),
];

/// The shell blocks of the README that call curl, in order.
fn curl_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start() == "```" => {
                let block = current.take().unwrap();
                if block.contains("curl ") {
                    blocks.push(block);
                }
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// A tool the examples name up front; `false` (with a note) when it is missing outside CI.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing under CI: `.ci/run` installs it"
        );
        eprintln!("SKIPPED: the README's examples need {tool}");
    }
    found
}

#[test]
fn readme_examples_work_pasted_in_order_into_a_fresh_shell() {
    if !["bash", "curl", "jq", "oathtool", "openssl"]
        .iter()
        .all(|t| have(t))
    {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = curl_blocks(&readme);
    assert!(blocks.len() >= 6, "found only {} curl blocks", blocks.len());

    // The working directory looks like the repository's: the request bodies in data/, the
    // database of the Quick start in data/db/ (started without a password: generated).
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("data")).unwrap();
    for entry in std::fs::read_dir(repo.join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::copy(
                &path,
                work.path().join("data").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    // Started as the README's HTTPS section restarts it: HTTPS beside plain HTTP.
    let server = Process::try_start(
        &work.path().join("data/db"),
        None,
        &["--tls-listen", "127.0.0.1:0"],
        &[],
    )
    .unwrap();
    // The listener opens before the first administrator exists: wait for its password file,
    // as a person reading the log would.
    let password_file = work.path().join("data/db/initial-admin-password");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !password_file.exists() {
        assert!(std::time::Instant::now() < deadline, "no password file");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let tls_addr = loop {
        if let Some(addr) = crate::tls::logged_addr(&server.log(), "https") {
            break addr;
        }
        assert!(std::time::Instant::now() < deadline, "no HTTPS address");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut script = String::from(
        "set -eu\n\
         curl() { command curl \"$@\" --write-out '%{stderr}HTTP %{http_code} %{method} %{url_effective}\\n'; }\n",
    );
    for block in &blocks {
        let block = block
            .replace("127.0.0.1:8080", &server.addr.to_string())
            .replace(":8443", &format!(":{}", tls_addr.port()));
        script.push_str(&block);
    }
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(work.path())
        .env_remove("PROFILED_ADMIN_PASSWORD")
        .env_remove("TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the examples stopped ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );

    let mut calls = 0;
    for line in stderr.lines().filter_map(|l| l.strip_prefix("HTTP ")) {
        calls += 1;
        let mut parts = line.splitn(3, ' ');
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let method = parts.next().unwrap();
        let url = parts.next().unwrap();
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("", |i| &after_scheme[i..])
            .split('?')
            .next()
            .unwrap()
            .trim_end_matches('/');
        let shown = SHOWN_NON_2XX
            .iter()
            .any(|&(s, m, p)| s == status && m == method && p == path);
        assert!(
            (200..300).contains(&status) || shown,
            "{method} {url} answered {status}, which the README does not show:\n{stdout}\n{stderr}"
        );
    }
    assert!(calls >= 50, "only {calls} requests ran:\n{stderr}");
    assert!(
        stderr.contains("HTTP 200 POST https://localhost:"),
        "the HTTPS examples did not run:\n{stderr}"
    );
    assert!(
        stderr.contains("/admin/backup\n"),
        "the backup example did not run:\n{stderr}"
    );
    drop(server);
}
