import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';

import { JobSummary, isTerminal } from '../api/job.model';
import { Clock } from '../core/clock.service';
import { estimateFinish, formatClock, formatRelative, formatTimestamp } from './eta';

interface TimingText {
  main: string;
  relative: string;
  title: string;
}

/** When a scheduled job starts: "Starts at 14:05:09 · in 12 s" (or "· due now"). */
export function startText(job: JobSummary, now: number): TimingText | null {
  if (job.status !== 'scheduled' || !job.run_at) {
    return null;
  }
  const at = Date.parse(job.run_at);
  if (Number.isNaN(at)) {
    return null;
  }
  return {
    main: `Starts at ${formatClock(at, now)}`,
    relative: at > now ? formatRelative(at, now) : 'due now',
    title: `Scheduled to start ${formatTimestamp(job.run_at)}`,
  };
}

/**
 * "≈ 14:05:09 · in 12 s" for unfinished jobs, "14:05:09 · 3 min ago" for finished ones;
 * a scheduled job first says when it starts (unless `showStart` is off).
 */
@Component({
  selector: 'app-job-timing',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (showStart() && start(); as s) {
      <span class="timing-start" data-testid="starts-at">
        <span [attr.title]="s.title">{{ s.main }}</span>
        <span class="muted"> · {{ s.relative }}</span>
      </span>
    }
    @if (text(); as t) {
      <span [attr.title]="t.title">{{ t.main }}</span>
      <span class="muted"> · {{ t.relative }}</span>
    } @else {
      <span class="muted">—</span>
    }
  `,
})
export class JobTiming {
  private readonly clock = inject(Clock);
  readonly job = input.required<JobSummary>();
  readonly showStart = input(true);

  protected readonly start = computed(() => startText(this.job(), this.clock.now()));

  protected readonly text = computed(() => {
    const job = this.job();
    const now = this.clock.now();
    if (isTerminal(job.status)) {
      const at = job.finished_at ?? job.updated_at;
      const time = Date.parse(at);
      return Number.isNaN(time)
        ? null
        : {
            main: formatClock(time, now),
            relative: formatRelative(time, now),
            title: `Finished ${formatTimestamp(at)}`,
          };
    }
    const eta = estimateFinish(job, now);
    if (!eta) {
      return null;
    }
    const basis =
      eta.basis === 'progress'
        ? 'from the progress so far'
        : job.status === 'scheduled'
          ? 'from its start time and the estimated time'
          : 'from the estimated time';
    return {
      main: `≈ ${formatClock(eta.finishAt, now)}`,
      relative: formatRelative(eta.finishAt, now),
      title: `Estimated finish ${formatTimestamp(new Date(eta.finishAt).toISOString())}, ${basis}`,
    };
  });
}
