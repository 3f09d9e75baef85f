import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  computed,
  effect,
  inject,
  input,
  signal,
  untracked,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { Router, RouterLink } from '@angular/router';
import { Subscription } from 'rxjs';

import { ApiError, toApiError } from '../../api/api-error';
import { JOB_STATUSES, Job, JobPage, JobStatus, isTerminal } from '../../api/job.model';
import { JobWatcher } from '../../api/job-watcher.service';
import { JobsApi } from '../../api/jobs-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { Clock } from '../../core/clock.service';
import { UserService } from '../../core/user.service';
import { formatRelative, formatTimestamp } from '../../shared/eta';
import { JobTiming } from '../../shared/job-timing';
import { ProgressBar } from '../../shared/progress-bar';
import { StatusBadge } from '../../shared/status-badge';

export const PAGE_SIZE = 20;
/** Quiet reload of the list, to pick up jobs submitted elsewhere (CLI, another tab). */
export const LIST_REFRESH_MS = 10000;

function newer(a: Job, b: Job): Job {
  return Date.parse(a.updated_at) >= Date.parse(b.updated_at) ? a : b;
}

/** The user's jobs, newest first, with live status and progress. */
@Component({
  selector: 'app-jobs-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink, StatusBadge, ProgressBar, JobTiming],
  templateUrl: './jobs.page.html',
})
export class JobsPage {
  private readonly api = inject(JobsApi);
  private readonly router = inject(Router);
  private readonly clock = inject(Clock);
  protected readonly watcher = inject(JobWatcher);
  protected readonly user = inject(UserService);

  /** Query parameters (bound by the router). */
  readonly status = input<string>();
  readonly offset = input<string>();

  protected readonly statuses = JOB_STATUSES;
  protected readonly statusFilter = computed<JobStatus | null>(() => {
    const status = this.status();
    return JOB_STATUSES.find((s) => s === status) ?? null;
  });
  protected readonly pageOffset = computed(() => {
    const offset = Number.parseInt(this.offset() ?? '', 10);
    return Number.isFinite(offset) && offset > 0 ? offset : 0;
  });

  protected readonly page = signal<JobPage | null>(null);
  protected readonly loading = signal(false);
  protected readonly error = signal<ApiError | null>(null);

  protected readonly jobs = computed(() => this.page()?.items ?? []);
  protected readonly rangeText = computed(() => {
    const page = this.page();
    if (!page || page.items.length === 0) {
      return '';
    }
    const first = this.pageOffset() + 1;
    return `${first}–${first + page.items.length - 1} of ${page.total}`;
  });
  protected readonly hasPrevious = computed(() => this.pageOffset() > 0);
  protected readonly hasNext = computed(() => {
    const page = this.page();
    return !!page && this.pageOffset() + page.items.length < page.total;
  });

  private readonly watches = new Map<string, Subscription>();
  private request: Subscription | undefined;

  constructor() {
    effect(() => {
      // Reload whenever the user, the filter or the page changes.
      this.user.userId();
      this.statusFilter();
      this.pageOffset();
      untracked(() => this.load(false));
    });
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => this.load(true));
    const timer = setInterval(() => {
      if (!this.loading() && globalThis.document?.visibilityState !== 'hidden') {
        this.load(true);
      }
    }, LIST_REFRESH_MS);
    inject(DestroyRef).onDestroy(() => {
      clearInterval(timer);
      this.request?.unsubscribe();
      this.unwatchAll();
    });
  }

  /** Fetch the page; `quiet` keeps the current rows on screen while it loads. */
  protected load(quiet: boolean): void {
    const userId = this.user.userId();
    this.request?.unsubscribe();
    if (!userId) {
      this.page.set(null);
      this.unwatchAll();
      return;
    }
    if (!quiet) {
      this.loading.set(true);
    }
    this.request = this.api
      .list({
        user_id: userId,
        status: this.statusFilter(),
        limit: PAGE_SIZE,
        offset: this.pageOffset(),
      })
      .subscribe({
        next: (page) => {
          this.loading.set(false);
          this.error.set(null);
          this.page.set(this.mergeWithLive(page));
          this.syncWatches(page.items);
        },
        error: (error: unknown) => {
          this.loading.set(false);
          this.error.set(toApiError(error));
        },
      });
  }

  protected setStatus(value: string): void {
    void this.router.navigate([], {
      queryParams: { status: value || null, offset: null },
      queryParamsHandling: 'merge',
    });
  }

  protected goTo(offset: number): void {
    void this.router.navigate([], {
      queryParams: { offset: offset > 0 ? offset : null },
      queryParamsHandling: 'merge',
    });
  }

  protected previous(): void {
    this.goTo(Math.max(0, this.pageOffset() - PAGE_SIZE));
  }

  protected next(): void {
    this.goTo(this.pageOffset() + PAGE_SIZE);
  }

  protected created(job: Job): { text: string; title: string } {
    return {
      text: formatRelative(Date.parse(job.created_at), this.clock.now()),
      title: formatTimestamp(job.created_at),
    };
  }

  protected shortId(id: string): string {
    return id.length > 10 ? `…${id.slice(-8)}` : id;
  }

  /** A list response may be older than the last live event; keep the newer copy. */
  private mergeWithLive(page: JobPage): JobPage {
    const current = new Map(this.jobs().map((job) => [job.id, job]));
    return {
      ...page,
      items: page.items.map((job) => {
        const known = current.get(job.id);
        return known ? newer(job, known) : job;
      }),
    };
  }

  private applyUpdate(job: Job): void {
    this.page.update((page) =>
      page
        ? {
            ...page,
            items: page.items.map((item) => (item.id === job.id ? newer(job, item) : item)),
          }
        : page,
    );
  }

  /** Follow every unfinished job on the page; stop following the rest. */
  private syncWatches(items: Job[]): void {
    const live = new Set(items.filter((job) => !isTerminal(job.status)).map((job) => job.id));
    for (const [id, subscription] of this.watches) {
      if (!live.has(id)) {
        subscription.unsubscribe();
        this.watches.delete(id);
      }
    }
    for (const id of live) {
      if (this.watches.has(id)) {
        continue;
      }
      const subscription = this.watcher.watch(id).subscribe({
        next: (job) => this.applyUpdate(job),
        error: () => {
          this.watches.delete(id);
          this.load(true); // gone (deleted elsewhere): refresh the list
        },
        complete: () => this.watches.delete(id),
      });
      if (!subscription.closed) {
        this.watches.set(id, subscription);
      }
    }
  }

  private unwatchAll(): void {
    for (const subscription of this.watches.values()) {
      subscription.unsubscribe();
    }
    this.watches.clear();
  }
}
