import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ChangeDetectionStrategy, Component } from '@angular/core';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';

import { query, setValue, text } from '../testing/dom';
import { App } from './app';
import { ApiStatus } from './core/api-status.service';
import { USER_STORAGE_KEY, UserService } from './core/user.service';

describe('App shell', () => {
  let fixture: ComponentFixture<App>;
  let root: HTMLElement;

  beforeEach(async () => {
    localStorage.clear();
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])],
    });
    fixture = TestBed.createComponent(App);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
  });

  it('has labelled navigation and a user id field', () => {
    const links = Array.from(root.querySelectorAll('nav[aria-label="Main"] a')).map((a) =>
      a.textContent?.trim(),
    );
    expect(links).toEqual(['Submit', 'My jobs']);
    expect(query(root, 'label[for="user-id"]').textContent?.trim()).toBe('User id');
  });

  it('remembers a valid user id and explains an invalid one', async () => {
    const input = query<HTMLInputElement>(root, '#user-id');
    setValue(input, 'carol');
    input.dispatchEvent(new Event('change'));
    await fixture.whenStable();
    expect(TestBed.inject(UserService).userId()).toBe('carol');
    expect(localStorage.getItem(USER_STORAGE_KEY)).toBe('carol');

    setValue(input, 'carol smith');
    input.dispatchEvent(new Event('change'));
    await fixture.whenStable();
    expect(text(root, '#user-id-error')).toContain('No spaces');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(TestBed.inject(UserService).userId()).toBe('carol');
  });

  it('shows a banner while the API is down, and hides it when it is back', async () => {
    const status = TestBed.inject(ApiStatus);
    status.markDown({ status: 0, message: 'Cannot reach the API.', fields: {}, unreachable: true });
    await fixture.whenStable();
    expect(text(root, '[data-testid="api-down"]')).toContain('The API is not answering.');
    expect(query(root, '[data-testid="api-down"]').getAttribute('role')).toBe('alert');

    status.retryNow();
    TestBed.inject(HttpTestingController).expectOne('/api/v1/executors').flush([]);
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
    localStorage.clear();
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
