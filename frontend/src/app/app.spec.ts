import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ChangeDetectionStrategy, Component } from '@angular/core';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';

import { signInAs } from '../testing/auth';
import { buttonByText, query, text } from '../testing/dom';
import { App } from './app';
import { ApiStatus } from './core/api-status.service';
import { AuthService } from './core/auth.service';

describe('App shell', () => {
  let fixture: ComponentFixture<App>;
  let root: HTMLElement;
  let http: HttpTestingController;

  async function create(): Promise<void> {
    fixture = TestBed.createComponent(App);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter([
          { path: 'sign-in', children: [] },
          { path: 'jobs', children: [] },
        ]),
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('shows the navigation, the signed-in user and a Sign out button', async () => {
    signInAs('carol');
    await create();
    const links = Array.from(root.querySelectorAll('nav[aria-label="Main"] a')).map((a) =>
      a.textContent?.trim(),
    );
    expect(links).toEqual(['Submit', 'My jobs', 'API tokens']);
    expect(query(root, 'nav a[href="/tokens"]')).toBeTruthy();
    expect(text(root, '[data-testid="session-user"]')).toBe('carol');
    expect(root.querySelector('[data-testid="session-admin"]')).toBeNull();
    expect(buttonByText(root, 'Sign out')).toBeTruthy();
    // The free "user id" field is gone.
    expect(root.querySelector('#user-id')).toBeNull();
  });

  it('says "admin" for an admin, and offers the Overview', async () => {
    signInAs('root', 'admin');
    await create();
    expect(text(root, '[data-testid="session-admin"]')).toBe('admin');
    const links = Array.from(root.querySelectorAll('nav[aria-label="Main"] a')).map((a) =>
      a.textContent?.trim(),
    );
    expect(links).toEqual(['Submit', 'My jobs', 'API tokens', 'Overview']);
    expect(query(root, 'nav a[href="/overview"]')).toBeTruthy();
  });

  it('shows no navigation and no user while signed out', async () => {
    await create();
    expect(root.querySelector('nav[aria-label="Main"]')).toBeNull();
    expect(root.querySelector('[data-testid="session-user"]')).toBeNull();
    expect(root.querySelectorAll('button').length).toBe(0);
  });

  it('signs out: POST /auth/logout, then the sign-in page', async () => {
    signInAs('carol');
    await create();
    await TestBed.inject(Router).navigateByUrl('/jobs');
    buttonByText(root, 'Sign out').click();
    await fixture.whenStable();
    const request = http.expectOne('/api/v1/auth/logout');
    expect(request.request.method).toBe('POST');
    expect(buttonByText(root, 'Signing out…').getAttribute('aria-disabled')).toBe('true');
    request.flush({ message: 'Signed out.' });
    await fixture.whenStable();
    expect(TestBed.inject(AuthService).user()).toBeNull();
    expect(TestBed.inject(Router).url).toBe('/sign-in');
    expect(text(root, '[role="status"]')).toContain('You are signed out.');
    expect(root.querySelector('[data-testid="session-user"]')).toBeNull();
  });

  it('stays signed in, and says so, when signing out fails', async () => {
    signInAs('carol');
    await create();
    buttonByText(root, 'Sign out').click();
    http.expectOne('/api/v1/auth/logout').error(new ProgressEvent('error'), { status: 0 });
    await fixture.whenStable();
    expect(text(root, '[data-testid="sign-out-error"]')).toContain('Could not sign out');
    expect(TestBed.inject(AuthService).user()?.username).toBe('carol');
  });

  it('shows a banner while the API is down, and hides it when it is back', async () => {
    await create();
    const status = TestBed.inject(ApiStatus);
    status.markDown({ status: 0, message: 'Cannot reach the API.', fields: {}, unreachable: true });
    await fixture.whenStable();
    expect(text(root, '[data-testid="api-down"]')).toContain('The API is not answering.');
    expect(query(root, '[data-testid="api-down"]').getAttribute('role')).toBe('alert');

    status.retryNow();
    http.expectOne('/api/v1/auth/session').flush({ signed_in: false });
    status.markUp();
    await fixture.whenStable();
    expect(root.querySelector('[data-testid="api-down"]')).toBeNull();
  });
});

@Component({
  selector: 'app-page-one',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `<h1 id="one" tabindex="-1">One</h1>
    <input id="one-field" />`,
})
class PageOne {}

@Component({
  selector: 'app-page-two',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `<h1 id="two" tabindex="-1">Two</h1>`,
})
class PageTwo {}

@Component({
  selector: 'app-page-plain',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `<p>No heading yet.</p>`,
})
class PagePlain {}

describe('App shell focus', () => {
  let fixture: ComponentFixture<App>;
  let root: HTMLElement;
  let router: Router;

  async function go(url: string): Promise<void> {
    await router.navigateByUrl(url);
    await fixture.whenStable();
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        provideRouter([
          { path: 'one', component: PageOne, title: 'One · Taskbroker' },
          { path: 'two', component: PageTwo, title: 'Two · Taskbroker' },
          { path: 'plain', component: PagePlain, title: 'Plain · Taskbroker' },
        ]),
      ],
    });
    fixture = TestBed.createComponent(App);
    root = fixture.nativeElement as HTMLElement;
    router = TestBed.inject(Router);
    await fixture.whenStable();
  });

  it('moves focus to the new page heading after a navigation, and announces the page', async () => {
    await go('/one');
    // The first page keeps the browser's own starting point.
    expect(document.activeElement).not.toBe(query(root, '#one'));

    await go('/two');
    expect(document.activeElement).toBe(query(root, '#two'));
    expect(text(root, '[data-testid="route-announcer"]')).toBe('Two · Taskbroker');
    expect(query(root, '[data-testid="route-announcer"]').getAttribute('aria-live')).toBe('polite');
  });

  it('focuses the main region when the page has no heading', async () => {
    await go('/one');
    await go('/plain');
    expect(document.activeElement).toBe(query(root, 'main#main'));
  });

  it('leaves focus alone when only the query changes (a filter, a page)', async () => {
    await go('/one');
    await go('/two');
    const field = document.createElement('input');
    root.appendChild(field);
    field.focus();
    await go('/two?status=failed');
    expect(document.activeElement).toBe(field);
  });

  it('skips to the main content without following the link', async () => {
    await go('/one');
    const skip = query<HTMLAnchorElement>(root, 'a.skip-link');
    const click = new MouseEvent('click', { bubbles: true, cancelable: true });
    skip.dispatchEvent(click);
    // Followed, href="#main" would load "/#main" (it resolves against <base href="/">).
    expect(click.defaultPrevented).toBe(true);
    expect(document.activeElement).toBe(query(root, 'main#main'));
    expect(router.url).toBe('/one');
  });
});
