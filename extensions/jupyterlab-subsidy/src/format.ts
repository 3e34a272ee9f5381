/**
 * What the subsidy service answers, and how its figures are shown.
 *
 * Amounts arrive as decimal strings and are rounded to the cent here with integer (BigInt)
 * arithmetic, half to even as the ledger rounds, so the status bar, the panel, the notebook
 * widget and the CLI agree to the cent. The currency symbol is the one the service itself
 * used in `balance_display`, so there is no second table of currencies to drift.
 */

import type { components } from './api';

/**
 * The service's answers, as its OpenAPI declares them: `src/api.d.ts` is generated from
 * `openapi.json` at build time (`npm run api`), and a test fails when that file no longer
 * matches the service, so these types cannot drift from what the service sends.
 */
type Schemas = components['schemas'];
export type IWarning = Schemas['Warning'];
/** One quota or limit as the service declares it (`GET me` → `limits`). */
export type ILimit = Schemas['LimitDeclaration'];
/** Limits by name: a count, hours as a decimal string, names, or null for none. */
export type IQuota = Schemas['ProjectSummary']['quota'];
/**
 * A project in `GET me`. For a course's student (`student`) the money fields (allocated …
 * gpus_in_use) are absent: they see their limits (`quota`) and their use of them (`usage`).
 */
export type IProject = Schemas['ProjectSummary'];
export type ISession = Schemas['Session'];

/** This server, as the server extension describes it. */
export interface IServer {
  user: string;
  name: string;
  project: string | null;
  profile: string | null;
}

/** `GET me` as the server extension passes it on, with this server added. */
export type IMe = Schemas['Me'] & { server: IServer };

export type Severity = 'ok' | 'warning' | 'critical';

const MICRO_DIGITS = 6;

/** A decimal string ("412.304512") as integer micro-units. */
export function toMicro(amount: string): bigint {
  const text = amount.trim();
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = text.replace(/^[-+]/, '').split('.');
  const digits = (fraction + '0'.repeat(MICRO_DIGITS)).slice(0, MICRO_DIGITS);
  const micro = BigInt(whole || '0') * 1_000_000n + BigInt(digits);
  return negative ? -micro : micro;
}

/** Micro-units rounded half to even to cents. */
function toCents(micro: bigint): bigint {
  const negative = micro < 0n;
  const size = negative ? -micro : micro;
  let cents = size / 10_000n;
  const rest = size % 10_000n;
  if (rest > 5_000n || (rest === 5_000n && cents % 2n === 1n)) {
    cents += 1n;
  }
  return negative ? -cents : cents;
}

/** `HK$1,234.50`; negative amounts `-HK$3.20`. */
export function money(amount: string | bigint, symbol: string): string {
  const cents = toCents(typeof amount === 'bigint' ? amount : toMicro(amount));
  const size = cents < 0n ? -cents : cents;
  const whole = (size / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = (size % 100n).toString().padStart(2, '0');
  return `${cents < 0n ? '-' : ''}${symbol}${whole}.${fraction}`;
}

/** The symbol the service used in `balance_display` ("HK$412.30" gives "HK$"). */
export function symbolOf(project: IProject): string {
  // Absent for a course's student, who then sees amounts in the currency's code.
  const shown = (project.balance_display ?? '').replace(/^-/, '');
  const digit = shown.search(/\d/);
  return digit > 0 ? shown.slice(0, digit) : `${project.currency} `;
}

/** `11 h 24 m`, `3 d 4 h`, `24 m`, `< 1 m`; null when nothing is burning. */
export function duration(seconds: number | null | undefined): string | null {
  if (seconds === null || seconds === undefined) {
    return null;
  }
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  if (minutes < 1) {
    return '< 1 m';
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 1) {
    return `${minutes} m`;
  }
  const days = Math.floor(hours / 24);
  if (days < 2) {
    return `${hours} h ${minutes % 60} m`;
  }
  return `${days} d ${hours % 24} h`;
}

/** Local time of an ISO instant: `14:32` today, `Sat 13 Dec, 07:18` on another day. */
export function clock(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const moment = new Date(iso);
  const time = moment.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    hour12: false
  });
  if (moment.toDateString() === new Date().toDateString()) {
    return time;
  }
  const day = moment.toLocaleDateString([], {
    weekday: 'short',
    day: 'numeric',
    month: 'short'
  });
  return `${day}, ${time}`;
}

/** "0.7" as "70%". */
export function percent(fraction: string): string {
  return `${Math.round(Number(fraction) * 1000) / 10}%`;
}

/** The most severe level among the project's warnings. */
export function severity(project: IProject): Severity {
  let found: Severity = 'ok';
  for (const warning of project.warnings) {
    if (warning.level === 'critical') {
      return 'critical';
    }
    found = 'warning';
  }
  return found;
}

/** The server's own project when listed, else the first; null without any. */
export function chooseProject(me: IMe): IProject | null {
  const own = me.projects.find(p => p.slug === me.server.project);
  return own ?? me.projects[0] ?? null;
}

/** This server's running session, if the service knows it. */
export function ownSession(me: IMe): ISession | null {
  return (
    me.sessions.find(
      s => s.user === me.server.user && s.server_name === me.server.name
    ) ?? null
  );
}

/**
 * A warning as people read it: the service's message, except that a stop forecast gives the
 * stop's local time rather than the service's UTC timestamp.
 */
export function warningText(project: IProject, warning: IWarning): string {
  if (warning.code === 'stop_soon' && warning.at) {
    return `Save your work: servers in project ${project.slug} stop at ${clock(warning.at)} because its subsidy runs out.`;
  }
  return warning.message;
}

/** `1.50 of 4 GPU-h this week`, or that there is no weekly limit. */
export function weekLine(project: IProject): string {
  const week = project.quota.gpu_hours_per_week;
  if (week === null || week === undefined) {
    return 'no weekly GPU-hour limit';
  }
  return `${project.usage?.gpu_hours_per_week ?? '0.00'} of ${week} GPU-h this week`;
}

/** `demo · HK$412.30 · 11 h 24 m left`; a course's student: `comp1 · 1.50 of 4 GPU-h this week`. */
export function statusLine(project: IProject): string {
  if (project.student) {
    return `${project.slug} · ${weekLine(project)}`;
  }
  const parts = [project.slug, project.balance_display];
  const left = duration(project.time_left_seconds);
  if (left !== null) {
    parts.push(`${left} left`);
  }
  return parts.join(' · ');
}
