/**
 * What the lab should announce, decided from `GET me` alone: pure functions with no JupyterLab
 * in them, so that the rules can be tested by running them under node
 * (tests/extension/test_alerts.py); `notify.ts` turns their answers into notifications.
 *
 * Warnings are state, not events: `GET me` lists each condition of a project (its `id`) for as
 * long as it holds. The lab announces an id once, on open too, and again only after it has
 * cleared and come back; the ids announced are remembered per user (`seen`, kept in
 * localStorage by the caller). Alarms are for projects where the user has a running server;
 * a project where nothing of theirs runs shows its warnings in the panel only, so opening the
 * lab does not greet anyone with "servers are being stopped" about servers they do not have.
 * A GPU offer (their turn in a queue) is about the person, so it is announced wherever their
 * lab runs. A warning that this server's GPUs are idle (`idle_gpu`) comes with Keep it while
 * its owner may still press it; about another of their servers it comes without: a lab only
 * keeps its own server.
 */
import {
  IMe,
  IProject,
  IRecentStop,
  IWarning,
  clock,
  ownSession,
  warningText
} from './format';

/** An information-level toast closes itself after this long; critical ones stay. */
export const INFO_AUTO_CLOSE_MS = 8_000;
const WARNING_AUTO_CLOSE_MS = 20_000;
/** A stop of this server is counted down from this long before it. */
export const COUNTDOWN_FROM_MS = 30 * 60_000;
/** A poll that fails this soon before a scheduled stop is taken to be that stop. */
const STOP_SLACK_MS = 60_000;

export type Severity = IWarning['severity'];

/** One notification to show (or to update in place: one per project at a time). */
export interface IAlert {
  project: string;
  /** The warning ids this alert announces. */
  ids: string[];
  severity: Severity;
  message: string;
  /** Milliseconds until it closes itself, or false to stay until dismissed. */
  autoClose: number | false;
  /** Whether it offers Keep it: one of its warnings is this server's idle GPUs. */
  keep: boolean;
}

/** What to announce now, and the ids to remember from now on. */
export interface IAlertPlan {
  alerts: IAlert[];
  seen: Record<string, string>;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
/** Warnings of this server's own project that its stop countdown announces instead. */
const COUNTED_DOWN = new Set(['stop_soon', 'exhausted']);
/** Warnings for the person, not about servers: announced wherever their lab runs. */
const PERSONAL = new Set(['gpu_offer']);
const TOP_UP = 'Ask your project manager to top it up.';

/** The projects where this user has a running server. */
export function projectsRunning(me: IMe): Set<string> {
  return new Set(
    me.sessions.filter(s => s.user === me.user).map(s => s.project)
  );
}

/**
 * The alarms to raise for `me`, given the ids already announced (`seen`, keyed
 * `{user}/{id}`). At most one alert per project: its most severe new warning, naming the
 * others. A stop forecast for this server's own project is left to the countdown
 * (`stopCountdown`). Ids that no longer hold are forgotten, so their return is news again.
 */
export function planAlerts(
  me: IMe,
  seen: Readonly<Record<string, string>>
): IAlertPlan {
  const prefix = `${me.user}/`;
  const running = projectsRunning(me);
  const ownProject = ownSession(me)?.project ?? null;
  const active = new Set<string>();
  const next: Record<string, string> = {};
  const alerts: IAlert[] = [];
  for (const project of me.projects) {
    const fresh: IWarning[] = [];
    for (const warning of project.warnings) {
      const key = prefix + warning.id;
      active.add(key);
      if (key in seen) {
        next[key] = seen[key];
        continue;
      }
      if (!running.has(project.slug) && !PERSONAL.has(warning.code)) {
        continue; // panel only; announced if a server of theirs runs there while it holds
      }
      next[key] = me.at;
      if (!(project.slug === ownProject && COUNTED_DOWN.has(warning.code))) {
        fresh.push(warning);
      }
    }
    if (fresh.length > 0) {
      alerts.push(
        alertFor(
          project,
          fresh,
          fresh.some(w => offersKeep(me, w))
        )
      );
    }
  }
  for (const [key, value] of Object.entries(seen)) {
    if (!key.startsWith(prefix) && !active.has(key)) {
      next[key] = value; // another user's, on a shared browser
    }
  }
  return { alerts, seen: next };
}

/**
 * Whether `warning` is one that this lab's Keep it answers: this server's GPUs are idle
 * (`idle_gpu` naming this server), it may still be kept, and the lab is its owner's.
 */
export function offersKeep(me: IMe, warning: IWarning): boolean {
  return (
    warning.code === 'idle_gpu' &&
    warning.can_keep === true &&
    me.user === me.server.user &&
    warning.server_name === me.server.name
  );
}

function alertFor(project: IProject, fresh: IWarning[], keep: boolean): IAlert {
  const worst = fresh.reduce((a, b) =>
    RANK[b.severity] > RANK[a.severity] ? b : a
  );
  const severity = worst.severity;
  return {
    project: project.slug,
    ids: fresh.map(w => w.id),
    severity,
    message: fresh
      .slice()
      .sort((a, b) => RANK[b.severity] - RANK[a.severity])
      .map(w => warningText(project, w, true))
      .join(' '),
    autoClose:
      severity === 'critical'
        ? false
        : severity === 'warning'
          ? WARNING_AUTO_CLOSE_MS
          : INFO_AUTO_CLOSE_MS,
    keep
  };
}

/** A scheduled stop of this server: when, and why in a reader's words. */
export interface IScheduledStop {
  at: string;
  /** "project Demo's subsidy runs out" */
  because: string;
  /** "project Demo's subsidy ran out" */
  happened: string;
  /** What the reader can do about it. */
  advice: string;
}

/**
 * The first scheduled stop of this server: its project's subsidy running out (a `stop_soon`
 * forecast, or an `exhausted` project: stopping now) or its own deadline (`max_stop_at`, set
 * at start by the session cap or the weekly GPU-hours). Null when none is known.
 */
export function scheduledStop(me: IMe): IScheduledStop | null {
  const session = ownSession(me);
  if (!session) {
    return null;
  }
  const project = me.projects.find(p => p.slug === session.project);
  const name = project?.name ?? session.project;
  const stops: IScheduledStop[] = [];
  for (const warning of project?.warnings ?? []) {
    if (warning.code === 'stop_soon' && warning.at) {
      stops.push({
        at: warning.at,
        because: `project ${name}'s subsidy runs out`,
        happened: `project ${name}'s subsidy ran out`,
        advice: TOP_UP
      });
    } else if (warning.code === 'exhausted') {
      stops.push({
        at: me.at,
        because: `project ${name} has no subsidy left`,
        happened: `project ${name}'s subsidy ran out`,
        advice: TOP_UP
      });
    }
  }
  if (session.max_stop_at) {
    const cap = project?.quota.max_session_hours;
    const capped = session.max_stop_reason !== 'weekly_gpu_hours';
    stops.push(
      capped
        ? {
            at: session.max_stop_at,
            because: `it reaches the longest session project ${name} allows (${cap} h)`,
            happened: `it reached the longest session project ${name} allows (${cap} h)`,
            advice: 'Start it again from the hub when you need it.'
          }
        : {
            at: session.max_stop_at,
            because: `your weekly GPU-hours in project ${name} run out`,
            happened: `your weekly GPU-hours in project ${name} ran out`,
            advice:
              'Hours free up as the week rolls on; a CPU profile still starts.'
          }
    );
  }
  stops.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return stops[0] ?? null;
}

/** `4 m 10 s`, `1 h 02 m 05 s`, `0 s`: a countdown, to the second. */
export function countdown(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) {
    return `${hours} h ${String(minutes).padStart(2, '0')} m ${String(seconds).padStart(2, '0')} s`;
  }
  return minutes > 0 ? `${minutes} m ${seconds} s` : `${seconds} s`;
}

/**
 * "Save your work: this server stops in 4 m 10 s (14:32) because project Demo's subsidy runs
 * out." while a stop of this server is at most `COUNTDOWN_FROM_MS` away; null otherwise.
 */
export function stopCountdown(me: IMe, nowMs: number): string | null {
  const stop = scheduledStop(me);
  if (!stop) {
    return null;
  }
  const left = Date.parse(stop.at) - nowMs;
  if (left > COUNTDOWN_FROM_MS) {
    return null;
  }
  if (left <= 0) {
    return `Save your work: this server is being stopped because ${stop.because}. ${stop.advice}`;
  }
  return `Save your work: this server stops in ${countdown(left)} (${clock(stop.at)}) because ${stop.because}.`;
}

/**
 * When this server stops answering, why, from the last `GET me` it gave: "Your server was
 * stopped at 14:32: project Demo's subsidy ran out." Null when nothing scheduled a stop by
 * now (the server may just be restarting, or the network gone), so nothing is claimed.
 */
export function stoppedNotice(me: IMe, nowMs: number): string | null {
  const stop = scheduledStop(me);
  if (!stop || Date.parse(stop.at) > nowMs + STOP_SLACK_MS) {
    return null;
  }
  return `Your server was stopped at ${clock(stop.at)}: ${stop.happened}. ${stop.advice}`;
}

/**
 * An admin's stop of this very server that the hub has not carried out yet: a stop in `GET me`
 * with no start since (`current`), reason `admin`, of this server's user, name and project.
 * Null otherwise (another server of the user's, or a stop this server was started after).
 */
export function adminStop(me: IMe): IRecentStop | null {
  if (me.user !== me.server.user) {
    return null;
  }
  return (
    me.stops.find(
      s =>
        s.current &&
        s.reason === 'admin' &&
        s.server_name === me.server.name &&
        (me.server.project === null || s.project === me.server.project)
    ) ?? null
  );
}

/**
 * While an admin's stop of this server waits for the hub (the ledger closed the session at
 * once, so `GET me` lists the stop while the server still runs): what to do and when first (a toast
 * shows only its first 140 characters), then why, with the admin's note: "Save your work now:
 * this server stops in 18 s because an administrator stopped it. The admin wrote: "…"". Null
 * when no such stop holds.
 */
export function adminStopNotice(me: IMe, nowMs: number): string | null {
  const stop = adminStop(me);
  if (stop === null) {
    return null;
  }
  // The service says when the hub stops it (`metering.admin_stop_grace_seconds` after).
  const left = Date.parse(stop.hub_stop_at ?? stop.stopped) - nowMs;
  const when = left > 0 ? `stops in ${countdown(left)}` : 'is being stopped';
  const said = stop.note ? ` The admin wrote: "${stop.note}"` : '';
  return `Save your work now: this server ${when} because an administrator stopped it.${said}`;
}

/**
 * What to say once this server has stopped: the hub's own sentence (its home page's
 * `#sh-stop`, the ledger's record of why) when it has one, else the reason the last `GET me`
 * predicted (`stoppedNotice`); null when neither knows, so nothing is claimed.
 */
export function afterStopNotice(
  hubSentence: string | null,
  me: IMe | null,
  nowMs: number
): string | null {
  const said = hubSentence?.replace(/\s+/g, ' ').trim();
  if (said) {
    return said;
  }
  return me ? stoppedNotice(me, nowMs) : null;
}
