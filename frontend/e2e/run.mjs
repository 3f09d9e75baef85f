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
// Accessibility: every page the checks visit is audited with axe-core (injected into the
// page; a violation of impact "serious" or "critical" fails the run), and with two checks
// of our own that axe leaves out: every interactive element at least 24x24 CSS px, no text
// under 12 px. Focus is checked after a submit, a navigation and an action, and the skip
// link must not reload the page.

import { mkdir, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const AXE_PATH = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const BASE_URL = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS_DIR = path.resolve(
  process.env.ARTIFACTS_DIR ?? path.join(here, '..', '..', 'test-artifacts'),
);
// Generous: a shared 2-core machine may be slow to start a worker or a browser.
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 90_000);

// Flags for a closed network and a root user: no sandbox, no background fetches.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

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

const userId = `e2e-${Date.now().toString(36)}-${process.pid}`;
const pageErrors = [];
const audited = []; // one line per audit, for the summary

function log(message) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 23)}] ${message}`);
}

function assert(condition, message) {
  if (!condition) {
    throw new Error(`assertion failed: ${message}`);
  }
}

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
    await page.addScriptTag({ path: AXE_PATH });
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

check('choose a user id; it is remembered after a reload', async (page) => {
  await page.goto(`${BASE_URL}/jobs`);
  await page.getByLabel('User id').fill(userId);
  await page.getByLabel('User id').press('Enter');
  await page.getByText(`No jobs yet for ${userId}`).waitFor({ timeout: WAIT_MS });
  await page.reload();
  assert((await page.getByLabel('User id').inputValue()) === userId, 'user id survives a reload');
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
  await page.waitForFunction(
    () => document.querySelectorAll('tbody tr[data-job-id]').length === 1,
    null,
    {
      timeout: WAIT_MS,
    },
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
    ];
    const variants = [
      { name: 'desktop', viewport: DESKTOP, colorScheme: 'light' },
      { name: '375 px', viewport: PHONE, colorScheme: 'light' },
      { name: 'desktop dark', viewport: DESKTOP, colorScheme: 'dark' },
    ];
    const problems = [];
    try {
      for (const variant of variants) {
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
      await page.setViewportSize(DESKTOP);
      await page.emulateMedia({ colorScheme: 'light' });
    }
    assert(problems.length === 0, `no accessibility problems:\n  ${problems.join('\n  ')}`);
  },
);

async function main() {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  for (const name of await readdir(ARTIFACTS_DIR)) {
    if (name.startsWith('e2e-failure-')) {
      await rm(path.join(ARTIFACTS_DIR, name)); // from an earlier run
    }
  }
  log(`BASE_URL=${BASE_URL} chromium=${CHROMIUM_PATH} user=${userId}`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const context = await browser.newContext({ viewport: DESKTOP });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      log(`browser console error: ${message.text()}`);
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
