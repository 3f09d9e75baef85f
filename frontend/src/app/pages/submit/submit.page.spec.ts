import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { buttonByText, query, setValue, text } from '../../../testing/dom';
import { signInAs } from '../../../testing/auth';
import { toLocalInput } from '../../shared/schedule';
import { SubmitPage } from './submit.page';
import { problem } from '../../../testing/problem';

const TASKS = [
  { name: 'simulate', description: 'Run for about estimated_time seconds.' },
  { name: 'fail', description: 'Raise, to try the failure path.' },
];
const EXECUTORS = [
  { name: 'gpu', default: false },
  { name: 'standard', default: true },
];
const SUBMIT_URL = '/api/v1/job_executor/async?executor=standard';

describe('SubmitPage', () => {
  let fixture: ComponentFixture<SubmitPage>;
  let http: HttpTestingController;
  let root: HTMLElement;

  async function start(): Promise<void> {
    signInAs('alice');
    fixture = TestBed.createComponent(SubmitPage);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    http.expectOne('/api/v1/tasks').flush(TASKS);
    http.expectOne('/api/v1/executors').flush(EXECUTORS);
    await fixture.whenStable();
  }

  async function fill(values: {
    task?: string;
    estimate?: string;
    params?: string;
    description?: string;
  }) {
    if (values.task !== undefined) setValue(query(root, '#field-task'), values.task);
    if (values.estimate !== undefined)
      setValue(query(root, '#field-estimatedTime'), values.estimate);
    if (values.params !== undefined) setValue(query(root, '#field-params'), values.params);
    if (values.description !== undefined)
      setValue(query(root, '#field-description'), values.description);
    await fixture.whenStable();
  }

  async function clickSubmit(): Promise<void> {
    buttonByText(root, 'Submit job').click();
    await fixture.whenStable();
  }

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => http.verify());

  it('offers the tasks and executors from the API, the default executor chosen', async () => {
    await start();
    const taskOptions = Array.from(query<HTMLSelectElement>(root, '#field-task').options).map(
      (o) => o.value,
    );
    expect(taskOptions).toEqual(['', 'fail', 'simulate']);
    expect(query<HTMLSelectElement>(root, '#field-executor').value).toBe('standard');
    await fill({ task: 'simulate' });
    expect(text(root, '#task-hint')).toBe('Run for about estimated_time seconds.');
  });

  it('sends the job and links to it', async () => {
    await start();
    await fill({
      task: 'simulate',
      estimate: '6',
      params: '{"duration": 6}',
      description: ' demo ',
    });
    await clickSubmit();
    const request = http.expectOne(SUBMIT_URL);
    // Busy, but still focusable: a disabled button would drop focus to <body>.
    const button = buttonByText(root, 'Submitting…');
    expect(button.getAttribute('aria-disabled')).toBe('true');
    expect(button.disabled).toBe(false);
    button.click(); // a second click while busy sends nothing
    await fixture.whenStable();
    http.expectNone(SUBMIT_URL);
    // No user_id: the job belongs to whoever is signed in.
    expect(request.request.body).toEqual({
      job_name: 'simulate',
      estimated_time: 6,
      description: 'demo',
      params: { duration: 6 },
    });
    request.flush({ status: 200, job_id: 'a'.repeat(24) });
    await fixture.whenStable();
    const link = query<HTMLAnchorElement>(root, '[data-testid="new-job-link"]');
    expect(link.textContent?.trim()).toBe('a'.repeat(24));
    expect(link.getAttribute('href')).toBe(`/jobs/${'a'.repeat(24)}`);
    // Focus moves to the result, so a screen reader reads it.
    expect(document.activeElement).toBe(query(root, '[data-testid="submitted"]'));
    expect(buttonByText(root, 'Submit job').hasAttribute('aria-disabled')).toBe(false);
  });

  it('refuses params that are not a JSON object, without sending', async () => {
    await start();
    await fill({ task: 'simulate', params: '{"duration": ' });
    await clickSubmit();
    http.expectNone(SUBMIT_URL);
    expect(text(root, '#params-error')).toMatch(/^Not valid JSON/);
    expect(query(root, '#field-params').getAttribute('aria-invalid')).toBe('true');

    await fill({ params: '[1, 2]' });
    await clickSubmit();
    http.expectNone(SUBMIT_URL);
    expect(text(root, '#params-error')).toContain('must be a JSON object');
  });

  it('asks for a task and a non-negative estimate', async () => {
    await start();
    await fill({ estimate: '-1' });
    await clickSubmit();
    http.expectNone(SUBMIT_URL);
    expect(text(root, '#task-error')).toBe('Choose a task.');
    expect(text(root, '#estimatedTime-error')).toBe('Must be 0 or more seconds.');
  });

  it("shows the server's message next to the field it names, until the field changes", async () => {
    await start();
    await fill({ task: 'simulate', estimate: '6' });
    await clickSubmit();
    http
      .expectOne(SUBMIT_URL)
      .flush(
        problem(
          400,
          'Invalid request body field estimated_time: must be a number, at most 604800',
          [{ field: 'estimated_time', message: 'must be a number, at most 604800', in: 'body' }],
        ),
        { status: 400, statusText: 'Bad Request' },
      );
    await fixture.whenStable();
    expect(text(root, '#estimatedTime-error')).toBe('must be a number, at most 604800');
    expect(root.querySelector('[data-testid="form-error"]')).toBeNull();

    await fill({ estimate: '7' });
    expect(text(root, '#estimatedTime-error')).toBe('');
  });

  it('shows a server error that names no field above the button', async () => {
    await start();
    await fill({ task: 'simulate', estimate: '6' });
    await clickSubmit();
    http
      .expectOne(SUBMIT_URL)
      .flush(problem(503, 'The queue refused the job'), { status: 503, statusText: 'x' });
    await fixture.whenStable();
    expect(text(root, '[data-testid="form-error"]')).toBe('The queue refused the job (HTTP 503)');
    expect(buttonByText(root, 'Submit job').disabled).toBe(false);
  });

  describe('Run at and Callback URL', () => {
    /** The focus moves after the error text renders (a timer in the page). */
    const afterFocusMove = () => new Promise((resolve) => setTimeout(resolve));

    it('sends the picked local time as UTC, and the callback URL', async () => {
      await start();
      const at = Date.now() + 3_600_000;
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-runAt'), toLocalInput(at));
      setValue(query(root, '#field-callbackUrl'), ' https://hooks.example.com/done ');
      await clickSubmit();
      const request = http.expectOne(SUBMIT_URL);
      const body = request.request.body as Record<string, unknown>;
      expect(body['run_at']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
      // The same instant the user picked, to the second.
      expect(Date.parse(body['run_at'] as string)).toBe(Math.floor(at / 1000) * 1000);
      expect(body['callback_url']).toBe('https://hooks.example.com/done');
      request.flush({ status: 200, job_id: 'b'.repeat(24) });
      await fixture.whenStable();
      expect(text(root, '[data-testid="submitted"]')).toContain('b'.repeat(24));
    });

    it('is one text field, its format and zone in a hint read with it', async () => {
      await start();
      const input = query(root, '#field-runAt') as HTMLInputElement;
      expect(input.type).toBe('text');
      expect(input.getAttribute('aria-describedby')).toBe('runAt-hint runAt-error');
      expect(root.querySelector('label[for="field-runAt"]')?.textContent).toContain('Run at');
      expect(text(root, '#runAt-hint')).toMatch(/e\.g\. \d{4}-\d\d-\d\d \d\d:\d\d, in your time/);
      expect(text(root, '#runAt-hint')).toContain('UTC');
    });

    it('sends a time typed with a zone as that instant', async () => {
      await start();
      const at = Date.now() + 2 * 3_600_000;
      const utc = new Date(at).toISOString().slice(0, 19).replace('T', ' ');
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-runAt'), `${utc} UTC`);
      await clickSubmit();
      const body = http.expectOne(SUBMIT_URL).request.body as Record<string, unknown>;
      expect(Date.parse(body['run_at'] as string)).toBe(Math.floor(at / 1000) * 1000);
    });

    it('refuses what is not a date and time, saying how to write one', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-runAt'), 'tomorrow at noon');
      await clickSubmit();
      await afterFocusMove();
      http.expectNone(SUBMIT_URL);
      expect(text(root, '#runAt-error')).toMatch(/^Not a date and time: write it as 2026-11-01/);
      expect(query(root, '#field-runAt').getAttribute('aria-invalid')).toBe('true');
      expect(document.activeElement).toBe(query(root, '#field-runAt'));
    });

    it('sends neither when both are left empty: the job runs at once', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      await clickSubmit();
      const body = http.expectOne(SUBMIT_URL).request.body as Record<string, unknown>;
      expect('run_at' in body).toBe(false);
      expect('callback_url' in body).toBe(false);
    });

    it('refuses a time in the past before sending, and says so next to the field', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-runAt'), toLocalInput(Date.now() - 5 * 60_000));
      await clickSubmit();
      await afterFocusMove();
      http.expectNone(SUBMIT_URL);
      expect(text(root, '#runAt-error')).toBe(
        'That time has already passed. Pick a later time, or leave it empty to run at once.',
      );
      const input = query(root, '#field-runAt');
      expect(input.getAttribute('aria-invalid')).toBe('true');
      expect(input.getAttribute('aria-describedby')).toContain('runAt-error');
      expect(document.activeElement).toBe(input);
    });

    it('checks the time again when sending: it may have passed since it was picked', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      const soon = Date.now() + 1500;
      setValue(query(root, '#field-runAt'), toLocalInput(soon));
      expect(text(root, '#runAt-error')).toBe('');
      await new Promise((resolve) => setTimeout(resolve, soon - Date.now() + 50));
      await clickSubmit();
      http.expectNone(SUBMIT_URL);
      expect(text(root, '#runAt-error')).toContain('already passed');
    });

    it('refuses a callback that is not an http(s) URL before sending', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-callbackUrl'), 'hooks.example.com/done');
      await clickSubmit();
      http.expectNone(SUBMIT_URL);
      expect(text(root, '#callbackUrl-error')).toMatch(/^Not a URL/);
    });

    it('shows the server refusing the callback host next to the Callback URL field', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-callbackUrl'), 'https://evil.example.net/x');
      await clickSubmit();
      http
        .expectOne(SUBMIT_URL)
        .flush(problem(422, 'callback_url host evil.example.net is not in WEBHOOK_ALLOWED_HOSTS'), {
          status: 422,
          statusText: 'Unprocessable Entity',
        });
      await fixture.whenStable();
      await afterFocusMove();
      expect(text(root, '#callbackUrl-error')).toBe(
        'callback_url host evil.example.net is not in WEBHOOK_ALLOWED_HOSTS (HTTP 422)',
      );
      expect(root.querySelector('[data-testid="form-error"]')).toBeNull();
      expect(document.activeElement).toBe(query(root, '#field-callbackUrl'));

      // The same when the server names the field in `errors`.
      setValue(query(root, '#field-callbackUrl'), 'https://other.example.net/x');
      await fixture.whenStable();
      expect(text(root, '#callbackUrl-error')).toBe('');
      await clickSubmit();
      http
        .expectOne(SUBMIT_URL)
        .flush(
          problem(422, 'Validation failed', [
            { field: 'callback_url', message: 'host not in WEBHOOK_ALLOWED_HOSTS', in: 'body' },
          ]),
          { status: 422, statusText: 'Unprocessable Entity' },
        );
      await fixture.whenStable();
      expect(text(root, '#callbackUrl-error')).toBe('host not in WEBHOOK_ALLOWED_HOSTS');
    });

    it('links to the API tokens page when a webhook secret must be made first', async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-callbackUrl'), 'https://hooks.example.com/done');
      await clickSubmit();
      const message =
        'alice has no webhook secret yet, and deliveries are signed with it: make one first ' +
        '(POST /api/v1/webhooks/secret, or `taskbroker webhooks rotate-secret`), then submit again';
      http
        .expectOne(SUBMIT_URL)
        .flush(
          problem(422, `callback_url: ${message}`, [
            { field: 'callback_url', in: 'body', message },
          ]),
          { status: 422, statusText: 'Unprocessable Entity' },
        );
      await fixture.whenStable();
      await afterFocusMove();
      const error = query(root, '#callbackUrl-error');
      expect(error.textContent).toContain(message);
      const link = query<HTMLAnchorElement>(error, '[data-testid="make-webhook-secret"]');
      expect(link.textContent?.trim()).toBe('Make your webhook secret under API tokens');
      expect(link.getAttribute('href')).toBe('/tokens');
      expect(root.querySelector('[data-testid="form-error"]')).toBeNull();
      expect(document.activeElement).toBe(query(root, '#field-callbackUrl'));

      // Gone with the message once the URL is edited.
      setValue(query(root, '#field-callbackUrl'), 'https://hooks.example.com/other');
      await fixture.whenStable();
      expect(root.querySelector('[data-testid="make-webhook-secret"]')).toBeNull();
    });

    it("shows the server's run_at message next to the Run at field", async () => {
      await start();
      await fill({ task: 'simulate', estimate: '6' });
      setValue(query(root, '#field-runAt'), toLocalInput(Date.now() + 60_000));
      await clickSubmit();
      http
        .expectOne(SUBMIT_URL)
        .flush(
          problem(400, 'Validation failed', [
            { field: 'run_at', message: 'must be a date and time with a time zone', in: 'body' },
          ]),
          { status: 400, statusText: 'Bad Request' },
        );
      await fixture.whenStable();
      expect(text(root, '#runAt-error')).toBe('must be a date and time with a time zone');
    });
  });

  it('says who the job will belong to', async () => {
    await start();
    expect(text(root, '.page__header')).toContain('As alice');
  });

  it('says when the task list cannot be loaded, and retries', async () => {
    signInAs('alice');
    fixture = TestBed.createComponent(SubmitPage);
    root = fixture.nativeElement as HTMLElement;
    await fixture.whenStable();
    http.expectOne('/api/v1/tasks').error(new ProgressEvent('error'), { status: 0 });
    http.expectOne('/api/v1/executors').flush(EXECUTORS);
    await fixture.whenStable();
    expect(text(root, '#task-hint')).toContain('Could not load tasks');
    buttonByText(root, 'Retry').click();
    http.expectOne('/api/v1/tasks').flush(TASKS);
    await fixture.whenStable();
    expect(text(root, '#task-hint')).not.toContain('Could not load tasks');
  });
});
