import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { buttonByText, query, text } from '../../../testing/dom';
import { FakeEventSource, makeJob } from '../../../testing/fixtures';
import { Job } from '../../api/job.model';
import { EVENT_SOURCE_FACTORY } from '../../api/job-watcher.service';
import { NoticeService } from '../../core/notice.service';
import { JobDetailPage } from './job-detail.page';
import { problem } from '../../../testing/problem';

describe('JobDetailPage', () => {
  let http: HttpTestingController;
  let harness: RouterTestingHarness;
  let root: HTMLElement;

  async function open(job: Job): Promise<void> {
    harness = await RouterTestingHarness.create();
    await harness.navigateByUrl(`/jobs/${job.id}`, JobDetailPage);
    root = harness.routeNativeElement as HTMLElement;
    http.expectOne(`/api/v1/jobs/${job.id}`).flush(job);
    await harness.fixture.whenStable();
  }

  async function settle(): Promise<void> {
    await harness.fixture.whenStable();
  }

  function field(label: string): string {
    const item = Array.from(root.querySelectorAll('.fields > div')).find(
      (div) => div.querySelector('dt')?.textContent?.trim() === label,
    );
    return item?.querySelector('dd')?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  }

  beforeEach(() => {
    FakeEventSource.reset();
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter(
          [
            { path: 'jobs/:id', component: JobDetailPage },
            { path: 'jobs', children: [] },
          ],
          withComponentInputBinding(),
        ),
        { provide: EVENT_SOURCE_FACTORY, useValue: (url: string) => new FakeEventSource(url) },
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    vi.useRealTimers();
    http.verify();
  });

  it('shows every field of a finished job, with its result', async () => {
    const job = makeJob({
      status: 'succeeded',
      progress: 100,
      attempts: 2,
      worker_id: 'host-1:worker-3',
      description: 'nightly run',
      params: { duration: 3 },
      result: { slept: 3, steps: 15 },
      started_at: '2026-11-01T10:00:01Z',
      finished_at: '2026-11-01T10:00:04Z',
    });
    await open(job);
    expect(text(root, 'h1')).toBe('simulate');
    expect(field('Id')).toBe(job.id);
    expect(field('Status')).toBe('succeeded');
    expect(field('Attempts')).toBe('2');
    expect(field('Worker')).toBe('host-1:worker-3');
    expect(field('User')).toBe('alice');
    expect(field('Executor')).toBe('standard');
    expect(field('Estimated time')).toBe('10 s');
    expect(field('Run time')).toBe('3 s');
    expect(field('Description')).toBe('nightly run');
    expect(field('Finished')).toMatch(/^2026-11-0[12] \d\d:\d\d:04 · .* ago$/);
    expect(JSON.parse(text(root, '[data-testid="result"]'))).toEqual({ slept: 3, steps: 15 });
    expect(JSON.parse(text(root, '[data-testid="params"]'))).toEqual({ duration: 3 });
    expect(buttonByText(root, 'Cancel job').disabled).toBe(true);
    expect(buttonByText(root, 'Delete').disabled).toBe(false);
    expect(FakeEventSource.instances).toEqual([]);
  });

  it("shows a failed job's error first, above the fields", async () => {
    const job = makeJob({
      name: 'fail',
      status: 'failed',
      error: 'PermanentError: the fail task failed on purpose',
    });
    await open(job);
    const error = query(root, '[data-testid="error"]');
    expect(text(root, '[data-testid="error"]')).toBe(
      'PermanentError: the fail task failed on purpose',
    );
    expect(text(root, 'app-status-badge')).toBe('failed');
    // On a phone the fields fill several screens: the error must not wait below them.
    const fields = query(root, '.fields');
    expect(error.compareDocumentPosition(fields) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });

  it('cancels a running job after a confirmation, and follows it live', async () => {
    const job = makeJob({ status: 'running', progress: 30, started_at: new Date().toISOString() });
    await open(job);
    const source = FakeEventSource.last();
    source.sendJob({ ...job, progress: 35, updated_at: '2026-11-01T10:00:02Z' });
    await settle();
    expect(query(root, '[role="progressbar"]').getAttribute('aria-valuenow')).toBe('35');
    expect(buttonByText(root, 'Delete').disabled).toBe(true);

    buttonByText(root, 'Cancel job').click();
    await settle();
    const dialog = query(root, '[role="alertdialog"]');
    expect(text(dialog, 'h2')).toBe('Cancel this job?');
    expect(document.activeElement?.textContent?.trim()).toBe('Keep running');
    http.expectNone(`/api/v1/jobs/${job.id}/cancel`);

    buttonByText(dialog, 'Cancel job').click();
    await settle();
    http
      .expectOne({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel` })
      .flush({ ...job, status: 'cancelled', finished_at: new Date().toISOString() });
    await settle();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    expect(field('Status')).toBe('cancelled');
    expect(buttonByText(root, 'Delete').disabled).toBe(false);
    expect(source.closed).toBe(true);
    // "Cancel job" is disabled now; focus went to the heading rather than to <body>.
    expect(document.activeElement?.id).toBe('job-title');
  });

  it('keeps the job when the dialog is dismissed with Escape', async () => {
    const job = makeJob({ status: 'queued' });
    await open(job);
    buttonByText(root, 'Cancel job').click();
    await settle();
    query(root, '[role="alertdialog"]').dispatchEvent(
      new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }),
    );
    await settle();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    http.expectNone(`/api/v1/jobs/${job.id}/cancel`);
    FakeEventSource.last().close();
  });

  it('says why a cancel was refused and shows where the job is now', async () => {
    const job = makeJob({ status: 'running', progress: 99 });
    await open(job);
    buttonByText(root, 'Cancel job').click();
    await settle();
    buttonByText(query(root, '[role="alertdialog"]'), 'Cancel job').click();
    http
      .expectOne(`/api/v1/jobs/${job.id}/cancel`)
      .flush(problem(409, 'Job is already succeeded', [], { current_status: 'succeeded' }), {
        status: 409,
        statusText: 'Conflict',
      });
    http.expectOne(`/api/v1/jobs/${job.id}`).flush({ ...job, status: 'succeeded', progress: 100 });
    await settle();
    expect(text(root, '.callout--error')).toBe(
      'Cancel failed: Job is already succeeded (HTTP 409)',
    );
    expect(field('Status')).toBe('succeeded');
    expect(document.activeElement).toBe(query(root, '.callout--error'));
  });

  it('deletes a finished job after a confirmation and goes back to the list', async () => {
    const job = makeJob({ status: 'cancelled' });
    await open(job);
    buttonByText(root, 'Delete').click();
    await settle();
    buttonByText(query(root, '[role="alertdialog"]'), 'Delete').click();
    http
      .expectOne({ method: 'DELETE', url: `/api/v1/jobs/${job.id}` })
      .flush({ message: `Job ${job.id} deleted.` });
    await settle();
    expect(TestBed.inject(Router).url).toBe('/jobs');
    expect(TestBed.inject(NoticeService).message()).toBe(`Job simulate (${job.id}) deleted.`);
  });

  describe('Re-run', () => {
    it('runs a failed job again and opens the new job, which links back', async () => {
      const job = makeJob({ name: 'fail', status: 'failed', error: 'PermanentError: boom' });
      await open(job);
      buttonByText(root, 'Re-run').click();
      await settle();
      http
        .expectOne({ method: 'POST', url: `/api/v1/jobs/${job.id}/rerun` })
        .flush({ status: 200, job_id: 'c'.repeat(24) });
      await settle();
      expect(TestBed.inject(Router).url).toBe(`/jobs/${'c'.repeat(24)}`);
      expect(TestBed.inject(NoticeService).message()).toBe(
        `Job fail (${job.id}) re-run as ${'c'.repeat(24)}.`,
      );
      // The old job's fields are not shown under the new id while it loads.
      expect(root.querySelector('[data-testid="job-id"]')).toBeNull();
      const rerun = makeJob({ id: 'c'.repeat(24), name: 'fail', rerun_of: job.id });
      http.expectOne(`/api/v1/jobs/${'c'.repeat(24)}`).flush(rerun);
      await settle();
      expect(field('Id')).toBe('c'.repeat(24));
      const back = query<HTMLAnchorElement>(root, '[data-testid="rerun-of"]');
      expect(field('Re-run of')).toBe(job.id);
      expect(back.getAttribute('href')).toBe(`/jobs/${job.id}`);
      // Queued: nothing to re-run yet.
      expect(
        Array.from(root.querySelectorAll('button')).some((b) => b.textContent?.trim() === 'Re-run'),
      ).toBe(false);
      FakeEventSource.last().close();
    });

    it.each([
      ['cancelled', true],
      ['succeeded', false],
      ['running', false],
      ['scheduled', false],
    ] as const)('is offered for a %s job: %s', async (status, offered) => {
      const job = makeJob({ status });
      await open(job);
      const buttons = Array.from(root.querySelectorAll('button')).map((b) => b.textContent?.trim());
      expect(buttons.includes('Re-run')).toBe(offered);
      FakeEventSource.instances.forEach((source) => source.close());
    });

    it('says why a re-run was refused (409: not finished) and shows where the job is', async () => {
      const job = makeJob({ status: 'cancelled' });
      await open(job);
      buttonByText(root, 'Re-run').click();
      http
        .expectOne(`/api/v1/jobs/${job.id}/rerun`)
        .flush(problem(409, 'Job is not finished', [], { current_status: 'running' }), {
          status: 409,
          statusText: 'Conflict',
        });
      http.expectOne(`/api/v1/jobs/${job.id}`).flush({ ...job, status: 'cancelled' });
      await settle();
      expect(text(root, '.callout--error')).toBe('Re-run failed: Job is not finished (HTTP 409)');
      expect(document.activeElement).toBe(query(root, '.callout--error'));
      expect(TestBed.inject(Router).url).toBe(`/jobs/${job.id}`);
    });

    it('says so when the job is gone (404)', async () => {
      const job = makeJob({ status: 'failed' });
      await open(job);
      buttonByText(root, 'Re-run').click();
      http
        .expectOne(`/api/v1/jobs/${job.id}/rerun`)
        .flush(problem(404, 'Not found'), { status: 404, statusText: 'Not Found' });
      http
        .expectOne(`/api/v1/jobs/${job.id}`)
        .flush(problem(404, 'Not found'), { status: 404, statusText: 'Not Found' });
      await settle();
      expect(text(root, '[data-testid="not-found"] h1')).toBe('Job not found');
    });
  });

  it('says when a scheduled job starts, and estimates its finish from then', async () => {
    // Noon, local time: ten minutes on is the same day whenever the test runs (the clock
    // shows a date instead for another day).
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(2026, 5, 15, 12, 0, 0));
    const runAt = new Date(Date.now() + 10 * 60_000);
    const job = makeJob({
      status: 'scheduled',
      estimated_time: 30,
      run_at: runAt.toISOString(),
      callback_url: 'https://hooks.example.com/done',
    });
    await open(job);
    expect(text(root, 'app-status-badge')).toBe('scheduled');
    expect(text(root, '[data-testid="starts-at"]')).toMatch(
      /^Starts at \d\d:\d\d:\d\d · in 10 min$|^Starts at \d\d:\d\d:\d\d · in 9 min 5\d s$/,
    );
    // The estimate: 30 s after the start, so 10 min 30 s from now.
    expect(text(root, '.detail-progress app-job-timing')).toMatch(/· in 10 min (29|30) s$/);
    expect(field('Run at')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d · in /);
    expect(field('Callback URL')).toBe('https://hooks.example.com/done');
    FakeEventSource.last().close();
    vi.useRealTimers();
  });

  it('names the day of a scheduled start that is not today', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(2026, 5, 15, 23, 55, 0));
    const job = makeJob({
      status: 'scheduled',
      run_at: new Date(2026, 5, 16, 0, 5, 0).toISOString(),
    });
    await open(job);
    expect(text(root, '[data-testid="starts-at"]')).toBe('Starts at 2026-06-16 00:05 · in 10 min');
    FakeEventSource.last().close();
    vi.useRealTimers();
  });

  it('says when the job does not exist', async () => {
    harness = await RouterTestingHarness.create();
    await harness.navigateByUrl(`/jobs/${'0'.repeat(24)}`, JobDetailPage);
    root = harness.routeNativeElement as HTMLElement;
    http
      .expectOne(`/api/v1/jobs/${'0'.repeat(24)}`)
      .flush(problem(404, 'not found'), { status: 404, statusText: 'Not Found' });
    await settle();
    expect(text(root, '[data-testid="not-found"] h1')).toBe('Job not found');
  });
});
