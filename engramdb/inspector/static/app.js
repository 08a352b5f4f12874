// The Engram inspector: one page, routed by the URL's #fragment, over /v1 and /ui/api.
// Stored text is data: every string from the server reaches the page as a text node
// (el() below); nothing here parses HTML.
"use strict";

const KEY = "engram.key", USER = "engram.user";
const main = () => document.getElementById("main");

// -- building the page -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  main().replaceChildren(...nodes.flat(Infinity).filter(n => n !== null && n !== undefined && n !== false));
}
function link(text, hash) { return el("a", { href: hash }, text); }
function memoryLink(id, text) { return link(text || id, "#/memory/" + encodeURIComponent(id)); }
function day(ts) { return ts ? ts.replace("T", " ").replace(/\.\d+/, "").replace("Z", "") : ""; }
function kindTag(kind) { return el("span", { class: "kind " + kind }, kind); }
function table(headers, rows, opts) {
  return el("table", opts || {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
            el("tbody", {}, rows));
}
function failure(err) { return el("p", { class: "error", role: "alert" }, err.message || String(err)); }

// -- talking to the server -----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) { super(message); this.status = status; this.type = type; }
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const key = sessionStorage.getItem(KEY);
  if (key) opts.headers["Authorization"] = "Bearer " + key;
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  const response = await fetch(path, opts);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = body.error || {};
    throw new ApiError(response.status, e.type || "Error", e.message || response.statusText);
  }
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function login(message) {
  const input = el("input", { type: "password", id: "api-key", placeholder: "engram keys create --tenant …",
                              autocomplete: "off", size: 48 });
  const form = el("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    route();
  } }, el("label", {}, "API key", input), el("button", { class: "primary", type: "submit" }, "Open"));
  show(el("h1", {}, "Sign in"), message ? el("p", { class: "error" }, message) : null,
       el("p", { class: "dim" }, "The inspector needs the key the REST API needs. It is kept in this tab only."), form);
  input.focus();
}

async function guarded(render) {
  try { return await render(); }
  catch (err) {
    if (err instanceof ApiError && err.status === 401) login(err.message);
    else show(failure(err));
  }
}

let whoami = null;  // a promise of /ui/api/whoami, asked once a page load
function who() {
  if (whoami === null) {
    whoami = api("/ui/api/whoami").then((me) => {
      document.getElementById("who").textContent = (me.tenant ? "tenant " + me.tenant : "local store") + " · " +
        me.users + (me.read_only ? " · read-only" : "");
      return me;
    }, (err) => { whoami = null; throw err; });
  }
  return whoami;
}

function confirmAction(text, word) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const typedLabel = document.getElementById("confirm-typed-label");
  const typed = document.getElementById("confirm-typed");
  const ok = document.getElementById("confirm-ok");
  typed.value = "";
  typedLabel.hidden = !word;
  document.getElementById("confirm-word").textContent = word || "";
  ok.disabled = !!word;
  typed.oninput = () => { ok.disabled = typed.value !== word; };
  return new Promise((resolve) => {
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function go(hash) {
  // To a page, rendered again even when it is the page already shown.
  if (location.hash === hash) route(); else location.hash = hash;
}

function currentUser() { return sessionStorage.getItem(USER) || ""; }
function setUser(user) { if (user) sessionStorage.setItem(USER, user); }

async function userPicker(onPick) {
  const [me, data] = await Promise.all([who(), api("/ui/api/users" + query({ limit: 500 }))]);
  const users = data.users.map(u => u.user_id);
  let chosen = currentUser();
  if (!users.includes(chosen)) chosen = me.default_user || users[0] || "";
  setUser(chosen);
  const select = el("select", { id: "user", onchange: () => { setUser(select.value); onPick(select.value); } },
                    users.map(u => el("option", { value: u, selected: u === chosen }, u)));
  return { node: el("label", {}, "User", select), user: chosen };
}

// -- pages ---------------------------------------------------------------------------------

async function usersPage() {
  const [, data] = await Promise.all([who(), api("/ui/api/users" + query({ limit: 500 }))]);
  const rows = data.users.map(u => el("tr", {},
    el("td", {}, link(u.user_id, "#/user/" + encodeURIComponent(u.user_id))),
    el("td", {}, String(u.records))));
  show(el("h1", {}, "Users"),
       data.users.length ? table(["user", "memories"], rows, { id: "users" })
                         : el("p", { class: "dim" }, "No memories yet."),
       data.next ? el("p", { class: "dim" }, "Showing the first 500 users.") : null);
}

async function userPage(user, params) {
  setUser(user);
  const session = params.get("session") || "";
  const kind = params.get("kind") || "";
  const cursor = params.get("cursor") || "";
  // The sessions (a summary of every memory of the user) may come after the timeline's page.
  const sessions = api("/ui/api/sessions" + query({ user_id: user }));
  sessions.catch(() => {});
  const [me, page] = await Promise.all([who(),
    api("/ui/api/timeline" + query({ user_id: user, session_id: session, kind, cursor, limit: 50 }))]);
  const here = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) { if (v) next.set(k, v); else next.delete(k); }
    const s = next.toString();
    return "#/user/" + encodeURIComponent(user) + (s ? "?" + s : "");
  };
  const sessionRows = (found) => found.sessions.map(s => el("tr", {},
    el("td", {}, s.session_id === null ? el("span", { class: "dim" }, "(no session)")
                                       : link(s.session_id, here({ session: s.session_id, cursor: "" }))),
    el("td", {}, String(s.records)), el("td", {}, day(s.first)), el("td", {}, day(s.last)),
    el("td", {}, s.session_id === null || me.read_only ? null :
      el("button", { class: "danger", onclick: () => forget(user, s.session_id) }, "Forget session"))));
  const kinds = ["", "turn", "fact", "preference", "event", "summary"];
  const kindSelect = el("select", { id: "kind", onchange: () => { location.hash = here({ kind: kindSelect.value, cursor: "" }); } },
                        kinds.map(k => el("option", { value: k, selected: k === kind }, k || "every kind")));
  const rows = page.records.map(r => recordRow(r));
  show(
    el("h1", {}, "Memories of ", el("span", { class: "mono" }, user)),
    el("div", { class: "row" },
      session ? el("span", {}, "Session ", el("code", {}, session), " · ", link("all sessions", here({ session: "", cursor: "" }))) : null,
      el("label", {}, "Kind", kindSelect),
      me.read_only ? null : el("button", { class: "danger", id: "forget-user", onclick: () => forget(user, null) }, "Forget this user")),
    el("h2", {}, "Timeline"),
    rows.length ? table(["when", "kind", "who", "text", ""], rows, { id: "timeline" }) : el("p", { class: "dim" }, "Nothing here."),
    el("div", { class: "pager" },
      cursor ? el("button", { type: "button", onclick: () => history.back() }, "← previous") : null,
      page.next_cursor ? link("next page →", here({ cursor: page.next_cursor })) : null),
    el("h2", {}, "Sessions"),
    el("div", { id: "sessions-box" }, el("p", { class: "dim" }, "Loading sessions…")));
  return sessions.then(
    (found) => document.getElementById("sessions-box").replaceChildren(
      table(["session", "memories", "first", "last", ""], sessionRows(found), { id: "sessions" })),
    (err) => document.getElementById("sessions-box").replaceChildren(failure(err)));
}

function recordRow(r) {
  const retired = r.valid_to !== null;
  const flagged = r.metadata && r.metadata.flagged;
  const who = r.kind === "turn" ? (r.name || r.role || "") : "";
  return el("tr", { class: retired ? "retired" : null, "data-id": r.id },
    el("td", { class: "mono" }, day(r.created_at)),
    el("td", {}, kindTag(r.kind)),
    el("td", {}, who),
    el("td", { class: "text" }, r.text, flagged ? el("div", { class: "flag" }, "flagged: " + flagged) : null,
       retired ? el("div", { class: "dim" }, "retired " + day(r.valid_to)) : null),
    el("td", {}, memoryLink(r.id, r.kind === "turn" ? "history" : "sources · history")));
}

async function forget(user, session) {
  const what = session ? "every memory of session " + session + " of " + user : "every memory of " + user;
  if (!await confirmAction("Erase " + what + "? This cannot be undone.", session || user)) return;
  await guarded(async () => {
    const body = { user_id: user, confirm: true };
    if (session) body.session_id = session;
    const done = await api("/v1/forget", { method: "POST", json: body });
    sessionStorage.setItem("engram.notice", "Erased " + done.forgotten + " memories.");
    go(session ? "#/user/" + encodeURIComponent(user) : "#/users");
  });
}

function reasonNode(reason) {
  if (!reason) return null;
  for (const prefix of ["superseded by ", "retracted by ", "supersedes ", "retracts "]) {
    if (reason.startsWith(prefix)) {
      const ids = reason.slice(prefix.length).split(", ").filter(Boolean);
      return el("span", {}, prefix, ids.flatMap((id, i) => [i ? ", " : null, memoryLink(id)]));
    }
  }
  return el("span", { class: "dim" }, reason);
}

const EVENTS = { add: "added", update: "updated", delete: "erased", supersede: "superseded",
                 retract: "retracted", outdate: "outdated", reinstate: "reinstated" };

function linked(title, items, id) {
  if (!items.length) return null;
  return [el("h2", {}, title), table(["when", "kind", "text", ""], items.map(r => r.erased ?
    el("tr", {}, el("td", {}, ""), el("td", {}, ""), el("td", { class: "dim" }, "(erased)"), el("td", {}, memoryLink(r.id, "receipt"))) :
    el("tr", { class: r.valid_to !== null ? "retired" : null, "data-id": r.id },
       el("td", { class: "mono" }, day(r.created_at)), el("td", {}, kindTag(r.kind)),
       el("td", { class: "text" }, r.text), el("td", {}, memoryLink(r.id, "open")))), { id })];
}

async function memoryPage(id) {
  const [me, data] = await Promise.all([who(), api("/ui/api/memories/" + encodeURIComponent(id))]);
  const r = data.record;
  const history = el("ol", { class: "history", id: "history" }, data.history.map(v => el("li", {},
    el("span", { class: "event" }, EVENTS[v.event] || v.event), " ", el("span", { class: "mono dim" }, day(v.at)),
    v.actor ? el("span", { class: "dim" }, " by " + v.actor) : null, " ", reasonNode(v.reason),
    v.text !== null ? el("div", { class: "text" }, v.text) : el("div", { class: "mono dim" }, "hash " + v.content_hash))));
  if (r === null) {
    show(el("h1", {}, "Erased memory ", el("code", {}, id)),
         el("p", { class: "dim" }, "Its text is gone from the store; the receipt keeps only hashes."),
         el("h2", {}, "History"), history);
    return;
  }
  setUser(r.user_id);
  const answer = el("div", { id: "asof-answer" });
  const date = el("input", { type: "datetime-local", id: "asof-date", step: 1 });
  const asOf = el("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    if (!date.value) return;
    try {
      const iso = new Date(date.value).toISOString();
      const got = await api("/ui/api/memories/" + encodeURIComponent(id) + "/as_of" + query({ date: iso }));
      answer.replaceChildren(el("p", {}, "as_of ", el("code", {}, iso), " answers:"),
        got.answer.length ? el("ul", {}, got.answer.map(a => el("li", {}, memoryLink(a.id, a.id === id ? "this memory" : a.id), ": ", a.text)))
                          : el("p", { class: "dim" }, "nothing of this chain (not yet said, or retracted then)."));
    } catch (err) { answer.replaceChildren(failure(err)); }
  } }, el("label", {}, "What would as_of answer on", date), el("button", { type: "submit" }, "Ask"));
  show(
    el("h1", {}, kindTag(r.kind), " ", el("code", {}, r.id)),
    el("table", { id: "record" }, el("tbody", {},
      el("tr", {}, el("th", {}, "text"), el("td", { class: "text", id: "record-text" }, r.text)),
      el("tr", {}, el("th", {}, "user"), el("td", {}, link(r.user_id, "#/user/" + encodeURIComponent(r.user_id)))),
      el("tr", {}, el("th", {}, "session"), el("td", {}, r.session_id || "")),
      el("tr", {}, el("th", {}, "said"), el("td", {}, day(r.created_at))),
      el("tr", {}, el("th", {}, "valid to"), el("td", {}, r.valid_to ? day(r.valid_to) : "current")),
      el("tr", {}, el("th", {}, "your ids"), el("td", { class: "mono" }, r.sources.join(", "))),
      r.metadata && Object.keys(r.metadata).length ?
        el("tr", {}, el("th", {}, "metadata"), el("td", { class: "mono" }, JSON.stringify(r.metadata))) : null)),
    me.read_only ? null : el("div", { class: "row" },
      el("button", { class: "danger", id: "delete", onclick: () => remove(r) }, "Delete this memory")),
    linked("Derived from", data.sources, "sources"),
    linked("Derived memories", data.derived, "derived"),
    linked("Superseded by", data.superseded_by, "superseded-by"),
    linked("Supersedes", data.supersedes, "supersedes"),
    linked("Retracted by", data.retracted_by, "retracted-by"),
    linked("Retracts", data.retracts, "retracts"),
    el("h2", {}, "History"), history,
    el("h2", {}, "As of"), asOf, answer);
}

async function remove(r) {
  if (!await confirmAction("Delete this " + r.kind + "? Its text leaves the store, its indexes and its history; " +
                           "what was derived from it is derived again or erased.")) return;
  await guarded(async () => {
    await api("/v1/memories/" + encodeURIComponent(r.id), { method: "DELETE" });
    sessionStorage.setItem("engram.notice", "Deleted " + r.id + ".");
    go("#/user/" + encodeURIComponent(r.user_id));
  });
}

async function searchPage(params) {
  const picker = await userPicker(() => {});
  const q = el("input", { id: "query", size: 48, value: params.get("q") || "", placeholder: "where does alice live?" });
  const limit = el("input", { id: "limit", type: "number", min: 1, max: 100, value: 10, size: 4 });
  const budget = el("input", { id: "budget", type: "number", min: 34, value: 300, size: 6 });
  const out = el("div", { id: "results" });
  const form = el("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    const user = document.getElementById("user").value;
    if (!q.value.trim()) return;
    out.replaceChildren(el("p", { class: "dim" }, "Searching…"));
    try {
      const [hits, recall] = await Promise.all([
        api("/v1/memories/search", { method: "POST", json: { query: q.value, user_id: user, limit: Number(limit.value) } }),
        api("/v1/recall", { method: "POST", json: { query: q.value, user_id: user, budget_tokens: Number(budget.value) } }),
      ]);
      out.replaceChildren(
        el("h2", {}, "Hits"),
        hits.hits.length ? table(["#", "score", "kind", "when", "text", "sources"], hits.hits.map((h, i) =>
          el("tr", { "data-id": h.id }, el("td", {}, String(i + 1)), el("td", { class: "mono score" }, h.score.toFixed(4)),
             el("td", {}, kindTag(h.kind)), el("td", { class: "mono" }, day(h.created_at)),
             el("td", { class: "text" }, h.text), el("td", {}, memoryLink(h.id, "open")))), { id: "hits" })
          : el("p", { class: "dim" }, "No hits."),
        el("h2", {}, "context() for a budget of " + budget.value + " tokens" + (recall.complete ? " (the whole scope fits)" : "")),
        el("pre", { id: "context" }, recall.text || "(nothing fits)"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) login(err.message); else out.replaceChildren(failure(err));
    }
  } }, picker.node, el("label", {}, "Query", q), el("label", {}, "Hits", limit), el("label", {}, "Budget (tokens)", budget),
      el("button", { class: "primary", type: "submit", id: "go" }, "Search"));
  show(el("h1", {}, "Search playground"), form, out);
}

async function jobsPage(params) {
  const state = params.get("state") || "";
  const before = params.get("before") || "";
  const [, data] = await Promise.all([who(), api("/ui/api/jobs" + query({ state, before, limit: 50 }))]);
  const s = data.summary;
  const card = (label, value) => el("div", { class: "card" }, el("b", {}, String(value ?? "–")), label);
  const states = ["", "pending", "running", "failed"];
  const stateSelect = el("select", { id: "state", onchange: () => { location.hash = "#/jobs" + query({ state: stateSelect.value }); } },
                         states.map(x => el("option", { value: x, selected: x === state }, x || "every state")));
  show(el("h1", {}, "Distillation queue"),
    el("div", { class: "cards", id: "job-summary" }, card("pending", s.pending), card("running", s.running),
       card("failed", s.failed), card("ready now", s.ready), card("oldest waiting (s)", s.backlog_age_s === null ? "–" : s.backlog_age_s)),
    el("div", { class: "row" }, el("label", {}, "State", stateSelect)),
    data.jobs.length ? table(["job", "kind", "state", "attempts", "user", "session", "queued", "error"], data.jobs.map(j =>
      el("tr", { class: j.state === "failed" ? "failed" : null }, el("td", {}, String(j.id)), el("td", {}, j.kind),
         el("td", {}, j.state), el("td", {}, String(j.attempts)), el("td", {}, j.user_id), el("td", {}, j.session_id || ""),
         el("td", { class: "mono" }, day(j.created_at)), el("td", { class: "text error-text" }, j.error || ""))), { id: "jobs" })
      : el("p", { class: "dim" }, "No jobs."),
    data.next ? el("div", { class: "pager" }, link("older →", "#/jobs" + query({ state, before: data.next }))) : null);
}

async function erasuresPage(params) {
  const given = params.get("user"), cursor = params.get("cursor") || "";
  if (given) setUser(given);
  const receipts = (user) => api("/ui/api/erasures" + query({ user_id: user, cursor, limit: 50 }));
  const [picker, early] = await Promise.all([
    userPicker((user) => { location.hash = "#/erasures" + query({ user }); }), given ? receipts(given) : null]);
  const user = given || picker.user;
  if (!user) { show(el("h1", {}, "Erasure receipts"), el("p", { class: "dim" }, "No users.")); return; }
  const data = early || await receipts(user);
  show(el("h1", {}, "Erasure receipts"),
    el("div", { class: "row" }, picker.node),
    el("p", { class: "dim" }, "What delete() left of each erased memory: its id, when, and a hash of its text. Never the text."),
    data.receipts.length ? table(["memory", "erased at", "content hash", "why"], data.receipts.map(t =>
      el("tr", {}, el("td", {}, memoryLink(t.memory_id)), el("td", { class: "mono" }, day(t.at)),
         el("td", { class: "mono" }, t.content_hash), el("td", {}, reasonNode(t.reason)))), { id: "receipts" })
      : el("p", { class: "dim" }, "No erasures."),
    data.next_cursor ? el("div", { class: "pager" }, link("older →", "#/erasures" + query({ user, cursor: data.next_cursor }))) : null);
}

// -- routing -------------------------------------------------------------------------------

function takeKeyFromFragment() {
  // `engram ui` opens /ui/#key=…: keep the key for this tab and drop it from the address bar.
  const m = location.hash.match(/^#key=([^&]+)/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#/users");
  }
}

async function route() {
  takeKeyFromFragment();
  const started = location.hash;
  const hash = location.hash.replace(/^#\/?/, "") || "users";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  const notice = sessionStorage.getItem("engram.notice");
  sessionStorage.removeItem("engram.notice");
  const pages = { users: usersPage, user: () => userPage(parts[1], params), memory: () => memoryPage(parts[1]),
                  search: () => searchPage(params), jobs: () => jobsPage(params), erasures: () => erasuresPage(params) };
  const page = pages[parts[0]] || usersPage;
  const later = await guarded(page);  // a page may fill in a part after its first paint
  if (location.hash !== started) return;  // a newer page is on its way
  if (notice) main().prepend(el("p", { class: "card", id: "notice", role: "status" }, notice));
  // The frame painted with the page's data (the first paint `engram bench inspector` times).
  requestAnimationFrame(() => setTimeout(() => { document.body.dataset.painted = String(performance.now()); }));
  if (later) await later;
  if (location.hash === started) document.body.dataset.ready = started;  // every part of it is there
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);
