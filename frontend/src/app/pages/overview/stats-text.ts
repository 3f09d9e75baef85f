import { MinuteCounts, QueueDepth, TaskTimes } from '../../api/stats.model';
import { formatDuration } from '../../shared/eta';

/** The final statuses the per-minute chart stacks, bottom to top. */
export const FINAL_STATUSES = ['succeeded', 'failed', 'cancelled'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];

const pad = (n: number): string => String(n).padStart(2, '0');
const count = new Intl.NumberFormat('en');

/** "1,234". */
export function formatCount(n: number): string {
  return count.format(n);
}

/** A minute's start, in local time: "14:05". */
export function minuteLabel(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "0.8 ms", "12 ms", "3.4 s", "2 min 5 s". */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) {
    return '0 ms';
  }
  if (ms < 10) {
    return `${Number(ms.toFixed(1))} ms`;
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60_000) {
    return `${Number((ms / 1000).toFixed(1))} s`;
  }
  return formatDuration(ms / 1000);
}

/** How a queue is named on the charts: "standard (rq)". */
export function queueLabel(queue: QueueDepth): string {
  return `${queue.name} (${queue.kind})`;
}

export interface MinuteTotals {
  succeeded: number;
  failed: number;
  cancelled: number;
  all: number;
  busiest: MinuteCounts | null;
}

export function minuteTotals(minutes: readonly MinuteCounts[]): MinuteTotals {
  const totals: MinuteTotals = { succeeded: 0, failed: 0, cancelled: 0, all: 0, busiest: null };
  let most = 0;
  for (const minute of minutes) {
    const all = minute.succeeded + minute.failed + minute.cancelled;
    totals.succeeded += minute.succeeded;
    totals.failed += minute.failed;
    totals.cancelled += minute.cancelled;
    totals.all += all;
    if (all > most) {
      most = all;
      totals.busiest = minute;
    }
  }
  return totals;
}

/** The per-minute chart in one sentence, for screen readers. */
export function minutesSummary(minutes: readonly MinuteCounts[]): string {
  const totals = minuteTotals(minutes);
  if (totals.all === 0) {
    return 'No job finished in the last hour.';
  }
  const busiest = totals.busiest;
  const most = busiest ? busiest.succeeded + busiest.failed + busiest.cancelled : 0;
  return (
    `Jobs finished per minute over the last hour: ${formatCount(totals.all)} in all, ` +
    `${formatCount(totals.succeeded)} succeeded, ${formatCount(totals.failed)} failed, ` +
    `${formatCount(totals.cancelled)} cancelled` +
    (busiest
      ? `; the busiest minute, ${minuteLabel(busiest.minute)}, had ${formatCount(most)}.`
      : '.')
  );
}

/** The queue chart in one sentence. */
export function queuesSummary(queues: readonly QueueDepth[]): string {
  if (queues.length === 0) {
    return 'No queues reported.';
  }
  const parts = queues.map((queue) => `${queueLabel(queue)} ${formatCount(queue.depth)}`);
  return `Messages waiting per queue: ${parts.join(', ')}.`;
}

/** A time chart (run time or queue wait per task) in one sentence. */
export function taskTimesSummary(tasks: readonly TaskTimes[], what: 'run' | 'wait'): string {
  const title = what === 'run' ? 'Run time' : 'Queue wait';
  if (tasks.length === 0) {
    return `${title} per task: no runs recorded yet.`;
  }
  const parts = tasks.map((task) => {
    const [p50, p95] =
      what === 'run' ? [task.run_p50_ms, task.run_p95_ms] : [task.wait_p50_ms, task.wait_p95_ms];
    return `${task.task} ${formatMs(p50)} median, ${formatMs(p95)} 95th percentile`;
  });
  return `${title} per task: ${parts.join('; ')}.`;
}
