import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  Injector,
  afterNextRender,
  computed,
  effect,
  inject,
  input,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { DecimalPipe, JsonPipe } from '@angular/common';
import { Router, RouterLink } from '@angular/router';
import { Subscription } from 'rxjs';

import { ApiError, toApiError } from '../../api/api-error';
import { Job, isTerminal } from '../../api/job.model';
import { JobWatcher } from '../../api/job-watcher.service';
import { JobsApi } from '../../api/jobs-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { Clock } from '../../core/clock.service';
import { NoticeService } from '../../core/notice.service';
import { ConfirmDialog } from '../../shared/confirm-dialog';
import { formatDuration, formatRelative, formatTimestamp } from '../../shared/eta';
import { JobTiming, startText } from '../../shared/job-timing';
import { ProgressBar } from '../../shared/progress-bar';
import { StatusBadge } from '../../shared/status-badge';

type PendingAction = 'cancel' | 'delete';

/** One job: every field, live while it runs, with cancel, re-run and delete. */
@Component({
  selector: 'app-job-detail-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink, JsonPipe, DecimalPipe, StatusBadge, ProgressBar, JobTiming, ConfirmDialog],
  templateUrl: './job-detail.page.html',
})
export class JobDetailPage {
  private readonly api = inject(JobsApi);
  private readonly watcher = inject(JobWatcher);
  private readonly router = inject(Router);
  private readonly notices = inject(NoticeService);
  private readonly clock = inject(Clock);
  private readonly injector = inject(Injector);
  private readonly heading = viewChild<ElementRef<HTMLElement>>('heading');
  private readonly actionMessage = viewChild<ElementRef<HTMLElement>>('actionMessage');

  /** Route parameter :id (bound by the router). */
  readonly id = input.required<string>();

  protected readonly job = signal<Job | null>(null);
  protected readonly loading = signal(false);
  protected readonly notFound = signal(false);
  protected readonly error = signal<ApiError | null>(null);
  protected readonly confirming = signal<PendingAction | null>(null);
  protected readonly busy = signal<PendingAction | 'rerun' | null>(null);
  protected readonly actionError = signal<string | null>(null);

  protected readonly finished = computed(() => {
    const job = this.job();
    return !!job && isTerminal(job.status);
  });
  /** A failed or cancelled job can be run again, as a new job. */
  protected readonly canRerun = computed(() => {
    const status = this.job()?.status;
    return status === 'failed' || status === 'cancelled';
  });
  /** A scheduled job: when it starts. */
  protected readonly start = computed(() => {
    const job = this.job();
    return job ? startText(job, this.clock.now()) : null;
  });
  protected readonly hasResult = computed(() => {
    const job = this.job();
    return !!job && job.result !== null && job.result !== undefined;
  });
  /** Run time: started to finished, or to now while it runs. */
  protected readonly runTime = computed(() => {
    const job = this.job();
    if (!job?.started_at) {
      return null;
    }
    const end = job.finished_at ? Date.parse(job.finished_at) : this.clock.now();
    return formatDuration((end - Date.parse(job.started_at)) / 1000);
  });

  /** The four timestamps, local time plus "3 min ago". */
  protected readonly timestamps = computed(() => {
    const job = this.job();
    const now = this.clock.now();
    if (!job) {
      return [];
    }
    const stamps: [string, string | null][] = [
      ['Created', job.created_at],
      ...(job.run_at ? ([['Run at', job.run_at]] as [string, string][]) : []),
      ['Started', job.started_at],
      ['Updated', job.updated_at],
      ['Finished', job.finished_at],
    ];
    return stamps.map(([label, iso]) => ({
      label,
      iso,
      text: formatTimestamp(iso),
      relative: iso ? formatRelative(Date.parse(iso), now) : '',
    }));
  });

  private watch: Subscription | undefined;
  private request: Subscription | undefined;

  constructor() {
    effect(() => {
      const id = this.id();
      untracked(() => this.load(id));
    });
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => {
        if (this.error()) {
          this.load(this.id());
        }
      });
    inject(DestroyRef).onDestroy(() => {
      this.request?.unsubscribe();
      this.watch?.unsubscribe();
    });
  }

  protected load(id: string): void {
    this.request?.unsubscribe();
    this.watch?.unsubscribe();
    if (this.job()?.id !== id) {
      // Another job (a re-run just made, say): never show the last one's fields under its id.
      this.job.set(null);
      this.actionError.set(null);
      this.confirming.set(null);
    }
    this.loading.set(true);
    this.error.set(null);
    this.notFound.set(false);
    this.request = this.api.get(id).subscribe({
      next: (job) => {
        this.loading.set(false);
        this.show(job);
      },
      error: (error: unknown) => {
        this.loading.set(false);
        const apiError = toApiError(error);
        if (apiError.status === 404) {
          this.notFound.set(true);
          this.job.set(null);
        } else {
          this.error.set(apiError);
        }
      },
    });
  }

  protected ask(action: PendingAction): void {
    this.actionError.set(null);
    this.confirming.set(action);
  }

  protected dismiss(): void {
    this.confirming.set(null);
  }

  protected confirm(): void {
    const action = this.confirming();
    const job = this.job();
    this.confirming.set(null);
    if (!action || !job) {
      return;
    }
    this.busy.set(action);
    if (action === 'cancel') {
      this.api.cancel(job.id).subscribe({
        next: (updated) => {
          this.busy.set(null);
          this.show(updated);
          this.focusSoon(this.heading); // "Cancel job" is disabled now: its focus is gone
        },
        error: (error: unknown) => this.actionFailed('Cancel', error, job.id),
      });
    } else {
      this.api.delete(job.id).subscribe({
        next: () => {
          this.busy.set(null);
          this.notices.show(`Job ${job.name} (${job.id}) deleted.`);
          void this.router.navigate(['/jobs']);
        },
        error: (error: unknown) => this.actionFailed('Delete', error, job.id),
      });
    }
  }

  /** POST /jobs/{id}/rerun, then the new job's page. */
  protected rerun(): void {
    const job = this.job();
    if (!job || this.busy() !== null) {
      return;
    }
    this.actionError.set(null);
    this.busy.set('rerun');
    this.api.rerun(job.id).subscribe({
      next: (answer) => {
        this.busy.set(null);
        this.notices.show(`Job ${job.name} (${job.id}) re-run as ${answer.job_id}.`);
        void this.router.navigate(['/jobs', answer.job_id]);
      },
      error: (error: unknown) => this.actionFailed('Re-run', error, job.id),
    });
  }

  private actionFailed(what: string, error: unknown, id: string): void {
    this.busy.set(null);
    const apiError = toApiError(error);
    this.actionError.set(`${what} failed: ${apiError.message}`);
    this.focusSoon(this.actionMessage);
    if (apiError.status === 409 || apiError.status === 404) {
      this.load(id); // the job moved on meanwhile: show where it is now
    }
  }

  /**
   * Focus an element once the view shows it. The action buttons are disabled while
   * busy, and a disabled button drops focus to <body>.
   */
  private focusSoon(target: () => ElementRef<HTMLElement> | undefined): void {
    afterNextRender(() => target()?.nativeElement.focus(), { injector: this.injector });
  }

  private show(job: Job): void {
    this.job.set(job);
    if (!isTerminal(job.status) && (!this.watch || this.watch.closed)) {
      this.watch = this.watcher.watch(job.id).subscribe({
        next: (update) => this.job.set(update),
        error: () => {
          this.notFound.set(true);
          this.job.set(null);
        },
      });
    } else if (isTerminal(job.status)) {
      this.watch?.unsubscribe();
    }
  }
}
