import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

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
