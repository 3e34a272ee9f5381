/**
 * SubsidyHub in JupyterLab: a status bar item, a sidebar panel and notifications showing the
 * balance, burn rate, time left and warnings of the user's projects, read through this
 * server's `subsidy/` server extension (see jupyterlab_subsidy/routes.py).
 */
import {
  IConnectionLost,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { connectionLost } from './connectionlost';
import { SubsidyModel } from './model';
import { SubsidyNotifier } from './notify';
import { SubsidyPanel, coinIcon } from './panel';
import { SubsidyStatus } from './statusbar';

const PLUGIN_ID = 'jupyterlab-subsidy:plugin';
const OPEN_PANEL = 'subsidy:open-panel';
/** A warning reaches an open page within this poll, the server's cache and the service's. */
const DEFAULT_REFRESH_SECONDS = 5;

const plugin: JupyterFrontEndPlugin<IConnectionLost> = {
  id: PLUGIN_ID,
  description:
    'Balance, burn rate, time left and warnings of SubsidyHub projects; why a server stopped.',
  autoStart: true,
  requires: [JupyterFrontEnd.IPaths],
  optional: [IStatusBar, ISettingRegistry],
  provides: IConnectionLost,
  activate: (
    app: JupyterFrontEnd,
    paths: JupyterFrontEnd.IPaths,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null
  ): IConnectionLost => {
    const model = new SubsidyModel(DEFAULT_REFRESH_SECONDS);
    const panel = new SubsidyPanel(model);
    app.shell.add(panel, 'right', { rank: 900 });

    app.commands.addCommand(OPEN_PANEL, {
      label: 'Show the subsidy panel',
      icon: coinIcon,
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    const openPanel = () => void app.commands.execute(OPEN_PANEL);

    if (statusBar) {
      statusBar.registerStatusItem('jupyterlab-subsidy:status', {
        item: new SubsidyStatus(model, openPanel),
        align: 'left',
        rank: 50
      });
    }
    const notifier = new SubsidyNotifier(model, openPanel);

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            model.refreshSeconds = settings.get('refreshSeconds')
              .composite as number;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('jupyterlab-subsidy: cannot load settings', reason);
        });
    }
    return connectionLost(
      paths.urls.hubPrefix ?? '',
      paths.urls.base,
      model,
      command => app.commands.execute(command),
      (why, fromHub) => notifier.stopped(why, fromHub)
    );
  }
};

export default plugin;
