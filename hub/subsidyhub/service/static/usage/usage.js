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

// -- applications for grants, and each grant's plan against its spending (issue 18) -------

const KIND_WORDS = { new: "a new project", top_up: "a top-up", extension: "an extension" };
const STATE_WORDS = { draft: "draft", submitted: "submitted", approved: "approved", rejected: "not approved", withdrawn: "withdrawn" };
const STATE_SENTENCES = {
  draft: "Not sent yet: you may still edit it, then submit it.",
  submitted: "The centre is reviewing it; it is read-only now. You can still comment.",
  approved: "Approved: the grant is in the project's allocations.",
  rejected: "Not approved.",
  withdrawn: "You withdrew it.",
};
const EVENT_WORDS = {
  created: "started it",
  edited: "edited it",
  submitted: "submitted it",
  commented: "commented",
  approved: "approved it",
  rejected: "did not approve it",
  withdrawn: "withdrew it",
};
const FORM_TITLES = {
  new: () => "Apply for a project",
  top_up: (name) => `Apply for a top-up of ${name}`,
  extension: (name) => `Apply for an extension of ${name}`,
};
const FORM_ABOUT = {
  new: "Tell the centre what the GPUs are for, how much subsidy you need and for how long. Save a draft and come back to it, or submit it; once submitted it is read-only.",
  top_up: "More subsidy for this project within a period.",
  extension: "A further period after the project's current grant ends, and the subsidy for it. What the current grant leaves unspent is not carried over.",
};

function day(iso) {
  return iso ? iso.slice(0, 10) : "—";
}

// A subsidy rate ("0.75") as people read it: "75%".
function percent(rate) {
  return `${Number((Number(rate) * 100).toFixed(2))}%`;
}

function listOf(text) {
  return text.split(/[,\n]/).map((item) => item.trim()).filter(Boolean);
}

function stateBadge(state) {
  return h("span", { class: `sh-badge sh-${state}`, "data-field": "state" }, STATE_WORDS[state] ?? state);
}

/** Terms and their values; a value of null or undefined leaves its term out. */
function figures(pairs, attrs = {}) {
  return h(
    "dl",
    { class: "sh-figures", ...attrs },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([term, value, field]) => [h("dt", {}, term), h("dd", { "data-field": field }, value)]),
  );
}

/**
 * The application form: a new project's by default; `open` turns it to a top-up or an
 * extension of a project the person manages, or to editing one of their drafts. "Save draft"
 * keeps it editable (POST applications, or PUT for a draft); "Submit" saves and submits it.
 */
function applicationForm(gpuTypes, currency, reload) {
  let mode = { kind: "new", slug: "", name: "", draft: null };
  const heading = h("h3", { id: "sh-apply-heading" }, FORM_TITLES.new());
  const about = h("p", { class: "sh-muted" }, FORM_ABOUT.new);
  const error = h("p", { class: "sh-error", role: "alert" });
  const field = (label, control, attrs = {}) => h("label", attrs, label, control);
  const slugField = field("Short name for the project: lower-case letters, digits and dashes", h("input", { name: "slug", placeholder: "climate-ml", size: 24 }));
  const saveButton = h("button", { type: "submit", class: "sh-secondary", "data-action": "save" }, "Save draft");
  const submitButton = h("button", { type: "button", "data-action": "submit", onclick: () => save(true) }, "Submit");
  const cancelButton = h("button", { type: "button", class: "sh-secondary", hidden: true, onclick: () => open({ kind: "new", slug: "", name: "", draft: null }) }, "Cancel");
  const form = h(
    "form",
    { class: "sh-form sh-standalone", id: "sh-application-form", novalidate: true, onsubmit: (event) => (event.preventDefault(), save(false)) },
    field("Title", h("input", { name: "title", class: "sh-wide", size: 48, placeholder: "Climate downscaling with diffusion models" })),
    slugField,
    field("Organisation", h("input", { name: "organisation", class: "sh-wide", placeholder: "University of Hong Kong" })),
    field("Abstract: what the work is and what the GPUs are for", h("textarea", { name: "abstract", rows: 4 }), { class: "sh-full" }),
    field(`Subsidy requested (${currency})`, h("input", { name: "amount", size: 12, placeholder: "10000.00" })),
    gpuTypes.map((t) => field(`${t.label} GPU-hours`, h("input", { name: `gpu:${t.gpu_type}`, size: 8, inputmode: "numeric", placeholder: "0" }))),
    field("From", h("input", { name: "starts", type: "date" })),
    field("Until", h("input", { name: "ends", type: "date" })),
    field("Team: user names, separated by commas", h("input", { name: "team", class: "sh-wide", placeholder: "alice, bob" })),
    field(`Plan per quarter (optional, ${currency})`, h("input", { name: "plan", class: "sh-wide", placeholder: "2500.00, 2500.00, 5000.00" })),
    field("Email for news of it (optional)", h("input", { name: "email", type: "email", class: "sh-wide", placeholder: "you@university.edu" })),
    h("p", { class: "sh-hint" }, "The plan per quarter is what you expect to spend in each three months from the start; its amounts add up to the subsidy requested. Leave it empty to spread the subsidy evenly."),
    h("div", { class: "sh-buttons" }, saveButton, submitButton, cancelButton),
    error,
  );
  const control = (name) => form.elements.namedItem(name);
  const text = (name) => String(control(name)?.value ?? "").trim();

  function body() {
    const gpuHours = {};
    for (const t of gpuTypes) {
      const hours = text(`gpu:${t.gpu_type}`);
      // A whole number goes as one; anything else as typed, for the service to explain.
      if (hours) gpuHours[t.gpu_type] = /^\d+$/.test(hours) ? Number(hours) : hours;
    }
    return {
      kind: mode.kind,
      slug: mode.kind === "new" ? text("slug") : mode.slug,
      title: text("title"),
      organisation: text("organisation"),
      abstract: control("abstract").value,
      amount: text("amount"),
      gpu_hours: gpuHours,
      starts: text("starts"),
      ends: text("ends"),
      team: listOf(text("team")),
      plan: listOf(text("plan")),
      ...(text("email") ? { email: text("email") } : {}),
    };
  }

  async function save(andSubmit) {
    error.textContent = "";
    saveButton.disabled = submitButton.disabled = true;
    try {
      let saved = mode.draft ? await send(`applications/${mode.draft.id}`, body(), "PUT") : await send("applications", body());
      // Saved: a failed submit below leaves a draft, which the next click edits.
      mode = { ...mode, draft: saved };
      heading.textContent = `Edit your draft: ${saved.title}`;
      if (andSubmit) saved = await send(`applications/${saved.id}/submit`);
      await reload(`sh-application-${saved.id}`);
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      saveButton.disabled = submitButton.disabled = false;
    }
  }

  function open(next) {
    mode = next;
    form.reset();
    const draft = next.draft;
    if (draft) {
      const values = {
        title: draft.title,
        slug: draft.slug,
        organisation: draft.organisation,
        abstract: draft.abstract,
        amount: draft.amount,
        starts: day(draft.starts),
        ends: day(draft.ends),
        team: draft.team.join(", "),
        plan: draft.plan.join(", "),
        email: draft.email ?? "",
      };
      for (const t of gpuTypes) values[`gpu:${t.gpu_type}`] = String(draft.gpu_hours[t.gpu_type] ?? "");
      for (const [name, value] of Object.entries(values)) if (control(name)) control(name).value = value;
    } else if (next.kind !== "new") {
      control("title").value = `${next.kind === "top_up" ? "Top-up" : "Extension"} of ${next.name}`;
    }
    slugField.hidden = next.kind !== "new";
    heading.textContent = draft ? `Edit your draft: ${draft.title}` : FORM_TITLES[next.kind](next.name);
    about.textContent = FORM_ABOUT[next.kind];
    cancelButton.hidden = next.kind === "new" && !draft;
    error.textContent = "";
    heading.scrollIntoView({ block: "start" });
    control("title").focus({ preventScroll: true });
  }

  return { node: h("article", { class: "sh-card", id: "sh-apply" }, heading, about, form), open };
}

/** One of the person's applications: its state, decision, what was asked, history, a comment box. */
function applicationCard(a, me, money, allocations, edit, reload) {
  const id = `sh-application-${a.id}`;
  const error = h("p", { class: "sh-error", role: "alert" });
  const act = (label, path, attrs = {}, question = undefined) =>
    h(
      "button",
      {
        type: "button",
        ...attrs,
        onclick: async (event) => {
          if (question && !window.confirm(question)) return;
          error.textContent = "";
          event.target.disabled = true;
          try {
            await send(`applications/${a.id}/${path}`);
            await reload(id);
          } catch (problem) {
            error.textContent = problem.message;
            event.target.disabled = false;
          }
        },
      },
      label,
    );
  const actions =
    a.state === "draft"
      ? [
          h("button", { type: "button", class: "sh-secondary", "data-action": "edit", onclick: () => edit(a) }, "Edit"),
          act("Submit", "submit", { "data-action": "submit" }),
          act("Withdraw", "withdraw", { class: "sh-danger", "data-action": "withdraw" }, "Withdraw this draft? It cannot be submitted afterwards."),
        ]
      : a.state === "submitted"
        ? [act("Withdraw", "withdraw", { class: "sh-danger", "data-action": "withdraw" }, "Withdraw this application? The centre stops reviewing it.")]
        : [];
  const granted = a.allocation_id ? allocations.get(a.allocation_id) : undefined;
  const decision =
    a.state === "approved"
      ? h(
          "div",
          { class: "sh-decision", "data-field": "decision" },
          figures([
            ["Subsidy rate", `${percent(a.subsidy_rate)} of the list price`, "subsidy_rate"],
            ["Subsidy granted", money(a.approved_amount), "approved_amount"],
            ["Period", granted ? `${day(granted.valid_from)} to ${day(granted.valid_until)}` : null, "period"],
            ["Project", a.project, "project"],
            ["Decided", `${day(a.decided)} by ${a.decided_by}`, "decided"],
          ]),
          a.reason ? h("p", { class: "sh-text" }, `From the centre: ${a.reason}`) : null,
        )
      : a.state === "rejected"
        ? h("p", { class: "sh-warning", "data-field": "decision" }, `Not approved (${day(a.decided)}): ${a.reason}`)
        : null;
  const hours = Object.entries(a.gpu_hours).filter(([, n]) => n > 0).map(([type, n]) => `${n} ${type.toUpperCase()}`);
  const asked = h(
    "details",
    { open: a.state === "draft" || a.state === "submitted" },
    h("summary", {}, "What you asked for"),
    figures([
      ["For", a.kind === "new" ? `${KIND_WORDS.new}: ${a.slug}` : `${KIND_WORDS[a.kind]} of ${a.project ?? a.slug}`, "kind"],
      ["Subsidy", money(a.amount), "amount"],
      ["Period", `${day(a.starts)} to ${day(a.ends)}`, "period"],
      ["GPU-hours", hours.length ? hours.join(", ") : "none given", "gpu_hours"],
      ["Team", a.team.length ? a.team.join(", ") : "just you", "team"],
      ["Plan per quarter", a.plan.length ? a.plan.map((amount, i) => `Q${i + 1} ${money(amount)}`).join(", ") : "even over the period", "plan"],
      ["Organisation", a.organisation || null, "organisation"],
      ["Email", a.email, "email"],
    ]),
    a.abstract ? h("p", { class: "sh-text" }, a.abstract) : null,
  );
  const history = h(
    "ol",
    { class: "sh-history", "aria-label": "History" },
    (a.events ?? []).map((e) =>
      h(
        "li",
        { "data-event": e.kind },
        h("span", { class: "sh-muted" }, when(e.at)),
        " ",
        h("strong", {}, e.actor === me.user ? "You" : e.actor),
        ` ${EVENT_WORDS[e.kind] ?? e.kind}`,
        e.body ? h("p", { class: "sh-said" }, e.body) : null,
      ),
    ),
  );
  const comment = h(
    "form",
    {
      class: "sh-form sh-comment",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        try {
          await send(`applications/${a.id}/comments`, { body: comment.elements.namedItem("body").value });
          await reload(id);
        } catch (problem) {
          error.textContent = problem.message;
        }
      },
    },
    h("label", { class: "sh-full" }, "Comment for the centre", h("textarea", { name: "body", rows: 2 })),
    h("button", { type: "submit", class: "sh-secondary" }, "Add comment"),
  );
  return h(
    "article",
    { class: "sh-card", id, "data-state": a.state },
    h("h3", {}, `${a.title} `, stateBadge(a.state)),
    h("p", { class: "sh-muted" }, `Application ${a.id}, for ${KIND_WORDS[a.kind] ?? a.kind}. ${STATE_SENTENCES[a.state] ?? ""}`),
    decision,
    actions.length ? h("div", { class: "sh-buttons" }, actions) : null,
    error,
    asked,
    h("h4", {}, "History"),
    history,
    comment,
  );
}

/** The Applications section: the form, the person's applications, top-ups for managed projects. */
function applicationsSection(me, applying, money, reload) {
  const currency = me.currency_display?.code ?? me.currency;
  const form = applicationForm(applying.gpuTypes, currency, reload);
  const managed = me.projects.filter((p) => p.role === "manager");
  const offers = managed.length
    ? h(
        "div",
        { class: "sh-card", id: "sh-apply-more" },
        h("h3", {}, "For projects you manage"),
        managed.map((p) =>
          h(
            "p",
            { class: "sh-buttons", "data-project": p.slug },
            h("span", {}, p.name),
            h("button", { type: "button", class: "sh-secondary", "data-apply": "top_up", onclick: () => form.open({ kind: "top_up", slug: p.slug, name: p.name, draft: null }) }, "Apply for a top-up"),
            h("button", { type: "button", class: "sh-secondary", "data-apply": "extension", onclick: () => form.open({ kind: "extension", slug: p.slug, name: p.name, draft: null }) }, "Apply for an extension"),
          ),
        ),
      )
    : null;
  const names = Object.fromEntries(me.projects.map((p) => [p.slug, p.name]));
  const edit = (a) => form.open({ kind: a.kind, slug: a.slug, name: names[a.slug] ?? a.slug, draft: a });
  const yours = [...applying.applications].reverse().map((a) => applicationCard(a, me, money, applying.allocations, edit, reload));
  return section(
    "sh-applications",
    "Applications",
    h("h3", { class: "sh-muted" }, "Your applications"),
    yours.length ? yours : h("p", { class: "sh-muted" }, "No applications yet."),
    offers,
    form.node,
  );
}

/** Managed projects' grants against their plan: one card per project with a grant. */
function plansSection(plans, money) {
  const cards = plans
    .filter(({ positions }) => positions.length)
    .map(({ project, positions }) =>
      h(
        "article",
        { class: "sh-card", id: `sh-plan-${project.slug}` },
        h("h3", {}, project.name),
        positions.map((position) => burnPlan(position, money)),
      ),
    );
  return cards.length ? [section("sh-plans", "Grant plan vs actual", h("p", { class: "sh-muted" }, "Subsidy is meant to be spent over the grant's period: too fast and it runs out early; too slow and what is left at the end is lost."), cards)] : [];
}

function render(me, spending, members, reserving = [], applying = null) {
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
    section("sh-projects", "Your projects", projects.length ? projects : h("p", {}, "You are not a member of any project yet; ask your group's manager, or apply for a project under Applications below.")),
    ...(applying ? plansSection(applying.plans, money) : []),
    section("sh-servers", "Running servers", servers),
    section("sh-stops", "Recent stops", stops),
    section("sh-spending", "Spending per day", spent),
    ...managers,
    ...reservationCards,
    ...(applying ? [applicationsSection(me, applying, money, start)] : []),
  );
}

async function start(focus = undefined) {
  try {
    const [me, spending] = await Promise.all([api("me"), api(`me/spending?days=${SPENDING_DAYS}`)]);
    document.getElementById("sh-user").textContent = me.user;
    document.getElementById("sh-admin").hidden = !me.admin;
    const managed = me.projects.filter((p) => p.role === "manager");
    const members = await Promise.all(
      managed.map(async (p) => ({ slug: p.slug, list: (await api(`projects/${encodeURIComponent(p.slug)}/member-use`)).members })),
    );
    const reservable = managed.filter((p) => p.quota.reservable_gpus !== null && p.quota.reservable_gpus !== undefined);
    const offered = (await api("capacity").catch(() => null))?.gpu_types ?? [];
    const gpuTypes = offered.filter((t) => t.gpus !== null);
    const reserving = await Promise.all(
      reservable.map(async (p) => ({
        project: p,
        gpuTypes,
        list: (await api(`reservations?project=${encodeURIComponent(p.slug)}`)).reservations,
      })),
    );
    // Applications (the listing has no history; each one's answer has it) and, for managers,
    // each project's grants against their plan and its allocations (a decision's period).
    const listed = (await api("applications").catch(() => ({ applications: [] }))).applications.filter((a) => a.applicant === me.user);
    const [applications, plans, granted] = await Promise.all([
      Promise.all(listed.map((a) => api(`applications/${a.id}`))),
      Promise.all(managed.map(async (p) => ({ project: p, positions: (await api(`projects/${encodeURIComponent(p.slug)}/burn-plan`).catch(() => null))?.positions ?? [] }))),
      Promise.all(managed.map(async (p) => (await api(`projects/${encodeURIComponent(p.slug)}/allocations`).catch(() => null))?.allocations ?? [])),
    ]);
    const allocations = new Map(granted.flat().map((a) => [a.id, a]));
    render(me, spending, members, reserving, { applications, plans, allocations, gpuTypes: offered });
    if (focus) document.getElementById(focus)?.scrollIntoView({ block: "start" });
  } catch (error) {
    main.replaceChildren(h("p", { class: "sh-error", role: "alert" }, error.message));
  }
}

start();
