//! The web console: its files and headers over HTTP, and the console itself driven in a real
//! headless Chromium through WebDriver (sign in, profiles, QR code, field errors, a lost
//! session mid-edit, administrators, a low role's console, settings, phone width, sign out).
//! The browser run writes the screenshots (in `docs/console/` with
//! `PROFILED_UPDATE_SCREENSHOTS=1`).

use std::path::PathBuf;

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::webdriver::{Browser, chromedriver};

const HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

fn assert_secure(r: &TestResponse, what: &str) {
    let csp = r.header("content-security-policy").unwrap_or("");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: {directive} missing in {csp:?}"
        );
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    for (name, value) in HEADERS {
        assert_eq!(r.header(name), Some(*value), "{what}: {name}");
    }
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_strict_headers() {
    let s = TestServer::start().await;
    for path in ["/", "/ui"] {
        let r = s.request(Method::GET, path, &[], Vec::new()).await;
        assert_eq!(r.status, 302, "{path}");
        assert_eq!(r.header("location"), Some("/ui/"), "{path}");
        assert_secure(&r, path);
    }
    for (path, ty, needle) in [
        ("/ui/", "text/html; charset=utf-8", "<script src=\"app.js\""),
        (
            "/ui/index.html",
            "text/html; charset=utf-8",
            "<dialog id=\"signin\"",
        ),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "textContent",
        ),
        ("/ui/style.css", "text/css; charset=utf-8", "@media"),
    ] {
        let r = s.request(Method::GET, path, &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains(needle), "{path}");
        assert_secure(&r, path);
        let etag = r.header("etag").expect("an ETag").to_string();
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        // The browser's copy is current: 304, no body.
        let again = s
            .request(Method::GET, path, &[("if-none-match", &etag)], Vec::new())
            .await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        let stale = s
            .request(Method::GET, path, &[("if-none-match", "\"0\"")], Vec::new())
            .await;
        assert_eq!(stale.status, 200, "{path}");
        // HEAD: the headers of GET, no body.
        let head = s.request(Method::HEAD, path, &[], Vec::new()).await;
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty());
        assert_eq!(head.header("etag"), Some(etag.as_str()));
        assert_eq!(
            head.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
    }
    // No inline script or style anywhere in the page: the policy would block it.
    let page = s.request(Method::GET, "/ui/", &[], Vec::new()).await;
    let html = String::from_utf8_lossy(&page.body);
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("style=") && !html.contains("<style"));
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handler, None, "an inline event handler");
    let js = s.request(Method::GET, "/ui/app.js", &[], Vec::new()).await;
    assert!(!String::from_utf8_lossy(&js.body).contains("innerHTML"));
    // Unknown files, and the neighbours of the console, are unchanged.
    let r = s
        .request(Method::GET, "/ui/secret.txt", &[], Vec::new())
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["id"], "not found");
    assert_eq!(
        s.request(Method::GET, "/uix", &[], Vec::new()).await.status,
        404
    );
    assert_eq!(
        s.request(Method::GET, "/healthz", &[], Vec::new())
            .await
            .status,
        200
    );
    let r = s.request(Method::POST, "/ui/app.js", &[], Vec::new()).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

/// The text of the QR code in an RGBA (or greyscale) screenshot.
fn decode_qr_screenshot(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let p = &buf[y * info.line_size + x * channels..];
        if channels >= 3 {
            ((p[0] as u16 + p[1] as u16 + p[2] as u16) / 3) as u8
        } else {
            p[0]
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Screenshots go to the test's scratch folder, and to `docs/console/` (the README's pictures)
/// when `PROFILED_UPDATE_SCREENSHOTS=1`: a plain `cargo test` leaves the work tree as it was.
fn shot(name: &str, png: &[u8]) {
    let dir = if std::env::var("PROFILED_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

const XSS: &str = "<img src=x onerror=alert(1)>";

/// chromedriver's path; `None` (the test is skipped) only when it is missing outside CI.
fn driver_or_skip() -> Option<String> {
    let driver = chromedriver();
    if driver.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromedriver is missing under CI: `.ci/run` installs chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
    }
    driver
}

/// Waits until the dialog `id` is closed.
async fn closed(b: &Browser, id: &str) {
    b.wait_for(
        "the dialog to close",
        "return !document.getElementById(arguments[0]).open",
        json!([id]),
    )
    .await;
}

/// The weights of a Group's members, in order.
fn weights(group: &Value) -> Vec<i64> {
    group["profileUrls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["weight"].as_i64().unwrap())
        .collect()
}

/// Waits for the error next to the field `id`, which is marked invalid.
async fn field_error(b: &Browser, id: &str) {
    b.wait_for(
        "the field error",
        "return document.getElementById(arguments[0] + '-error').textContent !== '' \
           && document.getElementById(arguments[0]).getAttribute('aria-invalid') === 'true'",
        json!([id]),
    )
    .await;
}

/// Waits until the element `id` says `text`.
async fn text_is(b: &Browser, id: &str, text: &str) {
    b.wait_for(
        text,
        "return document.getElementById(arguments[0]).textContent === arguments[1]",
        json!([id, text]),
    )
    .await;
}

/// Types a SCIM filter and presses Enter.
async fn filter_admins(b: &Browser, filter: &str) {
    b.fill("#a-filter", filter).await;
    b.keys("\u{E006}").await;
}

async fn sign_in(b: &Browser, email: &str, password: &str) {
    b.visible("#signin[open]").await;
    b.fill("#si-username", email).await;
    b.fill("#si-password", password).await;
    b.click("#si-submit").await;
    closed(b, "signin").await;
}

async fn search(b: &Browser, text: &str, rows: usize) {
    b.fill("#p-search", text).await;
    b.wait_for(
        "the search result",
        "const r = document.querySelectorAll('#p-table tbody tr'); \
         return document.getElementById('p-search').value === arguments[0] \
           && r.length === arguments[1] \
           && Array.from(r).every(t => t.querySelector('.name').textContent.toLowerCase().includes(arguments[0].toLowerCase()));",
        json!([text, rows]),
    )
    .await;
}

/// Every control on the page has an accessible name (a label or `aria-label`, or a button's
/// text); returns the ones that have none.
const UNNAMED: &str =
    "return Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
     && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.id || e.outerHTML);";

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    // Enough profiles for two pages, made through the API.
    for i in 0..30 {
        let r = s
            .appgate(
                Method::POST,
                "/admin/client-profiles",
                Some(&admin),
                Some(
                    json!({"name": format!("Branch {i:02}"), "identityProviderName": "local",
                            "tags": ["branch"], "notes": "made by the test"}),
                ),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let base = format!("http://{}", s.addr);
    let b = Browser::start(&driver, 1280, 900).await;

    // `/` redirects to the console, which asks for a sign-in.
    b.goto(&format!("{base}/")).await;
    b.visible("#signin[open]").await;
    assert!(b.js("return location.pathname", json!([])).await == "/ui/");
    shot("sign-in.png", &b.screenshot().await);
    // Nothing but the sign-in before signing in.
    for hidden in ["#nav", "#signout", "#view-profiles", "#view-settings"] {
        assert!(
            !b.is_shown(hidden).await,
            "{hidden} shown before the sign-in"
        );
    }
    assert_eq!(b.js(UNNAMED, json!([])).await, json!([]));
    // A wrong password is said so, and nothing opens.
    b.fill("#si-username", ADMIN_EMAIL).await;
    b.fill("#si-password", "not-the-password").await;
    b.click("#si-submit").await;
    b.until(
        "the sign-in error",
        "return document.getElementById('signin-error').textContent.includes('Wrong')",
    )
    .await;
    sign_in(&b, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The token is in sessionStorage, never in a cookie.
    assert_eq!(b.js("return document.cookie", json!([])).await, "");
    let token = b
        .js(
            "return JSON.parse(sessionStorage.getItem('profiled.session')).token",
            json!([]),
        )
        .await;
    let token = token.as_str().unwrap().to_string();

    // Settings: the profile host name the exports need, the token lifetime, the message.
    b.click("#nav-settings").await;
    b.until(
        "the settings",
        "return document.getElementById('s-administrationTokenExpiration').value === '720'",
    )
    .await;
    b.fill("#s-profileHostname", "not a host").await;
    b.click("#s-save").await;
    field_error(&b, "s-profileHostname").await;
    b.fill("#s-profileHostname", "sdp.example.com").await;
    b.fill("#s-administrationTokenExpiration", "600").await;
    b.fill("#s-messageOfTheDay", "Welcome, console.").await;
    b.click("#s-save").await;
    text_is(&b, "status", "Settings saved.").await;
    let g = s
        .appgate(Method::GET, "/admin/global-settings", Some(&admin), None)
        .await
        .json();
    assert_eq!(g["profileHostname"], "sdp.example.com");
    assert_eq!(g["administrationTokenExpiration"].as_f64(), Some(600.0));
    assert_eq!(g["messageOfTheDay"], "Welcome, console.");
    shot("settings.png", &b.screenshot().await);

    // Client profiles: paged on the server, 25 a page.
    b.click("#nav-profiles").await;
    text_is(&b, "p-range", "1–25 of 30").await;
    shot("profiles.png", &b.screenshot().await);
    b.click("#p-next").await;
    b.wait_for(
        "the second page",
        "return document.getElementById('p-range').textContent === '26–30 of 30' \
           && document.querySelectorAll('#p-table tbody tr').length === 5",
        json!([]),
    )
    .await;
    b.click("#p-prev").await;

    // Create one, and find it by search.
    b.click("#p-new").await;
    b.visible("#profile-dialog[open]").await;
    b.fill("#pd-name", "Head Office Berlin").await;
    b.fill("#pd-tags", "office, berlin").await;
    b.fill("#pd-notes", "Second floor.").await;
    b.click("#pd-save").await;
    closed(&b, "profile-dialog").await;
    search(&b, "berlin", 1).await;
    let listed = s
        .appgate(
            Method::GET,
            "/admin/client-profiles?query=berlin",
            Some(&admin),
            None,
        )
        .await
        .json();
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed["data"][0]["tags"], json!(["office", "berlin"]));

    // Its onboarding link, and the QR code shown decodes back to that link.
    b.click("#p-table tbody tr button.export").await;
    b.visible("#export-dialog[open]").await;
    b.until("the QR image", "const i = document.getElementById('ed-qr'); return i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:')")
    .await;
    let shown = b.property("#ed-url", "value").await;
    let exported = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}/url"),
            Some(&admin),
            None,
        )
        .await
        .json();
    assert_eq!(shown, exported["url"]);
    assert!(
        shown
            .as_str()
            .unwrap()
            .starts_with("appgate://sdp.example.com/")
    );
    let decoded = decode_qr_screenshot(&b.element_png("#ed-qr").await);
    assert_eq!(decoded, shown.as_str().unwrap());
    b.click("#ed-copy").await;
    text_is(&b, "ed-copied", "Copied.").await;
    shot("profile-qr.png", &b.screenshot().await);
    // Escape closes the dialog and the focus goes back to the button that opened it.
    b.keys("\u{E00C}").await;
    b.wait_for(
        "the dialog closed, focus restored",
        "return !document.getElementById('export-dialog').open \
           && document.activeElement.classList.contains('export')",
        json!([]),
    )
    .await;

    // Edit it: the API's field error shows next to the field it names.
    b.click("#p-table tbody tr button.edit").await;
    b.visible("#profile-dialog[open]").await;
    b.wait_for(
        "the profile in the form",
        "return document.getElementById('pd-name').value === 'Head Office Berlin' \
           && document.activeElement.id === 'pd-name'",
        json!([]),
    )
    .await;
    b.fill("#pd-hostname", "bad host!").await;
    b.click("#pd-save").await;
    field_error(&b, "pd-hostname").await;
    assert!(
        b.js(
            "return document.getElementById('pd-hostname').getAttribute('aria-describedby')",
            json!([])
        )
        .await
            == "pd-hostname-error"
    );
    shot("profile-field-error.png", &b.screenshot().await);

    // The session ends while the form is open: sign-in shows over it, the form keeps its
    // edits, and after signing in again the same form saves.
    b.fill("#pd-hostname", "berlin.sdp.example.com").await;
    b.fill("#pd-notes", "Moved to the third floor.").await;
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication/logout",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    b.click("#pd-save").await;
    b.visible("#signin[open]").await;
    assert!(b.is_shown("#signin-note").await);
    assert!(
        b.js(
            "return document.getElementById('profile-dialog').open",
            json!([])
        )
        .await
            == true
    );
    b.wait_for(
        "the username kept",
        "return document.getElementById('si-username').value === arguments[0]",
        json!([ADMIN_EMAIL]),
    )
    .await;
    b.fill("#si-password", ADMIN_PASSWORD).await;
    b.click("#si-submit").await;
    closed(&b, "signin").await;
    assert_eq!(
        b.property("#pd-notes", "value").await,
        "Moved to the third floor."
    );
    b.click("#pd-save").await;
    closed(&b, "profile-dialog").await;
    let p = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}"),
            Some(&admin),
            None,
        )
        .await
        .json();
    assert_eq!(p["notes"], "Moved to the third floor.");
    assert_eq!(p["hostname"], "berlin.sdp.example.com");

    // A name holding HTML is shown as text: no image element, no alert.
    b.click("#p-new").await;
    b.fill("#pd-name", XSS).await;
    b.click("#pd-save").await;
    closed(&b, "profile-dialog").await;
    search(&b, "onerror", 1).await;
    assert_eq!(b.text("#p-table tbody tr .name").await, XSS);
    assert_eq!(
        b.js(
            "return document.querySelectorAll('img[src=\"x\"], #p-table img').length",
            json!([])
        )
        .await,
        0
    );
    assert_eq!(b.alert_text().await, None);
    // The delete confirmation names it as text too, and deletes it only when confirmed.
    b.click("#p-table tbody tr button.delete").await;
    b.visible("#confirm-dialog[open]").await;
    assert!(b.text("#cd-text").await.contains(XSS));
    b.click("#cd-no").await;
    assert_eq!(b.all("#p-table tbody tr").await.len(), 1);
    b.click("#p-table tbody tr button.delete").await;
    b.click("#cd-yes").await;
    search(&b, "onerror", 0).await;
    assert_eq!(b.alert_text().await, None);

    // A Group: two weighted links; edited later, a stored link is kept by its id.
    let links = [
        "appgate://eu.sdp.example.com/eyJwcm9maWxlTmFtZSI6IkV1cm9wZSIsImlkZW50aXR5UHJvdmlkZXJOYW1lIjoibG9jYWwifQ==",
        "appgate://us.sdp.example.com/eyJwcm9maWxlTmFtZSI6IkFtZXJpY2FzIiwiaWRlbnRpdHlQcm92aWRlck5hbWUiOiJsb2NhbCJ9",
    ];
    b.click("#p-new").await;
    b.fill("#pd-name", "All Regions").await;
    b.js(
        "const t = document.getElementById('pd-type'); t.value = 'Group'; t.dispatchEvent(new Event('change'));",
        json!([]),
    )
    .await;
    assert!(!b.is_shown("#pd-hostname").await);
    for (i, link) in links.iter().enumerate() {
        b.click("#pd-add-url").await;
        b.fill(&format!(".url-row:nth-child({}) .url", i + 1), link)
            .await;
        b.fill(
            &format!(".url-row:nth-child({}) .weight", i + 1),
            &format!("{}", 10 * (i + 1)),
        )
        .await;
    }
    assert_eq!(b.js(UNNAMED, json!([])).await, json!([]));
    b.click("#pd-save").await;
    search(&b, "all regions", 1).await;
    assert!(
        !b.is_shown("#p-table tbody tr button.export").await,
        "a Group has no link"
    );
    let group = s
        .appgate(
            Method::GET,
            "/admin/client-profiles?query=all%20regions",
            Some(&admin),
            None,
        )
        .await
        .json()["data"][0]
        .clone();
    assert_eq!(group["type"], "Group");
    assert_eq!(weights(&group), [10, 20]);
    b.click("#p-table tbody tr button.edit").await;
    b.until(
        "the group's members",
        "return document.querySelectorAll('.url-row[data-id]').length === 2",
    )
    .await;
    b.fill(".url-row:nth-child(1) .weight", "7").await;
    b.click("#pd-save").await;
    closed(&b, "profile-dialog").await;
    let group = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{}", group["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await
        .json();
    assert_eq!(weights(&group), [7, 20]);

    // Administrators: create one with a low role, filter with SCIM.
    b.click("#nav-admins").await;
    b.until(
        "the list",
        "return document.querySelectorAll('#a-table tbody tr').length === 1",
    )
    .await;
    b.click("#a-new").await;
    b.visible("#admin-dialog[open]").await;
    b.until(
        "the roles",
        "return document.querySelectorAll('#ad-roles input').length > 3",
    )
    .await;
    b.fill("#ad-firstName", "Vera").await;
    b.fill("#ad-lastName", "Viewer").await;
    b.fill("#ad-email", "vera@example.com").await;
    b.fill("#ad-password", "short").await;
    b.click("#ad-roles input[value=clientProfileViewerRole]")
        .await;
    b.click("#ad-save").await;
    field_error(&b, "ad-password").await;
    b.fill("#ad-password", "vera-views-profiles").await;
    b.click("#ad-save").await;
    b.wait_for(
        "two administrators",
        "return !document.getElementById('admin-dialog').open \
           && document.querySelectorAll('#a-table tbody tr').length === 2",
        json!([]),
    )
    .await;
    filter_admins(&b, "email co \"vera\"").await;
    b.wait_for(
        "the filtered list",
        "const r = document.querySelectorAll('#a-table tbody tr'); \
         return r.length === 1 && r[0].textContent.includes('vera@example.com') \
           && r[0].textContent.includes('clientProfileViewerRole')",
        json!([]),
    )
    .await;
    shot("administrators.png", &b.screenshot().await);
    filter_admins(&b, "email co").await;
    b.until(
        "the filter error",
        "return document.getElementById('a-filter-error').textContent.includes('SCIM')",
    )
    .await;
    // Deactivate and reactivate her.
    filter_admins(&b, "email co \"vera\"").await;
    b.until(
        "the filtered list",
        "return document.querySelectorAll('#a-table tbody tr').length === 1",
    )
    .await;
    b.click("#a-table tbody tr button.toggle").await;
    b.click("#cd-yes").await;
    b.until("deactivated", "return document.querySelector('#a-table tbody tr button.toggle').textContent === 'Reactivate'")
    .await;
    assert_eq!(
        s.login_status("vera@example.com", "vera-views-profiles")
            .await,
        401
    );
    b.click("#a-table tbody tr button.toggle").await;
    b.until("reactivated", "return document.querySelector('#a-table tbody tr button.toggle').textContent === 'Deactivate'")
    .await;
    assert_eq!(
        s.login_status("vera@example.com", "vera-views-profiles")
            .await,
        200
    );
    // Change her roles: the dialog shows the ones she holds; add the exporter's.
    b.click("#a-table tbody tr button.roles").await;
    b.visible("#admin-dialog[open]").await;
    b.until(
        "her roles checked",
        "return document.querySelector('#ad-roles input[value=clientProfileViewerRole]').checked \
           && !document.querySelector('#ad-roles input[value=adminRole]').checked \
           && document.getElementById('ad-firstName').offsetParent === null",
    )
    .await;
    b.click("#ad-roles input[value=clientProfileExporterRole]")
        .await;
    b.click("#ad-save").await;
    closed(&b, "admin-dialog").await;
    let vera = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminProfiles?queryFormat=SCIM&q=email%20eq%20%22vera%40example.com%22",
            Some(&admin),
            None,
        )
        .await
        .json();
    let mut held: Vec<&str> = vera["items"][0]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryId"].as_str().unwrap())
        .collect();
    held.sort();
    assert_eq!(
        held,
        ["clientProfileExporterRole", "clientProfileViewerRole"]
    );

    // Sign out: the token ends and the console forgets it.
    b.click("#signout").await;
    b.visible("#signin[open]").await;
    for hidden in ["#nav", "#signout", "#view-admins", "#view-profiles"] {
        assert!(
            !b.is_shown(hidden).await,
            "{hidden} shown after the sign-out"
        );
    }
    assert_eq!(
        b.js(
            "return sessionStorage.getItem('profiled.session')",
            json!([])
        )
        .await,
        Value::Null
    );
    let r = s
        .occ(Method::POST, "/ccadmin/v1/verify", Some(&token), None)
        .await;
    assert_eq!(r.status, 401);

    // The low role's console (viewer and exporter) offers only what it may do.
    sign_in(&b, "vera@example.com", "vera-views-profiles").await;
    b.until(
        "the list",
        "return document.querySelectorAll('#p-table tbody tr').length === 25",
    )
    .await;
    for hidden in [
        "#nav-admins",
        "#nav-settings",
        "#p-new",
        "button.edit",
        "button.delete",
    ] {
        assert!(
            !b.is_shown(hidden).await,
            "a viewer and exporter is offered {hidden}"
        );
    }
    assert!(b.is_shown("#nav-profiles").await && b.is_shown("#nav-account").await);
    assert!(
        b.is_shown("button.export").await,
        "the exporter's role offers the link"
    );
    shot("low-role.png", &b.screenshot().await);

    // Phone width: one column, nothing wider than the screen.
    b.set_size(390, 844).await;
    b.until("the phone layout", "return window.innerWidth <= 390 && document.documentElement.scrollWidth <= window.innerWidth")
    .await;
    shot("phone.png", &b.screenshot().await);
    b.set_size(1280, 900).await;

    // Her own password, with the keyboard alone: Tab from the current password to the new
    // one, Enter submits.
    b.click("#nav-account").await;
    b.fill("#pw-currentPassword", "vera-views-profiles").await;
    b.keys("\u{E004}").await;
    b.until(
        "the focus on the new password",
        "return document.activeElement.id === 'pw-password'",
    )
    .await;
    b.keys("vera-has-a-new-one\u{E006}").await;
    b.until(
        "the password changed",
        "return document.getElementById('status').textContent.startsWith('Password changed')",
    )
    .await;
    assert_eq!(
        s.login_status("vera@example.com", "vera-has-a-new-one")
            .await,
        200
    );
    b.quit().await;
}

#[tokio::test]
async fn a_forbidden_action_is_shown_as_a_403_in_the_browser() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let id = add_account(&s, "max@example.com", "clientProfileManagerRole").await;
    let b = Browser::start(&driver, 1024, 800).await;
    b.goto(&format!("http://{}/ui/", s.addr)).await;
    sign_in(&b, "max@example.com", ACCOUNT_PASSWORD).await;
    // A manager may create profiles and read settings, not edit them or manage accounts.
    assert!(!b.is_shown("#nav-admins").await);
    b.click("#nav-settings").await;
    b.visible("#s-form").await;
    assert!(!b.is_shown("#s-save").await);
    assert_eq!(b.property("#s-profileHostname", "readOnly").await, true);
    b.click("#nav-profiles").await;
    b.click("#p-new").await;
    b.fill("#pd-name", "Made too late").await;
    // Meanwhile an administrator demotes the account: the save is refused with 403, shown.
    let r = s
        .occ(
            Method::PUT,
            &format!("/ccadmin/v1/adminProfiles/{id}"),
            Some(&admin),
            Some(json!({"roles": ["clientProfileViewerRole"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    b.click("#pd-save").await;
    b.wait_for(
        "the 403",
        "return document.getElementById('pd-error').textContent.startsWith('Forbidden (403)') \
           && document.getElementById('alert').textContent.startsWith('Forbidden (403)')",
        json!([]),
    )
    .await;
    assert!(
        b.js(
            "return document.getElementById('profile-dialog').open",
            json!([])
        )
        .await
            == true
    );

    // The page opened again on an ended session: the sign-in, then the page loads.
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&admin),
            Some(json!({"name": "Seen after the sign-in", "identityProviderName": "local"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let token = b
        .js(
            "return JSON.parse(sessionStorage.getItem('profiled.session')).token",
            json!([]),
        )
        .await;
    let r = s
        .occ(Method::POST, "/ccadmin/v1/logout", token.as_str(), None)
        .await;
    assert_eq!(r.status, 200);
    b.goto(&format!("http://{}/ui/", s.addr)).await;
    b.visible("#signin[open]").await;
    b.fill("#si-password", ACCOUNT_PASSWORD).await;
    b.click("#si-submit").await;
    closed(&b, "signin").await;
    b.until(
        "the list loaded",
        "return document.querySelector('#p-table tbody .name')?.textContent === 'Seen after the sign-in'",
    )
    .await;
    // Now a viewer: the new sign-in's privileges hide the creation.
    assert!(!b.is_shown("#p-new").await);
    b.quit().await;
}

impl TestServer {
    /// The status of an Appgate login.
    async fn login_status(&self, email: &str, password: &str) -> u16 {
        self.appgate_login_response(email, password).await.status
    }
}

#[tokio::test]
async fn an_account_under_mfa_signs_in_with_its_one_time_code() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let r = s
        .appgate(
            Method::PUT,
            "/admin/admin-mfa-settings",
            Some(&admin),
            Some(json!({"providerId": "9f1c62e4-5b2d-4a57-8e0f-2c3d7a6b1e90"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let b = Browser::start(&driver, 1024, 900).await;
    b.goto(&format!("http://{}/ui/", s.addr)).await;
    b.visible("#signin[open]").await;
    b.fill("#si-username", ADMIN_EMAIL).await;
    b.fill("#si-password", ADMIN_PASSWORD).await;
    b.click("#si-submit").await;
    // The first time, the seed to set up: its QR code (the otpauth link) and its secret.
    b.visible("#si-otp").await;
    b.until(
        "the seed's QR code",
        "const i = document.getElementById('si-seed-img'); return i.complete && i.naturalWidth > 0",
    )
    .await;
    let secret = b.text("#si-seed-secret").await;
    let link = decode_qr_screenshot(&b.element_png("#si-seed-img").await);
    assert!(link.starts_with("otpauth://totp/") && link.contains(&format!("secret={secret}")));
    shot("sign-in-mfa.png", &b.screenshot().await);
    let key = profiled::auth::totp::from_base32(&secret).unwrap();
    let step = profiled::auth::totp::step_of(time::OffsetDateTime::now_utc().unix_timestamp());
    let code = profiled::auth::totp::format(profiled::auth::totp::code_at(&key, step));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    b.fill("#si-otp", wrong).await;
    b.click("#si-submit").await;
    b.until(
        "the wrong code said so",
        "return document.getElementById('signin-error').textContent.includes('code')",
    )
    .await;
    b.fill("#si-otp", &code).await;
    b.click("#si-submit").await;
    closed(&b, "signin").await;
    assert!(b.is_shown("#nav-admins").await);
    b.quit().await;
}
