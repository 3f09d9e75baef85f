import {
  HttpClient,
  HttpErrorResponse,
  provideHttpClient,
  withInterceptors,
} from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { ChangeDetectionStrategy, Component } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { signInAs } from '../../testing/auth';
import { signInUrlTree, signedInGuard, signedOutGuard } from './auth.guard';
import { authInterceptor, needsSession } from './auth.interceptor';
import { AuthService } from './auth.service';
import { NoticeService } from './notice.service';
import { safeReturnUrl } from './return-url';
import { problem } from '../../testing/problem';

@Component({
  selector: 'app-stub-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: '<h1>stub</h1>',
})
class StubPage {}

const SESSION = '/api/v1/auth/session';
const SIGNED_OUT = { signed_in: false };
const UNAUTHORIZED = { status: 401, statusText: 'Unauthorized' };
const NO_SESSION = problem(401, 'No valid session');

describe('safeReturnUrl (no open redirect)', () => {
  it("keeps the app's own paths, with their query and fragment", () => {
    for (const url of ['/jobs', '/jobs/abc123', '/jobs?status=failed&offset=20', '/tokens#x']) {
      expect(safeReturnUrl(url)).toBe(url);
    }
  });

  it('refuses anything that could leave the app, or loop back to sign-in', () => {
    for (const url of [
      null,
      undefined,
      '',
      'jobs',
      'https://evil.example/jobs',
      'HTTPS://evil.example',
      '//evil.example/jobs',
      '/\\evil.example',
      '/\\/evil.example',
      'javascript:alert(1)',
      ' /jobs',
      '/jobs\nLocation: https://evil.example',
      '/jobs\t',
      '/sign-in',
      '/sign-in?returnUrl=%2Fjobs',
      `/${'x'.repeat(3000)}`,
    ]) {
      expect(safeReturnUrl(url), String(url)).toBeNull();
    }
  });
});

describe('AuthService', () => {
  let http: HttpTestingController;
  let auth: AuthService;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    auth = TestBed.inject(AuthService);
  });

  afterEach(() => http.verify());

  it('asks GET /auth/session once for everyone waiting, then knows', () => {
    const seen: unknown[] = [];
    auth.session().subscribe((user) => seen.push(user));
    auth.session().subscribe((user) => seen.push(user));
    http.expectOne(SESSION).flush({ signed_in: true, username: 'alice', role: 'admin', via: 'x' });
    expect(seen).toEqual([
      { username: 'alice', role: 'admin' },
      { username: 'alice', role: 'admin' },
    ]);
    expect(auth.isAdmin()).toBe(true);
    auth.session().subscribe();
    http.expectNone(SESSION);
  });

  it('reads {"signed_in": false} as "not signed in", and asks again next time', () => {
    let user: unknown = 'unset';
    auth.session().subscribe((answer) => (user = answer));
    http.expectOne(SESSION).flush(SIGNED_OUT);
    expect(user).toBeNull();
    auth.session().subscribe();
    http.expectOne(SESSION).error(new ProgressEvent('error'), { status: 0 });
    expect(auth.user()).toBeNull();
  });

  it('signs in with POST /auth/login and out with POST /auth/logout', () => {
    auth.signIn('alice', 'secret').subscribe();
    const login = http.expectOne('/api/v1/auth/login');
    expect(login.request.method).toBe('POST');
    expect(login.request.body).toEqual({ username: 'alice', password: 'secret' });
    login.flush({ username: 'alice', role: 'user' });
    expect(auth.user()).toEqual({ username: 'alice', role: 'user' });

    auth.signOut().subscribe();
    const logout = http.expectOne('/api/v1/auth/logout');
    expect(logout.request.method).toBe('POST');
    logout.flush({ message: 'Signed out.' });
    expect(auth.user()).toBeNull();
  });

  it('counts a 401 on sign-out as signed out, but not a failure to reach the API', () => {
    signInAs('alice');
    let failed = false;
    auth.signOut().subscribe({ error: () => (failed = true) });
    http.expectOne('/api/v1/auth/logout').error(new ProgressEvent('error'), { status: 0 });
    expect(failed).toBe(true);
    expect(auth.user()).not.toBeNull();

    auth.signOut().subscribe();
    http.expectOne('/api/v1/auth/logout').flush(NO_SESSION, UNAUTHORIZED);
    expect(auth.user()).toBeNull();
  });
});

describe('route guards', () => {
  let http: HttpTestingController;
  let router: Router;

  async function go(url: string): Promise<void> {
    await router.navigateByUrl(url);
  }

  /** The request the guard sends, once the navigation has got that far. */
  async function pending(url: string): Promise<TestRequest> {
    for (let tick = 0; tick < 50; tick++) {
      const [request] = http.match(url);
      if (request) {
        return request;
      }
      await new Promise((resolve) => setTimeout(resolve));
    }
    throw new Error(`no request to ${url}`);
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter([
          { path: 'sign-in', component: StubPage, canActivate: [signedOutGuard] },
          { path: 'jobs', component: StubPage, canActivate: [signedInGuard] },
          { path: 'tokens', component: StubPage, canActivate: [signedInGuard] },
        ]),
      ],
    });
    http = TestBed.inject(HttpTestingController);
    router = TestBed.inject(Router);
    await RouterTestingHarness.create();
  });

  afterEach(() => http.verify());

  it('sends a signed-out user to /sign-in with the page as returnUrl', async () => {
    const done = go('/jobs?status=failed');
    (await pending(SESSION)).flush(SIGNED_OUT);
    // The sign-in page's own guard asks too (the user was not known): not signed in.
    (await pending(SESSION)).flush(SIGNED_OUT);
    await done;
    expect(router.url).toBe('/sign-in?returnUrl=%2Fjobs%3Fstatus%3Dfailed');
  });

  it('lets a signed-in user in, asking the API only once', async () => {
    const done = go('/jobs');
    (await pending(SESSION)).flush({
      signed_in: true,
      username: 'alice',
      role: 'user',
      via: 'session',
    });
    await done;
    expect(router.url).toBe('/jobs');
    await go('/tokens');
    http.expectNone(SESSION);
    expect(router.url).toBe('/tokens');
  });

  it('sends to sign-in when the API cannot say who is signed in', async () => {
    const done = go('/tokens');
    (await pending(SESSION)).error(new ProgressEvent('error'), { status: 0 });
    (await pending(SESSION)).error(new ProgressEvent('error'), { status: 0 });
    await done;
    expect(router.url).toBe('/sign-in?returnUrl=%2Ftokens');
  });

  it('takes a signed-in user past /sign-in, to a safe returnUrl only', async () => {
    signInAs('alice');
    await go('/sign-in?returnUrl=%2Ftokens');
    expect(router.url).toBe('/tokens');
    await go('/sign-in?returnUrl=https%3A%2F%2Fevil.example%2F');
    expect(router.url).toBe('/jobs');
    await go('/sign-in?returnUrl=%2F%2Fevil.example');
    expect(router.url).toBe('/jobs');
  });

  it('never puts an unsafe returnUrl in the sign-in link', () => {
    const url = (returnUrl: string | null) => router.serializeUrl(signInUrlTree(router, returnUrl));
    expect(url('/jobs/abc')).toBe('/sign-in?returnUrl=%2Fjobs%2Fabc');
    expect(url('//evil.example')).toBe('/sign-in');
    expect(url('/sign-in?returnUrl=%2Fjobs')).toBe('/sign-in');
    expect(url('/')).toBe('/sign-in');
    expect(url(null)).toBe('/sign-in');
  });
});

describe('authInterceptor (a 401 sends to sign-in)', () => {
  let http: HttpTestingController;
  let client: HttpClient;
  let router: Router;
  let auth: AuthService;

  /** GET url, answered 401; returns what the caller saw. */
  function unauthorized(url: string): HttpErrorResponse | null {
    let seen: HttpErrorResponse | null = null;
    client.get(url).subscribe({ error: (error: HttpErrorResponse) => (seen = error) });
    http.expectOne(url).flush(NO_SESSION, UNAUTHORIZED);
    return seen;
  }

  async function settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve));
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([authInterceptor])),
        provideHttpClientTesting(),
        provideRouter([
          { path: 'sign-in', component: StubPage },
          { path: 'jobs', component: StubPage },
          { path: 'jobs/:id', component: StubPage },
        ]),
      ],
    });
    http = TestBed.inject(HttpTestingController);
    client = TestBed.inject(HttpClient);
    router = TestBed.inject(Router);
    auth = TestBed.inject(AuthService);
    await RouterTestingHarness.create();
  });

  afterEach(() => http.verify());

  it('forgets the user and goes to /sign-in?returnUrl=<where the user was>', async () => {
    signInAs('alice');
    await router.navigateByUrl('/jobs?status=failed&offset=20');
    const error = unauthorized('/api/v1/jobs');
    await settle();
    expect(error?.status).toBe(401); // the caller still hears about it
    expect(auth.user()).toBeNull();
    expect(router.url).toBe('/sign-in?returnUrl=%2Fjobs%3Fstatus%3Dfailed%26offset%3D20');
    expect(TestBed.inject(NoticeService).message()).toContain('session has ended');
  });

  it('leaves the sign-in page (and its returnUrl) alone', async () => {
    await router.navigateByUrl('/sign-in?returnUrl=%2Fjobs%2Fabc');
    unauthorized('/api/v1/executors');
    await settle();
    expect(router.url).toBe('/sign-in?returnUrl=%2Fjobs%2Fabc');
  });

  it('lets /auth/me and /auth/login answer 401 for themselves', async () => {
    signInAs('alice');
    await router.navigateByUrl('/jobs');
    unauthorized('/api/v1/auth/me');
    client.post('/api/v1/auth/login', {}).subscribe({ error: () => undefined });
    http.expectOne('/api/v1/auth/login').flush(NO_SESSION, UNAUTHORIZED);
    await settle();
    expect(router.url).toBe('/jobs');
    expect(auth.user()).not.toBeNull();
  });

  it('ignores other errors, and 401s from outside the API', async () => {
    signInAs('alice');
    await router.navigateByUrl('/jobs/abc');
    client.get('/api/v1/jobs/abc').subscribe({ error: () => undefined });
    http
      .expectOne('/api/v1/jobs/abc')
      .flush(problem(403, 'Forbidden'), { status: 403, statusText: 'Forbidden' });
    unauthorized('/elsewhere/api');
    await settle();
    expect(router.url).toBe('/jobs/abc');
    expect(auth.user()).not.toBeNull();
  });

  it('knows which URLs need a session', () => {
    expect(needsSession('/api/v1/jobs', '/api/v1')).toBe(true);
    expect(needsSession('/api/v1/tokens/abc', '/api/v1')).toBe(true);
    expect(needsSession('/api/v1/auth/me', '/api/v1')).toBe(false);
    expect(needsSession('/api/v1/auth/session', '/api/v1')).toBe(false);
    expect(needsSession('/api/v1/auth/login', '/api/v1')).toBe(false);
    expect(needsSession('/api/v1/auth/logout', '/api/v1')).toBe(false);
    expect(needsSession('/api/v10/jobs', '/api/v1')).toBe(false);
    expect(needsSession('/other', '/api/v1')).toBe(false);
  });
});
