/**
 * JupyterLab's "server unavailable" moment, saying why: under a hub, the dialog JupyterLab
 * shows when its server stops answering ("Server unavailable or unreachable… Restart?") is
 * replaced by one that tells the person what happened to their server ("Your server was
 * stopped at 14:32 UTC: project Demo's subsidy ran out. …"), from the hub's record of the
 * stop or the last `GET me`'s prediction; the same sentence goes to the notifier (`stopped`),
 * whose notice stays after the dialog is closed. Without a reason it reads as JupyterLab's own.
 * The hub extension's handler is disabled in package.json (`disabledExtensions`) so that this
 * one is the `IConnectionLost` JupyterLab uses.
 */
import { ConnectionLost, IConnectionLost } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { afterStopNotice } from './alerts';
import { SubsidyModel } from './model';
import { hubStopSentence } from './notify';

/** JupyterHub's command that takes the person to their server's start page. */
const HUB_RESTART = 'hub:restart';

export function connectionLost(
  hubPrefix: string,
  baseUrl: string,
  model: SubsidyModel,
  execute: (command: string) => Promise<unknown>,
  stopped: (why: string, fromHub: boolean) => void
): IConnectionLost {
  if (!hubPrefix) {
    return ConnectionLost; // not under a hub: JupyterLab's own
  }
  let showing = false;
  return async () => {
    if (showing) {
      return;
    }
    showing = true;
    try {
      const hub = await hubStopSentence();
      const why = afterStopNotice(hub, model.me, Date.now());
      if (why) {
        // Only the hub's sentence is final; a prediction is replaced once the hub knows.
        stopped(why, hub !== null);
      }
      const result = await showDialog({
        title: why
          ? 'Your server has stopped'
          : 'Server unavailable or unreachable',
        body:
          why ??
          `Your server at ${baseUrl} is not running. Would you like to restart it?`,
        buttons: [
          Dialog.okButton({ label: why ? 'Go to the hub' : 'Restart' }),
          Dialog.cancelButton({ label: 'Dismiss' })
        ]
      });
      if (result.button.accept) {
        await execute(HUB_RESTART);
      }
    } finally {
      showing = false;
    }
  };
}
