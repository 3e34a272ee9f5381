/**
 * Notifications (JupyterLab's notification API) when a project crosses a warning threshold
 * and when this server is scheduled to stop: "Save your work: this server stops at 14:32
 * because project demo's subsidy runs out."
 *
 * Each threshold is announced once per user and project, across tabs and reloads (remembered
 * in localStorage), and again only after it was cleared (a top-up) and crossed anew. A stop is
 * announced again when its time moves earlier by more than two minutes (another server started).
 */
import { Notification } from '@jupyterlab/apputils';

import { IMe, clock, ownSession } from './format';
import { SubsidyModel } from './model';

const STORAGE_KEY = 'jupyterlab-subsidy:notified';
/** Announce a session's own time limit this long before it. */
const SESSION_LIMIT_NOTICE_MS = 30 * 60_000;
const MOVED_EARLIER_MS = 2 * 60_000;

export class SubsidyNotifier {
  constructor(
    model: SubsidyModel,
    private readonly _openPanel: () => void
  ) {
    model.changed.connect(() => {
      if (model.me) {
        this.check(model.me);
      }
    });
  }

  check(me: IMe): void {
    const seen = loadSeen();
    const actions = [{ label: 'Details', callback: this._openPanel }];
    const session = ownSession(me);
    for (const project of me.projects) {
      const prefix = `${me.user}/${project.slug}/`;
      const current = new Set<string>();
      for (const warning of project.warnings) {
        if (warning.code === 'stop_soon' && warning.at) {
          const key = `${prefix}stop`;
          current.add(key);
          const before = seen[key] ? Date.parse(seen[key]) : null;
          if (
            before === null ||
            Date.parse(warning.at) < before - MOVED_EARLIER_MS
          ) {
            const mine = session?.project === project.slug;
            const message = mine
              ? `Save your work: this server stops at ${clock(warning.at)} because project ${project.slug}'s subsidy runs out.`
              : `Save your work: your servers in project ${project.slug} stop at ${clock(warning.at)} because its subsidy runs out.`;
            Notification.error(message, { autoClose: false, actions });
            seen[key] = warning.at;
          }
          continue;
        }
        const key = `${prefix}${warning.code}`;
        current.add(key);
        if (!(key in seen)) {
          const notify =
            warning.level === 'critical'
              ? Notification.error
              : Notification.warning;
          notify(warning.message, { autoClose: false, actions });
          seen[key] = me.at;
        }
      }
      for (const key of Object.keys(seen)) {
        if (key.startsWith(prefix) && !current.has(key)) {
          delete seen[key]; // cleared: the next crossing is news again
        }
      }
    }
    const sessionKey = session
      ? `${me.user}/session/${session.id}/limit`
      : null;
    for (const key of Object.keys(seen)) {
      if (key.startsWith(`${me.user}/session/`) && key !== sessionKey) {
        delete seen[key]; // that session is over
      }
    }
    if (session?.max_stop_at && sessionKey) {
      const at = Date.parse(session.max_stop_at);
      const key = sessionKey;
      if (!(key in seen) && at - Date.parse(me.at) <= SESSION_LIMIT_NOTICE_MS) {
        Notification.warning(
          `Save your work: this server stops at ${clock(session.max_stop_at)}, the longest session project ${session.project} allows.`,
          { autoClose: false, actions }
        );
        seen[key] = session.max_stop_at;
      }
    }
    saveSeen(seen);
  }
}

function loadSeen(): Record<string, string> {
  try {
    const stored = JSON.parse(window.localStorage.getItem(STORAGE_KEY) ?? '{}');
    return stored && typeof stored === 'object' ? stored : {};
  } catch {
    return {};
  }
}

function saveSeen(seen: Record<string, string>): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(seen));
  } catch {
    // private browsing or a full store: announcements may repeat, nothing breaks
  }
}
