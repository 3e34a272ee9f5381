/**
 * What the subsidy service answers, and how its figures are shown.
 *
 * Amounts arrive as decimal strings and are rounded to the cent here with integer (BigInt)
 * arithmetic, half to even as the ledger rounds, so the status bar, the panel, the notebook
 * widget and the CLI agree to the cent. The currency symbol is the one the service itself
 * used in `balance_display`, so there is no second table of currencies to drift.
 */

export interface IWarning {
  code: string;
  level: 'warning' | 'critical' | string;
  message: string;
  at?: string;
  threshold?: string;
}

export interface IQuota {
  max_gpus: number | null;
  member_max_gpus: number | null;
  gpu_hours_per_week: string | null;
  max_session_hours: string | null;
  profiles: string[] | null;
  gpu_types: string[] | null;
}

/** A course student's week; they get this instead of the course's money. */
export interface IAllowance {
  gpu_hours_per_week: string | null;
  gpu_hours_used_week: string;
  gpu_hours_left_week: string | null;
  max_session_hours: string | null;
  max_gpus: number | null;
  profiles: string[] | null;
}

/**
 * A project in `GET me`. For a course's student the money fields (allocated … quota, usage)
 * are absent and `allowance` is given: check `allowance` before reading them.
 */
export interface IProject {
  slug: string;
  name: string;
  role: string | null;
  currency: string;
  subsidy_rate: string;
  allocated: string;
  balance: string;
  available: string;
  held: string;
  burn_rate_per_hour: string;
  list_rate_per_hour: string;
  time_left_seconds: number | null;
  exhaustion_at: string | null;
  balance_display: string;
  running_servers: number;
  gpus_in_use: number;
  quota: IQuota;
  warnings: IWarning[];
  usage?: { gpus_in_use: number; gpu_hours_week: string };
  allowance?: IAllowance;
}

export interface ISession {
  id: number;
  user: string;
  server_name: string;
  project: string;
  profile: string;
  gpu_count: number;
  started: string;
  list_rate_per_hour: string;
  subsidy_rate_per_hour: string;
  cost: { list: string; subsidy: string; copay: string };
  max_stop_at: string | null;
}

/** This server, as the server extension describes it. */
export interface IServer {
  user: string;
  name: string;
  project: string | null;
  profile: string | null;
}

export interface IMe {
  user: string;
  admin: boolean;
  at: string;
  currency: string;
  projects: IProject[];
  sessions: ISession[];
  server: IServer;
}

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
export function allowanceLine(allowance: IAllowance): string {
  if (allowance.gpu_hours_per_week === null) {
    return 'no weekly GPU-hour limit';
  }
  return `${allowance.gpu_hours_used_week} of ${allowance.gpu_hours_per_week} GPU-h this week`;
}

/** `demo · HK$412.30 · 11 h 24 m left`; a course's student: `comp1 · 1.50 of 4 GPU-h this week`. */
export function statusLine(project: IProject): string {
  if (project.allowance) {
    return `${project.slug} · ${allowanceLine(project.allowance)}`;
  }
  const parts = [project.slug, project.balance_display];
  const left = duration(project.time_left_seconds);
  if (left !== null) {
    parts.push(`${left} left`);
  }
  return parts.join(' · ');
}
