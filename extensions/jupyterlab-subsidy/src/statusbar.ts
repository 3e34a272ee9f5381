/**
 * The status bar item: "demo · HK$412.30 · 11 h 24 m left", coloured at the warning
 * thresholds (orange for a warning, red for critical), the warnings in its tooltip; a click
 * opens the panel.
 */
import { Widget } from '@lumino/widgets';

import { severity, statusLine, warningText } from './format';
import { SubsidyModel } from './model';

export class SubsidyStatus extends Widget {
  constructor(
    private readonly _model: SubsidyModel,
    onClick: () => void
  ) {
    super();
    this.id = 'jp-subsidy-status';
    this.addClass('jp-subsidy-status');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', onClick);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        onClick();
      }
    });
    this._model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const project = this._model.project;
    const error = this._model.error;
    this.node.dataset.severity = project ? severity(project) : 'ok';
    this.toggleClass('jp-subsidy-stale', error !== null);
    if (project === null) {
      this.node.textContent =
        error !== null
          ? 'Subsidy: unavailable'
          : this._model.me
            ? 'Subsidy: no project'
            : 'Subsidy…';
      this.node.title = error ?? 'You are not a member of any project.';
      return;
    }
    this.node.textContent = statusLine(project);
    const lines = [
      `Project ${project.name} (${project.slug}): click for details.`,
      ...project.warnings.map(w => warningText(project, w))
    ];
    if (error !== null) {
      lines.push(`Not up to date: ${error}`);
    }
    this.node.title = lines.join('\n');
  }
}
