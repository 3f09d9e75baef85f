#!/usr/bin/env node
// End-to-end check of the web app in Debian's Chromium, against a running system.
//
//   BASE_URL=http://127.0.0.1:8000 node e2e/run.mjs
//
// BASE_URL is the kernel serving the built app (frontend/dist/frontend/browser) and the
// API; the jobs really run on workers. playwright-core never downloads a browser: it
// drives CHROMIUM_PATH (default /usr/bin/chromium, see ops/scripts/ensure-chromium.sh).
// Screenshots go to ARTIFACTS_DIR (default <repo>/test-artifacts). Exit code 0 = all passed.
//
// The checks sign in as E2E_USERNAME with E2E_PASSWORD (default e2e / e2e-password-123), a
// user that must exist; they sign in, work, create and revoke an API token, and sign out.
//
// Accessibility: every page the checks visit is audited with axe-core (injected into the
// page; a violation of impact "serious" or "critical" fails the run), and with two checks
// of our own that axe leaves out: every interactive element at least 24x24 CSS px, no text
// under 12 px. Focus is checked after a submit, a navigation and an action, and the skip
// link must not reload the page.

import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { CHROMIUM_PATH, assert, launchChromium, logger } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const AXE_PATH = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let axeSource; // read once
const BASE_URL = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
const ARTIFACTS_DIR = path.resolve(
  process.env.ARTIFACTS_DIR ?? path.join(here, '..', '..', 'test-artifacts'),
);
// Generous: a shared 2-core machine may be slow to start a worker or a browser.
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 90_000);

if (!BASE_URL) {
  console.error('BASE_URL is required, e.g. BASE_URL=http://127.0.0.1:8000 node e2e/run.mjs');
  process.exit(2);
}

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 667 };
/** axe-core impacts that fail the run; "moderate" and "minor" ones are only printed. */
const BLOCKING_IMPACTS = ['serious', 'critical'];
const MIN_TARGET_PX = 24; // WCAG 2.5.8, target size (minimum)
const MIN_FONT_PX = 12;

const USERNAME = process.env.E2E_USERNAME || 'e2e';
const PASSWORD = process.env.E2E_PASSWORD || 'e2e-password-123';
const runId = `${Date.now().toString(36)}-${process.pid}`;
let browser; // for the signed-out audits, in a context of their own
const pageErrors = [];
const audited = []; // one line per audit, for the summary

const log = logger('e2e');

/** What has focus, for messages: `h1#jobs-title "My jobs"`. */
async function describeFocus(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) {
      return '<body>';
    }
    const text = (el.textContent ?? '').replace(/\s+/g, ' ').trim().slice(0, 40);
    return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${text}"`;
  });
}

/** Wait (briefly: the app moves focus right after it renders) until `selector` has focus. */
async function expectFocus(page, selector, what) {
  try {
    await page.waitForFunction((sel) => document.activeElement?.matches(sel) ?? false, selector, {
      timeout: 5000,
      polling: 50,
    });
  } catch {
    throw new Error(
      `assertion failed: focus is on ${what} (${selector}); it is on ${await describeFocus(page)}`,
    );
  }
}

/**
 * Audit the page as it is now: axe-core (serious or critical violations are returned as
 * problems, the rest printed), tap targets and text sizes. Returns the problems found.
 */
async function auditPage(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    // Evaluated through the DevTools protocol: an injected <script> (addScriptTag) would
    // be refused by the kernel's Content-Security-Policy (script-src 'self').
    axeSource ??= await readFile(AXE_PATH, 'utf8');
    await page.evaluate(axeSource);
  }
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, {
      resultTypes: ['violations'],
      // Off by default in axe-core (WCAG 2.2); the app promises it.
      rules: { 'target-size': { enabled: true } },
    });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((node) => node.target.join(' ')),
    }));
  });
  const own = await page.evaluate(
    ([minTarget, minFont]) => {
      const shown = (el) => {
        const rect = el.getBoundingClientRect();
        return (
          rect.width > 0 &&
          rect.height > 0 &&
          getComputedStyle(el).visibility !== 'hidden' &&
          !el.closest('[aria-hidden="true"], .visually-hidden')
        );
      };
      const name = (el) => {
        const text = (el.textContent || el.getAttribute('aria-label') || '')
          .replace(/\s+/g, ' ')
          .trim()
          .slice(0, 30);
        const cls = el.classList.length ? `.${[...el.classList].join('.')}` : '';
        return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${cls} "${text}"`;
      };
      const interactive =
        'a[href], button, input:not([type="hidden"]), select, textarea, summary, ' +
        '[tabindex]:not([tabindex="-1"]), [role="button"], [role="link"]';
      const small = [];
      for (const el of document.querySelectorAll(interactive)) {
        const rect = el.getBoundingClientRect();
        if (shown(el) && (rect.width < minTarget || rect.height < minTarget)) {
          small.push(`${name(el)} is ${rect.width.toFixed(1)}x${rect.height.toFixed(1)} px`);
        }
      }
      const tiny = new Set();
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        const el = walker.currentNode.parentElement;
        if (el && walker.currentNode.textContent.trim() && shown(el)) {
          const size = parseFloat(getComputedStyle(el).fontSize);
          if (size < minFont) {
            tiny.add(`${name(el)} is ${size.toFixed(2)} px`);
          }
        }
      }
      return { small, tiny: [...tiny] };
    },
    [MIN_TARGET_PX, MIN_FONT_PX],
  );
  const blocking = violations.filter((v) => BLOCKING_IMPACTS.includes(v.impact));
  const other = violations.filter((v) => !BLOCKING_IMPACTS.includes(v.impact));
  const problems = [
    ...blocking.map(
      (v) => `axe ${v.id} (${v.impact}): ${v.help}\n      ${v.targets.join('\n      ')}`,
    ),
    ...own.small.map((text) => `tap target under ${MIN_TARGET_PX} px: ${text}`),
    ...own.tiny.map((text) => `text under ${MIN_FONT_PX} px: ${text}`),
  ];
  const notes = other.map((v) => `${v.id} (${v.impact}, ${v.targets.length})`).join(', ');
  const line =
    `axe ${label}: ${blocking.length} serious/critical` +
    (notes ? `, not blocking: ${notes}` : ', no other violations') +
    `; targets >= ${MIN_TARGET_PX} px: ${own.small.length ? 'NO' : 'yes'}` +
    `; text >= ${MIN_FONT_PX} px: ${own.tiny.length ? 'NO' : 'yes'}`;
  audited.push({
    label,
    blocking: blocking.length,
    other: other.length,
    problems: problems.length,
  });
  log(line);
  return problems.map((problem) => `[${label}] ${problem}`);
}

async function expectCleanAudit(page, label) {
  const problems = await auditPage(page, label);
  assert(problems.length === 0, `no accessibility problems:\n  ${problems.join('\n  ')}`);
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Wait until the address is /sign-in, with `returnUrl` (a path) or none. */
async function waitForSignIn(page, returnUrl) {
  const query = returnUrl ? `\\?returnUrl=${escapeRegExp(encodeURIComponent(returnUrl))}` : '';
  await page.waitForURL(new RegExp(`/sign-in${query}$`), { timeout: WAIT_MS });
  await page.getByLabel('User name').waitFor({ timeout: WAIT_MS });
}

/** Fill in the sign-in form and send it. */
async function submitSignIn(page, username, password) {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/**
 * Sign in as E2E_USERNAME and wait until the app is at `expectedUrl` (a glob or RegExp for
 * page.waitForURL). A refusal fails at once, with what the API said.
 */
async function signIn(page, expectedUrl) {
  const [answer] = await Promise.all([
    page.waitForResponse(
      (response) =>
        response.url().endsWith('/api/v1/auth/login') && response.request().method() === 'POST',
      { timeout: WAIT_MS },
    ),
    submitSignIn(page, USERNAME, PASSWORD),
  ]);
  if (answer.status() !== 200) {
    throw new Error(
      `signing in as ${USERNAME} was refused: HTTP ${answer.status()} ${await answer.text()} ` +
        '(the user must exist with the password in E2E_PASSWORD)',
    );
  }
  await page.waitForURL(expectedUrl, { timeout: WAIT_MS });
}

/** What GET `path` of the API answers with this page's cookies (or none, signed out). */
async function apiStatus(page, path) {
  const answer = await page.request.get(`${BASE_URL}${path}`, { failOnStatusCode: false });
  return { status: answer.status(), authenticate: answer.headers()['www-authenticate'] };
}

/** GET `path` with a bearer API token and no cookie, as a script would. */
async function withToken(secret, path) {
  const answer = await fetch(`${BASE_URL}${path}`, {
    headers: { Authorization: `Bearer ${secret}`, Accept: 'application/json' },
  });
  return { status: answer.status, body: await answer.text() };
}

/** Open the Submit page fresh and submit one job; returns the new job's id. */
async function submitJob(page, { task, estimate, params, description }) {
  await page.goto(`${BASE_URL}/submit`);
  // The task list comes from GET /api/v1/tasks: wait until it has our task.
  await page
    .locator(`#field-task option[value="${task}"]`)
    .waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.getByLabel('Task', { exact: true }).selectOption(task);
  await page.getByLabel('Estimated time').fill(String(estimate));
  await page.getByLabel('Description').fill(description);
  await page.getByLabel('Params').fill(JSON.stringify(params));
  await page.getByRole('button', { name: 'Submit job' }).click();
  const link = page.getByTestId('new-job-link');
  await link.waitFor({ timeout: WAIT_MS });
  const id = (await link.textContent())?.trim() ?? '';
  assert(
    /^[0-9a-f]{24}$/.test(id),
    `the new job id looks like an ObjectId (got ${JSON.stringify(id)})`,
  );
  // Focus goes to the result message (read out with its link), not back to <body>.
  await expectFocus(page, '[data-testid="submitted"]', 'the message saying the job was submitted');
  log(`submitted ${task} as ${id}`);
  return id;
}

async function waitForDetailStatus(page, statuses) {
  const status = page.getByTestId('job-status');
  await page.waitForFunction(
    ([wanted]) =>
      wanted.includes(
        document.querySelector('[data-testid="job-status"]')?.textContent?.trim() ?? '',
      ),
    [statuses],
    { timeout: WAIT_MS, polling: 100 },
  );
  return (await status.textContent())?.trim();
}

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

check('the sign-in page loads with no error in the console', async () => {
  // A visitor of its own: no session cookie, nothing logged before.
  const context = await browser.newContext({ viewport: DESKTOP });
  const visitor = await context.newPage();
  const errors = [];
  visitor.on('console', (message) => {
    if (message.type() === 'error') {
      errors.push(`console: ${message.text()}`);
    }
  });
  visitor.on('pageerror', (error) => errors.push(`uncaught: ${error}`));
  visitor.on('response', (response) => {
    if (response.status() >= 400) {
      errors.push(`HTTP ${response.status()} for ${response.url()}`);
    }
  });
  try {
    for (const url of ['/sign-in', '/jobs']) {
      // The app asks who is signed in: "no one" is a 200, not a failed request.
      const [session] = await Promise.all([
        visitor.waitForResponse((r) => r.url().endsWith('/api/v1/auth/session'), {
          timeout: WAIT_MS,
        }),
        visitor.goto(`${BASE_URL}${url}`),
      ]);
      assert(session.status() === 200, `GET /auth/session answers 200 (${session.status()})`);
      const answer = await session.json();
      assert(answer.signed_in === false, `signed out (${JSON.stringify(answer)})`);
      await waitForSignIn(visitor, url === '/jobs' ? '/jobs' : null);
      await visitor.waitForTimeout(500); // anything logged late
    }
    assert(errors.length === 0, `nothing failed on the sign-in page:\n  ${errors.join('\n  ')}`);
  } finally {
    await context.close();
  }
});

check('signed out, the app sends you to sign in; a wrong password is refused', async (page) => {
  await page.goto(`${BASE_URL}/jobs`);
  await waitForSignIn(page, '/jobs');
  assert(
    (await page.getByRole('navigation', { name: 'Main' }).count()) === 0,
    'no navigation while signed out',
  );
  const user = page.getByLabel('User name');
  const password = page.getByLabel('Password', { exact: true });
  assert((await user.getAttribute('autocomplete')) === 'username', 'autocomplete="username"');
  assert(
    (await password.getAttribute('autocomplete')) === 'current-password',
    'autocomplete="current-password"',
  );
  assert((await password.getAttribute('type')) === 'password', 'the password is masked');
  const refused = await apiStatus(page, '/api/v1/jobs');
  assert(refused.status === 401, `the API refuses the jobs while signed out (${refused.status})`);
  assert(!!refused.authenticate, 'the 401 names how to authenticate (WWW-Authenticate)');
  await expectCleanAudit(page, 'sign in');

  await submitSignIn(page, USERNAME, `${PASSWORD}-wrong`);
  const error = page.getByTestId('sign-in-error');
  await error.waitFor({ timeout: WAIT_MS });
  const text = ((await error.textContent()) ?? '').trim();
  assert(
    text === 'Wrong user name or password.',
    `the error says so (got ${JSON.stringify(text)})`,
  );
  // Focus goes to the message, so a screen reader reads it.
  await expectFocus(page, '[data-testid="sign-in-error"]', 'the sign-in error');
  assert(/\/sign-in\?returnUrl=%2Fjobs$/.test(page.url()), `still signing in (${page.url()})`);
  await expectCleanAudit(page, 'sign in, wrong password');
});

check('signing in goes back to the page asked for; a reload keeps the session', async (page) => {
  await signIn(page, new RegExp(`${escapeRegExp(BASE_URL)}/jobs$`));
  // A navigation: focus is on the new page's heading.
  await expectFocus(page, 'h1#jobs-title', 'the heading of My jobs');
  const shown = (await page.getByTestId('session-user').textContent())?.trim();
  assert(shown === USERNAME, `the header names the user (${shown})`);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.reload();
  await page.getByRole('heading', { name: 'My jobs' }).waitFor({ timeout: WAIT_MS });
  assert(page.url().endsWith('/jobs'), `a reload stays on My jobs (${page.url()})`);
  assert(
    (await page.getByTestId('session-user').textContent())?.trim() === USERNAME,
    'still signed in after a reload',
  );
  assert((await apiStatus(page, '/api/v1/auth/me')).status === 200, 'the session cookie works');
});

check('params that are not JSON are refused before sending', async (page) => {
  await page.goto(`${BASE_URL}/submit`);
  await page
    .locator('#field-task option[value="echo"]')
    .waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.getByLabel('Task', { exact: true }).selectOption('echo');
  await page.getByLabel('Params').fill('{"duration": ');
  await page.getByRole('button', { name: 'Submit job' }).click();
  await page.locator('#params-error').getByText('Not valid JSON').waitFor({ timeout: WAIT_MS });
  assert((await page.getByTestId('new-job-link').count()) === 0, 'no job was submitted');
});

check('the skip link moves focus to the main content, without reloading the page', async (page) => {
  await page.goto(`${BASE_URL}/submit`);
  await page.locator('#field-task option[value="echo"]').waitFor({ state: 'attached' });
  // It is the first Tab stop, and shows itself when focused.
  await page.keyboard.press('Tab');
  await expectFocus(page, 'a.skip-link', 'the skip link, first Tab stop');
  const box = await page.locator('a.skip-link').boundingBox();
  assert(box && box.x >= 0 && box.y >= 0, `the focused skip link is on screen (at ${box?.x})`);
  // Type something, then use it: a reload (what href="#main" did under <base href="/">)
  // would lose the text and the window's mark.
  const url = page.url();
  await page.getByLabel('Description').fill('typed before skipping');
  await page.evaluate(() => {
    window.__e2eSkipMark = 'no-reload';
  });
  await page.locator('a.skip-link').focus();
  await page.keyboard.press('Enter');
  await expectFocus(page, 'main#main', 'the main region');
  assert(
    (await page.evaluate(() => window.__e2eSkipMark)) === 'no-reload',
    'the page did not reload',
  );
  assert(page.url() === url, `the address did not change (${url} -> ${page.url()})`);
  assert(
    (await page.getByLabel('Description').inputValue()) === 'typed before skipping',
    'what was typed is still there',
  );
  // The next Tab goes on from the main content, not from the top of the page.
  await page.keyboard.press('Tab');
  assert(
    await page.evaluate(() => !!document.activeElement?.closest('main')),
    `the next Tab stop is inside <main> (it is ${await describeFocus(page)})`,
  );
});

const state = {};

check('a simulate job shows its progress bar moving, live, until it succeeds', async (page) => {
  const id = await submitJob(page, {
    task: 'simulate',
    estimate: 6,
    params: { duration: 6 },
    description: 'e2e: progress',
  });
  state.simulateId = id;
  // Open My jobs through the app's own navigation and mark the window: if the page
  // reloaded, the mark would be gone.
  await page
    .getByRole('navigation', { name: 'Main' })
    .getByRole('link', { name: 'My jobs' })
    .click();
  await page.evaluate(() => {
    window.__e2eMark = 'no-reload';
  });
  // After a navigation, focus is on the new page's heading and the page is announced.
  await expectFocus(page, 'h1#jobs-title', 'the heading of My jobs');
  const announcer = page.getByTestId('route-announcer');
  await page.waitForFunction(
    () =>
      document.querySelector('[data-testid="route-announcer"]')?.textContent?.trim() ===
      'My jobs · Taskbroker',
    null,
    { timeout: 5000 },
  );
  assert((await announcer.getAttribute('aria-live')) === 'polite', 'the announcer is polite');
  const row = page.locator(`tr[data-job-id="${id}"]`);
  await row.waitFor({ timeout: WAIT_MS });
  const bar = row.getByRole('progressbar');
  const seen = [];
  const statuses = new Set();
  const deadline = Date.now() + WAIT_MS;
  let status = '';
  while (Date.now() < deadline) {
    const [value, text] = await Promise.all([
      bar.getAttribute('aria-valuenow'),
      row.getByTestId('status').textContent(),
    ]);
    status = (text ?? '').trim();
    statuses.add(status);
    const progress = Number(value);
    if (seen.at(-1) !== progress) {
      seen.push(progress);
    }
    if (status === 'succeeded' || status === 'failed' || status === 'cancelled') {
      break;
    }
    await page.waitForTimeout(100);
  }
  log(`progress values seen: ${seen.join(', ')}; statuses: ${[...statuses].join(', ')}`);
  assert(status === 'succeeded', `the job succeeded (last status ${status})`);
  const between = seen.filter((value) => value > 0 && value < 100);
  assert(between.length >= 2, `the bar showed at least two values between 0 and 100 (saw ${seen})`);
  for (let i = 1; i < seen.length; i += 1) {
    assert(seen[i] >= seen[i - 1], `progress never went back (saw ${seen})`);
  }
  assert(seen.at(-1) === 100, `the bar ends at 100% (saw ${seen})`);
  assert(
    (await page.evaluate(() => window.__e2eMark)) === 'no-reload',
    'the page updated itself without reloading',
  );
});

check('a failing job shows its error', async (page) => {
  const id = await submitJob(page, {
    task: 'fail',
    estimate: 1,
    params: { permanent: true },
    description: 'e2e: failure',
  });
  state.failId = id;
  await page.getByTestId('new-job-link').click();
  await page.waitForURL(`**/jobs/${id}`);
  // The heading once the job is shown, the main region while it loads: never <body>.
  await expectFocus(page, 'h1#job-title, main#main', 'the job page (heading or main region)');
  const status = await waitForDetailStatus(page, ['failed', 'succeeded', 'cancelled']);
  assert(status === 'failed', `the job failed (status ${status})`);
  const error = page.getByTestId('error');
  await error.waitFor({ timeout: WAIT_MS });
  const text = (await error.textContent()) ?? '';
  assert(
    text.includes('the fail task failed on purpose'),
    `the error text is shown (got ${JSON.stringify(text)})`,
  );
  assert((await page.locator('.badge--failed').count()) >= 1, 'a failed badge is shown');
});

check('a long job is cancelled from its detail page after a confirmation', async (page) => {
  const id = await submitJob(page, {
    task: 'simulate',
    estimate: 120,
    params: { duration: 120 },
    description: 'e2e: cancel me',
  });
  state.cancelId = id;
  await page.getByTestId('new-job-link').click();
  await page.waitForURL(`**/jobs/${id}`);
  const running = await waitForDetailStatus(page, ['running', 'succeeded', 'failed', 'cancelled']);
  assert(running === 'running', `the job started running (status ${running})`);
  await page.getByRole('button', { name: 'Cancel job' }).click();
  const dialog = page.getByRole('alertdialog');
  await dialog.waitFor({ timeout: WAIT_MS });
  await expectCleanAudit(page, 'job detail, confirm dialog open');
  // The dialog's first answer is the safe one: keep running.
  await dialog.getByRole('button', { name: 'Keep running' }).click();
  await dialog.waitFor({ state: 'detached', timeout: WAIT_MS }); // "Keep running" closes it
  assert(
    (await page.getByTestId('job-status').textContent())?.trim() === 'running',
    'keeping it changed nothing',
  );
  await page.getByRole('button', { name: 'Cancel job' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Cancel job' }).click();
  const status = await waitForDetailStatus(page, ['cancelled', 'succeeded', 'failed']);
  assert(status === 'cancelled', `the job is cancelled (status ${status})`);
  // A finished job can be deleted. The stream may report `cancelled` a moment before
  // the cancel request itself returns, so wait for the button rather than read it once.
  const remove = await page.getByRole('button', { name: 'Delete' }).elementHandle();
  await remove.waitForElementState('enabled', { timeout: WAIT_MS });
  // "Cancel job" is disabled now, which drops focus: the app puts it on the heading.
  await expectFocus(page, 'h1#job-title', 'the job heading after the cancel');
});

check('the jobs page lists all three, newest first; screenshot saved', async (page) => {
  await page.goto(`${BASE_URL}/jobs`);
  const rows = page.locator('tbody tr[data-job-id]');
  await page
    .locator(`tr[data-job-id="${state.cancelId}"][data-status="cancelled"]`)
    .waitFor({ timeout: WAIT_MS });
  const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job-id')));
  assert(
    JSON.stringify(ids.slice(0, 3)) ===
      JSON.stringify([state.cancelId, state.failId, state.simulateId]),
    `newest first (got ${ids})`,
  );
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'jobs-page.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'jobs-page-narrow.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
});

check('the status filter shows only failed jobs', async (page) => {
  await page.goto(`${BASE_URL}/jobs`);
  await page.locator('tbody tr[data-job-id]').first().waitFor({ timeout: WAIT_MS });
  await page.getByLabel('Status').selectOption('failed');
  await page.waitForURL('**/jobs?status=failed');
  await page.locator(`tr[data-job-id="${state.failId}"]`).waitFor({ timeout: WAIT_MS });
  // Only failed ones (the same user may have failed jobs from earlier runs).
  await page.waitForFunction(
    ([simulateId]) => {
      const rows = [...document.querySelectorAll('tbody tr[data-job-id]')];
      return (
        rows.every((tr) => tr.getAttribute('data-status') === 'failed') &&
        !rows.some((tr) => tr.getAttribute('data-job-id') === simulateId)
      );
    },
    [state.simulateId],
    { timeout: WAIT_MS },
  );
});

check('a failed job is re-run from its detail page, as a new job that links back', async (page) => {
  await page.goto(`${BASE_URL}/jobs/${state.failId}`);
  await waitForDetailStatus(page, ['failed']);
  await page.getByRole('button', { name: 'Re-run' }).click();
  // POST /jobs/{id}/rerun, then the new job's page.
  await page.waitForURL(
    (url) => /^\/jobs\/[0-9a-f]{24}$/.test(url.pathname) && !url.pathname.endsWith(state.failId),
    { timeout: WAIT_MS },
  );
  const id = page.url().split('/').pop();
  state.rerunId = id;
  log(`re-ran ${state.failId} as ${id}`);
  await page.getByText(`re-run as ${id}`).waitFor({ timeout: WAIT_MS });
  const back = page.getByTestId('rerun-of');
  await back.waitFor({ timeout: WAIT_MS });
  assert(
    ((await back.textContent()) ?? '').trim() === state.failId,
    `"Re-run of" names the original job (${await back.textContent()})`,
  );
  assert((await page.getByTestId('job-id').textContent())?.trim() === id, 'the new job is shown');
  // Same task, same params: it fails the same way.
  const status = await waitForDetailStatus(page, ['failed', 'succeeded', 'cancelled']);
  assert(status === 'failed', `the re-run failed like the original (status ${status})`);
  const error = (await page.getByTestId('error').textContent()) ?? '';
  assert(error.includes('the fail task failed on purpose'), `the same error (${error})`);
  // Its own Re-run button is there, and the link leads back to the original.
  await page.getByRole('button', { name: 'Re-run' }).waitFor({ timeout: WAIT_MS });
  await back.click();
  await page.waitForURL(`**/jobs/${state.failId}`);
  await page.getByTestId('error').waitFor({ timeout: WAIT_MS });
});

check('a job with "Run at" a few seconds ahead waits, scheduled, then runs', async (page) => {
  await page.goto(`${BASE_URL}/submit`);
  await page
    .locator('#field-task option[value="echo"]')
    .waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.getByLabel('Task', { exact: true }).selectOption('echo');
  await page.getByLabel('Estimated time').fill('1');
  await page.getByLabel('Description').fill('e2e: scheduled');
  /** A time `ms` from now as typed in the browser's own zone: 2026-12-08T14:05:09. */
  const localTime = (ms) =>
    page.evaluate((offset) => {
      const d = new Date(Date.now() + offset);
      const p = (n) => String(n).padStart(2, '0');
      return (
        `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` +
        `T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
      );
    }, ms);

  // One Tab stop from Params to Run at, one more to Callback URL: typed, not picked part
  // by part. A time in the past is refused before anything is sent.
  await page.getByLabel('Params').focus();
  await page.keyboard.press('Tab');
  await expectFocus(page, '#field-runAt', 'Run at, one Tab after Params');
  await page.keyboard.type(await localTime(-60_000));
  await page.keyboard.press('Tab');
  await expectFocus(page, '#field-callbackUrl', 'Callback URL, one Tab after Run at');
  await page.getByRole('button', { name: 'Submit job' }).click();
  await page.locator('#runAt-error').getByText('already passed').waitFor({ timeout: WAIT_MS });
  await expectFocus(page, '#field-runAt', 'the Run at field, with its error');
  assert((await page.getByTestId('new-job-link').count()) === 0, 'no job was submitted');

  // Typed in UTC this time, the zone after the time: the same instant as the browser's.
  const aheadMs = 15_000;
  const expected = Date.now() + aheadMs;
  const runAt = `${new Date(expected).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  await page.getByLabel('Run at').fill(runAt);
  await page.getByRole('button', { name: 'Submit job' }).click();
  const link = page.getByTestId('new-job-link');
  await link.waitFor({ timeout: WAIT_MS });
  const id = ((await link.textContent()) ?? '').trim();
  log(`submitted echo as ${id}, to run at ${runAt}`);
  await link.click();
  await page.waitForURL(`**/jobs/${id}`);
  const waiting = await waitForDetailStatus(page, ['scheduled', 'queued', 'running', 'succeeded']);
  assert(waiting === 'scheduled', `the job waits for its time, scheduled (status ${waiting})`);
  assert((await page.locator('.badge--scheduled').count()) >= 1, 'a scheduled badge is shown');
  const starts = ((await page.getByTestId('starts-at').textContent()) ?? '').replace(/\s+/g, ' ');
  assert(/Starts at \d\d:\d\d:\d\d · in \d+ s/.test(starts), `it says when it starts (${starts})`);
  await expectCleanAudit(page, 'scheduled job');

  // My jobs says so too.
  await page.goto(`${BASE_URL}/jobs`);
  const row = page.locator(`tr[data-job-id="${id}"]`);
  await row.waitFor({ timeout: WAIT_MS });
  if ((await row.getAttribute('data-status')) === 'scheduled') {
    const text = ((await row.getByTestId('starts-at').textContent()) ?? '').trim();
    assert(text.startsWith('Starts at'), `the list says when it starts (${text})`);
  }
  await page.goto(`${BASE_URL}/jobs/${id}`);
  const final = await waitForDetailStatus(page, ['succeeded', 'failed', 'cancelled']);
  assert(final === 'succeeded', `the scheduled job ran and succeeded (status ${final})`);
  const answer = await page.request.get(`${BASE_URL}/api/v1/jobs/${id}`);
  const job = await answer.json();
  const due = Date.parse(job.run_at);
  assert(Math.abs(due - expected) < 2000, `run_at is the time picked (${job.run_at})`);
  assert(
    Date.parse(job.started_at) >= due - 1000,
    `it started at its time, not before (${job.started_at})`,
  );
});

check('a finished job is deleted after a confirmation', async (page) => {
  await page.goto(`${BASE_URL}/jobs/${state.cancelId}`);
  await waitForDetailStatus(page, ['cancelled']);
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Delete' }).click();
  await page.waitForURL('**/jobs');
  await expectFocus(page, 'h1#jobs-title', 'the heading of My jobs after the delete');
  await page.getByText(`(${state.cancelId}) deleted`).waitFor({ timeout: WAIT_MS });
  await page.locator(`tr[data-job-id="${state.failId}"]`).waitFor({ timeout: WAIT_MS });
  assert(
    (await page.locator(`tr[data-job-id="${state.cancelId}"]`).count()) === 0,
    'the row is gone',
  );
});

check('an API token is created (its secret shown once), works, and is revoked', async (page) => {
  await page.goto(`${BASE_URL}/jobs`);
  await page
    .getByRole('navigation', { name: 'Main' })
    .getByRole('link', { name: 'API tokens' })
    .click();
  await page.waitForURL('**/tokens');
  await expectFocus(page, 'h1#tokens-title', 'the heading of API tokens');
  await page.locator('[data-testid="no-tokens"], tbody tr[data-token-id]').first().waitFor();
  await expectCleanAudit(page, 'API tokens');

  const name = `e2e ${runId}`;
  await page.getByLabel('Name of a new token').fill(name);
  await page.getByRole('button', { name: 'Create token' }).click();
  const box = page.getByTestId('created-token');
  await box.waitFor({ timeout: WAIT_MS });
  await expectFocus(page, '[data-testid="created-token"]', 'the new token and its warning');
  const secret = await page.getByTestId('token-secret').inputValue();
  assert(secret.length >= 16, `the secret is shown (${secret.length} characters)`);
  const warning = (await page.getByTestId('secret-warning').textContent()) ?? '';
  assert(warning.includes('you will not see it again'), `a clear warning (${warning})`);
  await expectCleanAudit(page, 'API tokens, new secret shown');

  await page.getByRole('button', { name: 'Copy' }).click();
  const copyStatus = page.getByTestId('copy-status');
  await page.waitForFunction(
    () => !!document.querySelector('[data-testid="copy-status"]')?.textContent?.trim(),
    null,
    { timeout: 5000 },
  );
  const copied = ((await copyStatus.textContent()) ?? '').trim();
  if (copied === 'Copied to the clipboard.') {
    const pasted = await page.evaluate(() => navigator.clipboard.readText()).catch(() => null);
    assert(pasted === null || pasted === secret, 'the clipboard holds the secret');
  } else {
    assert(copied.includes('Ctrl+C'), `the copy button says what happened (${copied})`);
  }
  log(`copy: ${copied}`);

  // A script can use it: the secret as a bearer token, no cookie.
  const me = await withToken(secret, '/api/v1/auth/me');
  assert(me.status === 200, `the token signs a script in (GET /auth/me: ${me.status} ${me.body})`);
  assert(JSON.parse(me.body).username === USERNAME, `as ${USERNAME} (${me.body})`);

  await page.getByRole('button', { name: 'Done, I have copied it' }).click();
  await box.waitFor({ state: 'detached', timeout: WAIT_MS });
  assert(!(await page.content()).includes(secret), 'the secret is gone from the page');
  const row = page.locator('tbody tr[data-token-id]', { hasText: name });
  await row.waitFor({ timeout: WAIT_MS });
  await page.reload();
  await row.waitFor({ timeout: WAIT_MS });
  assert(!(await page.content()).includes(secret), 'the secret is not shown again');

  await row.getByRole('button', { name: `Revoke token ${name}` }).click();
  const dialog = page.getByRole('alertdialog');
  await dialog.waitFor({ timeout: WAIT_MS });
  await expectCleanAudit(page, 'API tokens, revoke dialog open');
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await row.waitFor({ state: 'detached', timeout: WAIT_MS });
  await expectFocus(page, '[data-testid="tokens-message"]', 'the message saying it was revoked');
  const message = ((await page.getByTestId('tokens-message').textContent()) ?? '').trim();
  assert(message === `Token ${name} revoked.`, `the page says so (${message})`);
  const after = await withToken(secret, '/api/v1/auth/me');
  assert(after.status === 401, `a revoked token is refused (${after.status})`);
});

check('the webhook signing secret is made on the API tokens page, shown once', async (page) => {
  await page.goto(`${BASE_URL}/tokens`);
  const button = page
    .locator('#webhook-secret')
    .getByRole('button', { name: /^(Make|Rotate) webhook secret$/ });
  await button.waitFor({ timeout: WAIT_MS });
  const rotating = ((await button.textContent()) ?? '').trim().startsWith('Rotate');
  await button.click();
  if (rotating) {
    // A secret made before (an earlier run on the same data): a rotation asks first.
    const dialog = page.getByRole('alertdialog');
    await dialog.waitFor({ timeout: WAIT_MS });
    await dialog.getByRole('button', { name: 'Rotate', exact: true }).click();
  }
  const shown = page.getByTestId('webhook-secret-shown');
  await shown.waitFor({ timeout: WAIT_MS });
  await expectFocus(page, '#webhook-secret-value', 'the new webhook secret');
  const secret = await page.getByTestId('webhook-secret-value').inputValue();
  assert(secret.startsWith('whsec_'), `the webhook secret is shown (${secret.slice(0, 6)}...)`);
  const warning = (await page.getByTestId('webhook-secret-warning').textContent()) ?? '';
  assert(warning.includes('you will not see it again'), `a clear warning (${warning})`);
  await expectCleanAudit(page, 'API tokens, webhook secret shown');

  await page.getByRole('button', { name: 'Done, I have copied the secret' }).click();
  await shown.waitFor({ state: 'detached', timeout: WAIT_MS });
  assert(!(await page.content()).includes(secret), 'the webhook secret is gone from the page');
  const state = ((await page.getByTestId('webhook-secret-state').textContent()) ?? '')
    .replace(/\s+/g, ' ')
    .trim();
  assert(state.startsWith('You have a webhook secret, made'), `the page says so (${state})`);
});

/** Whether every chart canvas on the page has something drawn on it. */
async function chartsDrawn(page) {
  return page.evaluate(() => {
    const canvases = [...document.querySelectorAll('.overview canvas')];
    return (
      canvases.length > 0 &&
      canvases.every((canvas) => {
        if (!canvas.width || !canvas.height) {
          return false;
        }
        const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 3; i < data.length; i += 4) {
          if (data[i] !== 0) {
            return true;
          }
        }
        return false;
      })
    );
  });
}

check('the overview shows an admin live charts while jobs run; screenshot saved', async (page) => {
  // Work going on while the overview is open.
  const id = await submitJob(page, {
    task: 'simulate',
    estimate: 20,
    params: { duration: 20 },
    description: 'e2e: overview',
  });
  // The admin has the Overview in the navigation.
  await page
    .getByRole('navigation', { name: 'Main' })
    .getByRole('link', { name: 'Overview' })
    .click();
  await page.waitForURL('**/overview');
  await expectFocus(page, 'h1#overview-title', 'the heading of Overview');
  await page.locator('[data-testid="chart-minutes"]').waitFor({ timeout: WAIT_MS });
  const deadline = Date.now() + WAIT_MS;
  while (!(await chartsDrawn(page))) {
    assert(Date.now() < deadline, 'every chart has something drawn on it');
    await page.waitForTimeout(200);
  }
  const charts = await page
    .locator('.overview canvas')
    .evaluateAll((canvases) =>
      canvases.map((c) => `${c.dataset.testid}: ${c.getAttribute('aria-label')}`),
    );
  log(`charts drawn:\n  ${charts.join('\n  ')}`);

  // The numbers behind the chart: this run's jobs have finished within the hour.
  const label = (await page.getByTestId('chart-minutes').getAttribute('aria-label')) ?? '';
  const counted = (status) =>
    Number((label.match(new RegExp(`([\\d,]+) ${status}`)) ?? ['', '0'])[1].replace(/,/g, ''));
  assert(
    counted('succeeded') >= 1 && counted('failed') >= 2,
    `the finished jobs are counted (${label})`,
  );
  // The latest failures link to their jobs: the re-run is among them.
  const failure = page.locator(`[data-testid="failures"] tr[data-job-id="${state.rerunId}"] a`);
  await failure.waitFor({ timeout: WAIT_MS });
  assert(
    (await failure.getAttribute('href')) === `/jobs/${state.rerunId}`,
    'a failure links to its job',
  );

  // Live: asked again every 5 s, and the busy worker shows while the job runs.
  let busySeen = 0;
  let refreshes = 0;
  const until = Date.now() + WAIT_MS;
  while (Date.now() < until && (refreshes < 2 || busySeen === 0)) {
    const answer = await page.waitForResponse(
      (response) => response.url().endsWith('/api/v1/stats') && response.status() === 200,
      { timeout: 15_000 },
    );
    const stats = await answer.json();
    refreshes += 1;
    busySeen = Math.max(busySeen, stats.workers.busy);
    log(`stats refresh ${refreshes}: workers ${JSON.stringify(stats.workers)}`);
    await page.waitForTimeout(100); // let the page draw what it got
  }
  assert(refreshes >= 2, `the overview refreshes itself (${refreshes} refreshes)`);
  assert(busySeen >= 1, `a busy worker was shown while ${id} ran`);
  const online = Number(
    (
      await page.locator('[data-testid="workers"] .tile').first().locator('dd').textContent()
    )?.trim(),
  );
  assert(online >= 1, `workers are online (${online})`);
  assert(await chartsDrawn(page), 'the charts are still drawn after the refreshes');

  const shot = path.join(ARTIFACTS_DIR, 'overview.png');
  await page.screenshot({ path: shot, fullPage: true });
  const size = (await stat(shot)).size;
  assert(size > 20_000, `the overview screenshot has the charts in it (${size} bytes)`);
  await expectCleanAudit(page, 'overview');

  // The numbers are there as tables too, for whoever cannot see the charts.
  await page.getByText('The numbers, minute by minute').click();
  const rows = await page.locator('#minutes-title ~ details tbody tr').count();
  assert(rows === 60, `one row per minute of the last hour (${rows})`);
  await expectCleanAudit(page, 'overview, numbers shown');
});

check(
  'accessibility of every page: axe-core, tap targets, text sizes (desktop, 375 px, dark)',
  async (page) => {
    const pages = [
      {
        name: 'submit',
        url: '/submit',
        ready: () =>
          page.locator('#field-task option[value="echo"]').waitFor({ state: 'attached' }),
      },
      {
        name: 'jobs list',
        url: '/jobs',
        ready: () => page.locator(`tr[data-job-id="${state.failId}"]`).waitFor(),
      },
      {
        name: 'failed job',
        url: `/jobs/${state.failId}`,
        ready: () => page.getByTestId('error').waitFor(),
      },
      {
        name: 'succeeded job',
        url: `/jobs/${state.simulateId}`,
        ready: () => page.getByTestId('result').waitFor(),
      },
      {
        name: 'overview',
        url: '/overview',
        ready: () => page.locator('[data-testid="chart-minutes"]').waitFor(),
      },
      {
        name: 'API tokens',
        url: '/tokens',
        ready: () =>
          page.locator('[data-testid="no-tokens"], tbody tr[data-token-id]').first().waitFor(),
      },
    ];
    // The sign-in page as a signed-out visitor sees it: a context without the cookie.
    const signedOut = await browser.newContext({ viewport: DESKTOP });
    const outPage = await signedOut.newPage();
    outPage.on('pageerror', (error) => pageErrors.push(String(error)));
    const variants = [
      { name: 'desktop', viewport: DESKTOP, colorScheme: 'light' },
      { name: '375 px', viewport: PHONE, colorScheme: 'light' },
      { name: 'desktop dark', viewport: DESKTOP, colorScheme: 'dark' },
    ];
    const problems = [];
    try {
      for (const variant of variants) {
        await outPage.setViewportSize(variant.viewport);
        await outPage.emulateMedia({ colorScheme: variant.colorScheme });
        await outPage.goto(`${BASE_URL}/submit`);
        await waitForSignIn(outPage, '/submit');
        problems.push(...(await auditPage(outPage, `sign in, ${variant.name}`)));

        await page.setViewportSize(variant.viewport);
        await page.emulateMedia({ colorScheme: variant.colorScheme });
        for (const target of pages) {
          await page.goto(`${BASE_URL}${target.url}`);
          await target.ready();
          problems.push(...(await auditPage(page, `${target.name}, ${variant.name}`)));
          if (target.name === 'failed job' && variant.viewport === PHONE) {
            // On a phone the error is the first thing under the title, not a long scroll away.
            const top = await page
              .getByTestId('error')
              .evaluate((el) => el.getBoundingClientRect().top + window.scrollY);
            log(`failed job at 375 px: the error starts ${Math.round(top)} px down`);
            await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'failed-job-narrow.png') });
            if (top > PHONE.height - 60) {
              problems.push(`[failed job, 375 px] the error is below the fold (${top} px down)`);
            }
          }
        }
      }
    } finally {
      await signedOut.close();
      await page.setViewportSize(DESKTOP);
      await page.emulateMedia({ colorScheme: 'light' });
    }
    assert(problems.length === 0, `no accessibility problems:\n  ${problems.join('\n  ')}`);
  },
);

check(
  'signing out: back to sign in, and every page is refused until signing in again',
  async (page) => {
    await page.goto(`${BASE_URL}/jobs`);
    await page.getByRole('heading', { name: 'My jobs' }).waitFor({ timeout: WAIT_MS });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await waitForSignIn(page, null);
    await expectFocus(page, 'h1#sign-in-title', 'the heading of Sign in');
    await page.getByText('You are signed out.').waitFor({ timeout: WAIT_MS });
    assert((await page.getByTestId('session-user').count()) === 0, 'no user in the header');

    await page.goto(`${BASE_URL}/jobs`);
    await waitForSignIn(page, '/jobs');
    const refused = await apiStatus(page, '/api/v1/jobs');
    assert(
      refused.status === 401,
      `the API refuses the jobs after signing out (${refused.status})`,
    );
    assert(
      (await apiStatus(page, '/api/v1/auth/me')).status === 401,
      'GET /auth/me says signed out',
    );

    // Signing in again goes back to the page that was refused, query included.
    await page.goto(`${BASE_URL}/jobs/${state.failId}?from=e2e`);
    await waitForSignIn(page, `/jobs/${state.failId}?from=e2e`);
    await signIn(page, `**/jobs/${state.failId}?from=e2e`);
    await page.getByTestId('error').waitFor({ timeout: WAIT_MS });
    // And never to another site.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await waitForSignIn(page, null);
    await page.goto(`${BASE_URL}/sign-in?returnUrl=${encodeURIComponent('//example.com/x')}`);
    await signIn(page, new RegExp(`${escapeRegExp(BASE_URL)}/jobs$`));
  },
);

async function main() {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  for (const name of await readdir(ARTIFACTS_DIR)) {
    if (name.startsWith('e2e-failure-')) {
      await rm(path.join(ARTIFACTS_DIR, name)); // from an earlier run
    }
  }
  log(`BASE_URL=${BASE_URL} chromium=${CHROMIUM_PATH} user=${USERNAME}`);
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: DESKTOP });
  context.setDefaultTimeout(WAIT_MS);
  // The tokens page's Copy button writes the secret to the clipboard.
  await context
    .grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE_URL })
    .catch((error) => log(`no clipboard permissions: ${error}`));
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      log(`browser console error: ${message.text()}`);
      // The kernel's Content-Security-Policy blocked part of the app (an inline script or
      // handler, say): something does not work, even if no check noticed.
      if (message.text().includes('Content Security Policy')) {
        pageErrors.push(`blocked by the Content-Security-Policy: ${message.text()}`);
      }
    }
  });
  let failed = 0;
  for (const { name, fn } of checks) {
    const started = Date.now();
    try {
      await fn(page);
      log(`ok - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (error) {
      failed += 1;
      log(`not ok - ${name}\n${error?.stack ?? error}`);
      const shot = path.join(ARTIFACTS_DIR, `e2e-failure-${failed}.png`);
      await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
      log(`failure screenshot: ${shot}`);
      break; // later checks build on earlier ones
    }
  }
  await browser.close();
  if (pageErrors.length) {
    failed += 1;
    log(`not ok - uncaught errors in the page:\n${pageErrors.join('\n')}`);
  }
  const blocking = audited.reduce((sum, a) => sum + a.blocking, 0);
  const other = audited.reduce((sum, a) => sum + a.other, 0);
  const withProblems = audited.filter((a) => a.problems > 0).length;
  log(
    `axe-core: ${audited.length} page audits, ${blocking} serious/critical violations, ` +
      `${other} moderate/minor; ${withProblems} audits with problems`,
  );
  log(failed ? `FAILED (${failed})` : `passed: ${checks.length} checks`);
  process.exit(failed ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
