import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { apiStatusInterceptor } from './api-status.interceptor';
import { API_RETRY_MS, ApiStatus } from './api-status.service';
import { problem } from '../../testing/problem';

describe('ApiStatus and its interceptor', () => {
  let http: HttpTestingController;
  let client: HttpClient;
  let status: ApiStatus;

  beforeEach(() => {
    vi.useFakeTimers();
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([apiStatusInterceptor])),
        provideHttpClientTesting(),
      ],
    });
    http = TestBed.inject(HttpTestingController);
    client = TestBed.inject(HttpClient);
    status = TestBed.inject(ApiStatus);
  });

  afterEach(() => {
    http.verify();
    vi.useRealTimers();
  });

  it('goes down when a request cannot reach the API, and retries until it answers', () => {
    let recoveries = 0;
    status.recovered.subscribe(() => recoveries++);
    client.get('/api/v1/jobs/x').subscribe({ error: () => undefined });
    http.expectOne('/api/v1/jobs/x').error(new ProgressEvent('error'), { status: 0 });
    expect(status.down()?.message).toContain('Cannot reach the API');

    vi.advanceTimersByTime(API_RETRY_MS);
    http.expectOne('/api/v1/auth/session').error(new ProgressEvent('error'), { status: 0 });
    expect(status.down()).not.toBeNull();

    vi.advanceTimersByTime(API_RETRY_MS);
    http.expectOne('/api/v1/auth/session').flush({ signed_in: false });
    expect(status.down()).toBeNull();
    expect(recoveries).toBe(1);
    vi.advanceTimersByTime(API_RETRY_MS * 3);
    http.expectNone('/api/v1/auth/session');
  });

  it('stays up when the API answers with an error of its own', () => {
    client.get('/api/v1/jobs/x').subscribe({ error: () => undefined });
    http
      .expectOne('/api/v1/jobs/x')
      .flush(problem(404, 'Job x not found'), { status: 404, statusText: 'Not Found' });
    expect(status.down()).toBeNull();
  });

  it('counts a signed-out answer from the probe (GET /auth/session) as the API being back', () => {
    status.markDown({ status: 0, message: 'Cannot reach the API.', fields: {}, unreachable: true });
    status.retryNow();
    http.expectOne('/api/v1/auth/session').flush({ signed_in: false });
    expect(status.down()).toBeNull();
  });
});
