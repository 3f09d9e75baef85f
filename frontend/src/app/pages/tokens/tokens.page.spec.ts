import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { buttonByText, query, queryAll, setValue, text } from '../../../testing/dom';
import { ApiToken, CreatedToken } from '../../api/auth.model';
import { TokensPage } from './tokens.page';
import { problem } from '../../../testing/problem';

const LIST = '/api/v1/tokens';
const WEBHOOK_SECRET = '/api/v1/webhooks/secret';
const SECRET = 'tb_s3cr3t-only-shown-once-0123456789';

function token(overrides: Partial<ApiToken> = {}): ApiToken {
  return {
    id: 'tok1',
    name: 'nightly report',
    created_at: '2026-11-01T10:00:00Z',
    last_used_at: null,
    expires_at: null,
    ...overrides,
  };
}

describe('TokensPage', () => {
  let fixture: ComponentFixture<TokensPage>;
  let http: HttpTestingController;
  let root: HTMLElement;

  async function open(tokens: ApiToken[]): Promise<void> {
    fixture = TestBed.createComponent(TokensPage);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    http.expectOne({ method: 'GET', url: LIST }).flush(tokens);
    // The webhook signing secret's section below the list (its own tests: webhook-secret.spec.ts).
    http
      .expectOne({ method: 'GET', url: WEBHOOK_SECRET })
      .flush({ exists: false, rotated_at: null });
    await fixture.whenStable();
  }

  async function settle(): Promise<void> {
    await fixture.whenStable();
  }

  function rowNames(): string[] {
    return queryAll(root, 'tbody tr').map((tr) => text(tr, '.tokens-table__name'));
  }

  async function create(name: string): Promise<void> {
    setValue(query(root, '#token-name'), name);
    buttonByText(root, 'Create token').click();
    await settle();
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('lists the tokens, newest first, with when each was created and last used', async () => {
    await open([
      token({ id: 'old', name: 'old one', last_used_at: new Date().toISOString() }),
      token({ id: 'new', name: 'ci', created_at: '2026-11-02T10:00:00Z' }),
    ]);
    expect(rowNames()).toEqual(['ci', 'old one']);
    const old = query(root, 'tr[data-token-id="old"]');
    expect(text(old, 'td[data-label="Created"]')).toContain('2026-11-01');
    expect(text(old, 'td[data-label="Last used"]')).toMatch(/just now|ago/);
    expect(text(root, 'tr[data-token-id="new"] td[data-label="Last used"]')).toBe('never');
  });

  it('says so when there are none', async () => {
    await open([]);
    expect(text(root, '[data-testid="no-tokens"]')).toBe('No tokens yet.');
  });

  it('creates a token and shows its secret once, with a warning and a copy button', async () => {
    await open([]);
    await create('  ci deploy ');
    const request = http.expectOne({ method: 'POST', url: LIST });
    expect(request.request.body).toEqual({ name: 'ci deploy' });
    const created: CreatedToken = { ...token({ id: 'tok9', name: 'ci deploy' }), token: SECRET };
    request.flush(created, { status: 201, statusText: 'Created' });
    await settle();

    const box = query(root, '[data-testid="created-token"]');
    expect(query<HTMLInputElement>(box, '#token-secret').value).toBe(SECRET);
    expect(query<HTMLInputElement>(box, '#token-secret').readOnly).toBe(true);
    expect(text(box, '[data-testid="secret-warning"]')).toContain('you will not see it again');
    expect(document.activeElement).toBe(box); // read out, with the warning
    expect(rowNames()).toEqual(['ci deploy']);
    // The list never holds the secret, and the field is ready for another name.
    expect(query(root, 'table').textContent).not.toContain(SECRET);
    expect(query<HTMLInputElement>(root, '#token-name').value).toBe('');

    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    buttonByText(box, 'Copy').click();
    await new Promise((resolve) => setTimeout(resolve));
    await settle();
    expect(writeText).toHaveBeenCalledWith(SECRET);
    expect(text(root, '[data-testid="copy-status"]')).toBe('Copied to the clipboard.');

    buttonByText(box, 'Done, I have copied it').click();
    await settle();
    expect(root.querySelector('[data-testid="created-token"]')).toBeNull();
    expect(root.innerHTML).not.toContain(SECRET);
    expect(queryAll<HTMLInputElement>(root, 'input').map((i) => i.value)).not.toContain(SECRET);
    expect(document.activeElement).toBe(query(root, '#tokens-list-title'));
    expect(rowNames()).toEqual(['ci deploy']);
  });

  it('selects the secret for Ctrl+C when the browser will not copy', async () => {
    await open([]);
    await create('ci');
    http
      .expectOne({ method: 'POST', url: LIST })
      .flush({ ...token({ name: 'ci' }), token: SECRET }, { status: 201, statusText: 'Created' });
    await settle();
    const writeText = vi.fn().mockRejectedValue(new Error('denied'));
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    buttonByText(root, 'Copy').click();
    await new Promise((resolve) => setTimeout(resolve));
    await settle();
    expect(text(root, '[data-testid="copy-status"]')).toContain('press Ctrl+C');
    expect(document.activeElement).toBe(query(root, '#token-secret'));
  });

  it('asks for a name of at most 100 characters, and shows the server on its field', async () => {
    await open([]);
    buttonByText(root, 'Create token').click();
    await settle();
    http.expectNone({ method: 'POST', url: LIST });
    expect(text(root, '#token-name-error')).toContain('Give the token a name');

    await create('dup');
    http
      .expectOne({ method: 'POST', url: LIST })
      .flush(
        problem(
          400,
          'Invalid request body field name: must be a string of at most 100 characters',
          [{ field: 'name', message: 'must be a string of at most 100 characters', in: 'body' }],
        ),
        { status: 400, statusText: 'Bad Request' },
      );
    await settle();
    expect(text(root, '#token-name-error')).toBe('must be a string of at most 100 characters');
    expect(root.querySelector('[data-testid="created-token"]')).toBeNull();
  });

  it('shows when each token expires, and "never" for one without an expiry', async () => {
    const inTenDays = new Date(Date.now() + 10 * 86_400_000 + 60_000).toISOString();
    await open([token({ id: 'a', name: 'ci', expires_at: inTenDays }), token({ id: 'b' })]);
    const expires = text(root, 'tr[data-token-id="a"] td[data-label="Expires"]');
    expect(expires).toMatch(/^\d{4}-\d\d-\d\d · in 10 d( 0 h)?$/);
    expect(expires.slice(0, 10)).toBe(
      query(root, 'tr[data-token-id="a"] td[data-label="Expires"] span')
        .getAttribute('title')
        ?.slice(0, 10),
    );
    expect(text(root, 'tr[data-token-id="b"] td[data-label="Expires"]')).toBe('never');
  });

  it('says until when a new token works', async () => {
    await open([]);
    await create('ci');
    const expiresAt = new Date(Date.now() + 90 * 86_400_000 + 60_000).toISOString();
    http
      .expectOne({ method: 'POST', url: LIST })
      .flush(
        { ...token({ name: 'ci', expires_at: expiresAt }), token: SECRET },
        { status: 201, statusText: 'Created' },
      );
    await settle();
    expect(text(root, '[data-testid="created-expiry"]')).toMatch(
      /^It works until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in 90 d( 0 h)?\); create another/,
    );
    expect(text(root, 'tbody td[data-label="Expires"]')).toContain('in 90 d');
  });

  it('says clearly when the user holds as many tokens as allowed (409)', async () => {
    await open([token()]);
    await create('one too many');
    http
      .expectOne({ method: 'POST', url: LIST })
      .flush(
        problem(
          409,
          'alice holds 50 API tokens, the most one user may have ' +
            '(AUTH_MAX_API_TOKENS_PER_USER): revoke one first',
        ),
        { status: 409, statusText: 'Conflict' },
      );
    await settle();
    const error = query(root, '[data-testid="create-error"]');
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent?.trim()).toBe(
      'Could not create the token: alice holds 50 API tokens, the most one user may have ' +
        '(AUTH_MAX_API_TOKENS_PER_USER): revoke one first (HTTP 409)',
    );
    expect(root.querySelector('[data-testid="created-token"]')).toBeNull();
    expect(rowNames()).toEqual(['nightly report']);
  });

  it('revokes a token after a confirmation', async () => {
    await open([token({ id: 'a', name: 'keep' }), token({ id: 'b', name: 'old ci' })]);
    const revokeB = query<HTMLButtonElement>(root, 'tr[data-token-id="b"] button');
    expect(revokeB.textContent?.replace(/\s+/g, ' ').trim()).toBe('Revoke token old ci');

    revokeB.click();
    await settle();
    let dialog = query(root, '[role="alertdialog"]');
    expect(text(dialog, '.dialog__message')).toContain('old ci');
    buttonByText(dialog, 'Keep it').click();
    await settle();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    http.expectNone({ method: 'DELETE' });

    revokeB.click();
    await settle();
    dialog = query(root, '[role="alertdialog"]');
    buttonByText(dialog, 'Revoke').click();
    await settle();
    const request = http.expectOne({ method: 'DELETE', url: '/api/v1/tokens/b' });
    request.flush({ message: 'Token b revoked.' });
    await settle();
    expect(rowNames()).toEqual(['keep']);
    const message = query(root, '[data-testid="tokens-message"]');
    expect(message.textContent?.trim()).toBe('Token old ci revoked.');
    expect(document.activeElement).toBe(message);
  });

  it('says when revoking fails', async () => {
    await open([token({ id: 'a', name: 'ci' })]);
    query<HTMLButtonElement>(root, 'tr[data-token-id="a"] button').click();
    await settle();
    buttonByText(query(root, '[role="alertdialog"]'), 'Revoke').click();
    await settle();
    http
      .expectOne({ method: 'DELETE', url: '/api/v1/tokens/a' })
      .flush(problem(500, 'boom'), { status: 500, statusText: 'x' });
    await settle();
    expect(text(root, '[data-testid="tokens-message"]')).toBe(
      'Could not revoke token ci: boom (HTTP 500)',
    );
    expect(rowNames()).toEqual(['ci']);
  });
});
