// @ts-check
// A project's grants against their plan (GET projects/SLUG/burn-plan), as the usage page
// shows it to the project's managers and the admin page to admins: the position's sentence
// (a warning when it is over or under plan), its figures, and a table of months, each with
// the subsidy planned and spent and a pair of bars drawn to one scale. The table carries
// every figure; the bars only let the eye compare, and are hidden from screen readers.

import { toMicro } from "./format.js";

/** @typedef {import("../../../../../extensions/jupyterlab-subsidy/src/api").components["schemas"]["BurnPosition"]} Position */

const SVG = "http://www.w3.org/2000/svg";
const BAR_WIDTH = 180;
const STATUS_WORDS = { on_plan: "on plan", over_plan: "over plan", under_plan: "under plan" };

/**
 * An element with attributes and children (text or nodes); null and undefined are skipped.
 * @param {string} tag @param {Record<string, string | undefined>} attrs @param {...(Node | string | null | undefined)} children
 */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined) node.setAttribute(key, value);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** Two horizontal bars, planned above spent, as fractions of `scale`. @param {bigint} planned @param {bigint} spent @param {bigint} scale */
function bars(planned, spent, scale) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(BAR_WIDTH));
  svg.setAttribute("height", "20");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "sh-bars");
  const rows = [
    { amount: planned, y: 1, cls: "sh-bar-planned" },
    { amount: spent, y: 11, cls: spent > planned ? "sh-bar-spent sh-bar-over" : "sh-bar-spent" },
  ];
  for (const { amount, y, cls } of rows) {
    const rect = document.createElementNS(SVG, "rect");
    const width = Number((amount * BigInt(BAR_WIDTH * 100)) / scale) / 100;
    rect.setAttribute("x", "0");
    rect.setAttribute("y", String(y));
    rect.setAttribute("height", "8");
    rect.setAttribute("rx", "1.5");
    rect.setAttribute("width", String(width));
    rect.setAttribute("class", cls);
    svg.append(rect);
  }
  return svg;
}

/**
 * The position as a block: its sentence, its figures, and its months with bars.
 * @param {Position} position
 * @param {(amount: string) => string} show how the page writes an amount
 * @param {string} [thisMonth] "YYYY-MM" (UTC) of now, marked in the table
 */
export function burnPlan(position, show, thisMonth = new Date().toISOString().slice(0, 7)) {
  const warning = position.status !== "on_plan";
  const scale = position.months.reduce((most, m) => {
    const larger = toMicro(m.planned) > toMicro(m.spent) ? toMicro(m.planned) : toMicro(m.spent);
    return larger > most ? larger : most;
  }, 1n);
  const rows = position.months.map((m) =>
    el(
      "tr",
      { "data-month": m.month, class: m.month === thisMonth ? "sh-now" : undefined },
      el("th", { scope: "row" }, m.month, m.month === thisMonth ? " (now)" : null),
      el("td", { class: "sh-num", "data-field": "planned" }, show(m.planned)),
      el("td", { class: "sh-num", "data-field": "spent" }, show(m.spent)),
      el("td", {}, bars(toMicro(m.planned), toMicro(m.spent), scale)),
    ),
  );
  const figure = (/** @type {string} */ label, /** @type {string} */ value, /** @type {string} */ field) => [
    el("dt", {}, label),
    el("dd", { "data-field": field }, value),
  ];
  return el(
    "div",
    { class: "sh-plan", "data-status": position.status },
    el(
      "p",
      warning ? { class: "sh-warning", role: "status", "data-field": "message" } : { class: "sh-muted", "data-field": "message" },
      el("strong", {}, `${STATUS_WORDS[position.status] ?? position.status}: `),
      position.message,
    ),
    el(
      "dl",
      { class: "sh-figures" },
      ...figure("Granted", show(position.granted), "granted"),
      ...figure("Planned by now", show(position.planned_to_date), "planned_to_date"),
      ...figure(
        "Spent by now",
        position.deviation_percent === null
          ? show(position.spent_to_date)
          : `${show(position.spent_to_date)} (${position.deviation_percent.startsWith("-") ? "" : "+"}${position.deviation_percent}% against the plan)`,
        "spent_to_date",
      ),
      ...figure("Spent by the end at the last 30 days' pace", show(position.projected), "projected"),
      ...figure("Left unused at that pace", show(position.projected_unused), "projected_unused"),
      ...figure("Ends", position.ends.slice(0, 10), "ends"),
      ...(position.runs_out_at ? figure("Runs out at that pace", position.runs_out_at.slice(0, 10), "runs_out_at") : []),
    ),
    el(
      "table",
      { class: "sh-plan-months" },
      el("caption", { class: "sh-muted" }, "Subsidy planned and spent per month (UTC)"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "Month"),
          el("th", { scope: "col", class: "sh-num" }, "Planned"),
          el("th", { scope: "col", class: "sh-num" }, "Spent"),
          el(
            "th",
            { scope: "col" },
            el("span", { class: "sh-key sh-key-planned" }),
            " planned ",
            el("span", { class: "sh-key sh-key-spent" }),
            " spent",
          ),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
  );
}
