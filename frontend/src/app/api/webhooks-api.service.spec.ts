import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { WebhookSecret, WebhookSecretState } from './webhooks.model';
import { WebhooksApi } from './webhooks-api.service';

const URL = '/api/v1/webhooks/secret';

describe('WebhooksApi', () => {
  let api: WebhooksApi;
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    api = TestBed.inject(WebhooksApi);
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('asks whether the user has a secret, and since when', () => {
    let state: WebhookSecretState | null = null;
    api.secretState().subscribe((answer) => (state = answer));
    const request = http.expectOne(URL);
    expect(request.request.method).toBe('GET');
    request.flush({ exists: true, rotated_at: '2026-11-01T10:00:00Z' });
    expect(state).toEqual({ exists: true, rotated_at: '2026-11-01T10:00:00Z' });
  });

  it('makes or rotates the secret with a POST, and hands back the secret it shows once', () => {
    let made: WebhookSecret | null = null;
    api.rotateSecret().subscribe((answer) => (made = answer));
    const request = http.expectOne(URL);
    expect(request.request.method).toBe('POST');
    request.flush(
      { secret: 'whsec_abc', rotated_at: '2026-11-02T10:00:00Z' },
      { status: 201, statusText: 'Created' },
    );
    expect(made).toEqual({ secret: 'whsec_abc', rotated_at: '2026-11-02T10:00:00Z' });
  });
});
