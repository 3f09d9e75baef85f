import { provideHttpClient } from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { FakeEventSource, makeJob } from '../../../testing/fixtures';
import { buttonByText, query, queryAll, setValue, text } from '../../../testing/dom';
import { Job, JobPage } from '../../api/job.model';
import { EVENT_SOURCE_FACTORY } from '../../api/job-watcher.service';
import { UserService } from '../../core/user.service';
import { JobsPage } from './jobs.page';

function page(items: Job[], total = items.length, offset = 0): JobPage {
  return { items, total, limit: 20, offset, next_cursor: null };
}

describe('JobsPage', () => {
  let http: HttpTestingController;
  let harness: RouterTestingHarness;
  let root: HTMLElement;

  function expectList(): TestRequest {
    return http.expectOne((request) => request.url === '/api/v1/jobs');
  }

  async function open(url = '/jobs', user: string | null = 'alice'): Promise<void> {
    if (user) {
      TestBed.inject(UserService).setUserId(user);
    }
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
    localStorage.clear();
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
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

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
    expect(request.request.params.get('user_id')).toBe('alice');
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

  it('updates unfinished jobs live from their event stream, without reloading', async () => {
    await open();
    const running = makeJob({ status: 'running', progress: 10 });
    const done = makeJob({ status: 'succeeded', progress: 100 });
    expectList().flush(page([running, done]));
    await settle();
    expect(FakeEventSource.instances.map((s) => s.url)).toEqual([
      `/api/v1/jobs/${running.id}/events`,
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

  it('says so when there are no jobs, and offers to submit one', async () => {
    await open();
    expectList().flush(page([]));
    await settle();
    expect(text(root, '[data-testid="empty"]')).toContain('No jobs yet for alice');
    expect(query(root, '[data-testid="empty"] a').getAttribute('href')).toBe('/submit');
  });

  it('asks for a user id before listing anything', async () => {
    await open('/jobs', null);
    http.expectNone((request) => request.url === '/api/v1/jobs');
    expect(text(root, '.callout--warn')).toContain('Choose a user id');
  });

  it('shows a load error with a retry', async () => {
    await open();
    expectList().flush(
      { status_code: 500, detail: 'Internal Server Error' },
      { status: 500, statusText: 'x' },
    );
    await settle();
    expect(text(root, '[role="alert"]')).toContain('Could not load jobs: Internal Server Error');
    buttonByText(root, 'Retry').click();
    expectList().flush(page([]));
    await settle();
    expect(root.querySelector('[role="alert"]')).toBeNull();
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
    expect(buttonByText(root, '← Newer').disabled).toBe(true);
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
    expect(buttonByText(root, '← Newer').disabled).toBe(false);
  });
});
