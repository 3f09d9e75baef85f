import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';

import { JobStatus } from '../api/job.model';

/** Percent done (0..100) as an accessible progress bar coloured by status. */
@Component({
  selector: 'app-progress-bar',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div
      [class]="'progress progress--' + status()"
      role="progressbar"
      aria-valuemin="0"
      aria-valuemax="100"
      [attr.aria-valuenow]="rounded()"
      [attr.aria-valuetext]="rounded() + '%'"
      [attr.aria-label]="label()"
    >
      <div class="progress__fill" [style.width.%]="clamped()"></div>
    </div>
    <span class="progress__text">{{ rounded() }}%</span>
  `,
  host: { class: 'progress-wrap' },
})
export class ProgressBar {
  readonly value = input.required<number>();
  readonly status = input<JobStatus>('running');
  readonly label = input('Progress');

  protected readonly clamped = computed(() => Math.min(100, Math.max(0, this.value() || 0)));
  protected readonly rounded = computed(() => Math.round(this.clamped()));
}
