/**
 * Idle GPUs as this server's owner reads them: the words and the sparkline of the panel's
 * "GPU use" section, and the outcome of Keep it. Pure functions with no JupyterLab in them,
 * so they can be run under node (tests/extension/test_idle_gpu.py); `panel.ts` draws what
 * they compute and `keep.ts` sends the press.
 *
 * The service samples each GPU server's busiest GPU; a sample below the threshold is idle,
 * and it counts the wall time since the previous sample as idle time. The sparkline shows the
 * same: utilisation over time, the threshold as a dashed line, and each idle sample's span
 * shaded.
 */
import type { components } from './api';
import { clock } from './format';

type Schemas = components['schemas'];
/** `GET users/{name}/gpu-usage`: a GPU server's recent samples and idle state. */
export type IGpuUsagePlot = Schemas['GpuUsagePlot'];
export type IGpuSample = Schemas['GpuSamplePoint'];
/** A GPU server's idle state, as `GET me`'s sessions and the plot carry it. */
export type IGpuUsage = Schemas['GpuUsage'];
/** `POST users/{name}/keep`'s answer. */
export type IKept = Schemas['IdleKept'];

/** The sparkline's drawing box, in SVG user units. */
export const SPARK_WIDTH = 240;
export const SPARK_HEIGHT = 40;
/** Room above 100% and below 0% so a line at either edge is not cut in half. */
const PAD = 2;
/** The panel never asks for the plot more often than this. */
const MIN_POLL_SECONDS = 5;

/** What the panel draws: all coordinates rounded to 0.1 of a unit. */
export interface ISparkline {
  width: number;
  height: number;
  /** The polyline's `points`: "x,y x,y …", oldest first. */
  points: string;
  /** Where the dashed threshold line is. */
  thresholdY: number;
  /** The idle samples' points (drawn as dots). */
  idle: { x: number; y: number }[];
  /** The idle time, as bands: each idle sample covers the time since the previous one. */
  idleBands: { x: number; width: number }[];
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/**
 * The sparkline of `samples` (oldest first) against time: x from the first sample to the
 * last (a single sample sits at the right edge), y from 100% at the top to 0% at the bottom.
 */
export function sparkline(
  samples: IGpuSample[],
  thresholdPercent: number,
  width = SPARK_WIDTH,
  height = SPARK_HEIGHT
): ISparkline {
  const yOf = (percent: number) =>
    round1(
      PAD + (1 - Math.min(100, Math.max(0, percent)) / 100) * (height - 2 * PAD)
    );
  const times = samples.map(s => Date.parse(s.at));
  const first = times[0] ?? 0;
  const span = (times[times.length - 1] ?? 0) - first;
  const xOf = (ms: number) =>
    round1(span > 0 ? ((ms - first) / span) * width : width);
  const xs = times.map(xOf);
  const idle: { x: number; y: number }[] = [];
  const idleBands: { x: number; width: number }[] = [];
  samples.forEach((sample, i) => {
    if (!sample.idle) {
      return;
    }
    const x = xs[i];
    idle.push({ x, y: yOf(sample.utilisation_pct) });
    const from = i > 0 ? xs[i - 1] : x;
    const last = idleBands[idleBands.length - 1];
    if (last && i > 0 && samples[i - 1].idle) {
      last.width = round1(x - last.x);
    } else {
      idleBands.push({ x: from, width: round1(x - from) });
    }
  });
  return {
    width,
    height,
    points: samples
      .map((s, i) => `${xs[i]},${yOf(s.utilisation_pct)}`)
      .join(' '),
    thresholdY: yOf(thresholdPercent),
    idle,
    idleBands
  };
}

/** `< 1 min`, `12 min`, `90 min`, `2 h 05 min`: a span of time, cut down to the whole minute. */
export function minutesText(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) {
    return '< 1 min';
  }
  if (minutes < 120) {
    return `${minutes} min`;
  }
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** `idle for 12 min` (now − `idle_since`), or `busy` while its GPUs work. */
export function idleFor(idleSince: string | null, nowMs: number): string {
  return idleSince === null
    ? 'busy'
    : `idle for ${minutesText(nowMs - Date.parse(idleSince))}`;
}

/** `10.5 GiB`: GPU memory from MiB, to one decimal. */
export function gibibytes(mib: number): string {
  return `${(mib / 1024).toFixed(1)} GiB`;
}

/** `idle GPU time so far: 0.42 h` */
export function idleTotal(usage: IGpuUsage): string {
  return `idle GPU time so far: ${usage.idle_hours} h`;
}

/** `stops at 15:10 if still idle`, or null when no stop is due (busy, or never stopped). */
export function idleStop(usage: IGpuUsage): string | null {
  return usage.stops_at
    ? `stops at ${clock(usage.stops_at)} if still idle`
    : null;
}

/** Whether the panel offers Keep it: a stop is due for idle GPUs and it was not kept yet. */
export function offersKeepNow(plot: IGpuUsagePlot): boolean {
  return plot.can_keep && !!plot.usage.stops_at;
}

/**
 * The plot's summary for screen readers: "GPU utilisation over the last 60 min: now 3%,
 * idle for 12 min", or that nothing was read yet.
 */
export function sparklineLabel(plot: IGpuUsagePlot, nowMs: number): string {
  const samples = plot.samples;
  if (samples.length === 0) {
    return 'GPU utilisation: not read yet';
  }
  const latest = samples[samples.length - 1];
  const over = minutesText(nowMs - Date.parse(samples[0].at));
  return (
    `GPU utilisation over the last ${over}: now ${latest.utilisation_pct}%, ` +
    idleFor(plot.usage.idle_since, nowMs)
  );
}

/** `Now 3% · 10.5 GiB of GPU memory`, from the latest sample; null before the first. */
export function latestUse(plot: IGpuUsagePlot): string | null {
  const latest = plot.samples[plot.samples.length - 1];
  return latest
    ? `Now ${latest.utilisation_pct}% · ${gibibytes(latest.memory_mib)} of GPU memory`
    : null;
}

/** Seconds between the panel's reads of the plot: the service's sampling, at least 5 s. */
export function gpuPollSeconds(plot: IGpuUsagePlot | null): number {
  return Math.max(MIN_POLL_SECONDS, plot?.sample_seconds ?? MIN_POLL_SECONDS);
}

/**
 * What Keep it did: "Kept: this server runs on; if its GPUs stay idle, it stops at 15:10."
 */
export function keptNotice(kept: IKept): string {
  return kept.stops_at
    ? `Kept: this server runs on; if its GPUs stay idle, it stops at ${clock(kept.stops_at)}.`
    : 'Kept: this server runs on.';
}
