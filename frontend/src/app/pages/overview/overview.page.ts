import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  InjectionToken,
  computed,
  inject,
  signal,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { RouterLink } from '@angular/router';
import type { ChartData } from 'chart.js';
import { Subscription } from 'rxjs';

import { ApiError, toApiError } from '../../api/api-error';
import { Stats, TaskTimes } from '../../api/stats.model';
import { StatsApi } from '../../api/stats-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { formatTimestamp } from '../../shared/eta';
import { BarChart } from './bar-chart';
import { barOptions, readTheme } from './chart-theme';
import {
  FINAL_STATUSES,
  formatCount,
  formatMs,
  minuteLabel,
  minutesSummary,
  minuteTotals,
  queueLabel,
  queuesSummary,
  taskTimesSummary,
} from './stats-text';

/** How often the overview asks GET /api/v1/stats again while the tab is shown. */
export const OVERVIEW_REFRESH_MS = new InjectionToken<number>('OVERVIEW_REFRESH_MS', {
  providedIn: 'root',
  factory: () => 5000,
});

const EMPTY_STATS: Omit<Stats, 'generated_at'> = {
  minutes: [],
  queues: [],
  tasks: [],
  workers: { online: 0, busy: 0, idle: 0 },
  recent_failures: [],
};

/** Whatever the server left out counts as "not known yet": zeros and empty lists. */
function complete(stats: Partial<Stats>): Stats {
  return {
    generated_at: stats.generated_at ?? new Date().toISOString(),
    minutes: stats.minutes ?? EMPTY_STATS.minutes,
    queues: stats.queues ?? EMPTY_STATS.queues,
    tasks: stats.tasks ?? EMPTY_STATS.tasks,
    workers: { ...EMPTY_STATS.workers, ...stats.workers },
    recent_failures: stats.recent_failures ?? EMPTY_STATS.recent_failures,
  };
}

function mediaQuery(query: string): MediaQueryList | null {
  return typeof globalThis.matchMedia === 'function' ? globalThis.matchMedia(query) : null;
}

/** Chart height for one row per category (queues, tasks), within reason. */
function rowsHeight(rows: number, perRow: number): number {
  return Math.min(900, 64 + Math.max(1, rows) * perRow);
}

/**
 * The whole system at a glance, for admins: jobs finished per minute, queue depths,
 * run time and queue wait per task, workers, and the latest failures. Live: asks
 * GET /api/v1/stats every few seconds while the tab is shown.
 */
@Component({
  selector: 'app-overview-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  // BarChart (and Chart.js with it) is used in @defer blocks only: a chunk of its own,
  // loaded when the browser is idle after the figures render.
  imports: [RouterLink, BarChart],
  templateUrl: './overview.page.html',
})
export class OverviewPage {
  private readonly api = inject(StatsApi);
  private readonly refreshMs = inject(OVERVIEW_REFRESH_MS);

  protected readonly stats = signal<Stats | null>(null);
  protected readonly error = signal<ApiError | null>(null);
  protected readonly paused = signal(globalThis.document?.visibilityState === 'hidden');
  protected readonly forbidden = computed(() => this.error()?.status === 403);
  protected readonly refreshSeconds = Math.round(this.refreshMs / 1000);

  /** Bumped when the colour scheme changes: the charts read their colours again. */
  private readonly scheme = signal(0);
  private readonly reducedMotion = signal(
    mediaQuery('(prefers-reduced-motion: reduce)')?.matches ?? false,
  );
  private readonly theme = computed(() => {
    this.scheme();
    return readTheme();
  });

  protected readonly updated = computed(() => {
    const stats = this.stats();
    return stats ? formatTimestamp(stats.generated_at) : '';
  });

  // --- jobs finished per minute ------------------------------------------------------
  protected readonly minutes = computed(() => this.stats()?.minutes ?? []);
  protected readonly minuteTotals = computed(() => minuteTotals(this.minutes()));
  protected readonly minutesSummary = computed(() => minutesSummary(this.minutes()));
  protected readonly minutesData = computed<ChartData<'bar'>>(() => {
    const theme = this.theme();
    const minutes = this.minutes();
    return {
      labels: minutes.map((minute) => minuteLabel(minute.minute)),
      datasets: FINAL_STATUSES.map((status) => ({
        label: status,
        data: minutes.map((minute) => minute[status]),
        backgroundColor: theme[status],
        borderWidth: 0,
      })),
    };
  });
  protected readonly minutesOptions = computed(() =>
    barOptions(this.theme(), { stacked: true, animate: !this.reducedMotion() }),
  );

  // --- queue depths ------------------------------------------------------------------
  protected readonly queues = computed(() => this.stats()?.queues ?? []);
  protected readonly queuesSummary = computed(() => queuesSummary(this.queues()));
  protected readonly queuesHeight = computed(() => rowsHeight(this.queues().length, 34));
  protected readonly queuesData = computed<ChartData<'bar'>>(() => ({
    // Two lines, name over kind: the labels fit beside the bars on a phone too.
    labels: this.queues().map((queue) => [queue.name, `(${queue.kind})`]),
    datasets: [
      {
        label: 'messages waiting',
        data: this.queues().map((queue) => queue.depth),
        backgroundColor: this.theme().depth,
        borderWidth: 0,
      },
    ],
  }));
  protected readonly queuesOptions = computed(() => {
    const options = barOptions(this.theme(), {
      horizontal: true,
      animate: !this.reducedMotion(),
      format: formatCount,
    });
    return { ...options, plugins: { ...options.plugins, legend: { display: false } } };
  });

  // --- run time and queue wait per task ---------------------------------------------
  protected readonly tasks = computed(() =>
    [...(this.stats()?.tasks ?? [])].sort((a, b) => a.task.localeCompare(b.task)),
  );
  protected readonly tasksHeight = computed(() => rowsHeight(this.tasks().length, 46));
  protected readonly runSummary = computed(() => taskTimesSummary(this.tasks(), 'run'));
  protected readonly waitSummary = computed(() => taskTimesSummary(this.tasks(), 'wait'));
  protected readonly runData = computed(() => this.timesData('run_p50_ms', 'run_p95_ms'));
  protected readonly waitData = computed(() => this.timesData('wait_p50_ms', 'wait_p95_ms'));
  protected readonly timesOptions = computed(() =>
    barOptions(this.theme(), {
      horizontal: true,
      logarithmic: true,
      animate: !this.reducedMotion(),
      format: formatMs,
    }),
  );

  // --- workers, failures --------------------------------------------------------------
  protected readonly workers = computed(() => this.stats()?.workers ?? EMPTY_STATS.workers);
  protected readonly failures = computed(() => this.stats()?.recent_failures ?? []);

  protected readonly formatCount = formatCount;
  protected readonly formatMs = formatMs;
  protected readonly minuteLabel = minuteLabel;
  protected readonly queueLabel = queueLabel;
  protected readonly formatTimestamp = formatTimestamp;

  private request: Subscription | undefined;

  constructor() {
    this.load();
    const timer = setInterval(() => {
      if (!this.paused() && (!this.request || this.request.closed)) {
        this.load();
      }
    }, this.refreshMs);
    const onVisibility = (): void => {
      const hidden = document.visibilityState === 'hidden';
      this.paused.set(hidden);
      if (!hidden) {
        this.load(); // back on the tab: fresh figures at once, not up to 5 s later
      }
    };
    globalThis.document?.addEventListener('visibilitychange', onVisibility);
    const schemeQuery = mediaQuery('(prefers-color-scheme: dark)');
    const onScheme = (): void => this.scheme.update((n) => n + 1);
    schemeQuery?.addEventListener?.('change', onScheme);
    const motionQuery = mediaQuery('(prefers-reduced-motion: reduce)');
    const onMotion = (event: MediaQueryListEvent): void => this.reducedMotion.set(event.matches);
    motionQuery?.addEventListener?.('change', onMotion);
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => this.load());
    inject(DestroyRef).onDestroy(() => {
      clearInterval(timer);
      this.request?.unsubscribe();
      globalThis.document?.removeEventListener('visibilitychange', onVisibility);
      schemeQuery?.removeEventListener?.('change', onScheme);
      motionQuery?.removeEventListener?.('change', onMotion);
    });
  }

  protected load(): void {
    this.request?.unsubscribe();
    this.request = this.api.stats().subscribe({
      next: (stats) => {
        this.error.set(null);
        this.stats.set(complete(stats));
      },
      error: (error: unknown) => this.error.set(toApiError(error)),
    });
  }

  protected shortId(id: string): string {
    return id.length > 10 ? `…${id.slice(-8)}` : id;
  }

  private timesData(p50: keyof TaskTimes, p95: keyof TaskTimes): ChartData<'bar'> {
    const theme = this.theme();
    const tasks = this.tasks();
    return {
      labels: tasks.map((task) => task.task),
      datasets: [
        {
          label: 'median (p50)',
          data: tasks.map((task) => Number(task[p50])),
          backgroundColor: theme.p50,
          borderWidth: 0,
        },
        {
          label: '95th percentile (p95)',
          data: tasks.map((task) => Number(task[p95])),
          backgroundColor: theme.p95,
          borderWidth: 0,
        },
      ],
    };
  }
}
