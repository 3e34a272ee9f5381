/**
 * What the subsidy service answers, and how its figures are shown.
 *
 * Amounts arrive as decimal strings and are rounded here to the currency's minor units with
 * integer (BigInt) arithmetic, half to even as the ledger rounds, with the symbol `GET me`
 * declares (`currency_display`). The service's Python formatter, the notebook widget and the
 * admin page follow the same rule, and `tests/data/display_cases.json` holds the cases every
 * one of them must show alike (docs/decisions/display.md).
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
/** One of the caller's recent server stops (`GET me` → `stops`), with its sentence. */
export type IRecentStop = Schemas['RecentStop'];
/** How the currency's amounts are shown: symbol and minor units (`GET me`). */
export type ICurrencyDisplay = Schemas['CurrencyDisplay'];

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

/** A true minus sign (U+2212), as the service's Python formatter writes it. */
const MINUS = '\u2212';

/** Micro-units rounded half to even to units of `10^-minorUnits`. */
function toMinor(micro: bigint, minorUnits: number): bigint {
  const step = 10n ** BigInt(MICRO_DIGITS - minorUnits);
  const negative = micro < 0n;
  const size = negative ? -micro : micro;
  let minor = size / step;
  const twice = 2n * (size % step);
  if (twice > step || (twice === step && minor % 2n === 1n)) {
    minor += 1n;
  }
  return negative ? -minor : minor;
}

/**
 * `HK$1,234.50`, `−HK$3.20`, `JP¥1,235`: rounded half to even to the currency's minor units;
 * an amount that rounds to zero has no sign.
 */
export function money(
  amount: string | bigint,
  display: ICurrencyDisplay
): string {
  const minor = toMinor(
    typeof amount === 'bigint' ? amount : toMicro(amount),
    display.minor_units
  );
  const size = minor < 0n ? -minor : minor;
  const scale = 10n ** BigInt(display.minor_units);
  const whole = (size / scale).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction =
    display.minor_units > 0
      ? '.' + (size % scale).toString().padStart(display.minor_units, '0')
      : '';
  return `${minor < 0n ? MINUS : ''}${display.symbol}${whole}${fraction}`;
}

/**
 * `< 1 m`, `24 m`, `11 h 24 m` (under two days), `3 d 4 h`; null when nothing is burning. Cut
 * down to the whole minute: a time left never promises more than there is.
 */
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

/**
 * Local time of an ISO instant: `14:32` today, with its day on another day (`Sat, Dec 13,
 * 07:18` in en-US). Hours run 00–23: `hour12: false` alone lets V8 pick the h24 cycle, which
 * shows a minute past midnight as `24:01`.
 */
export function clock(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const moment = new Date(iso);
  const time = moment.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23'
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
export function warningText(
  project: IProject,
  warning: IWarning,
  alarm = false
): string {
  if (warning.code === 'stop_soon' && warning.at) {
    // An alarm goes to someone with a server there; the panel also lists projects where the
    // reader runs nothing, so it only says what happens.
    const servers = `servers in project ${project.name} stop at ${clock(warning.at)} because its subsidy runs out.`;
    return alarm
      ? `Save your work: ${servers}`
      : `${servers[0].toUpperCase()}${servers.slice(1)}`;
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
