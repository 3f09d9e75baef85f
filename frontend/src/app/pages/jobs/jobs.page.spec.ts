import { provideHttpClient } from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { signInAs } from '../../../testing/auth';
import { FakeEventSource, makeJob } from '../../../testing/fixtures';
import { buttonByText, query, queryAll, setValue, text } from '../../../testing/dom';
import { Job, JobPage, JobSummary } from '../../api/job.model';
import { EVENT_SOURCE_FACTORY, WATCH_TIMING } from '../../api/job-watcher.service';
import { JobsPage, STREAM_RETRY_MS } from './jobs.page';
import { problem } from '../../../testing/problem';

function page(items: JobSummary[], total = items.length, offset = 0): JobPage {
  return { items, total, limit: 20, offset, next_cursor: null };
}

/** A job as the list sends it: without params and result. */
function summary(job: Job): JobSummary {
  const copy: Partial<Job> = { ...job };
  delete copy.params;
  delete copy.result;
  delete copy.callback_url;
  return copy as JobSummary;
}

describe('JobsPage', () => {
  let http: HttpTestingController;
  let harness: RouterTestingHarness;
  let root: HTMLElement;

  function expectList(): TestRequest {
    return http.expectOne((request) => request.url === '/api/v1/jobs');
  }

  async function open(url = '/jobs', role: 'user' | 'admin' = 'user'): Promise<void> {
    signInAs(role === 'admin' ? 'root' : 'alice', role);
    harness = await RouterTestingHarness.create();
    await harness.navigateByUrl(url, JobsPage);
    root = harness.routeNativeElement as HTMLElement;
  }

  async function settle(): Promise<void> {
    await harness.fixture.whenStable();
  }

  function row(id: string): HTMLElement {
    return query(root, `tr[data-job-id="${id}"]`);
  }

  beforeEach(() => {
    FakeEventSource.reset();
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter(
          [
            { path: 'jobs', component: JobsPage },
            { path: 'submit', children: [] },
          ],
          withComponentInputBinding(),
        ),
        { provide: EVENT_SOURCE_FACTORY, useValue: (url: string) => new FakeEventSource(url) },
        // Polling (only while the stream is broken) within a test's time.
        { provide: WATCH_TIMING, useValue: { pollMinMs: 20, pollMaxMs: 40, maxStreams: 3 } },
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    http.verify();
  });

  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  it("lists the user's jobs with status, progress and finish", async () => {
    await open();
    const running = makeJob({
      status: 'running',
      progress: 42,
      started_at: new Date(Date.now() - 10_000).toISOString(),
    });
    const failed = makeJob({
      name: 'fail',
      status: 'failed',
      finished_at: new Date().toISOString(),
    });
    const request = expectList();
    // The caller's own jobs: no user named.
    expect(request.request.params.has('user_id')).toBe(false);
    expect(request.request.params.has('all')).toBe(false);
    expect(request.request.params.get('limit')).toBe('20');
    expect(request.request.params.get('offset')).toBe('0');
    request.flush(page([running, failed]));
    await settle();

    const ids = queryAll(root, 'tbody tr').map((tr) => tr.dataset['jobId']);
    expect(ids).toEqual([running.id, failed.id]);
    expect(text(row(running.id), '[data-testid="status"]')).toBe('running');
    expect(query(row(running.id), '[role="progressbar"]').getAttribute('aria-valuenow')).toBe('42');
    expect(text(row(running.id), 'app-job-timing')).toMatch(/^≈ \d\d:\d\d:\d\d · in \d+ s$/);
    expect(text(row(failed.id), '[data-testid="status"]')).toBe('failed');
    expect(text(root, '#jobs-range')).toBe('1–2 of 2');
    FakeEventSource.instances.forEach((s) => s.close());
  });

  it('lists job summaries; a scheduled job says when it starts and should finish', async () => {
    // Noon, local time: six minutes on is still today (another day would show its date).
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(2026, 5, 15, 12, 0, 0));
    await open();
    const runAt = new Date(Date.now() + 5 * 60_000).toISOString();
    // The list sends summaries: no params, no result.
    const scheduled = summary(makeJob({ status: 'scheduled', estimated_time: 60, run_at: runAt }));
    expect(Object.keys(scheduled)).not.toContain('params');
    expectList().flush(page([scheduled]));
    await settle();
    expect(text(row(scheduled.id), '[data-testid="status"]')).toBe('scheduled');
    expect(query(row(scheduled.id), '.badge').classList).toContain('badge--scheduled');
    expect(text(row(scheduled.id), '[data-testid="starts-at"]')).toMatch(
      /^Starts at \d\d:\d\d:\d\d · in (5 min|4 min 5\d s)$/,
    );
    // Its finish counts from its start: 6 minutes from now, give or take a second.
    expect(text(row(scheduled.id), 'app-job-timing')).toMatch(
      /≈ \d\d:\d\d:\d\d · in (6 min|5 min 5\d s)$/,
    );
    vi.useRealTimers();
    // Followed live like any unfinished job: once due, it is queued.
    const source = FakeEventSource.last();
    expect(source.url).toBe(`/api/v1/events?job=${scheduled.id}`);
    source.sendJob(
      makeJob({ ...scheduled, status: 'queued', updated_at: new Date().toISOString() }),
    );
    await settle();
    expect(text(row(scheduled.id), '[data-testid="status"]')).toBe('queued');
    expect(row(scheduled.id).querySelector('[data-testid="starts-at"]')).toBeNull();
    source.close();
  });

  it('offers the scheduled status in the filter', async () => {
    await open('/jobs?status=scheduled');
    expect(expectList().request.params.get('status')).toBe('scheduled');
    const options = queryAll<HTMLOptionElement>(root, '#status-filter option').map((o) => o.value);
    expect(options).toEqual([
      '',
      'created',
      'scheduled',
      'queued',
      'running',
      'retrying',
      'succeeded',
      'failed',
      'cancelled',
    ]);
  });

  it('updates unfinished jobs live from their event stream, without reloading', async () => {
    await open();
    const running = makeJob({ status: 'running', progress: 10 });
    const done = makeJob({ status: 'succeeded', progress: 100 });
    expectList().flush(page([running, done]));
    await settle();
    expect(FakeEventSource.instances.map((s) => s.url)).toEqual([
      `/api/v1/events?job=${running.id}`,
    ]);

    const source = FakeEventSource.last();
    source.sendJob({ ...running, progress: 60, updated_at: '2026-11-01T10:00:05Z' });
    await settle();
    expect(query(row(running.id), '[role="progressbar"]').getAttribute('aria-valuenow')).toBe('60');

    source.sendJob({
      ...running,
      status: 'succeeded',
      progress: 100,
      updated_at: '2026-11-01T10:00:09Z',
    });
    await settle();
    expect(text(row(running.id), '[data-testid="status"]')).toBe('succeeded');
    expect(source.closed).toBe(true);
  });

  it('follows every unfinished job of the page on one stream, reopened for a new job', async () => {
    await open();
    const a = makeJob({ status: 'running', progress: 10 });
    const b = makeJob({ status: 'queued' });
    const c = makeJob({ status: 'succeeded', progress: 100 });
    expectList().flush(page([a, b, c]));
    await settle();
    expect(FakeEventSource.instances.map((s) => s.url)).toEqual([
      `/api/v1/events?job=${a.id}&job=${b.id}`,
    ]);
    expect(text(root, '.live-info')).toBe('live: 2 streamed');
    const source = FakeEventSource.last();
    source.sendJob({
      ...a,
      status: 'succeeded',
      progress: 100,
      updated_at: '2026-11-01T10:00:09Z',
    });
    await settle();
    expect(text(row(a.id), '[data-testid="status"]')).toBe('succeeded');
    expect(source.closed).toBe(false); // b is still followed

    // A refresh with the same jobs keeps the stream; a new unfinished job reopens it.
    buttonByText(root, 'Refresh').click();
    expectList().flush(page([a, b, c]));
    await settle();
    expect(FakeEventSource.instances.length).toBe(1);
    const d = makeJob({ status: 'queued' });
    buttonByText(root, 'Refresh').click();
    expectList().flush(page([d, a, b, c]));
    await settle();
    expect(source.closed).toBe(true);
    expect(FakeEventSource.last().url).toBe(`/api/v1/events?job=${d.id}&job=${b.id}`);
    FakeEventSource.last().close();
  });

  it('polls the list, one request a round, while the stream is broken; then streams again', async () => {
    await open();
    const a = makeJob({ status: 'running', progress: 10 });
    expectList().flush(page([a]));
    await settle();
    FakeEventSource.last().fail();
    // At once, a look at what the stream may have missed; then one list request a round.
    expectList().flush(page([a]));
    await settle();
    expect(text(root, '.live-info')).toBe('live: list refreshed every few seconds');
    for (const progress of [20, 30]) {
      await pause(60);
      expectList().flush(page([{ ...a, progress, updated_at: `2026-11-01T10:00:${progress}Z` }]));
      await settle();
      expect(query(row(a.id), '[role="progressbar"]').getAttribute('aria-valuenow')).toBe(
        String(progress),
      );
    }
    expect(FakeEventSource.instances.length).toBe(1);

    // Later, the stream is tried again; its first event ends the polling.
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + STREAM_RETRY_MS);
    await pause(60);
    expectList().flush(page([a]));
    await settle();
    expect(FakeEventSource.instances.length).toBe(2);
    const again = FakeEventSource.last();
    again.sendJob({ ...a, progress: 50, updated_at: '2026-11-01T10:01:00Z' });
    await settle();
    expect(text(root, '.live-info')).toBe('live: 1 streamed');

    // A job deleted elsewhere: the list is loaded again.
    again.sendGone(a.id);
    expectList().flush(page([]));
    await settle();
    expect(again.closed).toBe(true);
    expect(text(root, '[data-testid="empty"]')).toContain('You have no jobs yet.');
  });

  it('says so when there are no jobs, and offers to submit one', async () => {
    await open();
    expectList().flush(page([]));
    await settle();
    expect(text(root, '[data-testid="empty"]')).toContain('You have no jobs yet.');
    expect(query(root, '[data-testid="empty"] a').getAttribute('href')).toBe('/submit');
  });

  it('offers no owner filter to a non-admin, and ignores one in the URL', async () => {
    await open('/jobs?all=true&user=bob');
    const request = expectList();
    expect(request.request.params.has('all')).toBe(false);
    expect(request.request.params.has('user_id')).toBe(false);
    request.flush(page([makeJob()]));
    await settle();
    expect(root.querySelector('#owner-filter')).toBeNull();
    expect(root.querySelector('[data-testid="owner"]')).toBeNull();
    expect(text(root, 'h1')).toBe('My jobs');
  });

  it('shows a load error with a retry', async () => {
    await open();
    expectList().flush(problem(500, 'Internal Server Error'), { status: 500, statusText: 'x' });
    await settle();
    expect(text(root, '[role="alert"]')).toContain('Could not load jobs: Internal Server Error');
    const retry = buttonByText(root, 'Retry');
    retry.focus();
    retry.click();
    expectList().flush(page([]));
    await settle();
    expect(root.querySelector('[role="alert"]')).toBeNull();
    // The button is gone: focus goes to the list's heading, not to <body>.
    expect(document.activeElement).toBe(query(root, 'h1#jobs-title'));
  });

  it('keeps focus on Retry while the list still cannot be loaded', async () => {
    await open();
    expectList().flush(problem(500, 'Internal Server Error'), { status: 500, statusText: 'x' });
    await settle();
    const retry = buttonByText(root, 'Retry');
    retry.focus();
    retry.click();
    expectList().flush(problem(503, 'Down'), { status: 503, statusText: 'x' });
    await settle();
    expect(text(root, '[role="alert"]')).toContain('Could not load jobs: Down');
    expect(document.activeElement).toBe(buttonByText(root, 'Retry'));
  });

  it('filters by status through the URL', async () => {
    await open('/jobs?status=failed');
    const request = expectList();
    expect(request.request.params.get('status')).toBe('failed');
    request.flush(page([]));
    await settle();
    expect(text(root, '[data-testid="empty"]')).toContain('No failed jobs');
    expect(query<HTMLSelectElement>(root, '#status-filter').value).toBe('failed');

    setValue(query(root, '#status-filter'), 'running');
    await settle();
    expect(TestBed.inject(Router).url).toBe('/jobs?status=running');
    const next = expectList();
    expect(next.request.params.get('status')).toBe('running');
    next.flush(page([]));
  });

  it('pages through older jobs', async () => {
    await open();
    const first = Array.from({ length: 20 }, () => makeJob({ status: 'succeeded' }));
    expectList().flush(page(first, 45));
    await settle();
    expect(buttonByText(root, '← Newer').getAttribute('aria-disabled')).toBe('true');
    buttonByText(root, 'Older →').click();
    await settle();
    const request = expectList();
    expect(request.request.params.get('offset')).toBe('20');
    request.flush(
      page(
        Array.from({ length: 20 }, () => makeJob({ status: 'succeeded' })),
        45,
        20,
      ),
    );
    await settle();
    expect(text(root, '#jobs-range')).toBe('21–40 of 45');
    expect(TestBed.inject(Router).url).toBe('/jobs?offset=20');
    expect(buttonByText(root, '← Newer').hasAttribute('aria-disabled')).toBe(false);
  });

  it('keeps focus on "Older →" when it reaches the last page, and on "Refresh"', async () => {
    await open('/jobs?offset=20');
    expectList().flush(page([makeJob({ status: 'succeeded' })], 41, 20));
    await settle();
    const older = buttonByText(root, 'Older →');
    older.focus();
    older.click();
    await settle();
    expectList().flush(page([makeJob({ status: 'succeeded' })], 41, 40));
    await settle();
    expect(text(root, '#jobs-range')).toBe('41–41 of 41');
    // The last page: "Older →" does nothing now, and still has focus.
    expect(older.getAttribute('aria-disabled')).toBe('true');
    expect(document.activeElement).toBe(older);
    older.click();
    await settle();
    expect(TestBed.inject(Router).url).toBe('/jobs?offset=40');

    const refresh = buttonByText(root, 'Refresh');
    refresh.focus();
    refresh.click();
    await settle();
    expect(refresh.getAttribute('aria-disabled')).toBe('true');
    expect(document.activeElement).toBe(refresh);
    refresh.click(); // while it loads: no second request
    await settle();
    expectList().flush(page([makeJob({ status: 'succeeded' })], 41, 40));
    await settle();
    expect(refresh.hasAttribute('aria-disabled')).toBe(false);
    expect(document.activeElement).toBe(refresh);
  });

  describe('for an admin', () => {
    function ownerSelect(): HTMLSelectElement {
      return query<HTMLSelectElement>(root, '#owner-filter');
    }

    it('lists their own jobs first, without an owner column', async () => {
      await open('/jobs', 'admin');
      const request = expectList();
      expect(request.request.params.has('all')).toBe(false);
      expect(request.request.params.has('user_id')).toBe(false);
      request.flush(page([makeJob({ user_id: 'root' })]));
      await settle();
      expect(ownerSelect().value).toBe('mine');
      expect(queryAll(root, 'thead th').map((th) => th.textContent?.trim())).not.toContain('Owner');
    });

    it("shows every user's jobs with all=true, and whose each one is", async () => {
      await open('/jobs', 'admin');
      expectList().flush(page([]));
      await settle();

      setValue(ownerSelect(), 'all');
      await settle();
      expect(TestBed.inject(Router).url).toBe('/jobs?all=true');
      const request = expectList();
      expect(request.request.params.get('all')).toBe('true');
      expect(request.request.params.has('user_id')).toBe(false);
      const bobs = makeJob({ user_id: 'bob' });
      const carols = makeJob({ user_id: 'carol', status: 'succeeded' });
      request.flush(page([bobs, carols]));
      await settle();
      expect(text(root, 'h1')).toBe("All users' jobs");
      expect(queryAll(root, 'thead th').map((th) => th.textContent?.trim())).toContain('Owner');
      expect(text(row(bobs.id), '[data-testid="owner"]')).toBe('bob');
      expect(text(row(carols.id), '[data-testid="owner"]')).toBe('carol');

      setValue(ownerSelect(), 'mine');
      await settle();
      expect(TestBed.inject(Router).url).toBe('/jobs');
      const mine = expectList();
      expect(mine.request.params.has('all')).toBe(false);
      mine.flush(page([]));
      FakeEventSource.instances.forEach((s) => s.close());
    });

    it('asks for a user name when switching from all users to one user', async () => {
      await open('/jobs?all=true', 'admin');
      expectList().flush(page([]));
      await settle();
      expect(ownerSelect().value).toBe('all');
      setValue(ownerSelect(), 'user');
      await settle();
      expect(ownerSelect().value).toBe('user');
      expect(query<HTMLInputElement>(root, '#owner-user').value).toBe('');
      http.expectNone((request) => request.url === '/api/v1/jobs');
    });

    it("shows one user's jobs with user_id=NAME, keeping the status filter", async () => {
      await open('/jobs?status=failed', 'admin');
      expectList().flush(page([]));
      await settle();

      setValue(ownerSelect(), 'user');
      await settle();
      http.expectNone((request) => request.url === '/api/v1/jobs'); // nothing until named
      const input = query<HTMLInputElement>(root, '#owner-user');
      expect(query(root, 'label[for="owner-user"]').textContent?.trim()).toBe('User name');

      buttonByText(root, 'Show').click(); // empty
      await settle();
      expect(text(root, '#owner-user-error')).toBe('Enter a user name.');
      expect(input.getAttribute('aria-invalid')).toBe('true');
      http.expectNone((request) => request.url === '/api/v1/jobs');

      input.value = 'bob';
      buttonByText(root, 'Show').click();
      await settle();
      expect(TestBed.inject(Router).url).toBe('/jobs?status=failed&user=bob');
      const request = expectList();
      expect(request.request.params.get('user_id')).toBe('bob');
      expect(request.request.params.get('status')).toBe('failed');
      expect(request.request.params.has('all')).toBe(false);
      request.flush(page([]));
      await settle();
      expect(text(root, 'h1')).toBe('Jobs of bob');
      expect(text(root, '[data-testid="empty"]')).toContain('No failed jobs of bob.');
      expect(ownerSelect().value).toBe('user');
      expect(query<HTMLInputElement>(root, '#owner-user').value).toBe('bob');
    });
  });
});
