import { JobSummary, isTerminal } from '../api/job.model';

/** When a job should finish, and what the guess rests on. */
export interface Eta {
  finishAt: number;
  remainingSeconds: number;
  /** progress: extrapolated from progress so far; estimate: from estimated_time alone. */
  basis: 'progress' | 'estimate';
}

// Below this much progress the extrapolation is mostly noise.
const MIN_PROGRESS_FOR_EXTRAPOLATION = 2;

/**
 * When a scheduled job should start (ms since epoch): its run_at, or now once that has
 * passed (due, waiting for the dispatcher). Null for any other job.
 */
export function scheduledStart(job: JobSummary, now: number): number | null {
  if (job.status !== 'scheduled' || !job.run_at) {
    return null;
  }
  const at = Date.parse(job.run_at);
  return Number.isNaN(at) ? null : Math.max(at, now);
}

/**
 * Estimate a queued or running job's finish time (ms since epoch), from its
 * estimated_time and the progress it has reported; a scheduled job's counts from its
 * run_at. Null for finished jobs and when there is nothing to go on.
 */
export function estimateFinish(job: JobSummary, now: number): Eta | null {
  if (isTerminal(job.status)) {
    return null;
  }
  const estimate = job.estimated_time;
  const started = job.started_at ? Date.parse(job.started_at) : NaN;
  const running = job.status === 'running' && !Number.isNaN(started);

  if (running) {
    const elapsed = Math.max(0, (now - started) / 1000);
    const progress = Math.min(100, Math.max(0, job.progress));
    if (progress >= MIN_PROGRESS_FOR_EXTRAPOLATION) {
      const remaining = (elapsed * (100 - progress)) / progress;
      return { finishAt: now + remaining * 1000, remainingSeconds: remaining, basis: 'progress' };
    }
    if (estimate !== null) {
      const remaining = Math.max(0, estimate - elapsed);
      return { finishAt: now + remaining * 1000, remainingSeconds: remaining, basis: 'estimate' };
    }
    return null;
  }
  // created, scheduled, queued, retrying: not started (again) yet, so at least the whole
  // estimate, from now or from when a scheduled job is due.
  if (estimate !== null) {
    const start = scheduledStart(job, now) ?? now;
    const remaining = (start - now) / 1000 + estimate;
    return { finishAt: start + estimate * 1000, remainingSeconds: remaining, basis: 'estimate' };
  }
  return null;
}

/** "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    const rest = s % 60;
    return rest ? `${m} min ${rest} s` : `${m} min`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    const rest = m % 60;
    return rest ? `${h} h ${rest} min` : `${h} h`;
  }
  const d = Math.floor(h / 24);
  const rest = h % 24;
  return rest ? `${d} d ${rest} h` : `${d} d`;
}

/** "in 12 s", "3 min ago", "just now". */
export function formatRelative(timestamp: number, now: number): string {
  const delta = (timestamp - now) / 1000;
  if (Math.abs(delta) < 1.5) {
    return 'just now';
  }
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}

/** Local wall-clock time: "14:05:09" today, "2026-11-01 14:05" otherwise. */
export function formatClock(timestamp: number, now: number): string {
  const date = new Date(timestamp);
  const today = new Date(now);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (date.toDateString() === today.toDateString()) {
    return time;
  }
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${time.slice(0, 5)}`;
}

/** Full local timestamp for tooltips and the detail page: "2026-11-01 14:05:09". */
export function formatTimestamp(iso: string | null): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}
