import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import {
  ComponentFixture,
  DeferBlockBehavior,
  DeferBlockState,
  TestBed,
} from '@angular/core/testing';
import { By } from '@angular/platform-browser';
import { provideRouter } from '@angular/router';
import { BaseChartDirective } from 'ng2-charts';

import { buttonByText, query, queryAll, text } from '../../../testing/dom';
import { MinuteCounts, Stats } from '../../api/stats.model';
import { OverviewPage } from './overview.page';
import { problem } from '../../../testing/problem';

const STATS = '/api/v1/stats';
const START = Date.parse('2026-11-01T09:00:00Z');

/** The last hour, oldest first, as the API sends it. */
function minutes(count: (i: number) => Omit<MinuteCounts, 'minute'>): MinuteCounts[] {
  return Array.from({ length: 60 }, (_, i) => ({
    minute: new Date(START + i * 60_000).toISOString(),
    ...count(i),
  }));
}

function emptyStats(): Stats {
  return {
    generated_at: '2026-11-01T10:00:00Z',
    minutes: minutes(() => ({ succeeded: 0, failed: 0, cancelled: 0 })),
    queues: [
      { name: 'standard', kind: 'standard', depth: 0 },
      { name: 'standard', kind: 'rq', depth: 0 },
      { name: 'standard-dlq', kind: 'dead-letter', depth: 0 },
      { name: 'taskbroker:reports', kind: 'reports', depth: 0 },
    ],
    tasks: [],
    workers: { online: 0, busy: 0, idle: 0 },
    recent_failures: [],
  };
}

/** A busy hour: thousands of jobs, three tasks, ten failures. */
function fullStats(): Stats {
  return {
    generated_at: '2026-11-01T10:00:00Z',
    minutes: minutes((i) => ({ succeeded: 100 + i, failed: i % 7, cancelled: i === 30 ? 50 : 1 })),
    queues: [
      { name: 'standard', kind: 'standard', depth: 1520 },
      { name: 'standard', kind: 'rq', depth: 12 },
      { name: 'standard-dlq', kind: 'dead-letter', depth: 3 },
      { name: 'taskbroker:reports', kind: 'reports', depth: 0 },
    ],
    tasks: [
      {
        task: 'simulate',
        runs: 4000,
        run_p50_ms: 6012,
        run_p95_ms: 6400,
        wait_p50_ms: 20,
        wait_p95_ms: 80,
      },
      {
        task: 'echo',
        runs: 2000,
        run_p50_ms: 1.2,
        run_p95_ms: 3.4,
        wait_p50_ms: 15,
        wait_p95_ms: 1500,
      },
    ],
    workers: { online: 8, busy: 6, idle: 2 },
    recent_failures: Array.from({ length: 10 }, (_, i) => ({
      id: `${i}`.padStart(24, 'f'),
      name: 'fail',
      user_id: i % 2 ? 'alice' : 'bob',
      error: `PermanentError: the fail task failed on purpose (${i})`,
      finished_at: new Date(Date.parse('2026-11-01T09:59:00Z') - i * 1000).toISOString(),
    })),
  };
}

describe('OverviewPage', () => {
  let fixture: ComponentFixture<OverviewPage>;
  let http: HttpTestingController;
  let root: HTMLElement;

  /** Changes applied, and the charts' @defer blocks loaded (as the browser does when idle). */
  async function settle(): Promise<void> {
    await fixture.whenStable();
    for (const block of await fixture.getDeferBlocks()) {
      await block.render(DeferBlockState.Complete);
    }
    await fixture.whenStable();
  }

  async function open(stats: Stats | null = null): Promise<void> {
    fixture = TestBed.createComponent(OverviewPage);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    if (stats) {
      http.expectOne(STATS).flush(stats);
      await settle();
    }
  }

  function chart(testId: string): BaseChartDirective {
    const element = fixture.debugElement.query(By.css(`canvas[data-testid="${testId}"]`));
    return element.injector.get(BaseChartDirective);
  }

  function tiles(): string[] {
    return queryAll(root, '[data-testid="workers"] .tile').map(
      (tile) => `${text(tile, 'dt')}: ${text(tile, 'dd')}`,
    );
  }

  beforeEach(async () => {
    // jsdom has no canvas: the charts get their data but draw nothing.
    vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null);
    TestBed.configureTestingModule({
      imports: [OverviewPage],
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])],
      // The charts load when the test says so: what shows before them is tested too.
      deferBlockBehavior: DeferBlockBehavior.Manual,
    });
    await TestBed.compileComponents(); // the @defer blocks' dependencies
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    fixture?.destroy();
    http.verify();
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('says it is loading until the first figures come', async () => {
    await open();
    expect(text(root, '[role="status"]')).toBe('Loading the overview…');
    http.expectOne(STATS).flush(emptyStats());
    await fixture.whenStable();
    expect(root.querySelector('[role="status"]')).toBeNull();
  });

  it('renders with no data: empty states and zeros, no failing chart', async () => {
    await open(emptyStats());
    expect(text(root, 'h1')).toBe('Overview');
    expect(text(root, '[data-testid="minutes-empty"]')).toBe('No job finished in the last hour.');
    expect(root.querySelector('[data-testid="chart-minutes"]')).toBeNull();
    expect(text(root, '[data-testid="tasks-empty"]')).toBe('No runs recorded yet.');
    expect(text(root, '[data-testid="failures-empty"]')).toBe('No failures recently.');
    expect(tiles()).toEqual(['Online: 0', 'Busy: 0', 'Idle: 0']);
    expect(root.textContent).toContain('No worker is online');
    // The queues are known even when empty: the chart shows four zero bars.
    expect(query(root, '[data-testid="chart-queues"]').getAttribute('aria-label')).toBe(
      'Messages waiting per queue: standard (standard) 0, standard (rq) 0, ' +
        'standard-dlq (dead-letter) 0, taskbroker:reports (reports) 0.',
    );
    expect(text(root, '[data-testid="overview-updated"]')).toMatch(
      /^Updated 2026-11-01 \d\d:00:00 · refreshes every 5 s$/,
    );
  });

  it('fills in what the server does not know yet', async () => {
    await open();
    http.expectOne(STATS).flush({ generated_at: '2026-11-01T10:00:00Z' });
    await fixture.whenStable();
    expect(text(root, '[data-testid="queues-empty"]')).toBe('No queues reported.');
    expect(tiles()).toEqual(['Online: 0', 'Busy: 0', 'Idle: 0']);
    expect(root.querySelector('[role="alert"]')).toBeNull();
  });

  it('shows the figures first and loads the charts after them, in their own boxes', async () => {
    await open();
    http.expectOne(STATS).flush(fullStats());
    await fixture.whenStable();
    // The numbers are on screen; the charts' code has not even been asked for.
    expect(queryAll(root, '.panel__figures li').map((li) => li.textContent?.trim())).toEqual([
      '7,770 succeeded',
      '174 failed',
      '109 cancelled',
    ]);
    expect(tiles()).toEqual(['Online: 8', 'Busy: 6', 'Idle: 2']);
    expect(root.querySelector('canvas')).toBeNull();
    const blocks = await fixture.getDeferBlocks();
    expect(blocks).toHaveLength(4);
    // Each chart's box is sized before its chart comes, so nothing moves when it does.
    const boxes = queryAll<HTMLElement>(root, '.chart');
    expect(boxes).toHaveLength(4);
    expect(boxes.map((box) => box.style.height)).toEqual(['', '200px', '156px', '156px']);

    await blocks[1].render(DeferBlockState.Complete);
    expect(queryAll(root, 'canvas').map((canvas) => canvas.dataset['testid'])).toEqual([
      'chart-queues',
    ]);
    expect(chart('chart-queues').data?.datasets[0].data).toEqual([1520, 12, 3, 0]);
    expect(query(boxes[1], 'canvas').getAttribute('aria-label')).toContain(
      'standard (standard) 1,520',
    );

    await settle();
    expect(queryAll(root, 'canvas').map((canvas) => canvas.dataset['testid'])).toEqual([
      'chart-minutes',
      'chart-queues',
      'chart-run',
      'chart-wait',
    ]);
  });

  it('draws every chart for a busy hour, each with its numbers for screen readers', async () => {
    await open(fullStats());
    // Jobs per minute: one stacked bar per minute, by final status.
    const minutesCanvas = query(root, '[data-testid="chart-minutes"]');
    expect(minutesCanvas.getAttribute('role')).toBe('img');
    expect(minutesCanvas.getAttribute('aria-label')).toMatch(
      /^Jobs finished per minute over the last hour: 8,053 in all, 7,770 succeeded, 174 failed, 109 cancelled; the busiest minute, \d\d:30, had 182\.$/,
    );
    const minutesData = chart('chart-minutes').data;
    expect(minutesData?.labels).toHaveLength(60);
    expect(minutesData?.datasets.map((d) => d.label)).toEqual(['succeeded', 'failed', 'cancelled']);
    expect(minutesData?.datasets[0].data.slice(0, 3)).toEqual([100, 101, 102]);
    expect(queryAll(root, '.panel__figures li').map((li) => li.textContent?.trim())).toEqual([
      '7,770 succeeded',
      '174 failed',
      '109 cancelled',
    ]);
    const minuteRows = queryAll(root, '#minutes-title ~ details tbody tr');
    expect(minuteRows).toHaveLength(60);
    expect(text(minuteRows[30], 'td:last-child')).toBe('50');

    // Queue depths.
    expect(query(root, '[data-testid="chart-queues"]').getAttribute('aria-label')).toContain(
      'standard (standard) 1,520, standard (rq) 12, standard-dlq (dead-letter) 3',
    );
    expect(chart('chart-queues').data?.datasets[0].data).toEqual([1520, 12, 3, 0]);

    // Run time and queue wait per task, tasks in name order, p50 beside p95.
    expect(query(root, '[data-testid="chart-run"]').getAttribute('aria-label')).toBe(
      'Run time per task: echo 1.2 ms median, 3.4 ms 95th percentile; ' +
        'simulate 6 s median, 6.4 s 95th percentile.',
    );
    expect(query(root, '[data-testid="chart-wait"]').getAttribute('aria-label')).toBe(
      'Queue wait per task: echo 15 ms median, 1.5 s 95th percentile; ' +
        'simulate 20 ms median, 80 ms 95th percentile.',
    );
    const run = chart('chart-run').data;
    expect(run?.labels).toEqual(['echo', 'simulate']);
    expect(run?.datasets.map((d) => d.data)).toEqual([
      [1.2, 6012],
      [3.4, 6400],
    ]);
    const taskRows = queryAll(root, '#tasks-title ~ details tbody tr').map((tr) =>
      queryAll(tr, 'th, td').map((cell) => cell.textContent?.trim()),
    );
    expect(taskRows).toEqual([
      ['echo', '2,000', '1.2 ms', '3.4 ms', '15 ms', '1.5 s'],
      ['simulate', '4,000', '6 s', '6.4 s', '20 ms', '80 ms'],
    ]);

    // Workers.
    expect(tiles()).toEqual(['Online: 8', 'Busy: 6', 'Idle: 2']);
    expect(root.textContent).not.toContain('No worker is online');

    // The latest failures, each a link to its job.
    const failures = queryAll(root, '[data-testid="failures"] tbody tr');
    expect(failures).toHaveLength(10);
    const link = query<HTMLAnchorElement>(failures[0], 'a');
    expect(link.getAttribute('href')).toBe(`/jobs/${'0'.padStart(24, 'f')}`);
    expect(text(failures[0], '[data-label="Owner"]')).toBe('bob');
    expect(text(failures[0], '[data-label="Error"]')).toBe(
      'PermanentError: the fail task failed on purpose (0)',
    );
  });

  it('asks again every 5 s, pauses while the tab is hidden, and catches up when shown', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await open(emptyStats());
    vi.advanceTimersByTime(5000);
    const busier = emptyStats();
    busier.minutes[59] = { ...busier.minutes[59], succeeded: 3 };
    http.expectOne(STATS).flush(busier);
    await settle();
    expect(query(root, '[data-testid="chart-minutes"]').getAttribute('aria-label')).toContain(
      '3 in all',
    );

    const visibility = vi.spyOn(document, 'visibilityState', 'get').mockReturnValue('hidden');
    document.dispatchEvent(new Event('visibilitychange'));
    await fixture.whenStable();
    vi.advanceTimersByTime(20_000);
    http.expectNone(STATS);
    expect(text(root, '[data-testid="overview-updated"]')).toContain(
      'paused while this tab is hidden',
    );

    visibility.mockReturnValue('visible');
    document.dispatchEvent(new Event('visibilitychange'));
    http.expectOne(STATS).flush(emptyStats());
    await fixture.whenStable();
    expect(text(root, '[data-testid="overview-updated"]')).toContain('refreshes every 5 s');
  });

  it('keeps the last figures on screen when a refresh fails, and says from when', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await open(fullStats());
    vi.advanceTimersByTime(5000);
    http
      .expectOne(STATS)
      .flush(problem(500, 'Store unavailable'), { status: 500, statusText: 'x' });
    await fixture.whenStable();
    expect(text(root, '[data-testid="overview-error"]')).toMatch(
      /^Could not refresh: Store unavailable \(HTTP 500\) The figures below are from 2026-11-01 \d\d:00:00\. Retry$/,
    );
    expect(queryAll(root, '[data-testid="failures"] tbody tr')).toHaveLength(10);
    buttonByText(root, 'Retry').click();
    http.expectOne(STATS).flush(fullStats());
    await fixture.whenStable();
    expect(root.querySelector('[data-testid="overview-error"]')).toBeNull();
  });

  it('says the overview is for admins only when the API answers 403', async () => {
    await open();
    http
      .expectOne(STATS)
      .flush(problem(403, 'Admins only'), { status: 403, statusText: 'Forbidden' });
    await fixture.whenStable();
    expect(text(root, '[data-testid="admins-only"]')).toContain('The overview is for admins only.');
    expect(root.querySelector('canvas')).toBeNull();
  });
});
