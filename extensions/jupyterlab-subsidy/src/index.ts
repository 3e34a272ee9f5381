/**
 * SubsidyHub in JupyterLab: a status bar item, a sidebar panel and notifications showing the
 * balance, burn rate, time left and warnings of the user's projects, read through this
 * server's `subsidy/` server extension (see jupyterlab_subsidy/routes.py).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { SubsidyModel } from './model';
import { SubsidyNotifier } from './notify';
import { SubsidyPanel, coinIcon } from './panel';
import { SubsidyStatus } from './statusbar';

const PLUGIN_ID = 'jupyterlab-subsidy:plugin';
const OPEN_PANEL = 'subsidy:open-panel';
/** A warning reaches an open page within this poll, the server's cache and the service's. */
const DEFAULT_REFRESH_SECONDS = 5;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Balance, burn rate, time left and warnings of SubsidyHub projects.',
  autoStart: true,
  optional: [IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null
  ) => {
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
    new SubsidyNotifier(model, openPanel);

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
  }
};

export default plugin;
