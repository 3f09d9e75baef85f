import { ChangeDetectionStrategy, Component, input } from '@angular/core';

import { JobStatus } from '../api/job.model';

/** A job's status as a small coloured label; the text is the status itself. */
@Component({
  selector: 'app-status-badge',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `<span [class]="'badge badge--' + status()" data-testid="status">{{ status() }}</span>`,
})
export class StatusBadge {
  readonly status = input.required<JobStatus>();
}
