import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  Injector,
  afterNextRender,
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
import { JOB_STATUSES, JobPage, JobStatus, JobSummary, isTerminal } from '../../api/job.model';
import { JobWatcher, LiveEvent, MAX_FOLLOWED, WATCH_TIMING } from '../../api/job-watcher.service';
import { JobsApi } from '../../api/jobs-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { Clock } from '../../core/clock.service';
import { AuthService } from '../../core/auth.service';
import { formatRelative, formatTimestamp } from '../../shared/eta';
import { JobTiming } from '../../shared/job-timing';
import { ProgressBar } from '../../shared/progress-bar';
import { StatusBadge } from '../../shared/status-badge';

export const PAGE_SIZE = 20;
/**
 * Quiet reload of the list, to pick up jobs submitted elsewhere (CLI, another tab): one
 * request for the whole page, answered 304 while nothing changed.
 */
export const LIST_REFRESH_MS = 10000;
/** After the live stream broke, the list is polled instead; the stream is tried again after. */
export const STREAM_RETRY_MS = 30000;

/** Same rule as backend/jobs.py UserId: 1..128 characters, no whitespace, '/', '?' or '#'. */
const USER_NAME_PATTERN = /^[^\s/?#]{1,128}$/;

/** Whose jobs the list shows. Only admins see other users' jobs. */
export type OwnerScope = { kind: 'mine' } | { kind: 'all' } | { kind: 'user'; name: string };

function sameScope(a: OwnerScope, b: OwnerScope): boolean {
  return a.kind === b.kind && (a.kind !== 'user' || b.kind !== 'user' || a.name === b.name);
}

function newer(a: JobSummary, b: JobSummary): JobSummary {
  return Date.parse(a.updated_at) >= Date.parse(b.updated_at) ? a : b;
}

/** What of a page the user would see change. */
function pageKey(page: JobPage): string {
  const rows = page.items.map((job) => `${job.id}|${job.status}|${job.progress}|${job.updated_at}`);
  return `${page.total}:${rows.join(',')}`;
}

/**
 * The signed-in user's jobs (an admin may pick one user's, or everyone's), newest
 * first, with live status and progress.
 */
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
  private readonly injector = inject(Injector);
  private readonly timing = inject(WATCH_TIMING);
  private readonly watcher = inject(JobWatcher);
  protected readonly auth = inject(AuthService);

  /** Query parameters (bound by the router). `all` and `user` count for admins only. */
  readonly status = input<string>();
  readonly offset = input<string>();
  readonly all = input<string>();
  readonly user = input<string>();

  protected readonly statuses = JOB_STATUSES;
  protected readonly statusFilter = computed<JobStatus | null>(() => {
    const status = this.status();
    return JOB_STATUSES.find((s) => s === status) ?? null;
  });
  protected readonly pageOffset = computed(() => {
    const offset = Number.parseInt(this.offset() ?? '', 10);
    return Number.isFinite(offset) && offset > 0 ? offset : 0;
  });

  /** Whose jobs: from the URL, for an admin; always the user's own otherwise. */
  protected readonly scope = computed<OwnerScope>(
    () => {
      if (!this.auth.isAdmin()) {
        return { kind: 'mine' };
      }
      if (this.all() === 'true') {
        return { kind: 'all' };
      }
      const name = this.user()?.trim() ?? '';
      return USER_NAME_PATTERN.test(name) ? { kind: 'user', name } : { kind: 'mine' };
    },
    { equal: sameScope },
  );
  /** The admin picked "One user…" and has not named one yet. */
  private readonly choosingUser = signal(false);
  protected readonly ownerMode = computed<OwnerScope['kind']>(() =>
    this.choosingUser() ? 'user' : this.scope().kind,
  );
  protected readonly ownerError = signal<string | null>(null);
  /** Listing other users' jobs: show whose each one is. */
  protected readonly showOwner = computed(() => this.scope().kind !== 'mine');
  protected readonly heading = computed(() => {
    const scope = this.scope();
    return scope.kind === 'all'
      ? "All users' jobs"
      : scope.kind === 'user'
        ? `Jobs of ${scope.name}`
        : 'My jobs';
  });
  /** " from any user", " of bob", or "" (own jobs), for the empty-list messages. */
  protected readonly whose = computed(() => {
    const scope = this.scope();
    return scope.kind === 'all'
      ? ' from any user'
      : scope.kind === 'user'
        ? ` of ${scope.name}`
        : '';
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

  /** The one live stream of the page, and the jobs it follows. */
  private live: Subscription | undefined;
  private liveIds = new Set<string>();
  /** When the stream broke (the list is polled meanwhile), or null. */
  private streamLostAt: number | null = null;
  /** Jobs followed on the stream; whether the list is polled instead. */
  protected readonly streamed = signal(0);
  protected readonly polling = signal(false);
  private pollMs = 0;
  private lastKey = '';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private request: Subscription | undefined;

  constructor() {
    effect(() => {
      // A new owner in the URL (chosen here, or back/forward) ends "One user…" naming.
      this.scope();
      untracked(() => this.choosingUser.set(false));
    });
    effect(() => {
      // Reload whenever the user, whose jobs, the filter or the page changes.
      this.auth.user();
      this.scope();
      this.statusFilter();
      this.pageOffset();
      untracked(() => this.load(false));
    });
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => this.load(true));
    this.schedule();
    inject(DestroyRef).onDestroy(() => {
      clearTimeout(this.timer);
      this.request?.unsubscribe();
      this.unwatchAll();
    });
  }

  /** The next quiet reload: every LIST_REFRESH_MS, sooner while the stream is broken. */
  private schedule(): void {
    clearTimeout(this.timer);
    const delay = this.polling() ? this.pollMs : LIST_REFRESH_MS;
    this.timer = setTimeout(() => {
      // One request at a time: a round whose answer is late waits for it.
      const waiting = this.request !== undefined && !this.request.closed;
      if (!waiting && globalThis.document?.visibilityState !== 'hidden') {
        this.load(true);
      }
      this.schedule();
    }, delay);
  }

  /** The Refresh button: stays focused (aria-disabled) while the list loads. */
  protected refresh(): void {
    if (!this.loading()) {
      this.load(false);
    }
  }

  /** Fetch the page; `quiet` keeps the current rows on screen while it loads. */
  protected load(quiet: boolean): void {
    this.request?.unsubscribe();
    if (!this.auth.user()) {
      this.page.set(null);
      this.unwatchAll();
      return;
    }
    if (!quiet) {
      this.loading.set(true);
    }
    const scope = this.scope();
    this.request = this.api
      .list({
        all: scope.kind === 'all' || undefined,
        user_id: scope.kind === 'user' ? scope.name : null,
        status: this.statusFilter(),
        limit: PAGE_SIZE,
        offset: this.pageOffset(),
      })
      .subscribe({
        next: (page) => {
          this.loading.set(false);
          // The error box goes, with its Retry button: focus there would fall to <body>.
          if (this.error() && document.activeElement?.closest('#jobs-error')) {
            afterNextRender(() => document.getElementById('jobs-title')?.focus(), {
              injector: this.injector,
            });
          }
          this.error.set(null);
          const merged = this.mergeWithLive(page);
          this.page.set(merged);
          this.noteChange(pageKey(merged));
          this.syncWatches(merged.items);
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

  /** The admin's "Owner" choice: mine, all users, or one user (named next). */
  protected setOwner(value: string): void {
    this.ownerError.set(null);
    if (value === 'user') {
      this.choosingUser.set(true);
      afterNextRender(() => document.getElementById('owner-user')?.focus(), {
        injector: this.injector,
      });
      return;
    }
    this.choosingUser.set(false);
    void this.router.navigate([], {
      queryParams: { all: value === 'all' ? 'true' : null, user: null, offset: null },
      queryParamsHandling: 'merge',
    });
  }

  /** Show the jobs of the user named in the "User name" field. */
  protected showUser(event: Event, value: string): void {
    event.preventDefault();
    const name = value.trim();
    if (!USER_NAME_PATTERN.test(name)) {
      this.ownerError.set(
        name ? 'No spaces, "/", "?" or "#"; at most 128 characters.' : 'Enter a user name.',
      );
      document.getElementById('owner-user')?.focus();
      return;
    }
    this.ownerError.set(null);
    this.choosingUser.set(false);
    void this.router.navigate([], {
      queryParams: { user: name, all: null, offset: null },
      queryParamsHandling: 'merge',
    });
  }

  protected goTo(offset: number): void {
    void this.router.navigate([], {
      queryParams: { offset: offset > 0 ? offset : null },
      queryParamsHandling: 'merge',
    });
  }

  // The pager's buttons are aria-disabled, not disabled: "Older →" reaching the last page
  // keeps its focus instead of dropping it to <body>.
  protected previous(): void {
    if (this.hasPrevious()) {
      this.goTo(Math.max(0, this.pageOffset() - PAGE_SIZE));
    }
  }

  protected next(): void {
    if (this.hasNext()) {
      this.goTo(this.pageOffset() + PAGE_SIZE);
    }
  }

  protected created(job: JobSummary): { text: string; title: string } {
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

  private applyUpdate(job: JobSummary): void {
    this.page.update((page) =>
      page
        ? {
            ...page,
            items: page.items.map((item) => (item.id === job.id ? newer(job, item) : item)),
          }
        : page,
    );
  }

  /** While polling, poll less often as long as the page stays the same. */
  private noteChange(key: string): void {
    if (this.polling()) {
      this.pollMs =
        key === this.lastKey
          ? Math.min(Math.round(this.pollMs * 1.5), this.timing.pollMaxMs)
          : this.timing.pollMinMs;
    }
    this.lastKey = key;
  }

  /**
   * Follow every unfinished job on the page on one stream. It is reopened only when a job
   * it does not follow appears (finished jobs drop out of it by themselves), and, once it
   * broke, after STREAM_RETRY_MS of polling the list instead.
   */
  private syncWatches(items: JobSummary[]): void {
    const wanted = items
      .filter((job) => !isTerminal(job.status))
      .map((job) => job.id)
      .slice(0, MAX_FOLLOWED);
    if (wanted.length === 0) {
      this.unwatchAll();
      this.stopPolling();
      return;
    }
    const open = this.live !== undefined && !this.live.closed;
    if (open && wanted.every((id) => this.liveIds.has(id))) {
      return;
    }
    if (this.streamLostAt !== null && Date.now() - this.streamLostAt < STREAM_RETRY_MS) {
      return; // polling; the stream is tried again later
    }
    this.unwatchAll();
    this.liveIds = new Set(wanted);
    this.streamed.set(wanted.length);
    this.live = this.watcher.followAll(wanted).subscribe((event) => this.onLive(event));
  }

  private onLive(event: LiveEvent): void {
    switch (event.kind) {
      case 'job':
        this.stopPolling();
        this.applyUpdate(event.job);
        break;
      case 'gone':
        this.load(true); // deleted elsewhere: refresh the list
        break;
      case 'lost':
        this.streamed.set(0);
        this.streamLostAt = Date.now();
        if (!this.polling()) {
          this.polling.set(true);
          this.pollMs = this.timing.pollMinMs;
          this.load(true); // catch up at once on what the stream may have missed
          this.schedule();
        }
        break;
    }
  }

  private stopPolling(): void {
    this.streamLostAt = null;
    if (this.polling()) {
      this.polling.set(false);
      this.schedule();
    }
  }

  private unwatchAll(): void {
    this.live?.unsubscribe();
    this.live = undefined;
    this.liveIds.clear();
    this.streamed.set(0);
  }
}
