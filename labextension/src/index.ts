/** Wiring only: the sidebar panel and its setting. */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { XPSidebar } from './panel';

const icon = new LabIcon({
  name: 'xpmagic:flask',
  svgstr: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M9 2h6v2h-1v5.2l5.6 9.3A2 2 0 0 1 17.9 22H6.1a2 2 0 0 1-1.7-3.5L10 9.2V4H9V2zm3 9.4L8.4 17h7.2L12 11.4z"/></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'xpmagic:sidebar',
  description: 'Browse, compare and steer xpmagic experiments',
  autoStart: true,
  requires: [ILabShell],
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, shell: ILabShell, settings: ISettingRegistry | null) => {
    const sidebar = new XPSidebar(app);
    sidebar.title.icon = icon;
    shell.add(sidebar, 'left', { rank: 900 });
    if (settings) {
      void settings.load(plugin.id).then(loaded => {
        const apply = () => {
          sidebar.poller.intervalSeconds = loaded.get('refreshInterval').composite as number;
        };
        apply();
        loaded.changed.connect(apply);
      }).catch(() => undefined);
    }
  }
};

export default plugin;
