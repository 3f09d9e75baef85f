import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { makeJob } from '../../testing/fixtures';
import { JobsApi } from './jobs-api.service';

describe('JobsApi', () => {
  let api: JobsApi;
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    api = TestBed.inject(JobsApi);
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('submits to the executor named in the query, with the request as the body', () => {
    let jobId = '';
    api
      .submit('gpu', {
        job_name: 'simulate',
        estimated_time: 6,
        params: { a: 1 },
      })
      .subscribe((response) => (jobId = response.job_id));
    const request = http.expectOne('/api/v1/job_executor/async?executor=gpu');
    expect(request.request.method).toBe('POST');
    expect(request.request.body).toEqual({
      job_name: 'simulate',
      estimated_time: 6,
      params: { a: 1 },
    });
    request.flush({ status: 200, job_id: 'f'.repeat(24) });
    expect(jobId).toBe('f'.repeat(24));
  });

  it('lists the caller’s own jobs by default, naming no user', () => {
    api.list({ limit: 20 }).subscribe();
    const request = http.expectOne((r) => r.url === '/api/v1/jobs');
    expect(request.request.params.keys()).toEqual(['limit']);
    request.flush({ items: [], total: 0, limit: 20, offset: 0, next_cursor: null });
  });

  it('lists one user’s jobs, or every user’s, for an admin', () => {
    api.list({ user_id: 'al ice' }).subscribe();
    const one = http.expectOne((r) => r.url === '/api/v1/jobs');
    expect(one.request.params.get('user_id')).toBe('al ice');
    expect(one.request.params.has('all')).toBe(false);
    one.flush({ items: [], total: 0, limit: 20, offset: 0, next_cursor: null });

    api.list({ all: true, user_id: 'ignored' }).subscribe();
    const all = http.expectOne((r) => r.url === '/api/v1/jobs');
    expect(all.request.params.get('all')).toBe('true');
    expect(all.request.params.has('user_id')).toBe(false);
    all.flush({ items: [], total: 0, limit: 20, offset: 0, next_cursor: null });
  });

  it('lists with filter and offset', () => {
    api.list({ status: 'failed', limit: 20, offset: 40 }).subscribe();
    const request = http.expectOne((r) => r.url === '/api/v1/jobs');
    expect(request.request.params.get('status')).toBe('failed');
    expect(request.request.params.get('limit')).toBe('20');
    expect(request.request.params.get('offset')).toBe('40');
    expect(request.request.params.has('cursor')).toBe(false);
    request.flush({ items: [], total: 0, limit: 20, offset: 40, next_cursor: null });
  });

  it('prefers a cursor over an offset and leaves out an empty filter', () => {
    api.list({ status: null, offset: 20, cursor: 'abc' }).subscribe();
    const request = http.expectOne((r) => r.url === '/api/v1/jobs');
    expect(request.request.params.get('cursor')).toBe('abc');
    expect(request.request.params.has('offset')).toBe(false);
    expect(request.request.params.has('status')).toBe(false);
    request.flush({ items: [], total: 0, limit: 20, offset: null, next_cursor: null });
  });

  it('gets, cancels and deletes one job by id', () => {
    const job = makeJob();
    api.get(job.id).subscribe();
    http.expectOne({ method: 'GET', url: `/api/v1/jobs/${job.id}` }).flush(job);
    api.cancel(job.id).subscribe();
    http.expectOne({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel` }).flush(job);
    api.delete(job.id).subscribe();
    http
      .expectOne({ method: 'DELETE', url: `/api/v1/jobs/${job.id}` })
      .flush({ message: `Job ${job.id} deleted.` });
    expect(api.eventsUrl(job.id)).toBe(`/api/v1/jobs/${job.id}/events`);
  });

  it('asks for tasks and executors', () => {
    api.tasks().subscribe();
    api.executors().subscribe();
    http.expectOne('/api/v1/tasks').flush([]);
    http.expectOne('/api/v1/executors').flush([]);
  });
});
