// SubsidyHub's usage page: one person's projects, servers, stops, spending and quotas.
//
// Everything comes from the service's API with the session cookie and the CSRF header (see
// browser_auth.py): GET me (the same figures as JupyterLab's panel: the API leaves out a
// course student's money, so this page has none to show), GET me/spending, and for a
// project's managers GET projects/SLUG/member-use. One thing changes here: a manager whose
// project may reserve GPUs (its reservable_gpus, set by the centre's admins; a lecturer for
// a class) reserves and cancels them (POST reservations, …/cancel).
//
// Applications for grants: anyone applies for a new project, a project's managers for a
// top-up or an extension (GET/POST applications, PUT a draft, …/submit, …/withdraw,
// …/comments); each shows its state, the centre's decision and its history. Managers see
// each grant's plan against what was spent (GET projects/SLUG/burn-plan, drawn by plan.js).

import { duration as formatDuration, money as formatMoney } from "../admin/static/format.js";
import { burnPlan } from "../admin/static/plan.js";

const API = "api/v1/";
const CSRF_COOKIE = "subsidyhub-csrf";
const SPENDING_DAYS = 14;
const main = document.getElementById("sh-main");

// Why a server stopped, in the words of the person whose server it was.
const STOP_REASONS = {
  subsidy_exhausted: "the project's subsidy ran out",
  weekly_gpu_hours: "your GPU-hours for this week were used up",
  max_session_hours: "it reached the longest time a server may run",
  project_closed: "the project was closed or suspended",
  admin: "a centre admin stopped it",
  idle: "it was idle",
  superseded: "a new start of the same server replaced it",
  user: "you stopped it",
  stopped: "it was stopped from the hub",
  reconciled: "the hub no longer ran it",
  reservation: "its GPUs were reserved for a class from then",
};

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return found ? decodeURIComponent(found.slice(CSRF_COOKIE.length + 1)) : "";
}

async function api(path) {
  const response = await fetch(API + path, {
    credentials: "same-origin",
    headers: { "X-SubsidyHub-CSRF": csrfToken() },
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.message || `The service answered ${response.status}.`);
  return data;
}

async function send(path, body = undefined, method = "POST") {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "X-SubsidyHub-CSRF": csrfToken(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.message || `The service answered ${response.status}.`);
  return data;
}

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

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/(:\d\d)(\.\d+)?(Z|\+00:00)$/, "$1 UTC") : "—";
}

function table(caption, headers, rows, empty) {
  const head = h("tr", {}, headers.map((label) => h("th", { scope: "col" }, label)));
  const body = rows.length
    ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
    : [h("tr", {}, h("td", { colspan: headers.length, class: "sh-empty" }, empty))];
  return h("table", {}, h("caption", { class: "sh-muted" }, caption), h("thead", {}, head), h("tbody", {}, body));
}

function section(id, title, ...content) {
  return h("section", { class: "sh-card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), content);
}

/** A limit and its use as people read them: "3 of 4 GPU-hours", "no limit". */
function limitText(value, declared) {
  if (declared.kind === "names") return value === null ? "all" : value.join(", ") || "none";
  return value === null || value === undefined ? declared.unset ?? "no limit" : `${value} ${declared.unit}`;
}

// A datetime-local value (the reader's own time) as ISO 8601 for the API.
function isoFromLocal(value) {
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? value : moment.toISOString();
}

/** One project's reservations and a form to add one: what a lecturer needs for a class. */
function reservationCard(project, reservations, gpuTypes, reload) {
  const error = h("p", { class: "sh-error", role: "alert" });
  const field = (label, input) => h("label", {}, label, " ", input);
  const form = h(
    "form",
    {
      class: "sh-reserve",
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        const values = Object.fromEntries(new FormData(form).entries());
        try {
          await send("reservations", {
            project: project.slug,
            gpu_type: values.gpu_type,
            gpus: Number.parseInt(String(values.gpus), 10),
            starts: isoFromLocal(String(values.starts)),
            ends: isoFromLocal(String(values.ends)),
            weeks: Number.parseInt(String(values.weeks || "1"), 10),
            note: String(values.note).trim(),
          });
          await reload();
        } catch (problem) {
          error.textContent = problem.message;
        }
      },
    },
    field("GPU type", h("select", { name: "gpu_type" }, gpuTypes.map((t) => h("option", { value: t.gpu_type }, t.label)))),
    field("GPUs", h("input", { name: "gpus", size: 4, required: true })),
    field("From (your time)", h("input", { name: "starts", type: "datetime-local", required: true })),
    field("To", h("input", { name: "ends", type: "datetime-local", required: true })),
    field("Weeks", h("input", { name: "weeks", size: 4, value: "1" })),
    field("Note", h("input", { name: "note", placeholder: "Tuesday labs" })),
    h("button", { type: "submit" }, "Reserve"),
    error,
  );
  const rows = reservations.map((r) => [
    `${r.gpus} × ${r.gpu_type.toUpperCase()}`,
    `${when(r.starts)} – ${when(r.ends)}`,
    r.weeks > 1 ? `weekly, ${r.weeks} weeks` : "once",
    r.note,
    h(
      "button",
      {
        onclick: async () => {
          if (!window.confirm("Cancel this reservation? Its GPUs admit anyone again.")) return;
          try {
            await send(`reservations/${r.id}/cancel`);
            await reload();
          } catch (problem) {
            error.textContent = problem.message;
          }
        },
      },
      "Cancel",
    ),
  ]);
  return h(
    "article",
    { class: "sh-card", id: `sh-reservations-${project.slug}` },
    h("h3", {}, project.name),
    h("p", { class: "sh-muted" }, `During a reservation its GPUs start only servers of ${project.name}'s members; you may reserve ${project.quota.reservable_gpus} GPUs at once.`),
    table("Reservations", ["GPUs", "First window (UTC)", "Repeats", "Note", ""], rows, "No reservations yet."),
    form,
  );
}

function render(me, spending, members, reserving = []) {
  const display = me.currency_display ?? { code: me.currency, symbol: `${me.currency} `, minor_units: 2 };
  const money = (amount) => (amount === null || amount === undefined ? "—" : formatMoney(amount, display));
  const byName = Object.fromEntries(me.limits.map((limit) => [limit.name, limit]));
  const students = new Set(me.projects.filter((p) => p.student).map((p) => p.slug));
  const names = Object.fromEntries(me.projects.map((p) => [p.slug, p.name]));

  const projects = me.projects.map((p) =>
    h(
      "article",
      { class: "sh-card", id: `sh-project-${p.slug}` },
      h("h3", {}, `${p.name} `, h("span", { class: "sh-muted" }, `(${p.slug}, ${p.status})`)),
      p.student
        ? h("p", {}, "You take part in this course; your allowance is below.")
        : h(
            "dl",
            { class: "sh-figures" },
            h("dt", {}, "Available"), h("dd", { "data-field": "available" }, money(p.available)),
            h("dt", {}, "Balance"), h("dd", { "data-field": "balance" }, money(p.balance)),
            h("dt", {}, "Spending now"), h("dd", {}, `${money(p.burn_rate_per_hour)} per hour`),
            h("dt", {}, "Time left"),
            h("dd", {}, p.time_left_seconds === null || p.time_left_seconds === undefined ? "—" : formatDuration(p.time_left_seconds)),
          ),
      p.warnings.length ? h("ul", { class: "sh-warnings", role: "status" }, p.warnings.map((w) => h("li", {}, w.message))) : null,
      table(
        "Your quotas and use",
        ["Limit", "In force", "Your use"],
        Object.entries(p.quota)
          .filter(([name]) => byName[name])
          .map(([name, value]) => [
            byName[name].label,
            limitText(value, byName[name]),
            p.usage && p.usage[name] !== undefined ? `${p.usage[name]} ${byName[name].unit}` : "—",
          ]),
        "No limits.",
      ),
    ),
  );

  const servers = table(
    "Servers running now",
    ["Server", "Project", "Profile", "Started", "Subsidy used so far"],
    me.sessions.map((s) => [
      s.server_name || "default",
      names[s.project] ?? s.project,
      s.profile,
      when(s.started),
      students.has(s.project) ? "—" : money(s.cost.subsidy),
    ]),
    "No servers running.",
  );

  const stops = table(
    "Stops in the last 7 days",
    ["When", "Server", "Project", "Why"],
    (me.stops ?? []).map((s) => [
      when(s.stopped),
      s.server_name || "default",
      s.project_name ?? s.project,
      [STOP_REASONS[s.reason] ?? s.reason, s.note ? `: “${s.note}”` : ""].join(""),
    ]),
    "No servers stopped in the last 7 days.",
  );

  const days = spending.projects.length ? spending.projects[0].days.map((d) => d.date) : [];
  const spent = table(
    `Subsidy spent per day (UTC), last ${SPENDING_DAYS} days`,
    ["Day", ...spending.projects.map((p) => names[p.slug] ?? p.slug)],
    days.map((day, index) => [day, ...spending.projects.map((p) => money(p.days[index].subsidy))]),
    "No project whose spending you see.",
  );

  const managed = members.map(({ slug, list }) =>
    table(
      `Members of ${names[slug] ?? slug}: limits and use in the last 7 days`,
      ["Member", "Role", "Servers running", ...me.limits.filter((l) => l.member_level && l.measure).map((l) => l.label)],
      list.map((m) => [
        m.name ? `${m.username} (${m.name})` : m.username,
        m.role,
        m.running_servers,
        ...me.limits
          .filter((l) => l.member_level && l.measure)
          .map((l) => `${m.usage[l.name] ?? 0} of ${limitText(m.quota_in_force[l.name], l)}`),
      ]),
      "No members.",
    ),
  );

  const managers = members.length ? [section("sh-members", "Your members' use", managed)] : [];
  const reservationCards = reserving.length
    ? [section("sh-reservations", "GPU reservations", reserving.map((r) => reservationCard(r.project, r.list, r.gpuTypes, start)))]
    : [];
  main.replaceChildren(
    h("h1", {}, "Your usage"),
    section("sh-projects", "Your projects", projects.length ? projects : h("p", {}, "You are not a member of any project yet; ask your group's manager or the centre's admins.")),
    section("sh-servers", "Running servers", servers),
    section("sh-stops", "Recent stops", stops),
    section("sh-spending", "Spending per day", spent),
    ...managers,
    ...reservationCards,
  );
}

async function start() {
  try {
    const [me, spending] = await Promise.all([api("me"), api(`me/spending?days=${SPENDING_DAYS}`)]);
    document.getElementById("sh-user").textContent = me.user;
    document.getElementById("sh-admin").hidden = !me.admin;
    const managed = me.projects.filter((p) => p.role === "manager");
    const members = await Promise.all(
      managed.map(async (p) => ({ slug: p.slug, list: (await api(`projects/${encodeURIComponent(p.slug)}/member-use`)).members })),
    );
    const reservable = managed.filter((p) => p.quota.reservable_gpus !== null && p.quota.reservable_gpus !== undefined);
    const gpuTypes = reservable.length ? (await api("capacity")).gpu_types.filter((t) => t.gpus !== null) : [];
    const reserving = await Promise.all(
      reservable.map(async (p) => ({
        project: p,
        gpuTypes,
        list: (await api(`reservations?project=${encodeURIComponent(p.slug)}`)).reservations,
      })),
    );
    render(me, spending, members, reserving);
  } catch (error) {
    main.replaceChildren(h("p", { class: "sh-error", role: "alert" }, error.message));
  }
}

start();
