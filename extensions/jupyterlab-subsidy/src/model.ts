/**
 * The balance as this JupyterLab page knows it: one Lumino `Poll` of `subsidy/me` shared by
 * the status bar, the panel and the notifier.
 *
 * The poll stands by while the page is hidden (a background tab costs the service nothing)
 * and backs off after errors up to ten intervals, so a service that is down is not hammered;
 * the last good answer stays on show with the error beside it.
 */
import { IPoll, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IMe, IProject, ISession, chooseProject, ownSession } from './format';
import { requestSubsidy } from './request';

export class SubsidyModel {
  constructor(refreshSeconds: number) {
    this._poll = new Poll({
      auto: true,
      factory: () => this._fetch(),
      frequency: pollFrequency(refreshSeconds),
      name: 'jupyterlab-subsidy:me',
      standby: 'when-hidden'
    });
  }

  /** Emitted after every poll, successful or not. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last good answer, or null before the first one. */
  get me(): IMe | null {
    return this._me;
  }

  /** The message of the last failed poll; null once a poll succeeds again. */
  get error(): string | null {
    return this._error;
  }

  /** The project this server is charged to (or the user's first). */
  get project(): IProject | null {
    return this._me ? chooseProject(this._me) : null;
  }

  /** This server's running session. */
  get session(): ISession | null {
    return this._me ? ownSession(this._me) : null;
  }

  set refreshSeconds(seconds: number) {
    this._poll.frequency = pollFrequency(seconds);
  }

  /** Poll now (the panel calls this when it is opened). */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _fetch(): Promise<void> {
    try {
      this._me = await requestSubsidy<IMe>('me');
      this._error = null;
    } catch (error) {
      this._error = error instanceof Error ? error.message : String(error);
      this._changed.emit();
      throw error; // the poll backs off after a rejection
    }
    this._changed.emit();
  }

  private _poll: Poll;
  private _me: IMe | null = null;
  private _error: string | null = null;
  private _changed = new Signal<this, void>(this);
}

/** Poll every `seconds` (at least 2); after errors back off to ten times that. */
function pollFrequency(seconds: number): IPoll.Frequency {
  const interval = Math.max(2, seconds) * 1000;
  return { interval, backoff: true, max: 10 * interval };
}
