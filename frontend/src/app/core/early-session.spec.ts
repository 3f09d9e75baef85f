import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { firstValueFrom } from 'rxjs';

import { SessionUser } from '../api/auth.model';
import { AuthService } from './auth.service';
import { EARLY_SESSION, EarlySession, SESSION_URL, startSessionRequest } from './early-session';

const ADA: SessionUser = { username: 'ada', role: 'admin' };
const SIGNED_IN = { signed_in: true, username: 'ada', role: 'admin', via: 'session' };
const SIGNED_OUT = { signed_in: false };

function answer(status: number, body: unknown = null): (url: string) => Promise<Response> {
  return vi.fn(async () => new Response(body === null ? null : JSON.stringify(body), { status }));
}

describe('startSessionRequest (GET /auth/session before the app boots)', () => {
  it('asks the URL index.html preloads, as a plain fetch the preload matches', async () => {
    const fetcher = answer(200, SIGNED_IN);
    expect(await startSessionRequest(fetcher)).toEqual(ADA);
    expect(fetcher).toHaveBeenCalledWith(SESSION_URL);
  });

  it('reads signed_in false as signed out, and an API that is down or erring as "ask again"', async () => {
    expect(await startSessionRequest(answer(200, SIGNED_OUT))).toBeNull();
    expect(await startSessionRequest(answer(502, { status: 502 }))).toBeUndefined();
    const down = vi.fn(async () => Promise.reject(new TypeError('Failed to fetch')));
    expect(await startSessionRequest(down)).toBeUndefined();
  });
});

describe('AuthService with an early session', () => {
  let http: HttpTestingController;

  function service(early: EarlySession): AuthService {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        { provide: EARLY_SESSION, useValue: early },
      ],
    });
    http = TestBed.inject(HttpTestingController);
    return TestBed.inject(AuthService);
  }

  afterEach(() => http.verify());

  it('takes the early answer instead of asking again', async () => {
    const auth = service(Promise.resolve(ADA));
    expect(await firstValueFrom(auth.session())).toEqual(ADA);
    expect(auth.user()).toEqual(ADA);
    http.expectNone(SESSION_URL);
  });

  it('settles before the first render: the header knows the user at once', async () => {
    const auth = service(Promise.resolve(ADA));
    await auth.settleEarly(500);
    expect(auth.user()).toEqual(ADA);
    http.expectNone(SESSION_URL);
    // Signed out later: the next page asks the API, never the answer from before.
    auth.clear();
    const after = firstValueFrom(auth.session());
    http.expectOne(SESSION_URL).flush(SIGNED_OUT);
    expect(await after).toBeNull();
    expect(auth.user()).toBeNull();
  });

  it('waits for a slow API no longer than it is told, then the guard asks on', async () => {
    let answer: (user: SessionUser) => void = () => undefined;
    const auth = service(new Promise((resolve) => (answer = resolve)));
    const started = Date.now();
    await auth.settleEarly(30);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(auth.user()).toBeNull();
    const user = firstValueFrom(auth.session());
    answer(ADA);
    expect(await user).toEqual(ADA);
  });

  it('uses it once: after signing out, the next page asks the API', async () => {
    const auth = service(Promise.resolve(null));
    expect(await firstValueFrom(auth.session())).toBeNull();
    const again = firstValueFrom(auth.session());
    http.expectOne(SESSION_URL).flush(SIGNED_IN);
    expect(await again).toEqual(ADA);
  });

  it('asks through HttpClient when the early request got no usable answer', async () => {
    const auth = service(Promise.resolve(undefined));
    const user = firstValueFrom(auth.session());
    await Promise.resolve();
    (await pendingRequest(() => http.match(SESSION_URL)))[0].flush(SIGNED_IN);
    expect(await user).toEqual(ADA);
  });
});

async function pendingRequest<T>(match: () => T[]): Promise<T[]> {
  for (let tick = 0; tick < 50; tick++) {
    const found = match();
    if (found.length) {
      return found;
    }
    await new Promise((resolve) => setTimeout(resolve));
  }
  throw new Error('no request');
}
