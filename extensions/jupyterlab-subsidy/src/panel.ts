/**
 * The sidebar panel: per project, allocation, used, left, subsidy rate, burn rate, time left,
 * co-pay this month (for project managers, from the month's statement), quota use as bars and
 * the last 7 days' spending per day as a bar chart (with the amounts as a table); then this
 * server's rates, running cost and scheduled stop; and, for a GPU server, its GPU use: a
 * sparkline of recent utilisation, its idle time, when it stops if its GPUs stay idle, and
 * Keep it.
 *
 * It renders only while visible and asks for a fresh answer when it is shown. The GPU use
 * (`subsidy/gpu-usage`) is read only while the panel is visible, each time the service
 * samples (at least 5 s apart).
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { IPoll, Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import {
  ILimit,
  ICurrencyDisplay,
  IMe,
  IProject,
  ISession,
  Severity,
  weekLine,
  chooseProject,
  clock,
  duration,
  money,
  ownSession,
  percent,
  severity,
  toMicro,
  warningText
} from './format';
import {
  IGpuUsagePlot,
  gpuPollSeconds,
  idleFor,
  idleStop,
  idleTotal,
  latestUse,
  offersKeepNow,
  sparkline,
  sparklineLabel
} from './idlegpu';
import { KEEP_CAPTION, KEEP_LABEL, keepThisServer } from './keep';
import { SubsidyModel } from './model';
import { requestSubsidy } from './request';

const COIN_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161"><path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 ' +
  '18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm.9-9.1c-2-.5-2.6-1-2.6-1.8 0-.9.9-1.5 2.3-1.5 1.5 0 2 .7 ' +
  '2.1 1.7h1.8c-.1-1.4-.9-2.7-2.6-3.1V4.5h-2.4v1.7c-1.6.3-2.8 1.4-2.8 2.9 0 1.8 1.5 2.7 3.7 ' +
  '3.2 2 .5 2.4 1.2 2.4 1.9 0 .5-.4 1.4-2.3 1.4-1.7 0-2.4-.8-2.5-1.7H7.3c.1 1.8 1.4 2.8 3 3.1' +
  'v1.7h2.4v-1.7c1.6-.3 2.8-1.2 2.8-2.9 0-2.3-2-3.1-3.7-3.5z"/></g></svg>';

export const coinIcon = new LabIcon({
  name: 'jupyterlab-subsidy:coin',
  svgstr: COIN_SVG
});

type Child = Node | string | null | undefined | false;

/** A DOM element with attributes and children (strings become text: no HTML injection). */
function h(
  tag: string,
  attributes: Record<string, string> = {},
  ...children: Child[]
): HTMLElement {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(child);
    }
  }
  return element;
}

/**
 * A labelled bar filled to `used` of `limit`; a quota turns orange at 75% and red at 90%
 * unless `level` is given (the balance bar takes the service's own warning level).
 */
function bar(
  label: string,
  used: number,
  limit: number,
  text: string,
  level?: Severity
): HTMLElement {
  const fraction = limit > 0 ? Math.min(1, Math.max(0, used / limit)) : 0;
  level ??= fraction >= 0.9 ? 'critical' : fraction >= 0.75 ? 'warning' : 'ok';
  const fill = h('div', {
    class: 'jp-subsidy-bar-fill',
    style: `width: ${(fraction * 100).toFixed(1)}%`
  });
  return h(
    'div',
    { class: 'jp-subsidy-bar', 'data-severity': level },
    h(
      'div',
      { class: 'jp-subsidy-bar-label' },
      h('span', {}, label),
      h('span', {}, text)
    ),
    h('div', { class: 'jp-subsidy-bar-track' }, fill)
  );
}

function row(term: string, value: string, title?: string): HTMLElement[] {
  const definition = h('dd', title ? { title } : {}, value);
  return [h('dt', {}, term), definition];
}

/** A number of a limit's unit as shown: hours to one decimal, counts whole. */
function amountOf(value: number, declared: ILimit): string {
  return declared.kind === 'hours' ? value.toFixed(1) : String(value);
}

/**
 * A bar per count or hours limit in force, from the service's declarations: used (from
 * `usage`, or this server's running time for a per-server limit) of the limit.
 */
function limitBars(
  project: IProject,
  declared: ILimit[],
  session: ISession | null
): HTMLElement[] {
  const bars: HTMLElement[] = [];
  for (const d of declared) {
    const limit = project.quota[d.name];
    if (d.kind === 'names' || limit === null || limit === undefined) {
      continue;
    }
    const used =
      d.measure === 'server_ms'
        ? session && (Date.now() - Date.parse(session.started)) / 3_600_000
        : project.usage?.[d.name];
    if (used === null || used === undefined) {
      continue;
    }
    const value = Number(used);
    bars.push(
      bar(
        d.label,
        value,
        Number(limit),
        `${amountOf(value, d)} of ${limit} ${d.unit}`
      )
    );
  }
  return bars;
}

/** A row per limit on names (profiles, GPU types) in force. */
function limitTerms(project: IProject, declared: ILimit[]): HTMLElement[] {
  return declared
    .filter(d => d.kind === 'names' && project.quota[d.name] !== null)
    .flatMap(d =>
      row(d.label, (project.quota[d.name] as string[]).join(', ') || 'none')
    );
}

/** One UTC day of a project's spending, as `GET me/spending` gives it. */
interface IDay {
  date: string;
  list: string;
  subsidy: string;
  copay: string;
}

type Spending = Record<string, IDay[]>;

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag: string, attributes: Record<string, string>): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, value);
  }
  return element;
}

/** Bars of subsidy with co-pay stacked on top, one per day, and the amounts as a table. */
function plot(days: IDay[], display: ICurrencyDisplay): HTMLElement | null {
  if (days.length === 0) {
    return null;
  }
  const weekday = (date: string) =>
    new Date(`${date}T00:00:00Z`).toLocaleDateString(undefined, {
      weekday: 'short',
      timeZone: 'UTC'
    });
  const highest = days.reduce(
    (m, d) => (toMicro(d.list) > m ? toMicro(d.list) : m),
    0n
  );
  const [width, height, step] = [240, 48, 240 / days.length];
  const scale = (micro: bigint) =>
    highest > 0n ? Number((micro * BigInt(height * 100)) / highest) / 100 : 0;
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height + 12}`,
    class: 'jp-subsidy-plot',
    'aria-hidden': 'true'
  });
  days.forEach((day, i) => {
    const subsidy = scale(toMicro(day.subsidy));
    const copay = scale(toMicro(day.copay));
    const x = (i * step + step * 0.15).toFixed(1);
    const barWidth = (step * 0.7).toFixed(1);
    const group = svg('g', { class: 'jp-subsidy-day', 'data-date': day.date });
    const title = svg('title', {});
    title.textContent = `${day.date}: ${money(day.subsidy, display)} subsidy + ${money(day.copay, display)} co-pay`;
    const label = svg('text', {
      x: (i * step + step / 2).toFixed(1),
      y: `${height + 10}`
    });
    label.textContent = weekday(day.date);
    group.append(
      title,
      svg('rect', {
        class: 'jp-subsidy-subsidy',
        x,
        y: (height - subsidy).toFixed(1),
        width: barWidth,
        height: subsidy.toFixed(1)
      }),
      svg('rect', {
        class: 'jp-subsidy-copay',
        x,
        y: (height - subsidy - copay).toFixed(1),
        width: barWidth,
        height: copay.toFixed(1)
      }),
      label
    );
    chart.append(group);
  });
  return h(
    'figure',
    { class: 'jp-subsidy-figure' },
    h(
      'figcaption',
      {},
      `Spending per day (UTC), last ${days.length} days: `,
      h('span', { class: 'jp-subsidy-key-subsidy' }, 'subsidy'),
      ' + ',
      h('span', { class: 'jp-subsidy-key-copay' }, 'co-pay')
    ),
    chart as unknown as HTMLElement,
    h(
      'details',
      {},
      h('summary', {}, 'Amounts per day'),
      h(
        'table',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'Day (UTC)'),
          h('th', {}, 'Subsidy'),
          h('th', {}, 'Co-pay')
        ),
        ...days.map(day =>
          h(
            'tr',
            {},
            h('td', {}, day.date),
            h('td', {}, money(day.subsidy, display)),
            h('td', {}, money(day.copay, display))
          )
        )
      )
    )
  );
}

/** "idle for 12 min" as the start of a line: "Idle for 12 min". */
function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * A GPU server's utilisation over time (`idlegpu.ts` computes the geometry): the line, the
 * threshold dashed, idle time shaded and idle samples dotted; summarised for screen readers.
 */
function gpuSparkline(plot: IGpuUsagePlot, nowMs: number): HTMLElement {
  const line = sparkline(plot.samples, plot.threshold_percent);
  const label = sparklineLabel(plot, nowMs);
  const chart = svg('svg', {
    viewBox: `0 0 ${line.width} ${line.height}`,
    class: 'jp-subsidy-sparkline',
    role: 'img',
    'aria-label': label
  });
  const title = svg('title', {});
  title.textContent = label;
  chart.append(title);
  for (const band of line.idleBands) {
    chart.append(
      svg('rect', {
        class: 'jp-subsidy-gpu-idle-band',
        x: String(band.x),
        y: '0',
        width: String(band.width),
        height: String(line.height)
      })
    );
  }
  chart.append(
    svg('line', {
      class: 'jp-subsidy-gpu-threshold',
      x1: '0',
      x2: String(line.width),
      y1: String(line.thresholdY),
      y2: String(line.thresholdY)
    }),
    svg('polyline', { class: 'jp-subsidy-gpu-line', points: line.points })
  );
  for (const dot of line.idle) {
    chart.append(
      svg('circle', {
        class: 'jp-subsidy-gpu-idle-dot',
        cx: String(dot.x),
        cy: String(dot.y),
        r: '1.5'
      })
    );
  }
  return h(
    'figure',
    { class: 'jp-subsidy-figure' },
    h(
      'figcaption',
      {},
      'Utilisation of its busiest GPU; below the dashed line (',
      `${plot.threshold_percent}%`,
      ') counts as ',
      h('span', { class: 'jp-subsidy-key-gpu-idle' }, 'idle'),
      '.'
    ),
    chart as unknown as HTMLElement
  );
}

export class SubsidyPanel extends Widget {
  constructor(private readonly _model: SubsidyModel) {
    super();
    this.id = 'jp-subsidy-panel';
    this.addClass('jp-subsidy-panel');
    this.title.icon = coinIcon;
    this.title.caption = 'Subsidy: balance, burn rate and time left';
    this._model.changed.connect(this._onChanged, this);
    // Stands by while the panel (or the page) is hidden: nobody reads the plot then.
    this._gpuPoll = new Poll({
      auto: true,
      factory: () => this._loadGpuUsage(),
      frequency: gpuPollFrequency(null),
      name: 'jupyterlab-subsidy:gpu-usage',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._gpuPoll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    void this._model.refresh();
    void this._gpuPoll.refresh();
    this._onChanged();
  }

  private _onChanged(): void {
    if (!this.isVisible) {
      return;
    }
    this._render();
    void this._loadExtras();
  }

  /** Spending per day and, for managers, this month's co-pay; both optional. */
  private async _loadExtras(): Promise<void> {
    const me = this._model.me;
    if (!me) {
      return;
    }
    try {
      const answer = await requestSubsidy<{
        projects: { slug: string; days: IDay[] }[];
      }>('spending');
      this._spending = Object.fromEntries(
        answer.projects.map(p => [p.slug, p.days])
      );
    } catch {
      this._spending = {};
    }
    const now = Date.now();
    for (const project of me.projects) {
      const known = this._copay.get(project.slug);
      if (project.role !== 'manager' || (known && now - known.at < 60_000)) {
        continue;
      }
      try {
        const statement = await requestSubsidy<{ totals: { copay: string } }>(
          `projects/${encodeURIComponent(project.slug)}/statement`
        );
        this._copay.set(project.slug, {
          at: now,
          copay: statement.totals.copay
        });
      } catch {
        this._copay.set(project.slug, { at: now, copay: null });
      }
    }
    this._render();
  }

  private _render(): void {
    const me = this._model.me;
    const error = this._model.error;
    const children: Child[] = [h('h2', {}, 'Subsidy')];
    if (error !== null) {
      children.push(h('p', { class: 'jp-subsidy-error' }, error));
    }
    if (me === null) {
      children.push(h('p', {}, error === null ? 'Loading…' : ''));
    } else if (me.projects.length === 0) {
      children.push(h('p', {}, `${me.user} is not a member of any project.`));
    } else {
      const own = chooseProject(me);
      const session = ownSession(me);
      const ordered = [own, ...me.projects.filter(p => p !== own)];
      for (const project of ordered) {
        if (project) {
          children.push(
            this._project(
              project,
              me.limits,
              project === own ? session : null,
              me.currency_display
            )
          );
        }
      }
      children.push(this._server(me, session));
      children.push(this._gpuUse(session));
      children.push(
        h('p', { class: 'jp-subsidy-updated' }, `Updated ${clock(me.at)}`)
      );
    }
    this.node.replaceChildren(
      ...children.filter((c): c is Node | string => !!c)
    );
  }

  /** A course's student: their limits and their use of them, not the course's money. */
  private _student(
    project: IProject,
    declared: ILimit[],
    session: ISession | null
  ): HTMLElement {
    return h(
      'section',
      {
        class: 'jp-subsidy-project',
        'data-project': project.slug,
        'data-severity': severity(project)
      },
      h('h3', {}, project.name, h('small', {}, ` ${project.slug} · student`)),
      project.warnings.length > 0 &&
        h(
          'ul',
          { class: 'jp-subsidy-warnings' },
          ...project.warnings.map(w =>
            h('li', { 'data-level': w.level }, warningText(project, w))
          )
        ),
      h('dl', {}, ...limitTerms(project, declared)),
      h('h4', {}, `Your allowance · ${weekLine(project)}`),
      ...limitBars(project, declared, session)
    );
  }

  private _project(
    project: IProject,
    declared: ILimit[],
    session: ISession | null,
    display: ICurrencyDisplay
  ): HTMLElement {
    const { allocated: allocatedText, balance: balanceText } = project;
    const { available, burn_rate_per_hour: burn } = project;
    // The service sends the money fields to everyone but a course's student.
    if (
      project.student ||
      allocatedText === null ||
      allocatedText === undefined ||
      balanceText === null ||
      balanceText === undefined ||
      available === null ||
      available === undefined ||
      burn === null ||
      burn === undefined
    ) {
      return this._student(project, declared, session);
    }
    const allocated = toMicro(allocatedText);
    const balance = toMicro(balanceText);
    const left = duration(project.time_left_seconds);
    const copay = this._copay.get(project.slug)?.copay;
    const terms: HTMLElement[] = [
      ...row('Allocated', money(allocated, display)),
      ...row('Used', money(allocated - balance, display)),
      ...row('Left', money(balance, display)),
      ...row(
        'Available',
        money(available, display),
        'Left, less what running servers hold for their minimum billable period'
      ),
      ...row(
        'Subsidy pays',
        percent(project.subsidy_rate) + ' of the list price'
      ),
      ...row(
        'Burn rate',
        `${money(burn, display)}/h (${project.running_servers} server${project.running_servers === 1 ? '' : 's'})`
      ),
      ...row(
        'Time left',
        left === null
          ? 'nothing running'
          : `${left}, until ${clock(project.exhaustion_at)}`
      )
    ];
    if (copay) {
      terms.push(
        ...row(
          'Co-pay this month',
          money(copay, display),
          'Whole project, charged so far'
        )
      );
    }
    terms.push(...limitTerms(project, declared));
    const bars = limitBars(project, declared, session);
    if (bars.length === 0) {
      bars.push(
        h(
          'p',
          { class: 'jp-subsidy-note' },
          'No GPU or session limits on this project.'
        )
      );
    }
    const leftFraction =
      allocated > 0n ? Number((balance * 1000n) / allocated) / 1000 : 0;
    return h(
      'section',
      {
        class: 'jp-subsidy-project',
        'data-project': project.slug,
        'data-severity': severity(project)
      },
      h(
        'h3',
        {},
        project.name,
        h(
          'small',
          {},
          ` ${project.slug}${project.role ? ' · ' + project.role : ''}`
        )
      ),
      project.warnings.length > 0 &&
        h(
          'ul',
          { class: 'jp-subsidy-warnings' },
          ...project.warnings.map(w =>
            h('li', { 'data-level': w.level }, warningText(project, w))
          )
        ),
      bar(
        'Left',
        Math.max(0, leftFraction),
        1,
        `${money(balance, display)} of ${money(allocated, display)}`,
        severity(project)
      ),
      h('dl', {}, ...terms),
      h('h4', {}, 'Quotas'),
      ...bars,
      plot(this._spending[project.slug] ?? [], display)
    );
  }

  private _server(me: IMe, session: ISession | null): HTMLElement {
    if (session === null) {
      return h(
        'section',
        { class: 'jp-subsidy-server' },
        h('h3', {}, 'This server'),
        h(
          'p',
          {},
          'The subsidy service has no running session for this server.'
        )
      );
    }
    const project = me.projects.find(p => p.slug === session.project);
    const display = me.currency_display;
    const list = toMicro(session.list_rate_per_hour);
    const subsidy = toMicro(session.subsidy_rate_per_hour);
    const stops: { at: string; why: string }[] = [];
    if (session.max_stop_at) {
      stops.push({
        at: session.max_stop_at,
        why: 'the longest session the project allows'
      });
    }
    if (project?.exhaustion_at) {
      stops.push({
        at: project.exhaustion_at,
        why: `project ${project.slug}'s subsidy runs out`
      });
    }
    stops.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const stop = stops[0];
    return h(
      'section',
      { class: 'jp-subsidy-server' },
      h('h3', {}, 'This server'),
      h(
        'dl',
        {},
        ...row('Profile', `${session.profile} in ${session.project}`),
        ...row(
          'Rate',
          `${money(list, display)}/h: ${money(subsidy, display)} subsidy + ${money(list - subsidy, display)} co-pay`
        ),
        ...row('Started', clock(session.started)),
        ...row(
          'Cost so far',
          `${money(session.cost.list, display)} (co-pay ${money(session.cost.copay, display)})`
        ),
        ...row(
          'Stops',
          stop ? `${clock(stop.at)}, when ${stop.why}` : 'when you stop it'
        )
      )
    );
  }

  /** This GPU server's recent utilisation (`subsidy/gpu-usage`); read while visible. */
  private async _loadGpuUsage(): Promise<void> {
    const session = this._model.session;
    if (!this.isVisible || !session?.gpu_usage) {
      return; // not shown, or not a GPU server: nothing to plot
    }
    try {
      this._gpu = await requestSubsidy<IGpuUsagePlot>('gpu-usage');
      this._gpuError = null;
    } catch (error) {
      this._gpuError = error instanceof Error ? error.message : String(error);
      this._render();
      throw error; // the poll backs off after a rejection
    }
    this._gpuPoll.frequency = gpuPollFrequency(this._gpu);
    this._render();
  }

  /** Keep it from the panel: the button waits for the answer, which is a notification. */
  private async _keep(): Promise<void> {
    this._keeping = true;
    this._render();
    try {
      if (await keepThisServer(this._model)) {
        await this._gpuPoll.refresh();
      }
    } finally {
      this._keeping = false;
      this._render();
    }
  }

  /** A GPU server's GPU use; null for a CPU server. */
  private _gpuUse(session: ISession | null): HTMLElement | null {
    if (!session?.gpu_usage) {
      return null;
    }
    const plot =
      this._gpu !== null && this._gpu.session_id === session.id
        ? this._gpu
        : null;
    const usage = plot?.usage ?? session.gpu_usage;
    const now = Date.now();
    const latest = plot && latestUse(plot);
    const stop = idleStop(usage);
    let keep: HTMLElement | null = null;
    if (plot && offersKeepNow(plot)) {
      keep = h(
        'button',
        {
          class: 'jp-Button jp-mod-styled jp-mod-accept jp-subsidy-keep',
          type: 'button',
          title: KEEP_CAPTION
        },
        KEEP_LABEL
      );
      (keep as HTMLButtonElement).disabled = this._keeping;
      keep.addEventListener('click', () => void this._keep());
    }
    return h(
      'section',
      {
        class: 'jp-subsidy-gpu',
        'data-idle': usage.idle_since === null ? 'false' : 'true'
      },
      h('h3', {}, 'GPU use'),
      this._gpuError !== null &&
        h('p', { class: 'jp-subsidy-error' }, this._gpuError),
      plot
        ? gpuSparkline(plot, now)
        : this._gpuError === null &&
            h('p', { class: 'jp-subsidy-note' }, 'Reading GPU use…'),
      latest && h('p', { class: 'jp-subsidy-gpu-now' }, latest),
      h(
        'p',
        { class: 'jp-subsidy-gpu-idle' },
        `${capitalised(idleFor(usage.idle_since, now))} · ${idleTotal(usage)}`
      ),
      stop &&
        h(
          'p',
          { class: 'jp-subsidy-gpu-stop' },
          capitalised(stop),
          usage.kept_at
            ? ` (kept once already, at ${clock(usage.kept_at)})`
            : '',
          keep && ' ',
          keep
        )
    );
  }

  private _spending: Spending = {};
  private _copay = new Map<string, { at: number; copay: string | null }>();
  private _gpuPoll: Poll;
  private _gpu: IGpuUsagePlot | null = null;
  private _gpuError: string | null = null;
  private _keeping = false;
}

/** Read the GPU use each time the service samples; after errors back off to ten times that. */
function gpuPollFrequency(plot: IGpuUsagePlot | null): IPoll.Frequency {
  const interval = gpuPollSeconds(plot) * 1000;
  return { interval, backoff: true, max: 10 * interval };
}
