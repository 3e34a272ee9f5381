/**
 * Keep it: this server asks to run on although its GPUs are idle (`POST subsidy/keep`; the
 * server extension names this server, so a lab only ever keeps its own). Once per server; the
 * outcome is a notification: when it now stops if its GPUs stay idle, or the service's own
 * reason for refusing, word for word. The notification's button (`notify.ts`) and the panel's
 * (`panel.ts`) both press it here.
 */
import { Notification } from '@jupyterlab/apputils';

import { INFO_AUTO_CLOSE_MS } from './alerts';
import { IKept, keptNotice } from './idlegpu';
import { SubsidyModel } from './model';
import { requestSubsidy } from './request';

/** The button's label, in the notification and in the panel. */
export const KEEP_LABEL = 'Keep it';
/** What the button does, for its tooltip. */
export const KEEP_CAPTION =
  'Keep this server running although its GPUs are idle (once)';

/**
 * Press Keep it for this server and say what happened; then read `GET me` again, so the
 * warning and the panel show the new state. Resolves true when the server was kept.
 */
export async function keepThisServer(model: SubsidyModel): Promise<boolean> {
  let kept = false;
  try {
    const answer = await requestSubsidy<IKept>('keep', { method: 'POST' });
    Notification.success(keptNotice(answer), {
      autoClose: INFO_AUTO_CLOSE_MS
    });
    kept = true;
  } catch (error) {
    Notification.error(error instanceof Error ? error.message : String(error), {
      autoClose: false
    });
  }
  void model.refresh();
  return kept;
}
