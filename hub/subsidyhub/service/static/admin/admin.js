// @ts-check
// SubsidyHub admin page: views over the service's API, rendered with plain DOM calls.
//
// Type-checked against the service's OpenAPI (`npm run typecheck:admin` in the extension,
// part of `make lint`): the types below are generated from it, so a field the service no
// longer sends is a lint error here, not a blank cell.
/** @typedef {import("../../../../../extensions/jupyterlab-subsidy/src/api").components["schemas"]} Schemas */
//
// Every read and every change is one call to ../api/v1/, signed in by the session cookie and
// carrying the CSRF header (see browser_auth.py). A form shows the API's own `message` when
// the API refuses; the API validates and writes each change in one audited transaction, so a
// refused form has changed nothing. Amounts stay decimal strings; sums use BigInt micro-units.

import { duration as formatDuration, money as formatMoney, toMicro } from "./format.js";
import { burnPlan } from "./plan.js";

const API = "../api/v1/";
const CSRF_COOKIE = "subsidyhub-csrf";
const main = document.getElementById("sh-main");

class ApiError extends Error {
  /** @param {string} message @param {string | undefined} reason the API's reason code, if any */
  constructor(message, reason = undefined) {
    super(message);
    this.reason = reason;
  }
}

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return found ? decodeURIComponent(found.slice(CSRF_COOKIE.length + 1)) : "";
}

async function api(method, path, body) {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "X-SubsidyHub-CSRF": csrfToken(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // The hub no longer accepts the session's token: sign in again.
    window.location.reload();
    throw new ApiError("Your session has expired; signing in again…");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(data?.message || `The service answered ${response.status}.`, data?.reason);
  }
  return data;
}

// -- DOM and formatting ------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

// How amounts are shown (GET me → currency_display), set once at start; the rounding and
// duration rules live in format.js, shared with the lab extension's through one test table.
/** @type {import("./format.js").CurrencyDisplay | null} */
let currencyShown = null;

/** An amount (decimal string or micro-units) in `currency`; "—" for none. */
function money(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  const display =
    currencyShown?.code === currency ? currencyShown : { code: currency, symbol: `${currency} `, minor_units: 2 };
  return formatMoney(amount, display);
}

function duration(seconds) {
  return seconds === null || seconds === undefined ? "—" : formatDuration(seconds);
}

// Hours (a decimal string such as "12.3456") to one decimal, as people scan them; "—" for none.
function hours(text) {
  return text === null || text === undefined ? "—" : Number(text).toFixed(1);
}

// The month's utilisation report (GPU-hours used and idle, per type and project), for the
// idle GPU figures; null when the service does not answer it, so the rest still shows.
async function utilisationReport() {
  /** @type {Schemas["Utilisation"] | null} */
  const report = await api("GET", "reports/utilisation").catch(() => null);
  return report;
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/(:\d\d)(\.\d+)?(Z|\+00:00)$/, "$1 UTC") : "—";
}

// A limit as people read it, from its declaration (GET limits): "2 GPUs", "12 hours", "a, b".
function limit(value, declared) {
  if (declared.kind === "names") return value === null ? "all" : value.join(", ") || "none";
  return value === null || value === undefined ? declared.unset ?? "no limit" : `${value} ${declared.unit}`;
}

// The declarations of every quota and limit (name, label, unit, kind, …), fetched once.
let declaredLimits = null;
async function limitDeclarations() {
  /** @type {Schemas["Limits"]} */
  const answer = declaredLimits ? { limits: declaredLimits } : await api("GET", "limits");
  declaredLimits = answer.limits;
  return declaredLimits;
}

function badge(status) {
  return h("span", { class: `sh-badge sh-${status}` }, status);
}

function stat(label, value, extra = {}) {
  return h("div", { class: "sh-stat", ...extra }, h("b", {}, value), h("span", {}, label));
}

function table(headers, rows, empty) {
  const head = h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)));
  const body = rows.length
    ? rows
    : [h("tr", {}, h("td", { colspan: headers.length, class: "sh-empty" }, empty))];
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

// A form that sends one API call; on refusal it shows the API's message and keeps the input.
function apiForm({ id, title = undefined, hint, fields, submit, send, done }) {
  const error = h("p", { class: "sh-error", role: "alert" });
  const button = h("button", { type: "submit" }, submit);
  const form = h(
    "form",
    { class: "sh-form", id, novalidate: true },
    title ? h("div", { class: "sh-form-title" }, title) : null,
    hint ? h("p", { class: "sh-hint" }, hint) : null,
    fields,
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      const values = Object.fromEntries(new FormData(form).entries());
      const answer = await send(values);
      await done(answer, values);
    } catch (problem) {
      error.textContent = problem.message;
      // A large price change: show the box that confirms it, for a second, deliberate click.
      const confirm = form.querySelector(".sh-confirm");
      if (problem.reason === "needs_confirmation" && confirm) confirm.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function input(name, label, attrs = {}) {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

function select(name, label, options, chosen) {
  return h(
    "label",
    {},
    label,
    h("select", { name }, options.map((o) => h("option", { value: o, selected: o === chosen }, o))),
  );
}

// Blank: leave unchanged (left out); "none": remove the limit (null); else the text.
function optional(values, names) {
  const body = {};
  for (const name of names) {
    const text = (values[name] ?? "").trim();
    if (text) body[name] = text.toLowerCase() === "none" ? null : text;
  }
  return body;
}

function listOrNull(text) {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  return items.length ? items : null;
}

// An audit entry's change in words: "max_gpus: none → 2", or the fields set or removed.
function change(entry) {
  const show = (value) => (value === null || value === undefined ? "none" : typeof value === "object" ? JSON.stringify(value) : String(value));
  const { before, after } = entry;
  if (before && after) {
    const keys = Object.keys(after).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
    return keys.map((k) => `${k}: ${show(before[k])} → ${show(after[k])}`).join("; ") || "no change";
  }
  const fields = Object.entries(after ?? before ?? {}).filter(([, v]) => v !== null && v !== "");
  const text = fields.map(([k, v]) => `${k}=${show(v)}`).join(", ");
  return after ? text : `removed (${text})`;
}

function used(project) {
  return toMicro(project.allocated) - toMicro(project.balance);
}

// A Stop button for one running session: asks why (the note goes to the user's list of stops
// and to the audit log), then the API charges, closes with reason "admin" and stops it.
function stopButton(s, done) {
  return h(
    "button",
    {
      class: "sh-danger",
      onclick: async (event) => {
        const note = prompt(
          `Stop ${s.user}'s server ${s.server_name || "(default)"}? Charges end now; the user is told ` +
            "why at once and the server stops after a short grace to save their work.\n" +
            "Why? The user sees this note.",
          "",
        );
        if (note === null) return;
        event.target.disabled = true;
        try {
          await api("POST", `sessions/${s.id}/stop-server`, { reason: "admin", ...(note.trim() ? { note: note.trim() } : {}) });
          await done();
        } catch (problem) {
          event.target.disabled = false;
          alert(problem.message);
        }
      },
    },
    "Stop",
  );
}

// -- views -----------------------------------------------------------------------------

async function showProjects() {
  /** @type {[Schemas["Projects"], Schemas["Utilisation"] | null]} */
  const [{ projects }, report] = await Promise.all([api("GET", "projects"), utilisationReport()]);
  const currency = projects[0]?.currency ?? "";
  // Idle GPUs this month per project (GPUs that did no work; part of what was used).
  const idle = new Map((report?.projects ?? []).map((p) => [p.project, p]));
  const sum = (key) => projects.reduce((t, p) => t + toMicro(p[key]), 0n);
  const running = projects.reduce((t, p) => t + p.running_servers, 0);
  const rows = projects.map((p) => {
    const idleHere = idle.get(p.slug);
    return h(
      "tr",
      { class: "sh-row", "data-slug": p.slug, onclick: () => (location.hash = `#/projects/${p.slug}`) },
      h("td", {}, h("a", { href: `#/projects/${p.slug}` }, p.slug)),
      h("td", {}, p.name),
      h("td", {}, p.kind),
      h("td", {}, badge(p.status)),
      h("td", { class: "sh-num" }, money(p.allocated, p.currency)),
      h("td", { class: "sh-num" }, money(used(p), p.currency)),
      h("td", { class: `sh-num ${p.warnings.length ? "sh-low" : ""}` }, money(p.balance, p.currency)),
      h("td", { class: "sh-num" }, money(p.burn_rate_per_hour, p.currency)),
      h("td", { class: "sh-num", title: p.exhaustion_at ?? "" }, duration(p.time_left_seconds)),
      h("td", { class: "sh-num" }, p.running_servers),
      h(
        "td",
        { class: "sh-num sh-idle", title: idleHere ? `${idleHere.idle_percent ?? "0.00"}% of its GPU-hours this month` : undefined },
        idleHere ? hours(idleHere.idle_gpu_hours) : "—",
      ),
      h("td", { class: "sh-num sh-idle" }, idleHere ? money(idleHere.idle_subsidy, p.currency) : "—"),
    );
  });
  main.replaceChildren(
    h("h1", {}, "Projects"),
    h(
      "div",
      { class: "sh-stats" },
      stat("Projects", projects.length),
      stat("Allocated", money(sum("allocated"), currency)),
      stat("Left", money(sum("balance"), currency)),
      stat("Burn per hour", money(sum("burn_rate_per_hour"), currency)),
      stat("Running servers", running),
      report
        ? stat("Idle GPU-hours this month", `${hours(report.totals.idle_gpu_hours)} (${report.totals.idle_percent ?? "0.00"}%)`, {
            id: "sh-idle-hours",
            title: "GPU-hours while every GPU of a server did no work, and their share of the GPU-hours used",
          })
        : null,
      report
        ? stat("Subsidy on idle GPUs this month", money(report.totals.idle_subsidy, report.currency), {
            id: "sh-idle-subsidy",
            title: "Part of the subsidy used this month, not in addition to it",
          })
        : null,
    ),
    h(
      "section",
      { class: "sh-card" },
      table(
        [
          ["Slug"], ["Name"], ["Kind"], ["Status"], ["Allocation", "sh-num"], ["Used", "sh-num"],
          ["Left", "sh-num"], ["Burn / h", "sh-num"], ["Time left", "sh-num"],
          ["Servers", "sh-num"], ["Idle GPU-h (month)", "sh-num"], ["Idle subsidy (month)", "sh-num"],
        ],
        rows,
        "No projects yet: create one under New project.",
      ),
    ),
  );
}

/**
 * An allocation's note, its application (approval writes "application N (kind)") as a link:
 * a grant leads back to what was applied for and decided.
 * @param {string} note
 */
function noteWithApplication(note) {
  const made = note.match(/^application (\d+)\b(.*)$/);
  if (!made) return note;
  return h("span", {}, h("a", { href: `#/applications/${made[1]}`, class: "sh-application-link" }, `application ${made[1]}`), made[2]);
}

async function showProject(slug) {
  const path = `projects/${encodeURIComponent(slug)}`;
  /** @type {[Schemas["LimitDeclaration"][], Schemas["ProjectSummary"], Schemas["Members"], Schemas["Allocations"], Schemas["Sessions"], Schemas["AuditEntries"], Schemas["Statement"] | null, Schemas["BurnPositions"] | null]} */
  const [declared, project, { members }, { allocations }, { sessions }, { entries }, month, burn] = await Promise.all([
    limitDeclarations(),
    api("GET", path),
    api("GET", `${path}/members`),
    api("GET", `${path}/allocations`),
    api("GET", `sessions?project=${encodeURIComponent(slug)}`),
    api("GET", `audit?target=${encodeURIComponent(`project:${slug}`)}&limit=50`),
    // This month's statement, for its idle GPU figures (part of its charges).
    api("GET", `${path}/statement`).catch(() => null),
    // Its grants against their plan (issue 18).
    api("GET", `${path}/burn-plan`).catch(() => null),
  ]);
  const c = project.currency;
  const reload = () => showProject(slug);
  /** @type {Schemas["MembersUse"] | null} */
  const roster = project.kind === "course" ? await api("GET", `${path}/member-use`) : null;
  const measured = declared.filter((d) => d.member_level && d.measure);
  const q = project.quota;
  const memberLevel = declared.filter((d) => d.member_level);

  const serverRows = sessions.map((s) =>
    h(
      "tr",
      { "data-session": s.id },
      h("td", {}, s.user),
      h("td", {}, s.server_name || "default"),
      h("td", {}, s.profile),
      h("td", {}, when(s.started)),
      h("td", { class: "sh-num" }, money(s.subsidy_rate_per_hour, c)),
      h("td", { class: "sh-num" }, money(s.cost.subsidy, c)),
      h("td", {}, stopButton(s, reload)),
    ),
  );

  const memberRows = members.map((m) =>
    h(
      "tr",
      { "data-member": m.username },
      h("td", {}, m.username),
      h("td", {}, m.role),
      memberLevel.map((d) => h("td", { class: "sh-num" }, limit(m.quota[d.name], d))),
      h(
        "td",
        {},
        h(
          "button",
          {
            class: "sh-secondary",
            onclick: async (event) => {
              event.target.disabled = true;
              try {
                await api("DELETE", `${path}/members/${encodeURIComponent(m.username)}`);
                await reload();
              } catch (problem) {
                event.target.disabled = false;
                alert(problem.message);
              }
            },
          },
          "Remove",
        ),
      ),
    ),
  );

  const allocationRows = allocations.map((a) =>
    h(
      "tr",
      {},
      h("td", { class: "sh-num" }, money(a.amount, c)),
      h("td", {}, when(a.valid_from)),
      h("td", {}, a.valid_until ? when(a.valid_until) : "open"),
      h("td", {}, noteWithApplication(a.note)),
      h("td", {}, a.created_by),
    ),
  );

  const auditRows = entries.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, when(e.at)),
      h("td", {}, e.actor),
      h("td", {}, h("code", {}, e.action)),
      h("td", {}, e.target.replace(`project:${slug}`, "") || "project"),
      h("td", { class: "sh-change" }, change(e)),
    ),
  );

  main.replaceChildren(
    h("div", { class: "sh-crumbs" }, h("a", { href: "#/" }, "Projects"), " / ", slug),
    h("h1", {}, `${project.name} `, badge(project.status), " ", h("span", { class: "sh-badge" }, project.kind)),
    h(
      "div",
      { class: "sh-stats", id: "sh-project-stats" },
      stat("Allocation", money(project.allocated, c)),
      stat("Used", money(used(project), c)),
      stat("Left", money(project.balance, c), { id: "sh-left" }),
      // Charged beyond every allocation before servers could be stopped; paid by the next one.
      project.overdraft && project.overdraft !== "0.00"
        ? stat("Overdraft", money(project.overdraft, c), { id: "sh-overdraft", class: "sh-stat sh-critical" })
        : null,
      stat("Burn per hour", money(project.burn_rate_per_hour, c)),
      stat("Time left", duration(project.time_left_seconds)),
      stat("Subsidy rate", `${Math.round(Number(project.subsidy_rate) * 100)}%`),
      month
        ? stat("Idle GPU-hours this month", hours(month.totals.idle_gpu_hours), {
            id: "sh-project-idle-hours",
            title: `GPU-hours while every GPU of a server did no work, of ${hours(month.totals.gpu_hours)} GPU-hours charged in ${month.month}`,
          })
        : null,
      month
        ? stat("Subsidy on idle GPUs this month", money(month.totals.idle_subsidy, c), {
            id: "sh-project-idle-subsidy",
            title: `Part of the ${money(month.totals.subsidy, c)} subsidy charged in ${month.month}, not in addition to it`,
          })
        : null,
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-project-settings" },
      apiForm({
      id: "sh-project-settings-form",
      title: "Name, status and subsidy rate",
      hint: "A suspended or closed project admits no new servers; a new subsidy rate applies to servers started after the change.",
      fields: [
        input("name", "Name", { value: project.name, class: "sh-wide", required: true }),
        select("status", "Status", ["active", "suspended", "closed"], project.status),
        input("subsidy_rate", "Subsidy rate (0 to 0.90)", { value: project.subsidy_rate, size: 6 }),
      ],
      submit: "Save project",
      send: (v) => {
        const changed = {};
        if (v.name.trim() !== project.name) changed.name = v.name.trim();
        if (v.status !== project.status) changed.status = v.status;
        if (v.subsidy_rate.trim() !== project.subsidy_rate) changed.subsidy_rate = v.subsidy_rate.trim();
        return api("PATCH", path, changed);
      },
      done: reload,
      }),
    ),
    ...(roster
      ? [h(
          "section",
          { class: "sh-card", id: "sh-roster" },
          h("h2", {}, `Roster (${roster.members.length}): allowance and use in the last 7 days`),
          table(
            [["User"], ["Name"], ["Role"], ["Servers", "sh-num"], ...measured.map((d) => [d.label, "sh-num"])],
            roster.members.map((m) =>
              h(
                "tr",
                { "data-member": m.username },
                h("td", {}, m.username),
                h("td", {}, m.name ?? ""),
                h("td", {}, m.role === "manager" ? "lecturer" : "student"),
                h("td", { class: "sh-num" }, m.running_servers),
                measured.map((d) => h("td", { class: "sh-num" }, `${m.usage[d.name] ?? 0} of ${limit(m.quota_in_force[d.name], d)}`)),
              ),
            ),
            "No one enrolled yet.",
          ),
        )]
      : []),
    h(
      "section",
      { class: "sh-card", id: "sh-servers" },
      h("h2", {}, `Running servers (${sessions.length})`),
      table(
        [["User"], ["Server"], ["Profile"], ["Started"], ["Subsidy / h", "sh-num"], ["Cost so far", "sh-num"], [""]],
        serverRows,
        "No servers running in this project.",
      ),
    ),
    h(
      "div",
      { class: "sh-grid" },
      h(
        "section",
        { class: "sh-card", id: "sh-members" },
        h("h2", {}, `Members (${members.length})`),
        table(
          [["User"], ["Role"], ...memberLevel.map((d) => [d.label, "sh-num"]), [""]],
          memberRows,
          "No members yet.",
        ),
        apiForm({
          id: "sh-member-form",
          title: "Add a member, or change one",
          hint: "The member's own limits: leave blank to keep them, “none” for the project's.",
          fields: [
            input("username", "User name", { required: true }),
            select("role", "Role", ["member", "manager"], "member"),
            memberLevel.map((d) => input(d.name, d.label, { size: 6, title: d.help })),
          ],
          submit: "Save member",
          send: (v) => {
            const quota = optional(v, memberLevel.map((d) => d.name));
            return api("PUT", `${path}/members/${encodeURIComponent(v.username.trim())}`, {
              role: v.role,
              ...(Object.keys(quota).length ? { quota } : {}),
            });
          },
          done: reload,
        }),
      ),
      h(
        "section",
        { class: "sh-card", id: "sh-quota" },
        h("h2", {}, "Quotas"),
        table(
          declared.map((d) => [d.label, d.kind === "names" ? undefined : "sh-num"]),
          [
            h(
              "tr",
              {},
              declared.map((d) =>
                h("td", { class: d.kind === "names" ? undefined : "sh-num" }, limit(q[d.name], d)),
              ),
            ),
          ],
          "",
        ),
        apiForm({
          id: "sh-quota-form",
          title: "Change quotas",
          hint: "Blank means no limit (all profiles, all GPU types). Lists are comma-separated.",
          fields: declared.map((d) =>
            d.kind === "names"
              ? input(d.name, d.label, { class: "sh-wide", title: d.help, value: /** @type {string[]} */ (q[d.name] ?? []).join(", ") })
              : input(d.name, d.label, { size: 6, title: d.help, value: q[d.name] ?? "" }),
          ),
          submit: "Save quotas",
          send: (v) =>
            api(
              "PUT",
              `${path}/quota`,
              Object.fromEntries(
                declared.map((d) => [d.name, d.kind === "names" ? listOrNull(v[d.name]) : v[d.name].trim() || null]),
              ),
            ),
          done: reload,
        }),
      ),
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-allocations" },
      h("h2", {}, `Allocations (${allocations.length})`),
      table(
        [["Amount", "sh-num"], ["Valid from"], ["Valid until"], ["Note"], ["By"]],
        allocationRows,
        "No allocations yet.",
      ),
      apiForm({
        id: "sh-allocation-form",
        title: "Add an allocation",
        hint: `Amount in ${c}; a negative amount records a correction and needs a note saying why.`,
        fields: [
          input("amount", `Amount (${c})`, { required: true, placeholder: "5000.00", size: 10 }),
          input("valid_from", "Valid from", { type: "date" }),
          input("valid_until", "Valid until", { type: "date" }),
          input("note", "Note", { class: "sh-wide", placeholder: "grant, top-up, correction…" }),
        ],
        submit: "Add allocation",
        send: (v) => {
          const amount = v.amount.trim();
          return api("POST", `${path}/allocations`, {
            amount,
            note: v.note.trim(),
            correction: amount.startsWith("-"),
            ...(v.valid_from ? { valid_from: v.valid_from } : {}),
            ...(v.valid_until ? { valid_until: v.valid_until } : {}),
          });
        },
        done: reload,
      }),
    ),
    planCard(
      path,
      burn?.positions[0] ?? null,
      allocations.filter((a) => a.valid_until && toMicro(a.amount) > 0n),
      c,
      reload,
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-audit" },
      h("h2", {}, "Audit trail (latest 50)"),
      table([["When"], ["Who"], ["Action"], ["Target"], ["Change"]], auditRows, "No entries."),
    ),
  );
}

async function showServers() {
  /** @type {Schemas["Sessions"]} */
  const { sessions } = await api("GET", "sessions");
  const rows = sessions.map((s) =>
    h(
      "tr",
      { "data-session": s.id },
      h("td", {}, s.user),
      h("td", {}, s.server_name || "default"),
      h("td", {}, h("a", { href: `#/projects/${s.project}` }, s.project)),
      h("td", {}, s.profile),
      h("td", { class: "sh-num" }, s.gpu_count),
      h("td", {}, when(s.started)),
      h("td", { class: "sh-num" }, money(s.cost.subsidy, currencyShown?.code ?? "")),
      h("td", {}, stopButton(s, showServers)),
    ),
  );
  main.replaceChildren(
    h("h1", {}, `Running servers (${sessions.length})`),
    h(
      "section",
      { class: "sh-card", id: "sh-all-servers" },
      table(
        [["User"], ["Server"], ["Project"], ["Profile"], ["GPUs", "sh-num"], ["Started"], ["Cost so far", "sh-num"], [""]],
        rows,
        "No servers running.",
      ),
    ),
  );
}

// -- GPUs: capacity now, the next 7 days, the queue, reservations ------------------------

// "in ~20 m" for a future instant, "now" for a past one, "unknown" for none.
function until(iso) {
  if (!iso) return "unknown";
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return seconds < 60 ? "now" : `in ~${duration(seconds)}`;
}

// Seven rows (days) of 24 hours; each cell the GPUs free for anyone then, shaded when
// reserved or full, with the figures in its title.
function calendarTable(calendar) {
  const days = [];
  for (let day = 0; day < 7; day++) days.push(calendar.slots.slice(day * 24, day * 24 + 24));
  const hours = days[0].map((slot) => slot.at.slice(11, 13));
  return h(
    "table",
    { class: "sh-calendar", "data-gpu-type": calendar.gpu_type },
    h("thead", {}, h("tr", {}, h("th", {}, "UTC"), hours.map((hour) => h("th", {}, hour)))),
    h(
      "tbody",
      {},
      days.map((slots) =>
        h(
          "tr",
          {},
          h("th", {}, slots[0]?.at.slice(5, 10) ?? ""),
          slots.map((slot) =>
            h(
              "td",
              {
                class: slot.free === 0 ? "sh-full" : slot.reserved ? "sh-reserved" : "",
                title: `${when(slot.at)}: ${slot.reserved} reserved, ${slot.running} running, ${slot.free} free`,
              },
              slot.free,
            ),
          ),
        ),
      ),
    ),
  );
}

async function showGpus() {
  /** @type {[Schemas["Capacity"], Schemas["CapacityCalendars"], Schemas["Queue"], Schemas["Reservations"], Schemas["Utilisation"] | null]} */
  const [{ gpu_types }, { calendars }, { places }, { reservations }, report] = await Promise.all([
    api("GET", "capacity"),
    api("GET", "capacity/calendar"),
    api("GET", "queue"),
    api("GET", "reservations"),
    utilisationReport(),
  ]);
  const month = new Map((report?.rows ?? []).map((r) => [r.gpu_type, r]));
  const types = gpu_types.map((t) => {
    const thisMonth = month.get(t.gpu_type);
    return h(
      "section",
      { class: "sh-card", "data-gpu-type": t.gpu_type },
      h("h2", {}, t.label),
      h(
        "div",
        { class: "sh-stats" },
        stat("GPUs", t.gpus ?? `unknown (${t.source})`),
        stat("in use", t.in_use),
        stat("idle now", t.gpus_idle, {
          class: `sh-stat ${t.gpus_idle ? "sh-idle-now" : ""}`,
          title: "Of those in use, GPUs of servers whose GPUs do no work now",
        }),
        stat("reserved now", t.reserved_now),
        stat("free now", t.free_now ?? "—"),
        stat("waiting", t.waiting),
        stat("next free", until(t.next_free)),
        thisMonth
          ? stat("idle GPU-h this month", `${hours(thisMonth.idle_gpu_hours)} (${thisMonth.idle_percent ?? "0.00"}%)`, {
              title: "GPU-hours while every GPU of a server did no work, and their share of the GPU-hours used",
            })
          : null,
        thisMonth
          ? stat("subsidy on idle GPUs this month", money(thisMonth.idle_subsidy, report?.currency ?? ""), {
              title: "Part of the subsidy used this month, not in addition to it",
            })
          : null,
      ),
      calendars.filter((c) => c.gpu_type === t.gpu_type).map(calendarTable),
    );
  });
  const queueRows = places.map((p) =>
    h(
      "tr",
      { "data-place": p.id },
      h("td", {}, p.position ? String(p.position) : "offer"),
      h("td", {}, p.user + (p.server_name ? `/${p.server_name}` : "")),
      h("td", {}, h("a", { href: `#/projects/${p.project}` }, p.project)),
      h("td", {}, `${p.gpus} × ${p.gpu_type.toUpperCase()}`),
      h("td", {}, when(p.joined)),
      h("td", {}, p.state === "offered" ? `held until ${when(p.offer_expires)}` : until(p.estimated_start)),
      h(
        "td",
        {},
        h(
          "button",
          {
            class: "sh-danger",
            onclick: async () => {
              if (!confirm(`Take ${p.user}'s place out of the queue?`)) return;
              await api("POST", "queue/leave", { user: p.user, server_name: p.server_name });
              await showGpus();
            },
          },
          "Remove",
        ),
      ),
    ),
  );
  const reservationRows = reservations.map((r) =>
    h(
      "tr",
      { "data-reservation": r.id },
      h("td", {}, h("a", { href: `#/projects/${r.project}` }, r.project)),
      h("td", {}, `${r.gpus} × ${r.gpu_type.toUpperCase()}`),
      h("td", {}, `${when(r.starts)} – ${when(r.ends)}`),
      h("td", { class: "sh-num" }, r.weeks),
      h("td", {}, r.note),
      h(
        "td",
        {},
        h(
          "button",
          {
            class: "sh-danger",
            onclick: async () => {
              if (!confirm(`Cancel the reservation of ${r.project}? Its GPUs admit anyone again.`)) return;
              await api("POST", `reservations/${r.id}/cancel`);
              await showGpus();
            },
          },
          "Cancel",
        ),
      ),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "GPUs"),
    ...types,
    h(
      "section",
      { class: "sh-card", id: "sh-queue" },
      h("h2", {}, `Queue (${places.length})`),
      table(
        [["#"], ["Server"], ["Project"], ["GPUs"], ["Waiting since"], ["Expected start"], [""]],
        queueRows,
        "Nobody is waiting.",
      ),
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-reservations" },
      h("h2", {}, `Reservations (${reservations.length})`),
      table(
        [["Project"], ["GPUs"], ["First window"], ["Weeks", "sh-num"], ["Note"], [""]],
        reservationRows,
        "No reservations.",
      ),
      apiForm({
        id: "sh-reservation-form",
        title: "Reserve GPUs",
        hint: "Keeps GPUs of a type for a project or course over a window, once or weekly; during it they admit only its members. Times in UTC (2027-02-02T14:00:00Z) or with an offset.",
        fields: [
          input("project", "Project", { required: true, placeholder: "comp3340" }),
          select("gpu_type", "GPU type", gpu_types.map((t) => t.gpu_type), gpu_types[0]?.gpu_type),
          input("gpus", "GPUs", { required: true, size: 4, placeholder: "8" }),
          input("starts", "Starts", { required: true, placeholder: "2027-02-02T14:00:00Z" }),
          input("ends", "Ends", { required: true, placeholder: "2027-02-02T16:00:00Z" }),
          input("weeks", "Weeks", { size: 4, value: "1" }),
          input("note", "Note (optional)", { class: "sh-wide" }),
        ],
        submit: "Reserve",
        send: (v) =>
          api("POST", "reservations", {
            project: v.project.trim(),
            gpu_type: v.gpu_type,
            gpus: Number.parseInt(v.gpus, 10),
            starts: v.starts.trim(),
            ends: v.ends.trim(),
            weeks: Number.parseInt(v.weeks || "1", 10),
            note: v.note.trim(),
          }),
        done: showGpus,
      }),
    ),
  );
}

function showNewProject() {
  main.replaceChildren(
    h("div", { class: "sh-crumbs" }, h("a", { href: "#/" }, "Projects"), " / new"),
    h("h1", {}, "New project"),
    h(
      "section",
      { class: "sh-card" },
      apiForm({
        id: "sh-project-form",
        hint: "The slug names the project everywhere (spawn form, CLI, statements): lower-case letters, digits and dashes.",
        fields: [
          input("slug", "Slug", { required: true, placeholder: "climate-ml" }),
          input("name", "Name", { required: true, class: "sh-wide", placeholder: "Climate ML group" }),
          select("kind", "Kind", ["research", "course"], "research"),
          input("organisation", "Organisation (optional)", { placeholder: "physics" }),
          input("subsidy_rate", "Subsidy rate (optional)", { placeholder: "0.70", size: 6 }),
        ],
        submit: "Create project",
        send: (v) =>
          api("POST", "projects", {
            slug: v.slug.trim(),
            name: v.name.trim(),
            kind: v.kind,
            ...(v.organisation.trim() ? { organisation: v.organisation.trim() } : {}),
            ...(v.subsidy_rate.trim() ? { subsidy_rate: v.subsidy_rate.trim() } : {}),
          }),
        done: (created) => {
          location.hash = `#/projects/${created.slug}`;
        },
      }),
    ),
  );
  main.querySelector("form").classList.add("sh-standalone");
}

async function showPrices() {
  /** @type {Schemas["Prices"]} */
  const { currency, current, versions } = await api("GET", "prices");
  const gpuTypes = Object.keys(current.gpu);
  const rows = [...versions].reverse().map((v) =>
    h(
      "tr",
      { class: v.version === current.version ? "sh-current-version" : "" },
      h("td", {}, v.version, v.version === current.version ? " (in force)" : ""),
      h("td", {}, when(v.effective_from)),
      h("td", { class: "sh-num" }, money(v.cpu_core, currency)),
      h("td", { class: "sh-num" }, money(v.memory_gib, currency)),
      gpuTypes.map((t) => h("td", { class: "sh-num" }, v.gpu[t] ? money(v.gpu[t], currency) : "—")),
      h("td", {}, v.note || v.source),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Prices"),
    h(
      "div",
      { class: "sh-stats" },
      stat("Version in force", current.version),
      stat("CPU core-hour", money(current.cpu_core, currency)),
      stat("GiB-hour", money(current.memory_gib, currency)),
      gpuTypes.map((t) => stat(`${t} GPU-hour`, money(current.gpu[t], currency))),
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-price-versions" },
      h("h2", {}, "Versions"),
      table(
        [
          ["Version"], ["Effective from"], ["CPU core-h", "sh-num"], ["GiB-h", "sh-num"],
          ...gpuTypes.map((t) => [`${t} GPU-h`, "sh-num"]), ["Note"],
        ],
        rows,
        "No prices.",
      ),
      apiForm({
        id: "sh-price-form",
        title: "Add a price version",
        hint: "Blank prices keep the current ones. Running servers keep the prices they started with.",
        fields: [
          input("cpu_core", `CPU core-h (${currency})`, { size: 8, placeholder: current.cpu_core }),
          input("memory_gib", `GiB-h (${currency})`, { size: 8, placeholder: current.memory_gib }),
          gpuTypes.map((t) => input(`gpu:${t}`, `${t} GPU-h (${currency})`, { size: 8, placeholder: current.gpu[t] })),
          input("effective_from", "Effective from", { type: "date" }),
          input("note", "Note", { class: "sh-wide" }),
          h(
            "label",
            { class: "sh-confirm", hidden: true },
            h("input", { type: "checkbox", name: "confirm" }),
            " Apply these prices although they change this much",
          ),
        ],
        submit: "Add price version",
        send: (v) => {
          const gpu = {};
          for (const t of gpuTypes) if (v[`gpu:${t}`].trim()) gpu[t] = v[`gpu:${t}`].trim();
          return api("POST", "prices", {
            ...optional(v, ["cpu_core", "memory_gib"]),
            ...(Object.keys(gpu).length ? { gpu } : {}),
            ...(v.effective_from ? { effective_from: v.effective_from } : {}),
            note: v.note.trim(),
            confirm: v.confirm === "on",
          });
        },
        done: showPrices,
      }),
    ),
  );
}

// -- applications, the scheme, and grants against their plan (issue 18) ------------------

const STATES = ["submitted", "draft", "approved", "rejected", "withdrawn"];
const KIND_WORDS = { new: "New project", top_up: "Top-up", extension: "Extension" };
const EVENT_WORDS = {
  created: "started it",
  edited: "edited it",
  submitted: "submitted it",
  commented: "commented",
  approved: "approved it",
  rejected: "rejected it",
  withdrawn: "withdrew it",
};

function day(iso) {
  return iso ? iso.slice(0, 10) : "—";
}

// A subsidy rate ("0.75") as people read it: "75%".
function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${Number((Number(rate) * 100).toFixed(2))}%`;
}

function planBadge(status) {
  return h("span", { class: `sh-badge sh-${status}` }, status.replace("_", " "));
}

function figures(pairs, attrs = {}) {
  return h(
    "dl",
    { class: "sh-figures", ...attrs },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

// "2027-01 1000.00" per line (a colon or "=" may separate them) → { "2027-01": "1000.00" }.
function monthsFrom(text) {
  /** @type {Record<string, string>} */
  const months = {};
  for (const [index, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const parts = line.trim().split(/\s*[\s:=]\s*/);
    if (parts.length !== 2) {
      throw new ApiError(`Line ${index + 1}, “${line.trim()}”, is not a month and an amount; write it as “2027-01 1000.00”.`);
    }
    if (parts[0] in months) throw new ApiError(`Month ${parts[0]} is given twice; give each month once.`);
    months[parts[0]] = parts[1];
  }
  return months;
}

// A project's grants against their plan, and a form to set one grant's plan per month.
function planCard(path, position, grants, c, reload) {
  return h(
    "section",
    { class: "sh-card", id: "sh-plan" },
    h("h2", {}, "Plan vs actual"),
    position
      ? burnPlan(position, (amount) => money(amount, c))
      : h("p", { class: "sh-muted" }, "No grant with a period yet: plans are kept for allocations with an end date."),
    grants.length
      ? apiForm({
          id: "sh-plan-form",
          title: "Set a grant's plan per month",
          hint: "One month per line, such as “2027-01 1000.00” (UTC months within the grant's period, adding up to its amount). Empty: spread evenly over the period.",
          fields: [
            h(
              "label",
              {},
              "Grant",
              h(
                "select",
                { name: "allocation" },
                grants.map((a) => h("option", { value: String(a.id) }, `${money(a.amount, c)}, ${day(a.valid_from)} to ${day(a.valid_until)}`)),
              ),
            ),
            h(
              "label",
              { class: "sh-full" },
              "Months",
              h("textarea", {
                name: "months",
                rows: 4,
                placeholder: (position?.months ?? []).slice(0, 3).map((m) => `${m.month} ${m.planned}`).join("\n"),
              }),
            ),
          ],
          submit: "Save plan",
          send: (v) => api("PUT", `${path}/allocations/${v.allocation}/plan`, { months: monthsFrom(v.months) }),
          done: reload,
        })
      : null,
  );
}

async function showApplications(state) {
  /** @type {Schemas["Applications"]} */
  const { applications } = await api("GET", "applications");
  const c = currencyShown?.code ?? "";
  const listed = applications.filter((a) => a.state === state);
  // The queue oldest first (first come, first decided); the others newest first.
  if (state !== "submitted") listed.reverse();
  const rows = listed.map((a) =>
    h(
      "tr",
      { class: "sh-row", "data-application": a.id, onclick: () => (location.hash = `#/applications/${a.id}`) },
      h("td", { class: "sh-num" }, h("a", { href: `#/applications/${a.id}` }, String(a.id))),
      h("td", {}, a.title),
      h("td", {}, KIND_WORDS[a.kind] ?? a.kind, a.kind === "new" ? "" : ` of ${a.project ?? a.slug}`),
      h("td", {}, a.applicant),
      h("td", {}, a.organisation),
      h("td", { class: "sh-num" }, money(a.amount, c)),
      h("td", {}, `${day(a.starts)} to ${day(a.ends)}`),
      h("td", {}, when(a.submitted ?? a.updated)),
      h(
        "td",
        {},
        a.state === "approved" ? `${percent(a.subsidy_rate)} of ${money(a.approved_amount, c)}` : a.state === "rejected" ? a.reason : "—",
      ),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Applications"),
    h(
      "nav",
      { class: "sh-tabs", "aria-label": "Applications by state" },
      STATES.map((s) =>
        h(
          "a",
          { href: `#/applications?state=${s}`, "data-state": s, class: s === state ? "sh-current" : undefined, "aria-current": s === state ? "page" : undefined },
          `${s} (${applications.filter((a) => a.state === s).length})`,
        ),
      ),
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-applications" },
      table(
        [["#", "sh-num"], ["Title"], ["Kind"], ["Applicant"], ["Organisation"], ["Requested", "sh-num"], ["Period"], [state === "draft" ? "Last edited" : "Submitted"], ["Decision"]],
        rows,
        `No ${state} applications.`,
      ),
    ),
  );
}

async function showApplication(id) {
  /** @type {[Schemas["LimitDeclaration"][], Schemas["Application"]]} */
  const [declared, a] = await Promise.all([limitDeclarations(), api("GET", `applications/${id}`)]);
  /** @type {Schemas["ProjectSummary"] | null} */
  const project = a.project ? await api("GET", `projects/${encodeURIComponent(a.project)}`).catch(() => null) : null;
  const c = currencyShown?.code ?? "";
  const reload = () => showApplication(id);
  const hours = Object.entries(a.gpu_hours).filter(([, n]) => n > 0);
  const path = `applications/${a.id}`;

  const history = h(
    "ol",
    { class: "sh-history" },
    (a.events ?? []).map((e) =>
      h(
        "li",
        { "data-event": e.kind },
        h("span", { class: "sh-muted" }, when(e.at)),
        " ",
        h("strong", {}, e.actor),
        ` ${EVENT_WORDS[e.kind] ?? e.kind}`,
        e.body ? h("p", { class: "sh-said" }, e.body) : null,
      ),
    ),
  );

  const decide =
    a.state === "submitted"
      ? h(
          "div",
          { class: "sh-grid" },
          h(
            "section",
            { class: "sh-card", id: "sh-approve" },
            h("h2", {}, "Approve"),
            apiForm({
              id: "sh-approve-form",
              hint:
                a.kind === "new"
                  ? "In one step: creates the project with the applicant as its manager and the team as members, sets its subsidy rate and quotas, and adds the grant over the period, planned as the applicant's quarters if the amount is kept (otherwise evenly)."
                  : `In one step: sets ${a.project}'s subsidy rate and the quotas given, and adds the grant over the period.`,
              fields: [
                input("subsidy_rate", "Subsidy rate (share of the list price)", { value: project?.subsidy_rate ?? "0.70", size: 6 }),
                input("amount", `Amount (${c})`, { value: a.amount, size: 12 }),
                input("valid_from", "Valid from", { type: "date", value: day(a.starts) }),
                input("valid_until", "Valid until", { type: "date", value: day(a.ends) }),
                a.kind === "new" ? input("slug", "Project slug", { value: a.slug }) : null,
                h("div", { class: "sh-part" }, project ? "Quotas (blank: keep the project's)" : "Quotas (blank: no limit)"),
                declared.map((d) =>
                  input(`quota:${d.name}`, d.label, {
                    title: d.help,
                    ...(d.kind === "names" ? { class: "sh-wide", placeholder: "all" } : { size: 6 }),
                    ...(project ? { placeholder: limit(project.quota[d.name], d) } : {}),
                  }),
                ),
                input("note", "Note to the applicant (optional)", { class: "sh-wide" }),
              ],
              submit: "Approve",
              send: (v) => {
                const quota = {};
                for (const d of declared) {
                  const text = (v[`quota:${d.name}`] ?? "").trim();
                  if (text) quota[d.name] = d.kind === "names" ? listOrNull(text) : text;
                }
                // Left as applied for: not sent, so the application's own figures apply.
                const changed = (name, applied) => (v[name].trim() !== applied ? { [name]: v[name].trim() } : {});
                return api("POST", `${path}/approve`, {
                  subsidy_rate: v.subsidy_rate.trim(),
                  ...changed("amount", a.amount),
                  ...changed("valid_from", day(a.starts)),
                  ...changed("valid_until", day(a.ends)),
                  ...(a.kind === "new" ? changed("slug", a.slug) : {}),
                  ...(Object.keys(quota).length ? { quota } : {}),
                  note: v.note.trim(),
                });
              },
              done: reload,
            }),
          ),
          h(
            "section",
            { class: "sh-card", id: "sh-reject" },
            h("h2", {}, "Reject"),
            apiForm({
              id: "sh-reject-form",
              hint: "The applicant reads the reason on their usage page, and by email where the centre sends email.",
              fields: [h("label", { class: "sh-full" }, "Reason", h("textarea", { name: "reason", rows: 3 }))],
              submit: "Reject",
              send: (v) => {
                if (!v.reason.trim()) throw new ApiError("Give a reason: the applicant reads it.");
                return api("POST", `${path}/reject`, { reason: v.reason.trim() });
              },
              done: reload,
            }),
          ),
        )
      : null;

  const parts = [
    h("div", { class: "sh-crumbs" }, h("a", { href: "#/applications" }, "Applications"), ` / ${a.id}`),
    h("h1", {}, `${a.title} `, badge(a.state), " ", h("span", { class: "sh-badge" }, KIND_WORDS[a.kind] ?? a.kind)),
    h(
      "div",
      { class: "sh-stats", id: "sh-application-stats" },
      stat("Requested", money(a.amount, c)),
      stat("Period", `${day(a.starts)} to ${day(a.ends)}`),
      stat("GPU-hours", hours.length ? hours.map(([type, n]) => `${n} ${type.toUpperCase()}`).join(", ") : "none given"),
      stat("Team", a.team.length ? String(a.team.length) : "applicant only"),
      a.state === "approved" ? stat("Subsidy rate", percent(a.subsidy_rate), { id: "sh-decided-rate" }) : null,
      a.state === "approved" ? stat("Granted", money(a.approved_amount, c), { id: "sh-decided-amount" }) : null,
    ),
    a.state === "approved" && a.project
      ? h(
          "p",
          { class: "sh-done", id: "sh-decision" },
          `Approved on ${day(a.decided)} by ${a.decided_by}: project `,
          h("a", { href: `#/projects/${a.project}` }, a.project),
          a.reason ? `. Note: ${a.reason}` : ".",
        )
      : a.state === "rejected"
        ? h("p", { class: "sh-error", id: "sh-decision" }, `Rejected on ${day(a.decided)} by ${a.decided_by}: ${a.reason}`)
        : null,
    decide,
    h(
      "div",
      { class: "sh-grid" },
      h(
        "section",
        { class: "sh-card", id: "sh-application" },
        h("h2", {}, "Application"),
        figures([
          ["Applicant", a.applicant],
          ["Email", a.email],
          ["Organisation", a.organisation || null],
          ["For", a.kind === "new" ? `a new project, proposed slug ${a.slug}` : `${KIND_WORDS[a.kind] ?? a.kind} of ${a.project ?? a.slug}`],
          ["Team", a.team.length ? a.team.join(", ") : "the applicant only"],
          ["Started", when(a.created)],
          ["Submitted", a.submitted ? when(a.submitted) : "not yet"],
        ]),
        h("h3", {}, "Abstract"),
        h("p", { class: "sh-text" }, a.abstract || "None given."),
        h("h3", {}, "Plan per quarter"),
        a.plan.length
          ? table(
              [["Quarter"], ["Amount", "sh-num"]],
              a.plan.map((amount, i) => h("tr", {}, h("td", {}, `Q${i + 1} from the start`), h("td", { class: "sh-num" }, money(amount, c)))),
              "",
            )
          : h("p", { class: "sh-muted" }, "None given: even over the period."),
      ),
      h(
        "section",
        { class: "sh-card", id: "sh-history" },
        h("h2", {}, "History"),
        history,
        apiForm({
          id: "sh-comment-form",
          title: "Comment",
          hint: "The applicant reads every comment on their usage page.",
          fields: [h("label", { class: "sh-full" }, "Comment", h("textarea", { name: "body", rows: 3 }))],
          submit: "Add comment",
          send: (v) => api("POST", `${path}/comments`, { body: v.body }),
          done: reload,
        }),
      ),
    ),
  ];
  // The decision and its forms are there only in some states: no "null" between the parts.
  main.replaceChildren(...parts.filter((part) => part !== null));
  for (const form of main.querySelectorAll("#sh-approve-form, #sh-reject-form")) form.classList.add("sh-standalone");
  main.querySelector("#sh-reject-form button[type=submit]")?.classList.add("sh-danger");
}

async function showScheme() {
  /** @type {Schemas["SchemeView"]} */
  const scheme = await api("GET", "reports/scheme");
  const c = currencyShown?.code ?? "";
  const rows = scheme.ranking.map((p) =>
    h(
      "tr",
      { class: "sh-row", "data-slug": p.project, onclick: () => (location.hash = `#/projects/${p.project}`) },
      h("td", {}, h("a", { href: `#/projects/${p.project}` }, p.project)),
      h("td", {}, p.name),
      h("td", { class: "sh-num" }, money(p.granted, c)),
      h("td", { class: "sh-num" }, money(p.planned_to_date, c)),
      h("td", { class: "sh-num" }, money(p.spent_to_date, c)),
      h("td", { class: "sh-num" }, p.deviation_percent === null ? "—" : `${p.deviation_percent}%`),
      h("td", { class: "sh-num" }, money(p.projected_unused, c)),
      h("td", {}, planBadge(p.status)),
      h("td", { class: "sh-change" }, p.message),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Scheme"),
    h(
      "div",
      { class: "sh-stats", id: "sh-scheme-stats" },
      stat("Approved", money(scheme.approved, c), { title: "Amounts of approved applications" }),
      stat("Allocated", money(scheme.allocated, c), { title: "Grants in force or ended (allocations with an end)" }),
      stat("Spent", money(scheme.spent, c)),
      stat("Remaining", money(scheme.remaining, c)),
      stat("Projected spend", money(scheme.projected, c), { title: "Spent by each grant's end at the last 30 days' pace" }),
      stat("Projected unused", money(scheme.projected_unused, c), { id: "sh-scheme-unused" }),
      stat("Over plan", scheme.over_plan, { id: "sh-scheme-over" }),
      stat("Under plan", scheme.under_plan, { id: "sh-scheme-under" }),
    ),
    h(
      "section",
      { class: "sh-card", id: "sh-ranking" },
      h("h2", {}, "Projects by subsidy projected to go unused (under-use first)"),
      table(
        [["Project"], ["Name"], ["Granted", "sh-num"], ["Planned by now", "sh-num"], ["Spent by now", "sh-num"], ["Against plan", "sh-num"], ["Projected unused", "sh-num"], ["Status"], ["What it means"]],
        rows,
        "No grants with a period yet.",
      ),
    ),
  );
}

// -- routing ---------------------------------------------------------------------------

async function route() {
  const hash = location.hash || "#/";
  const project = hash.match(/^#\/projects\/([^/]+)$/);
  const application = hash.match(/^#\/applications\/(\d+)$/);
  const applications = hash.match(/^#\/applications(?:\?state=([a-z]+))?$/);
  const named = { "#/new": "new", "#/prices": "prices", "#/servers": "servers", "#/gpus": "gpus", "#/scheme": "scheme" };
  const section = project ? "projects" : application || applications ? "applications" : named[hash] ?? "projects";
  for (const link of document.querySelectorAll(".sh-nav a")) {
    link.classList.toggle("sh-current", /** @type {HTMLElement} */ (link).dataset.section === section);
  }
  try {
    if (project) await showProject(decodeURIComponent(project[1]));
    else if (application) await showApplication(Number(application[1]));
    else if (applications) await showApplications(applications[1] ?? "submitted");
    else if (section === "scheme") await showScheme();
    else if (section === "new") showNewProject();
    else if (section === "prices") await showPrices();
    else if (section === "servers") await showServers();
    else if (section === "gpus") await showGpus();
    else await showProjects();
  } catch (problem) {
    main.replaceChildren(h("p", { class: "sh-error", role: "alert" }, problem.message));
  }
}

async function start() {
  try {
    const me = await api("GET", "me");
    currencyShown = me.currency_display;
    document.getElementById("sh-user").textContent = `Signed in as ${me.user}`;
  } catch (problem) {
    main.replaceChildren(h("p", { class: "sh-error", role: "alert" }, problem.message));
    return;
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();
