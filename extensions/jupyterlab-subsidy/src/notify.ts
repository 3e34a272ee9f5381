/**
 * Notifications (JupyterLab's notification API) from what `GET me` says holds now; the rules
 * are in `alerts.ts`.
 *
 * * A warning of a project where the user has a running server is announced once per
 *   condition, on open too (the ids announced are kept in localStorage, across tabs and
 *   reloads), in at most one toast per project, updated in place rather than stacked.
 *   Information closes itself; critical ones stay until dismissed.
 * * A scheduled stop of this server gets a notice that counts down each second: "Save your
 *   work: this server stops in 4 m 10 s (14:32) because project Demo's subsidy runs out."
 * * When this server stops answering after such a stop was due, the last `GET me` says why:
 *   "Your server was stopped at 14:32: project Demo's subsidy ran out. …". The service's own
 *   record (`GET users/{name}/stops`) is out of reach here: the browser signs in to the
 *   service only through its OAuth redirect, with cookies scoped to the service's pages.
 */
import { Notification } from '@jupyterlab/apputils';

import { planAlerts, stopCountdown, stoppedNotice } from './alerts';
import { SubsidyModel } from './model';

const STORAGE_KEY = 'jupyterlab-subsidy:announced';
const TYPE = { info: 'info', warning: 'warning', critical: 'error' } as const;

export class SubsidyNotifier {
  constructor(
    private readonly _model: SubsidyModel,
    private readonly _openPanel: () => void
  ) {
    _model.changed.connect(() => this.check());
  }

  check(): void {
    const me = this._model.me;
    if (!me) {
      return;
    }
    if (this._model.error !== null) {
      this._announceStopped();
      return;
    }
    this._stoppedShown = false;
    const plan = planAlerts(me, loadSeen());
    saveSeen(plan.seen);
    for (const alert of plan.alerts) {
      const options = {
        autoClose: alert.autoClose,
        actions: [{ label: 'Details', callback: this._openPanel }]
      };
      const id = this._toasts.get(alert.project)?.id;
      const updated =
        id !== undefined &&
        Notification.update({
          id,
          message: alert.message,
          type: TYPE[alert.severity],
          ...options
        });
      if (!updated) {
        const shown = Notification.emit(
          alert.message,
          TYPE[alert.severity],
          options
        );
        this._toasts.set(alert.project, { id: shown, ids: alert.ids });
      } else {
        this._toasts.set(alert.project, { id, ids: alert.ids });
      }
    }
    const holding = new Set(
      me.projects.flatMap(p => p.warnings.map(w => w.id))
    );
    for (const [project, toast] of this._toasts) {
      if (!toast.ids.some(id => holding.has(id))) {
        Notification.dismiss(toast.id); // cleared (a top-up): its alarm is stale
        this._toasts.delete(project);
      }
    }
    this._tick();
  }

  /** Show, update or withdraw the countdown to this server's stop; runs each second. */
  private _tick(): void {
    const me = this._model.me;
    // Counted down from the last answer even while polls fail: the stop is no less due.
    const text = me ? stopCountdown(me, Date.now()) : null;
    if (text === null) {
      this._endCountdown();
      return;
    }
    if (this._countdown === null) {
      this._countdown = Notification.emit(text, 'warning', {
        autoClose: false,
        actions: [{ label: 'Details', callback: this._openPanel }]
      });
    } else if (this._countdown !== 'dismissed') {
      const shown = Notification.update({
        id: this._countdown,
        message: text,
        type: 'warning',
        autoClose: false
      });
      if (!shown) {
        this._countdown = 'dismissed'; // closed by its reader: no new one for this stop
      }
    }
    if (this._timer === null) {
      this._timer = window.setInterval(() => this._tick(), 1000);
    }
  }

  private _endCountdown(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
    if (this._countdown !== null && this._countdown !== 'dismissed') {
      Notification.dismiss(this._countdown);
    }
    this._countdown = null;
  }

  private _announceStopped(): void {
    const me = this._model.me;
    const text = me ? stoppedNotice(me, Date.now()) : null;
    if (text === null || this._stoppedShown) {
      return;
    }
    this._endCountdown();
    this._stoppedShown = true;
    Notification.error(text, { autoClose: false });
  }

  /** The toast shown per project, and the warning ids it announces. */
  private _toasts = new Map<string, { id: string; ids: string[] }>();
  private _countdown: string | null = null;
  private _timer: number | null = null;
  private _stoppedShown = false;
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
