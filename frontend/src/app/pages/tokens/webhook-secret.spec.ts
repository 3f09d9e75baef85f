import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { buttonByText, query, queryAll, text } from '../../../testing/dom';
import { WebhookSecretState } from '../../api/webhooks.model';
import { WebhookSecretSection } from './webhook-secret';
import { problem } from '../../../testing/problem';

const URL = '/api/v1/webhooks/secret';
const SECRET = 'whsec_0123456789abcdef0123456789abcdef';
const NEWER = 'whsec_fedcba9876543210fedcba9876543210';

describe('WebhookSecretSection', () => {
  let fixture: ComponentFixture<WebhookSecretSection>;
  let http: HttpTestingController;
  let root: HTMLElement;

  async function open(state: WebhookSecretState): Promise<void> {
    fixture = TestBed.createComponent(WebhookSecretSection);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    http.expectOne({ method: 'GET', url: URL }).flush(state);
    await fixture.whenStable();
  }

  async function settle(): Promise<void> {
    await fixture.whenStable();
  }

  function shownSecrets(): string[] {
    return queryAll<HTMLInputElement>(root, 'input').map((input) => input.value);
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('says when there is none, and makes the first one without asking', async () => {
    await open({ exists: false, rotated_at: null });
    expect(text(root, '[data-testid="webhook-secret-state"]')).toBe(
      'You have no webhook secret yet.',
    );
    expect(root.querySelector('[data-testid="webhook-secret-shown"]')).toBeNull();

    buttonByText(root, 'Make webhook secret').click();
    await settle();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    const request = http.expectOne({ method: 'POST', url: URL });
    expect(buttonByText(root, 'Making…').getAttribute('aria-disabled')).toBe('true');
    request.flush(
      { secret: SECRET, rotated_at: new Date().toISOString() },
      { status: 201, statusText: 'Created' },
    );
    await settle();

    const box = query(root, '[data-testid="webhook-secret-shown"]');
    const input = query<HTMLInputElement>(box, '#webhook-secret-value');
    expect(input.value).toBe(SECRET);
    expect(input.readOnly).toBe(true);
    expect(document.activeElement).toBe(input); // read out with its label and the warning
    expect(input.getAttribute('aria-describedby')).toContain('webhook-secret-warning');
    expect(text(box, '[data-testid="webhook-secret-warning"]')).toContain(
      'you will not see it again',
    );
    expect(text(box, '#webhook-secret-hint')).toContain('X-Taskbroker-Signature');
    expect(text(box, '#webhook-secret-hint')).toContain("'<t>.<callback_url>.' + body");
    expect(text(root, '[data-testid="webhook-secret-state"]')).toMatch(
      /^You have a webhook secret, made \d{4}-\d\d-\d\d .*just now$/,
    );
    expect(buttonByText(root, 'Rotate webhook secret')).toBeTruthy();
  });

  it('shows the secret once: gone after "Done", focus back on the button', async () => {
    await open({ exists: false, rotated_at: null });
    buttonByText(root, 'Make webhook secret').click();
    await settle();
    http
      .expectOne({ method: 'POST', url: URL })
      .flush({ secret: SECRET, rotated_at: new Date().toISOString() });
    await settle();

    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    buttonByText(root, 'Copy secret').click();
    await new Promise((resolve) => setTimeout(resolve));
    await settle();
    expect(writeText).toHaveBeenCalledWith(SECRET);
    expect(text(root, '[data-testid="webhook-copy-status"]')).toBe('Copied to the clipboard.');

    buttonByText(root, 'Done, I have copied the secret').click();
    await settle();
    expect(root.querySelector('[data-testid="webhook-secret-shown"]')).toBeNull();
    expect(root.innerHTML).not.toContain(SECRET);
    expect(shownSecrets()).not.toContain(SECRET);
    expect(document.activeElement).toBe(buttonByText(root, 'Rotate webhook secret'));
  });

  it('selects the secret for Ctrl+C when the browser will not copy', async () => {
    await open({ exists: false, rotated_at: null });
    buttonByText(root, 'Make webhook secret').click();
    await settle();
    http
      .expectOne({ method: 'POST', url: URL })
      .flush({ secret: SECRET, rotated_at: new Date().toISOString() });
    await settle();
    const writeText = vi.fn().mockRejectedValue(new Error('denied'));
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    buttonByText(root, 'Copy secret').click();
    await new Promise((resolve) => setTimeout(resolve));
    await settle();
    expect(text(root, '[data-testid="webhook-copy-status"]')).toContain('press Ctrl+C');
    expect(document.activeElement).toBe(query(root, '#webhook-secret-value'));
  });

  it('asks before rotating, saying the old secret stops verifying within 30 s', async () => {
    await open({ exists: true, rotated_at: '2026-11-01T10:00:00Z' });
    expect(text(root, '[data-testid="webhook-secret-state"]')).toContain(
      'You have a webhook secret, made 2026-11-0',
    );
    const rotate = buttonByText(root, 'Rotate webhook secret');

    rotate.click();
    await settle();
    let dialog = query(root, '[role="alertdialog"]');
    expect(text(dialog, '.dialog__title')).toBe('Rotate your webhook secret?');
    expect(text(dialog, '.dialog__message')).toContain(
      'stops verifying your deliveries within 30 s',
    );
    buttonByText(dialog, 'Keep it').click();
    await settle();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    http.expectNone({ method: 'POST', url: URL });

    rotate.click();
    await settle();
    dialog = query(root, '[role="alertdialog"]');
    buttonByText(dialog, 'Rotate').click();
    await settle();
    http
      .expectOne({ method: 'POST', url: URL })
      .flush({ secret: NEWER, rotated_at: new Date().toISOString() });
    await settle();
    expect(query<HTMLInputElement>(root, '#webhook-secret-value').value).toBe(NEWER);
    expect(document.activeElement).toBe(query(root, '#webhook-secret-value'));
    expect(text(root, '[data-testid="webhook-secret-state"]')).toContain('just now');
  });

  it('shows the server’s refusal, e.g. no WEBHOOK_SECRET on the kernel (503)', async () => {
    await open({ exists: false, rotated_at: null });
    buttonByText(root, 'Make webhook secret').click();
    await settle();
    http
      .expectOne({ method: 'POST', url: URL })
      .flush(
        problem(
          503,
          'webhook secrets cannot be made here: WEBHOOK_SECRET is not set on the kernel',
        ),
        { status: 503, statusText: 'Service Unavailable' },
      );
    await settle();
    const error = query(root, '[data-testid="webhook-secret-error"]');
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent?.trim()).toBe(
      'Could not make the webhook secret: webhook secrets cannot be made here: ' +
        'WEBHOOK_SECRET is not set on the kernel (HTTP 503)',
    );
    expect(root.querySelector('[data-testid="webhook-secret-shown"]')).toBeNull();
    expect(text(root, '[data-testid="webhook-secret-state"]')).toBe(
      'You have no webhook secret yet.',
    );
    expect(buttonByText(root, 'Make webhook secret').getAttribute('aria-disabled')).toBeNull();
  });

  it('says when it cannot tell whether there is a secret, and retries', async () => {
    fixture = TestBed.createComponent(WebhookSecretSection);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    http
      .expectOne({ method: 'GET', url: URL })
      .flush(problem(500, 'boom'), { status: 500, statusText: 'x' });
    await settle();
    expect(text(root, '[data-testid="webhook-state-error"]')).toContain(
      'Could not check your webhook secret: boom (HTTP 500)',
    );
    expect(queryAll(root, 'button').map((b) => b.textContent?.trim())).toEqual(['Retry']);
    buttonByText(root, 'Retry').click();
    await settle();
    http.expectOne({ method: 'GET', url: URL }).flush({ exists: false, rotated_at: null });
    await settle();
    expect(root.querySelector('[data-testid="webhook-state-error"]')).toBeNull();
    expect(buttonByText(root, 'Make webhook secret')).toBeTruthy();
  });
});
