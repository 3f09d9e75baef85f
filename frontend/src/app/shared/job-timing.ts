import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';

import { Job, isTerminal } from '../api/job.model';
import { Clock } from '../core/clock.service';
import { estimateFinish, formatClock, formatRelative, formatTimestamp } from './eta';

/** "≈ 14:05:09 · in 12 s" for unfinished jobs, "14:05:09 · 3 min ago" for finished ones. */
@Component({
  selector: 'app-job-timing',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
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
  readonly job = input.required<Job>();

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
    const basis = eta.basis === 'progress' ? 'from the progress so far' : 'from the estimated time';
    return {
      main: `≈ ${formatClock(eta.finishAt, now)}`,
      relative: formatRelative(eta.finishAt, now),
      title: `Estimated finish ${formatTimestamp(new Date(eta.finishAt).toISOString())}, ${basis}`,
    };
  });
}
