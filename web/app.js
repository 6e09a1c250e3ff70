/* The status page: the JSON API (/api/v1/...), polled every 2 s for the
 * view on screen.  The token is asked once and kept in sessionStorage (this
 * tab only); it travels in the Authorization header, never in a URL.
 * Views by the location's hash: #/ runs, #/run/ID, #/job/ID, #/workers,
 * #/queue.  No framework: el() builds DOM nodes, and all text goes in as
 * text, never as HTML. */
"use strict";

const POLL_MS = 2000;
const STATES = ["succeeded", "failed", "running", "queued", "cancelled"];
let timer = null;
let gen = 0; /* bumped per refresh: an older one's answer is not drawn */
let view = { name: "", id: "", filter: "all" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    /* Through the CSSOM: the page's CSP forbids style attributes. */
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/* Draws a view: children as el() takes them (arrays flattened). */
function render(root, ...children) {
  root.replaceChildren(el("div", {}, ...children));
}

function token() { return sessionStorage.getItem("broadway-token") || ""; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path) {
  let res;
  try {
    res = await fetch("/api/v1/" + path, {
      method, headers: { Authorization: token() }, cache: "no-store",
      credentials: "omit", referrerPolicy: "no-referrer",
    });
  } catch (e) {
    throw new ApiError(0, "cannot reach the API: " + e.message);
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = body && ((body.data && body.data.message) || body.message);
    throw new ApiError(res.status, msg || ("HTTP " + res.status));
  }
  return body ? body.data : null;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function stateBadge(state) {
  return el("span", { class: "state " + state, "data-state": state }, state);
}

function total(counts) {
  return Object.values(counts || {}).reduce((a, b) => a + b, 0);
}

function progress(counts) {
  const n = total(counts) || 1;
  const bar = el("div", { class: "bar", role: "img",
    "aria-label": STATES.map(s => (counts[s] || 0) + " " + s).join(", ") });
  for (const s of STATES)
    if (counts[s]) bar.append(el("span", { class: s,
      style: "width:" + (100 * counts[s] / n) + "%" }));
  const done = (counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0);
  const legend = el("div", { class: "counts" },
    el("strong", { class: "done" }, done + "/" + total(counts) + " done"),
    STATES.filter(s => counts[s]).map(s => el("span", { class: "count-" + s },
      el("span", { class: "dot bar-" + s, style: "background:var(--" +
        ({ succeeded: "ok", failed: "fail", running: "run", queued: "queue",
           cancelled: "cancel" })[s] + ")" }), counts[s] + " " + s)));
  return [bar, legend];
}

/* ---- views ------------------------------------------------------------- */

async function showRuns(root, g) {
  const data = await api("GET", "grading_runs?counts=1&limit=50");
  if (g !== gen) return;
  render(root, el("h1", {}, "Grading runs"),
    data.runs.length ? "" : el("p", { class: "muted" }, "No runs yet."),
    el("div", { class: "runs" }, data.runs.map(r =>
      el("a", { class: "card run-card", href: "#/run/" + r.grading_run_id,
                "data-run": r.grading_run_id },
        el("div", {}, stateBadge(r.state), " ",
          el("span", { class: "muted" }, ago(r.created_at))),
        el("div", { class: "run-id" }, r.grading_run_id),
        progress(r.counts || {}),
        el("div", { class: "muted" }, r.student_count + " students",
          r.round ? " · retry " + r.round : "")))),
    el("p", { class: "muted" }, data.runs.length + " of " + data.total + " runs"));
}

function studentName(job) {
  if (job.type !== "student") return job.type + "-processing";
  const s = job.student || {};
  return s.NETID || s.netid || Object.values(s)[0] || ("#" + job.index);
}

async function runAction(kind, id) {
  const what = kind === "cancel" ? "Cancel this run? Queued jobs are dropped."
                                 : "Grade the failed students again?";
  if (!confirm(what)) return;
  try {
    await api("POST", "grading_run_" + kind + "/" + id);
    refresh();
  } catch (e) { banner(e.message); }
}

async function showRun(root, id, g) {
  const run = await api("GET", "grading_run/" + id);
  if (g !== gen) return;
  const finished = ["succeeded", "failed", "cancelled"].includes(run.state);
  const jobs = run.jobs.filter(j => view.filter === "all" || j.state === view.filter);
  const filters = el("div", { class: "filters" }, ["all", ...STATES].map(f =>
    el("button", { type: "button", class: f === view.filter ? "on" : "",
      "data-filter": f, onclick: () => { view.filter = f; refresh(); } },
      f === "all" ? "all (" + run.jobs.length + ")"
                  : f + " (" + (run.counts[f] || 0) + ")")));
  render(root, 
    el("h1", {}, "Run ", el("span", { class: "run-id" }, id)),
    el("div", { class: "card" },
      el("div", {}, Object.assign(stateBadge(run.state), { id: "run-state" })),
      progress(run.counts),
      el("div", { class: "kv" },
        el("span", { class: "muted" }, "created"), when(run.created_at),
        el("span", { class: "muted" }, "started"), when(run.started_at) || "–",
        el("span", { class: "muted" }, "finished"), when(run.finished_at) || "–"),
      el("div", { class: "actions" },
        finished ? "" : el("button", { type: "button", class: "danger",
          onclick: () => runAction("cancel", id) }, "Cancel run"),
        run.state === "succeeded" || run.state === "failed" ?
          el("button", { type: "button", onclick: () => runAction("retry", id) },
             "Retry failed") : "")),
    el("h2", {}, "Jobs"), filters,
    el("div", { class: "table-wrap" }, el("table", { id: "jobs" },
      el("thead", {}, el("tr", {}, el("th", {}, "Student"), el("th", {}, "State"),
        el("th", { class: "wide" }, "Attempts"), el("th", {}, "Reason"))),
      el("tbody", {}, jobs.map(j => el("tr", { "data-job": j.job_id, "data-state": j.state },
        el("td", {}, el("a", { href: "#/job/" + j.job_id }, studentName(j))),
        el("td", {}, stateBadge(j.state)),
        el("td", { class: "wide" }, j.attempts),
        el("td", { class: "reason" }, j.reason || "")))))));
}

function stageView(s, i) {
  return el("div", { class: "card stage" },
    el("h3", {}, "Stage " + i + ": " + (s.image || "?")),
    el("div", { class: "kv" },
      el("span", { class: "muted" }, "exit code"), el("span", { class: "exit-code" }, s.exit_code),
      el("span", { class: "muted" }, "time"), (s.duration_ms ?? "?") + " ms",
      s.timed_out ? [el("span", { class: "muted" }, "timed out"), "yes"] : "",
      s.killed_by ? [el("span", { class: "muted" }, "killed by"),
                     s.killed_by + " (" + s.limit + ")"] : "",
      s.error ? [el("span", { class: "muted" }, "error"), s.error] : ""),
    s.stdout ? [el("div", { class: "muted" }, "stdout"), el("pre", { class: "stdout" }, s.stdout)] : "",
    s.stderr ? [el("div", { class: "muted" }, "stderr"), el("pre", { class: "stderr" }, s.stderr)] : "");
}

async function showJob(root, id, g) {
  const job = await api("GET", "grading_job/" + id);
  if (g !== gen) return;
  const info = Array.isArray(job.info) ? job.info : [];
  const logs = typeof job.logs === "string" ? job.logs
             : job.logs ? JSON.stringify(job.logs, null, 2) : "";
  render(root, 
    el("p", {}, el("a", { href: "#/run/" + job.grading_run_id }, "← run")),
    el("h1", {}, studentName(job), " ", stateBadge(job.state)),
    el("div", { class: "card kv" },
      el("span", { class: "muted" }, "job"), el("span", { class: "run-id" }, id),
      el("span", { class: "muted" }, "attempts"), job.attempts,
      job.reason ? [el("span", { class: "muted" }, "reason"),
                    el("span", { class: "reason" }, job.reason)] : "",
      el("span", { class: "muted" }, "student"), JSON.stringify(job.student || {}),
      el("span", { class: "muted" }, "finished"), when(job.finished_at) || "–"),
    el("h2", {}, "Stages"),
    info.length ? info.map(stageView) : el("p", { class: "muted" }, "No stage has reported yet."),
    logs ? [el("h2", {}, "Logs"), el("pre", { class: "logs" }, logs)] : "");
}

async function showWorkers(root, g) {
  const data = await api("GET", "workers");
  if (g !== gen) return;
  render(root, el("h1", {}, "Graders"),
    el("p", {}, data.alive + " alive, " + data.dead + " not heartbeating"),
    el("div", { class: "table-wrap" }, el("table", { id: "workers" },
      el("thead", {}, el("tr", {}, el("th", {}, "Host"), el("th", {}, "Alive"),
        el("th", {}, "Jobs now"), el("th", {}, "Done"), el("th", { class: "wide" }, "Last seen"))),
      el("tbody", {}, data.workers.map(w => el("tr", {},
        el("td", {}, w.hostname || w.worker_id),
        el("td", {}, w.alive ? "yes" : "no"),
        el("td", {}, w.jobs.map(j => el("a", { href: "#/job/" + j }, j.slice(-6) + " "))),
        el("td", {}, w.jobs_done),
        el("td", { class: "wide" }, ago(w.last_seen))))))));
}

async function showQueue(root, g) {
  const q = await api("GET", "queue");
  if (g !== gen) return;
  render(root, el("h1", {}, "Queue"),
    el("div", { class: "card" }, el("strong", {}, q.waiting + " waiting"), ", ",
      q.running + " running; oldest waiting " + q.oldest_wait_s.toFixed(1) + " s"),
    el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Run"), el("th", {}, "Waiting"),
        el("th", {}, "Running"), el("th", {}, "Oldest wait"))),
      el("tbody", {}, q.runs.map(r => el("tr", {},
        el("td", {}, el("a", { href: "#/run/" + r.grading_run_id, class: "run-id" }, r.grading_run_id)),
        el("td", {}, r.waiting), el("td", {}, r.running),
        el("td", {}, r.oldest_wait_s !== undefined ? r.oldest_wait_s.toFixed(1) + " s" : "–")))))));
}

/* ---- plumbing ---------------------------------------------------------- */

function banner(text) {
  const b = document.getElementById("status");
  b.textContent = text || "";
  b.hidden = !text;
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = parts[0] || "runs";
  if (name !== view.name || (parts[1] || "") !== view.id) view.filter = "all";
  view.name = name;
  view.id = /^[0-9a-f]{24}$/i.test(parts[1] || "") ? parts[1] : "";
}

function showLogin(message) {
  clearTimeout(timer);
  document.getElementById("nav").hidden = true;
  document.getElementById("view").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

async function refresh() {
  clearTimeout(timer);
  if (!token()) return showLogin();
  const root = document.getElementById("view"), g = ++gen;
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  try {
    if (view.name === "run" && view.id) await showRun(root, view.id, g);
    else if (view.name === "job" && view.id) await showJob(root, view.id, g);
    else if (view.name === "workers") await showWorkers(root, g);
    else if (view.name === "queue") await showQueue(root, g);
    else await showRuns(root, g);
    if (g !== gen) return;
    banner("");
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString() + " · refreshes every 2 s";
  } catch (e) {
    if (g !== gen) return;
    if (e.status === 401) {
      sessionStorage.removeItem("broadway-token");
      return showLogin("The token was refused: " + e.message);
    }
    banner(e.status === 503 ? "The service cannot reach its database; retrying…"
         : e.status === 404 ? e.message : "Error: " + e.message + " (retrying)");
  }
  timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", async ev => {
    ev.preventDefault();
    const input = document.getElementById("token");
    sessionStorage.setItem("broadway-token", input.value.trim());
    input.value = "";
    try {
      await api("GET", "queue");
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem("broadway-token");
        return showLogin("The token was refused.");
      }
    }
    document.getElementById("login").hidden = true;
    document.getElementById("nav").hidden = false;
    refresh();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem("broadway-token");
    showLogin();
  });
  window.addEventListener("hashchange", () => { parseHash(); refresh(); });
  parseHash();
  if (token()) {
    document.getElementById("nav").hidden = false;
    refresh();
  } else {
    showLogin();
  }
});
