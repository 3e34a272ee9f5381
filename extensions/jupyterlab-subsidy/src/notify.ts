/**
 * Notifications (JupyterLab's notification API) from what `GET me` says holds now; the rules
 * are in `alerts.ts`.
 *
 * * A warning of a project where the user has a running server is announced once per
 *   condition, on open too (the ids announced are kept in localStorage, across tabs and
 *   reloads), in at most one toast per project, updated in place rather than stacked.
 *   Information closes itself; critical ones stay until dismissed.
 * * A warning that this server's GPUs are idle has a Keep it button (`keep.ts`) while it may
 *   still be kept; its outcome is a notification of its own.
 * * A scheduled stop of this server gets a notice that counts down each second: "Save your
 *   work: this server stops in 4 m 10 s (14:32) because project Demo's subsidy runs out."
 * * An admin's stop of this server (the ledger closes it at once, the hub stops the server
 *   a grace period later) gets a critical notice with the admin's note and the seconds left.
 * * When this server stops answering, the hub's home page (same origin, the hub's cookie)
 *   says why in its `#sh-stop` element, for every kind of stop: "Your server was stopped at
 *   14:32 UTC: an administrator stopped it. …". Without one, a stop the last `GET me` had
 *   predicted is named; otherwise nothing is claimed (the server may be restarting). The
 *   service's own record is out of reach here: the browser signs in to the service only
 *   through its OAuth redirect, with cookies scoped to the service's pages.
 */
import { Notification } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

import {
  adminStopNotice,
  afterStopNotice,
  planAlerts,
  stopCountdown
} from './alerts';
import { KEEP_CAPTION, KEEP_LABEL, keepThisServer } from './keep';
import { SubsidyModel } from './model';

const STORAGE_KEY = 'jupyterlab-subsidy:announced';
/** The hub's page is asked why every 5 s for two minutes while this server does not answer. */
const HUB_ASKS = 24;
const HUB_ASK_INTERVAL_MS = 5_000;
const TYPE = { info: 'info', warning: 'warning', critical: 'error' } as const;

export class SubsidyNotifier {
  constructor(
    private readonly _model: SubsidyModel,
    private readonly _openPanel: () => void
  ) {
    _model.changed.connect(() => this.check());
  }

  /**
   * The server is gone and `sentence` says why (JupyterLab's connection-lost dialog learnt it
   * first): the notice says the same and stays after the dialog is closed. A sentence not
   * from the hub (the last `GET me`'s prediction) is shown until the hub's record replaces it.
   */
  stopped(sentence: string, fromHub: boolean): void {
    this._show(sentence, fromHub);
    if (!fromHub) {
      this._announceStopped();
    }
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
    this._stopped = null;
    this._hubAsks = 0;
    const plan = planAlerts(me, loadSeen());
    saveSeen(plan.seen);
    for (const alert of plan.alerts) {
      const keep: Notification.IAction = {
        label: KEEP_LABEL,
        caption: KEEP_CAPTION,
        displayType: 'accent',
        callback: () => void keepThisServer(this._model)
      };
      const details = { label: 'Details', callback: this._openPanel };
      const options = {
        autoClose: alert.autoClose,
        actions: alert.keep ? [keep, details] : [details]
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

  /**
   * Show, update or withdraw the countdown to this server's stop (an admin's, critical, or a
   * scheduled one); runs each second.
   */
  private _tick(): void {
    const me = this._model.me;
    // Counted down from the last answer even while polls fail: the stop is no less due.
    const admin = me ? adminStopNotice(me, Date.now()) : null;
    const text = admin ?? (me ? stopCountdown(me, Date.now()) : null);
    if (text === null || this._stopped !== null) {
      this._endCountdown();
      return;
    }
    const type = admin !== null ? 'error' : 'warning';
    if (this._countdown === null) {
      this._countdown = Notification.emit(text, type, {
        autoClose: false,
        actions: [{ label: 'Details', callback: this._openPanel }]
      });
    } else if (this._countdown !== 'dismissed') {
      const shown = Notification.update({
        id: this._countdown,
        message: text,
        type,
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

  /**
   * This server stopped answering: say why, from the hub's page when it knows (asked again on
   * later failed polls until it does), else from the last `GET me`'s prediction; the notice
   * is updated in place when the hub's sentence arrives after the prediction.
   */
  private _announceStopped(): void {
    if (this._stopped?.fromHub) {
      return;
    }
    this._show(afterStopNotice(null, this._model.me, Date.now()), false);
    if (this._asking || this._hubAsks >= HUB_ASKS) {
      return;
    }
    this._asking = true;
    this._hubAsks += 1;
    void hubStopSentence()
      .then(sentence => {
        if (this._model.error === null) {
          return; // the server answers again
        }
        if (sentence !== null) {
          this._show(
            afterStopNotice(sentence, this._model.me, Date.now()),
            true
          );
        } else {
          // The hub learns why a moment after the stop: ask again on its own clock, since
          // the model's polls back off while the server is gone.
          window.setTimeout(() => this._announceStopped(), HUB_ASK_INTERVAL_MS);
        }
      })
      .finally(() => {
        this._asking = false;
      });
  }

  private _show(text: string | null, fromHub: boolean): void {
    if (text === null || this._stopped?.text === text) {
      return;
    }
    this._endCountdown();
    const id = this._stopped?.id;
    const updated =
      id !== undefined &&
      Notification.update({
        id,
        message: text,
        type: 'error',
        autoClose: false
      });
    this._stopped = {
      id: updated ? id : Notification.error(text, { autoClose: false }),
      text,
      fromHub
    };
  }

  /** The toast shown per project, and the warning ids it announces. */
  private _toasts = new Map<string, { id: string; ids: string[] }>();
  private _countdown: string | null = null;
  private _timer: number | null = null;
  /** The notice that this server stopped, once shown; null while it answers. */
  private _stopped: { id: string; text: string; fromHub: boolean } | null =
    null;
  private _asking = false;
  private _hubAsks = 0;
}

/**
 * The hub home page's sentence on why the user's server last stopped (`#sh-stop`, from the
 * service's record of the stop), or null when it shows none or cannot be read.
 */
export async function hubStopSentence(): Promise<string | null> {
  const url = URLExt.join(PageConfig.getOption('hubPrefix') || '/hub/', 'home');
  try {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) {
      return null;
    }
    const page = new DOMParser().parseFromString(
      await response.text(),
      'text/html'
    );
    const stop = page.getElementById('sh-stop');
    const sentence = stop?.querySelector('p') ?? stop;
    return sentence?.textContent?.trim() || null;
  } catch {
    return null; // the hub is down too: the prediction, if any, stands
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
