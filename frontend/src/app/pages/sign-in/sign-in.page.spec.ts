import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ChangeDetectionStrategy, Component } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter, withComponentInputBinding } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { buttonByText, query, setValue, text } from '../../../testing/dom';
import { AuthService } from '../../core/auth.service';
import { SignInPage, parseRetryAfter } from './sign-in.page';
import { problem } from '../../../testing/problem';

@Component({
  selector: 'app-stub-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: '<h1>stub</h1>',
})
class StubPage {}

const LOGIN = '/api/v1/auth/login';

describe('SignInPage', () => {
  let http: HttpTestingController;
  let harness: RouterTestingHarness;
  let root: HTMLElement;
  let router: Router;

  async function open(url = '/sign-in'): Promise<void> {
    harness = await RouterTestingHarness.create();
    await harness.navigateByUrl(url, SignInPage);
    root = harness.routeNativeElement as HTMLElement;
  }

  async function settle(): Promise<void> {
    await harness.fixture.whenStable();
  }

  async function signIn(username: string, password: string): Promise<void> {
    setValue(query(root, '#field-username'), username);
    setValue(query(root, '#field-password'), password);
    buttonByText(root, 'Sign in').click();
    await settle();
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter(
          [
            { path: 'sign-in', component: SignInPage },
            { path: 'jobs', component: StubPage },
            { path: 'jobs/:id', component: StubPage },
          ],
          withComponentInputBinding(),
        ),
      ],
    });
    http = TestBed.inject(HttpTestingController);
    router = TestBed.inject(Router);
  });

  afterEach(() => http.verify());

  it('has labelled fields that password managers understand', async () => {
    await open();
    expect(text(root, 'h1')).toBe('Sign in');
    expect(query(root, 'h1').getAttribute('tabindex')).toBe('-1');
    const user = query<HTMLInputElement>(root, '#field-username');
    const password = query<HTMLInputElement>(root, '#field-password');
    expect(text(root, 'label[for="field-username"]')).toBe('User name');
    expect(text(root, 'label[for="field-password"]')).toBe('Password');
    expect(user.getAttribute('autocomplete')).toBe('username');
    expect(password.getAttribute('autocomplete')).toBe('current-password');
    expect(password.type).toBe('password');
  });

  it('signs in and goes back to the page in returnUrl', async () => {
    await open('/sign-in?returnUrl=%2Fjobs%2Fabc%3Fx%3D1');
    expect(text(root, '[data-testid="sign-in-reason"]')).toContain('Sign in to continue');
    await signIn(' alice ', 'pa ss');
    const request = http.expectOne(LOGIN);
    expect(request.request.method).toBe('POST');
    expect(request.request.body).toEqual({ username: 'alice', password: 'pa ss' });
    expect(buttonByText(root, 'Signing in…').getAttribute('aria-disabled')).toBe('true');
    request.flush({ username: 'alice', role: 'admin' });
    await settle();
    expect(router.url).toBe('/jobs/abc?x=1');
    expect(TestBed.inject(AuthService).user()).toEqual({ username: 'alice', role: 'admin' });
  });

  it('goes to My jobs without a returnUrl, and never to another site', async () => {
    await open('/sign-in?returnUrl=https%3A%2F%2Fevil.example%2Fphish');
    expect(root.querySelector('[data-testid="sign-in-reason"]')).toBeNull();
    await signIn('alice', 'secret');
    http.expectOne(LOGIN).flush({ username: 'alice', role: 'user' });
    await settle();
    expect(router.url).toBe('/jobs');
  });

  it('says so when the user name or password is wrong, and stays', async () => {
    await open('/sign-in?returnUrl=%2Fjobs');
    await signIn('alice', 'wrong');
    http.expectOne(LOGIN).flush(problem(401, 'wrong user name or password'), {
      status: 401,
      statusText: 'Unauthorized',
    });
    await settle();
    const error = query(root, '[data-testid="sign-in-error"]');
    expect(error.textContent?.trim()).toBe('Wrong user name or password.');
    expect(error.getAttribute('role')).toBe('alert');
    // Focus moves to the message, so a screen reader reads it.
    expect(document.activeElement).toBe(error);
    expect(router.url).toBe('/sign-in?returnUrl=%2Fjobs');
    expect(TestBed.inject(AuthService).user()).toBeNull();
    expect(buttonByText(root, 'Sign in').hasAttribute('aria-disabled')).toBe(false);
  });

  it('says how long to wait after too many attempts, and does not try before', async () => {
    await open();
    await signIn('alice', 'wrong');
    http.expectOne(LOGIN).flush(problem(429, 'Too many requests'), {
      status: 429,
      statusText: 'Too Many Requests',
      headers: { 'Retry-After': '90' },
    });
    await settle();
    expect(text(root, '[data-testid="sign-in-error"]')).toBe(
      'Too many sign-in attempts. Try again in 1 min 30 s.',
    );
    expect(document.activeElement).toBe(query(root, '[data-testid="sign-in-error"]'));

    buttonByText(root, 'Sign in').click();
    await settle();
    http.expectNone(LOGIN);
    expect(text(root, '[data-testid="sign-in-error"]')).toMatch(/^Too many sign-in attempts/);
  });

  it('says when the API cannot be reached', async () => {
    await open();
    await signIn('alice', 'secret');
    http.expectOne(LOGIN).error(new ProgressEvent('error'), { status: 0 });
    await settle();
    expect(text(root, '[data-testid="sign-in-error"]')).toContain('Cannot reach the API');
  });

  it('asks for both fields before sending anything', async () => {
    await open();
    buttonByText(root, 'Sign in').click();
    await settle();
    http.expectNone(LOGIN);
    expect(text(root, '#username-error')).toBe('Enter your user name.');
    expect(text(root, '#password-error')).toBe('Enter your password.');
    expect(query(root, '#field-username').getAttribute('aria-invalid')).toBe('true');
  });

  it('reads Retry-After as seconds or as a date', () => {
    const now = Date.parse('2026-11-01T10:00:00Z');
    expect(parseRetryAfter('30', now)).toBe(30);
    expect(parseRetryAfter('Sun, 01 Nov 2026 10:02:00 GMT', now)).toBe(120);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
});
