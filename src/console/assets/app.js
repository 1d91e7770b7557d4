// profiled console: plain JavaScript over the public API (/admin and /ccadmin/v1).
// Every value from the API is written with textContent or as an attribute value, never as
// HTML. The token lives in sessionStorage (this tab only, gone when it closes), never in a
// cookie.
"use strict";

(function () {
  const ACCEPT = "application/vnd.appgate.peer-v23+json";
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;

  let session = null; // {token, email, privileges: [{type, target}], expires}
  try { session = JSON.parse(store.getItem("profiled.session") || "null"); } catch (e) { session = null; }

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  // Opens a modal dialog; when it closes, the focus goes back to what had it before.
  function openDialog(d) {
    const opener = document.activeElement;
    d.addEventListener("close", () => {
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
    }, { once: true });
    d.showModal();
  }

  function status(text) { $("status").textContent = text; }

  function alertBox(text) {
    const a = $("alert");
    a.textContent = text;
    a.hidden = !text;
  }

  function uuid4() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // A device id per browser tab, as Appgate's login asks for one.
  const deviceId = store.getItem("profiled.device") || uuid4();
  store.setItem("profiled.device", deviceId);

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
    // [{field, message}] from either dialect's body.
    fields() {
      const errs = this.body.errors || [];
      return errs.map((e) => ({ field: e.field || e["o:errorPath"] || "", message: e.message || "" }));
    }
  }

  // Waiters for a new sign-in after a 401: the request is retried by the user, not here.
  let reauthWaiters = [];

  async function call(method, path, body, opts) {
    const o = opts || {};
    const headers = {};
    if (path.startsWith("/admin")) headers.Accept = ACCEPT;
    else headers.Accept = "application/json";
    const token = o.token || (session && session.token);
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, { message: "The server cannot be reached." });
    }
    let data = null;
    const type = resp.headers.get("Content-Type") || "";
    if (resp.status !== 204 && type.includes("json")) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    if (resp.ok) return data;
    const err = new ApiError(resp.status, data);
    if (resp.status === 401 && !o.signingIn) {
      expired();
    }
    if (resp.status === 403) {
      alertBox(`Forbidden (403): your role does not allow this. ${err.message}`);
    }
    throw err;
  }

  // ---------------------------------------------------------------- privileges

  function can(kind, target) {
    if (!session) return false;
    return session.privileges.some((p) =>
      (p.type === "All" && p.target === "All") || (p.type === kind && p.target === target));
  }
  const isAdmin = () => can("All", "All");

  // Hides every control whose data-needs ("Kind:Target") the account lacks.
  function applyPrivileges() {
    for (const node of document.querySelectorAll("[data-needs]")) {
      const [kind, target] = node.getAttribute("data-needs").split(":");
      node.hidden = !can(kind, target);
    }
    $("nav-profiles").hidden = !can("View", "ClientProfile");
    $("nav-settings").hidden = !can("View", "GlobalSetting");
    $("nav-admins").hidden = !isAdmin();
    for (const id of ["s-profileHostname", "s-administrationTokenExpiration", "s-messageOfTheDay"]) {
      $(id).readOnly = !can("Edit", "GlobalSetting");
    }
  }

  // ---------------------------------------------------------------- field errors

  function clearErrors(form) {
    for (const e of form.querySelectorAll(".error")) e.textContent = "";
    for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  // Puts each message next to the input it names (prefix + first path segment), the rest
  // in the form's general error line.
  function showErrors(form, prefix, err, general) {
    const rest = [];
    const list = err.fields();
    for (const f of list) {
      const key = f.field.split(".")[0];
      const slot = key && $(`${prefix}-${key}-error`);
      if (slot) {
        const detail = f.field.includes(".") ? `${f.field}: ${f.message}` : f.message;
        slot.textContent = slot.textContent ? `${slot.textContent}; ${detail}` : detail;
        const input = $(`${prefix}-${key}`);
        if (input) input.setAttribute("aria-invalid", "true");
      } else {
        rest.push(f.field ? `${f.field}: ${f.message}` : f.message);
      }
    }
    if (!list.length || rest.length) {
      const msg = err.status === 401 ? "Sign in again, then save." : [err.message, ...rest].join(" ");
      $(general).textContent = err.status === 403 ? `Forbidden (403): ${msg}` : msg;
    }
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  // ---------------------------------------------------------------- sign-in

  let partialToken = null;

  function openSignIn(afterExpiry) {
    const d = $("signin");
    $("signin-note").hidden = !afterExpiry;
    $("signin-error").textContent = "";
    $("si-password").value = "";
    $("si-otp").value = "";
    $("si-otp-block").hidden = true;
    $("si-seed").hidden = true;
    partialToken = null;
    if (!d.open) openDialog(d);
    (afterExpiry && session ? $("si-password") : $("si-username")).focus();
    if (afterExpiry && session) $("si-username").value = session.email;
  }

  // The token has ended: the sign-in shows over whatever is open, which stays as it was.
  function expired() {
    if (session) session.token = null;
    store.removeItem("profiled.session");
    openSignIn(true);
  }

  function privilegesOf(answer) {
    return ((answer.user && answer.user.privileges) || []).map((p) => ({ type: p.type, target: p.target }));
  }

  async function finishSignIn(answer, email) {
    const wasSignedIn = !!(session && session.email);
    const sameUser = wasSignedIn && session.email.toLowerCase() === email.toLowerCase();
    session = { token: answer.token, email, privileges: privilegesOf(answer), expires: answer.expires, motd: answer.messageOfTheDay || "" };
    store.setItem("profiled.session", JSON.stringify(session));
    $("signin").close();
    $("signin-note").hidden = true;
    alertBox("");
    const waiters = reauthWaiters;
    reauthWaiters = [];
    waiters.forEach((w) => w());
    // Another account: nothing of the previous one's screens is kept.
    if (!sameUser) {
      for (const d of document.querySelectorAll("dialog[open]")) d.close();
      showShell();
    } else {
      applyPrivileges();
      if (document.querySelector("dialog[open]")) {
        status("Signed in again. You can save what you were editing.");
      } else if (current) {
        show(current); // nothing was being edited: load the page again
      } else {
        showShell();
      }
    }
  }

  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const username = $("si-username").value.trim();
    const password = $("si-password").value;
    const errLine = $("signin-error");
    errLine.textContent = "";
    $("si-submit").disabled = true;
    try {
      if (!partialToken) {
        const a = await call("POST", "/admin/authentication",
          { providerName: "local", deviceId, username, password }, { signingIn: true });
        partialToken = a.token;
        if (a.user && a.user.needTwoFactorAuth) {
          const seed = await call("POST", "/admin/authentication/otp/initialize", {}, { token: partialToken, signingIn: true });
          $("si-otp-block").hidden = false;
          if (seed && seed.type === "Secret") {
            $("si-seed").hidden = false;
            $("si-seed-img").src = `data:image/png;base64,${seed.barcode}`;
            $("si-seed-secret").textContent = seed.secret;
          }
          $("si-otp").focus();
          return;
        }
      } else {
        await call("POST", "/admin/authentication/otp", { otp: $("si-otp").value.trim() }, { token: partialToken, signingIn: true });
      }
      const full = await call("GET", "/admin/authorization", undefined, { token: partialToken, signingIn: true });
      await finishSignIn(full, username);
    } catch (e) {
      if (e.status === 401 && partialToken && !$("si-otp-block").hidden) {
        errLine.textContent = "That code is not right (or was used already). Try the next one.";
      } else {
        partialToken = null;
        $("si-otp-block").hidden = true;
        errLine.textContent = e.status === 401 ? "Wrong e-mail or password." : e.message;
      }
    } finally {
      $("si-submit").disabled = false;
    }
  });

  // Escape must not leave the sign-in open-less with nothing usable behind it.
  $("signin").addEventListener("cancel", (ev) => ev.preventDefault());

  $("signout").addEventListener("click", async () => {
    try { await call("POST", "/admin/authentication/logout", undefined, { signingIn: true }); } catch (e) { /* already ended */ }
    session = null;
    store.removeItem("profiled.session");
    for (const d of document.querySelectorAll("dialog[open]")) d.close();
    $("nav").hidden = true;
    $("signout").hidden = true;
    $("who").textContent = "";
    $("motd").hidden = true;
    for (const v of document.querySelectorAll(".view")) v.hidden = true;
    // Nothing of this account's screens stays for the next one.
    for (const f of document.querySelectorAll("form")) f.reset();
    for (const id of ["p-search", "a-filter", "si-username"]) $(id).value = "";
    plist.start = 0;
    alist.offset = 0;
    status("Signed out.");
    openSignIn(false);
  });

  // ---------------------------------------------------------------- shell and views

  let current = null;

  function showShell() {
    $("nav").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = session.email;
    $("me-email").textContent = session.email;
    $("motd").textContent = session.motd || "";
    $("motd").hidden = !session.motd;
    applyPrivileges();
    const wanted = (location.hash || "").slice(1);
    const first = ["profiles", "admins", "settings", "account"].find((v) => v === wanted && !$(`nav-${v}`).hidden)
      || ["profiles", "settings", "account"].find((v) => !$(`nav-${v}`).hidden);
    show(first);
  }

  function show(view) {
    current = view;
    alertBox("");
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
    for (const b of document.querySelectorAll("#nav button")) {
      if (b.dataset.view === view) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    }
    if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
    if (view === "profiles") loadProfiles();
    if (view === "admins") loadAdmins();
    if (view === "settings") loadSettings();
  }

  for (const b of document.querySelectorAll("#nav button")) {
    b.addEventListener("click", () => { show(b.dataset.view); $(`h-${b.dataset.view}`).focus(); });
  }
  for (const h of document.querySelectorAll("h1")) h.setAttribute("tabindex", "-1");
  for (const b of document.querySelectorAll("dialog .close")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }

  // ---------------------------------------------------------------- client profiles

  const plist = { start: 0, total: 0 };
  let searchTimer = null;

  function profileParams() {
    const size = Number($("p-size").value);
    const q = new URLSearchParams();
    const text = $("p-search").value.trim();
    if (text) q.set("query", text);
    q.set("orderBy", $("p-order").value);
    if ($("p-desc").checked) q.set("descending", "true");
    q.set("range", `${plist.start}-${plist.start + size}`);
    return q;
  }

  async function loadProfiles() {
    status("Loading client profiles…");
    let page;
    try {
      page = await call("GET", `/admin/client-profiles?${profileParams()}`);
    } catch (e) {
      status("");
      if (e.status !== 401 && e.status !== 403) alertBox(e.message);
      return;
    }
    const m = /^(\d+)-(\d+)\/(\d+)$/.exec(page.range || "");
    const [from, to, total] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, page.data.length, page.data.length];
    plist.total = total;
    const body = $("p-table").tBodies[0];
    body.replaceChildren(...page.data.map(profileRow));
    $("p-range").textContent = total ? `${from + 1}–${to} of ${total}` : "No profiles";
    $("p-prev").disabled = from === 0;
    $("p-next").disabled = to >= total;
    status("");
  }

  function profileRow(p) {
    const actions = el("td", { class: "actions", "data-label": "Actions" });
    const label = p.name;
    if (p.type !== "Group" && can("Export", "ClientProfile")) {
      actions.append(el("button", { type: "button", "aria-label": `Onboarding link of ${label}`, class: "export", on: { click: () => openExport(p) } }, "Link & QR"));
    }
    if (can("Edit", "ClientProfile")) {
      actions.append(el("button", { type: "button", "aria-label": `Edit ${label}`, class: "edit", on: { click: () => openProfile(p.id) } }, "Edit"));
    }
    if (can("Delete", "ClientProfile")) {
      actions.append(el("button", { type: "button", "aria-label": `Delete ${label}`, class: "delete", on: { click: () => deleteProfile(p) } }, "Delete"));
    }
    return el("tr", { "data-id": p.id },
      el("td", { "data-label": "Name", class: "name", text: p.name }),
      el("td", { "data-label": "Type", text: p.type || "" }),
      el("td", { "data-label": "Host name", text: p.hostname || p.globalHostname || "" }),
      el("td", { "data-label": "Tags", text: (p.tags || []).join(", ") }),
      actions);
  }

  $("p-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { plist.start = 0; loadProfiles(); }, 250);
  });
  for (const id of ["p-order", "p-desc", "p-size"]) {
    $(id).addEventListener("change", () => { plist.start = 0; loadProfiles(); });
  }
  $("p-prev").addEventListener("click", () => {
    plist.start = Math.max(0, plist.start - Number($("p-size").value));
    loadProfiles();
  });
  $("p-next").addEventListener("click", () => {
    plist.start += Number($("p-size").value);
    loadProfiles();
  });

  let editing = null; // the id of the profile in the dialog, or null for a new one

  function urlRow(member) {
    const m = member || {};
    const n = $("pd-urls").children.length + 1;
    const row = el("div", { class: "field inline url-row" });
    if (m.id) row.dataset.id = m.id;
    const url = el("input", { "aria-label": `Link ${n}`, placeholder: m.id ? "stored link (leave empty to keep)" : "appgate://host/…", class: "url" });
    const weight = el("input", { type: "number", min: "0", "aria-label": `Weight of link ${n}`, class: "weight" });
    weight.value = String(m.weight === undefined ? 100 : m.weight);
    const remove = el("button", { type: "button", "aria-label": `Remove link ${n}`, on: { click: () => row.remove() } }, "Remove");
    row.append(el("label", {}, "Link", url), el("label", {}, "Weight", weight), remove);
    $("pd-urls").append(row);
    return url;
  }
  $("p-new").addEventListener("click", () => openProfile(null));
  $("pd-add-url").addEventListener("click", () => urlRow(null).focus());

  function typeShown() {
    const group = $("pd-type").value === "Group";
    for (const n of document.querySelectorAll(".profile-only")) n.hidden = group;
    for (const n of document.querySelectorAll(".group-only")) n.hidden = !group;
  }
  $("pd-type").addEventListener("change", typeShown);

  async function openProfile(id) {
    const form = $("pd-form");
    clearErrors(form);
    form.reset();
    $("pd-urls").replaceChildren();
    editing = id;
    let p = { type: "Profile", identityProviderName: "local" };
    if (id) {
      try { p = await call("GET", `/admin/client-profiles/${encodeURIComponent(id)}`); } catch (e) { if (e.status !== 401 && e.status !== 403) alertBox(e.message); return; }
    }
    $("pd-title").textContent = id ? "Edit client profile" : "New client profile";
    for (const k of ["name", "notes", "identityProviderName", "spaKeyName", "hostname"]) $(`pd-${k}`).value = p[k] || "";
    $("pd-type").value = p.type === "Group" ? "Group" : "Profile";
    $("pd-tags").value = (p.tags || []).join(", ");
    for (const m of p.profileUrls || []) urlRow(m);
    typeShown();
    openDialog($("profile-dialog"));
    $("pd-name").focus();
  }

  function profileBody() {
    const type = $("pd-type").value;
    const body = {
      name: $("pd-name").value,
      notes: $("pd-notes").value,
      tags: $("pd-tags").value.split(",").map((t) => t.trim()).filter((t) => t),
      type,
    };
    if (type === "Group") {
      body.profileUrls = Array.from($("pd-urls").children, (row) => {
        const m = { weight: Number(row.querySelector(".weight").value || 100) };
        const url = row.querySelector(".url").value.trim();
        if (url) m.url = url;
        if (row.dataset.id && !url) m.id = row.dataset.id;
        return m;
      });
    } else {
      body.identityProviderName = $("pd-identityProviderName").value;
      body.spaKeyName = $("pd-spaKeyName").value;
      const host = $("pd-hostname").value.trim();
      if (host) body.hostname = host;
    }
    return body;
  }

  $("pd-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("pd-form");
    clearErrors(form);
    try {
      const saved = editing
        ? await call("PUT", `/admin/client-profiles/${encodeURIComponent(editing)}`, profileBody())
        : await call("POST", "/admin/client-profiles", profileBody());
      $("profile-dialog").close();
      status(`Saved “${saved.name}”.`);
      loadProfiles();
    } catch (e) {
      showErrors(form, "pd", e, "pd-error");
    }
  });

  function confirmDialog(text, yes) {
    return new Promise((resolve) => {
      const d = $("confirm-dialog");
      $("cd-text").textContent = text;
      $("cd-yes").textContent = yes;
      d.returnValue = "";
      d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
      openDialog(d);
      $("cd-no").focus();
    });
  }

  async function deleteProfile(p) {
    if (!(await confirmDialog(`Delete the client profile “${p.name}”? This cannot be undone.`, "Delete"))) return;
    try {
      await call("DELETE", `/admin/client-profiles/${encodeURIComponent(p.id)}`);
      status(`Deleted “${p.name}”.`);
      loadProfiles();
    } catch (e) {
      if (e.status !== 401 && e.status !== 403) alertBox(e.message);
    }
  }

  let qrUrl = null;

  async function openExport(p) {
    const base = `/admin/client-profiles/${encodeURIComponent(p.id)}`;
    let link, code;
    try {
      link = await call("GET", `${base}/url`);
      code = await call("GET", `${base}/barcode`);
    } catch (e) {
      if (e.status !== 401 && e.status !== 403) alertBox(e.message);
      return;
    }
    $("ed-title").textContent = `Onboarding link: ${p.name}`;
    $("ed-url").value = link.url;
    $("ed-copied").textContent = "";
    const bytes = Uint8Array.from(atob(code.barcode), (c) => c.charCodeAt(0));
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    $("ed-qr").src = qrUrl;
    openDialog($("export-dialog"));
    $("ed-copy").focus();
  }

  $("ed-copy").addEventListener("click", async () => {
    const input = $("ed-url");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (e) {
      input.select();
      document.execCommand("copy");
    }
    $("ed-copied").textContent = "Copied.";
  });

  // ---------------------------------------------------------------- administrators

  const alist = { offset: 0, limit: 25, total: 0 };
  let roleCatalogue = null;
  let editingAdmin = null;

  async function roles() {
    if (!roleCatalogue) {
      const r = await call("GET", "/ccadmin/v1/adminRoles?limit=250");
      roleCatalogue = r.items.map((x) => ({ id: x.repositoryId || x.id, name: x.name || x.repositoryId }));
    }
    return roleCatalogue;
  }

  async function loadAdmins() {
    const q = new URLSearchParams({ limit: String(alist.limit), offset: String(alist.offset), sort: "email:asc" });
    const filter = $("a-filter").value.trim();
    if (filter) { q.set("queryFormat", "SCIM"); q.set("q", filter); }
    $("a-filter-error").textContent = "";
    $("a-filter").removeAttribute("aria-invalid");
    status("Loading administrators…");
    let page;
    try {
      page = await call("GET", `/ccadmin/v1/adminProfiles?${q}`);
    } catch (e) {
      status("");
      if (e.status === 400) {
        $("a-filter-error").textContent = e.message;
        $("a-filter").setAttribute("aria-invalid", "true");
      } else if (e.status !== 401 && e.status !== 403) alertBox(e.message);
      return;
    }
    alist.total = page.total;
    $("a-table").tBodies[0].replaceChildren(...page.items.map(adminRow));
    const to = alist.offset + page.items.length;
    $("a-range").textContent = page.total ? `${alist.offset + 1}–${to} of ${page.total}` : "No administrators";
    $("a-prev").disabled = alist.offset === 0;
    $("a-next").disabled = to >= page.total;
    status("");
  }

  function roleIds(a) { return (a.roles || []).map((r) => r.repositoryId || r.id || r); }

  function adminRow(a) {
    const name = `${a.firstName || ""} ${a.lastName || ""}`.trim();
    const actions = el("td", { class: "actions", "data-label": "Actions" },
      el("button", { type: "button", class: "roles", "aria-label": `Change roles of ${a.email}`, on: { click: () => openAdmin(a) } }, "Roles"),
      el("button", { type: "button", class: "toggle", "aria-label": `${a.active ? "Deactivate" : "Reactivate"} ${a.email}`, on: { click: () => setActive(a, !a.active) } }, a.active ? "Deactivate" : "Reactivate"));
    return el("tr", { "data-id": a.id },
      el("td", { "data-label": "E-mail", text: a.email || "" }),
      el("td", { "data-label": "Name", text: name }),
      el("td", { "data-label": "Roles", class: "role-list", text: roleIds(a).join(", ") }),
      el("td", { "data-label": "Active", text: a.active ? "yes" : "no" }),
      actions);
  }

  $("a-filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); alist.offset = 0; loadAdmins(); });
  $("a-prev").addEventListener("click", () => { alist.offset = Math.max(0, alist.offset - alist.limit); loadAdmins(); });
  $("a-next").addEventListener("click", () => { alist.offset += alist.limit; loadAdmins(); });
  $("a-new").addEventListener("click", () => openAdmin(null));

  async function openAdmin(a) {
    const form = $("ad-form");
    clearErrors(form);
    form.reset();
    editingAdmin = a;
    let catalogue;
    try { catalogue = await roles(); } catch (e) { return; }
    const held = a ? roleIds(a) : [];
    $("ad-roles").replaceChildren(...catalogue.map((r) => {
      const box = el("input", { type: "checkbox", value: r.id, name: "role" });
      box.checked = held.includes(r.id);
      return el("label", {}, box, ` ${r.name} (${r.id})`);
    }));
    for (const n of form.querySelectorAll(".new-only")) n.hidden = !!a;
    $("ad-title").textContent = a ? `Roles of ${a.email}` : "New administrator";
    openDialog($("admin-dialog"));
    (a ? $("ad-roles").querySelector("input") : $("ad-firstName")).focus();
  }

  $("ad-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("ad-form");
    clearErrors(form);
    const chosen = Array.from(form.querySelectorAll("input[name=role]:checked"), (b) => b.value);
    try {
      if (editingAdmin) {
        await call("PUT", `/ccadmin/v1/adminProfiles/${encodeURIComponent(editingAdmin.id)}`, { roles: chosen });
      } else {
        await call("POST", "/ccadmin/v1/adminProfiles", {
          firstName: $("ad-firstName").value, lastName: $("ad-lastName").value,
          email: $("ad-email").value, password: $("ad-password").value, roles: chosen,
        });
      }
      $("admin-dialog").close();
      status("Administrator saved.");
      loadAdmins();
    } catch (e) {
      showErrors(form, "ad", e, "ad-error");
    }
  });

  async function setActive(a, active) {
    if (!active && !(await confirmDialog(`Deactivate ${a.email}? Their sessions end at once.`, "Deactivate"))) return;
    try {
      await call("PUT", `/ccadmin/v1/adminProfiles/${encodeURIComponent(a.id)}`, { active });
      status(`${a.email} ${active ? "reactivated" : "deactivated"}.`);
      loadAdmins();
    } catch (e) {
      if (e.status !== 401 && e.status !== 403) alertBox(e.message);
    }
  }

  // ---------------------------------------------------------------- settings

  let settings = null;
  const SETTING_KEYS = ["profileHostname", "administrationTokenExpiration", "messageOfTheDay"];

  async function loadSettings() {
    clearErrors($("s-form"));
    try { settings = await call("GET", "/admin/global-settings"); } catch (e) { if (e.status !== 401 && e.status !== 403) alertBox(e.message); return; }
    for (const k of SETTING_KEYS) $(`s-${k}`).value = settings[k] === undefined || settings[k] === null ? "" : String(settings[k]);
  }

  $("s-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("s-form");
    clearErrors(form);
    const body = Object.assign({}, settings || {});
    body.profileHostname = $("s-profileHostname").value.trim();
    const minutes = $("s-administrationTokenExpiration").value.trim();
    body.administrationTokenExpiration = minutes === "" ? null : Number(minutes);
    body.messageOfTheDay = $("s-messageOfTheDay").value;
    try {
      await call("PUT", "/admin/global-settings", body);
      status("Settings saved.");
      settings = Object.assign({}, body);
      if (session) {
        session.motd = body.messageOfTheDay;
        store.setItem("profiled.session", JSON.stringify(session));
        $("motd").textContent = session.motd;
        $("motd").hidden = !session.motd;
      }
    } catch (e) {
      showErrors(form, "s", e, "s-error");
    }
  });

  // ---------------------------------------------------------------- own password

  $("pw-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("pw-form");
    clearErrors(form);
    try {
      await call("PUT", "/ccadmin/v1/adminProfiles/current", {
        currentPassword: $("pw-currentPassword").value, password: $("pw-password").value,
      });
      form.reset();
      status("Password changed. Your other sessions have ended.");
    } catch (e) {
      // Oracle names no field for a wrong current password (22005): put it next to it.
      if (e.status === 400 && !e.fields().some((f) => f.field)) {
        $("pw-currentPassword-error").textContent = e.message;
        $("pw-currentPassword").setAttribute("aria-invalid", "true");
      } else {
        showErrors(form, "pw", e, "pw-error");
      }
    }
  });

  // ---------------------------------------------------------------- start

  // A fault of the console itself is shown, not swallowed.
  window.addEventListener("error", (ev) => alertBox(`Console error: ${ev.message}`));
  window.addEventListener("unhandledrejection", (ev) => alertBox(`Console error: ${ev.reason}`));

  if (session && session.token) {
    showShell();
  } else {
    openSignIn(false);
  }
})();
