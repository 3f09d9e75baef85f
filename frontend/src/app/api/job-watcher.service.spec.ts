import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { FakeEventSource, makeJob } from '../../testing/fixtures';
import { Job } from './job.model';
import { EVENT_SOURCE_FACTORY, JobWatcher, LiveEvent, WATCH_TIMING } from './job-watcher.service';
import { problem } from '../../testing/problem';

describe('JobWatcher', () => {
  let watcher: JobWatcher;
  let http: HttpTestingController;
  let sseAvailable: boolean;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeEventSource.reset();
    sseAvailable = true;
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        {
          provide: EVENT_SOURCE_FACTORY,
          useValue: (url: string) => (sseAvailable ? new FakeEventSource(url) : null),
        },
        { provide: WATCH_TIMING, useValue: { pollMinMs: 1000, pollMaxMs: 4000, maxStreams: 2 } },
      ],
    });
    watcher = TestBed.inject(JobWatcher);
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    http.verify();
    vi.useRealTimers();
  });

  it('follows the SSE stream and stops after a terminal status', () => {
    const job = makeJob({ status: 'running', progress: 10 });
    const seen: Job[] = [];
    let completed = false;
    watcher
      .watch(job.id)
      .subscribe({ next: (j) => seen.push(j), complete: () => (completed = true) });
    const source = FakeEventSource.last();
    expect(source.url).toBe(`/api/v1/jobs/${job.id}/events`);
    expect(watcher.streams()).toBe(1);

    source.sendJob({ ...job, progress: 40 });
    source.sendJob({ ...job, status: 'succeeded', progress: 100 });

    expect(seen.map((j) => j.progress)).toEqual([40, 100]);
    expect(completed).toBe(true);
    expect(source.closed).toBe(true);
    expect(watcher.streams()).toBe(0);
  });

  it('falls back to polling when the stream fails, until the job finishes', () => {
    const job = makeJob({ status: 'running', progress: 10 });
    const seen: number[] = [];
    let completed = false;
    watcher.watch(job.id).subscribe({
      next: (j) => seen.push(j.progress),
      complete: () => (completed = true),
    });
    const source = FakeEventSource.last();
    source.fail();
    expect(source.closed).toBe(true);
    expect(watcher.polled()).toBe(1);

    // An immediate catch-up poll, then one per interval.
    http.expectOne(`/api/v1/jobs/${job.id}`).flush({ ...job, progress: 50 });
    vi.advanceTimersByTime(1000);
    http.expectOne(`/api/v1/jobs/${job.id}`).flush({ ...job, status: 'succeeded', progress: 100 });

    expect(seen).toEqual([50, 100]);
    expect(completed).toBe(true);
    vi.advanceTimersByTime(10_000);
    http.expectNone(`/api/v1/jobs/${job.id}`);
    expect(watcher.polled()).toBe(0);
  });

  it('polls less often while nothing changes, and keeps trying when the API is down', () => {
    sseAvailable = false;
    const job = makeJob({ status: 'queued' });
    const subscription = watcher.watch(job.id).subscribe();
    const url = `/api/v1/jobs/${job.id}`;
    http.expectOne(url).flush(job);
    vi.advanceTimersByTime(1000);
    http.expectOne(url).flush(job); // unchanged: next wait is 1.5 s
    vi.advanceTimersByTime(1000);
    http.expectNone(url);
    vi.advanceTimersByTime(500);
    http.expectOne(url).flush(null, { status: 0, statusText: 'Unknown Error' });
    vi.advanceTimersByTime(3999);
    http.expectNone(url);
    vi.advanceTimersByTime(1);
    http.expectOne(url).flush(job);
    subscription.unsubscribe();
    vi.advanceTimersByTime(10_000);
    http.expectNone(url);
  });

  it('opens at most maxStreams streams and polls the rest', () => {
    const jobs = [makeJob(), makeJob(), makeJob()];
    const subscriptions = jobs.map((job) => watcher.watch(job.id).subscribe());
    expect(FakeEventSource.instances.length).toBe(2);
    expect(watcher.streams()).toBe(2);
    expect(watcher.polled()).toBe(1);
    http.expectOne(`/api/v1/jobs/${jobs[2].id}`).flush(jobs[2]);
    subscriptions.forEach((s) => s.unsubscribe());
    expect(FakeEventSource.instances.every((s) => s.closed)).toBe(true);
    expect(watcher.streams()).toBe(0);
    expect(watcher.polled()).toBe(0);
  });

  it('errors when the job is gone', () => {
    sseAvailable = false;
    const job = makeJob();
    let status = 0;
    watcher.watch(job.id).subscribe({ error: (e: { status: number }) => (status = e.status) });
    http
      .expectOne(`/api/v1/jobs/${job.id}`)
      .flush(problem(404, 'not found'), { status: 404, statusText: 'Not Found' });
    expect(status).toBe(404);
  });

  describe('followAll', () => {
    const shown = (event: LiveEvent): string =>
      event.kind === 'job' ? `${event.job.id}:${event.job.status}` : `${event.kind}`;

    it('follows several jobs on one stream until each has finished or gone', () => {
      const [a, b] = [makeJob({ status: 'running' }), makeJob({ status: 'queued' })];
      const seen: string[] = [];
      let completed = false;
      watcher
        .followAll([a.id, b.id])
        .subscribe({ next: (e) => seen.push(shown(e)), complete: () => (completed = true) });
      const source = FakeEventSource.last();
      expect(source.url).toBe(`/api/v1/events?job=${a.id}&job=${b.id}`);
      expect(watcher.streams()).toBe(1); // one connection for both

      source.sendJob({ ...a, status: 'succeeded' });
      expect(completed).toBe(false);
      source.sendGone(b.id);
      expect(seen).toEqual([`${a.id}:succeeded`, 'gone']);
      expect(completed).toBe(true);
      expect(source.closed).toBe(true);
      expect(watcher.streams()).toBe(0);
    });

    it('says the stream is lost when it breaks or cannot be opened, and polls nothing', () => {
      const job = makeJob({ status: 'running' });
      const seen: string[] = [];
      watcher.followAll([job.id]).subscribe((e) => seen.push(shown(e)));
      FakeEventSource.last().fail();
      sseAvailable = false;
      watcher.followAll([job.id]).subscribe((e) => seen.push(shown(e)));
      expect(seen).toEqual(['lost', 'lost']);
      expect(watcher.streams()).toBe(0);
      vi.advanceTimersByTime(60_000);
      http.expectNone(() => true); // the caller decides how to poll (the list, at once)
    });
  });
});
