import { HttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { appConfig } from './app.config';

describe('appConfig HTTP', () => {
  afterEach(() => {
    document.cookie = 'csrftoken=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/';
  });

  it("repeats the csrftoken cookie in X-CSRFToken on state-changing calls (Litestar's CSRF)", () => {
    TestBed.configureTestingModule({
      providers: [...appConfig.providers, provideHttpClientTesting()],
    });
    const http = TestBed.inject(HttpTestingController);
    const client = TestBed.inject(HttpClient);
    document.cookie = 'csrftoken=t0k3n; path=/';

    client.post('/api/v1/tokens', { name: 'x' }).subscribe();
    client.delete('/api/v1/tokens/abc').subscribe();
    client.get('/api/v1/tokens').subscribe();
    expect(http.expectOne({ method: 'POST' }).request.headers.get('X-CSRFToken')).toBe('t0k3n');
    expect(http.expectOne({ method: 'DELETE' }).request.headers.get('X-CSRFToken')).toBe('t0k3n');
    expect(http.expectOne({ method: 'GET' }).request.headers.has('X-CSRFToken')).toBe(false);
  });
});
