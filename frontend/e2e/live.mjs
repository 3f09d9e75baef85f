#!/usr/bin/env node
// Tabs of the web app following unfinished jobs live, in Debian's Chromium, against a
// running system.
//
//   BASE_URL=http://127.0.0.1:8000 JOB_IDS=<id>,<id>,… node e2e/live.mjs
//
// JOB_IDS are the newest jobs of E2E_USERNAME (password E2E_PASSWORD), unfinished, some of
// them running (their progress moves), and the user has older jobs too (a second page).
//
// 1. One tab stays MEASURE_SECONDS (default 60) on My jobs, and every API request it sends
//    is counted: printed as requests per minute (with how many were answered 304), and at
//    most MAX_PER_MINUTE when that is set.
// 2. Three more tabs of the same browser (one pool of about six connections per host for
//    all tabs) open My jobs: each loads its list and shows the running jobs moving, holding
//    one live stream.
// 3. Keyboard: Enter on "Refresh", and on "Older →" up to the last page, leaves the focus
//    on the button; the last page, unchanged, asked again is answered 304. Exit code 0 =
//    passed.

import { CHROMIUM_PATH, assert, launchChromium, logger } from './browser.mjs';

const BASE_URL = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
const JOB_IDS = (process.env.JOB_IDS ?? '').split(',').filter(Boolean);
const USERNAME = process.env.E2E_USERNAME || 'e2e';
const PASSWORD = process.env.E2E_PASSWORD || 'e2e-password-123';
const MEASURE_SECONDS = Number(process.env.MEASURE_SECONDS ?? 60);
const MAX_PER_MINUTE = process.env.MAX_PER_MINUTE ? Number(process.env.MAX_PER_MINUTE) : null;
const TABS = 4;
// Generous: a shared 2-core machine may be slow to start a browser.
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 30_000);

if (!BASE_URL || JOB_IDS.length === 0) {
  console.error('BASE_URL and JOB_IDS are required');
  process.exit(2);
}

const log = logger('live');
const pageErrors = [];

/** Wait until the tab's list shows every job of JOB_IDS. */
async function waitForJobs(page, what) {
  try {
    await page.waitForFunction(
      (ids) => ids.every((id) => document.querySelector(`tr[data-job-id="${id}"]`)),
      JOB_IDS,
      { timeout: WAIT_MS, polling: 200 },
    );
  } catch {
    throw new Error(
      `assertion failed: ${what} shows the ${JOB_IDS.length} jobs within ${WAIT_MS} ms`,
    );
  }
}

/** Status and progress of each job row, as the tab shows them now. */
function rowsNow(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('tr[data-job-id]')].map((row) => [
        row.dataset.jobId,
        `${row.dataset.status} ${row.querySelector('[role="progressbar"]')?.getAttribute('aria-valuenow')}`,
      ]),
    ),
  );
}

/** Wait until a job row of the tab changes (a running job's progress moving). */
async function waitForUpdate(page, what) {
  const before = await rowsNow(page);
  try {
    await page.waitForFunction(
      ([ids, seen]) =>
        ids.some((id) => {
          const row = document.querySelector(`tr[data-job-id="${id}"]`);
          const now = `${row?.dataset.status} ${row?.querySelector('[role="progressbar"]')?.getAttribute('aria-valuenow')}`;
          return row && now !== seen[id];
        }),
      [JOB_IDS, before],
      { timeout: WAIT_MS, polling: 200 },
    );
  } catch {
    throw new Error(`assertion failed: ${what} shows a job moving within ${WAIT_MS} ms`);
  }
}

/**
 * Press Enter on the button named `name` and wait for the list it loads, shown; the button
 * keeps the focus.
 */
async function pressAndKeepFocus(page, name) {
  const button = page.getByRole('button', { name, exact: true });
  await button.focus();
  const [answer] = await Promise.all([
    page.waitForResponse((response) => new URL(response.url()).pathname === '/api/v1/jobs'),
    page.keyboard.press('Enter'),
  ]);
  await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
  const focused = await page.evaluate(() =>
    (document.activeElement?.textContent ?? '<body>').replace(/\s+/g, ' ').trim(),
  );
  assert(focused === name, `after Enter on "${name}" the focus is on it (it is on ${focused})`);
  return answer;
}

/**
 * The status of every answer as it came over the wire, in order: `{ path, status }`. (The
 * browser hands a page, and Playwright, a 304 as the 200 it kept.)
 */
async function wireStatuses(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  const seen = [];
  cdp.on('Network.requestWillBeSent', (event) => urls.set(event.requestId, event.request.url));
  cdp.on('Network.responseReceivedExtraInfo', (event) => {
    const url = urls.get(event.requestId);
    seen.push({ path: url ? new URL(url).pathname : '?', status: event.statusCode });
  });
  return seen;
}

async function openTab(context, n) {
  const page = await context.newPage();
  const wire = await wireStatuses(page);
  page.on('pageerror', (error) => pageErrors.push(`tab ${n}: ${error}`));
  const streams = [];
  page.on('request', (request) => {
    if (request.resourceType() === 'eventsource') {
      streams.push(new URL(request.url()).pathname);
    }
  });
  await page.goto(`${BASE_URL}/jobs`);
  return { page, streams, wire };
}

async function main() {
  log(`BASE_URL=${BASE_URL} chromium=${CHROMIUM_PATH} user=${USERNAME} jobs=${JOB_IDS.length}`);
  const browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  let failed = false;
  try {
    // Sign in on the first tab; the others share its session.
    const first = await openTab(context, 1);
    await first.page.getByLabel('User name').fill(USERNAME);
    await first.page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await first.page.getByRole('button', { name: 'Sign in' }).click();
    await first.page.waitForURL(/\/jobs$/);
    await waitForJobs(first.page, 'tab 1');

    // 1. What one tab costs the kernel, at rest on My jobs.
    const requests = new Map();
    let total = 0;
    const wireBefore = first.wire.length;
    const count = (request) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith('/api/')) {
        const kind = `${request.method()} ${url.pathname.replace(/[0-9a-f]{24}/g, '{id}')}`;
        requests.set(kind, (requests.get(kind) ?? 0) + 1);
        total += 1;
      }
    };
    first.page.on('request', count);
    await first.page.waitForTimeout(MEASURE_SECONDS * 1000);
    first.page.off('request', count);
    const notModified = first.wire
      .slice(wireBefore)
      .filter((answer) => answer.path.startsWith('/api/') && answer.status === 304).length;
    const perMinute = Math.round((total * 60) / MEASURE_SECONDS);
    const kinds = [...requests].map(([kind, n]) => `${kind} x${n}`).join(', ');
    log(
      `requests per minute on My jobs with ${JOB_IDS.length} unfinished jobs: ${perMinute} ` +
        `(${total} in ${MEASURE_SECONDS} s, ${notModified} answered 304: ${kinds || 'none'})`,
    );
    if (MAX_PER_MINUTE !== null) {
      assert(perMinute <= MAX_PER_MINUTE, `at most ${MAX_PER_MINUTE} requests a minute`);
    }

    // 2. More tabs of the same browser: each loads, and each shows the jobs moving.
    const tabs = [first];
    for (let n = 2; n <= TABS; n++) {
      tabs.push(await openTab(context, n));
    }
    for (const [i, tab] of tabs.entries()) {
      await waitForJobs(tab.page, `tab ${i + 1} of ${TABS}`);
    }
    for (const [i, tab] of tabs.entries()) {
      await waitForUpdate(tab.page, `tab ${i + 1} of ${TABS}`);
    }
    const streams = tabs.map((tab) => tab.streams.length);
    log(`live streams opened per tab: ${streams.join(', ')}`);
    for (const [i, tab] of tabs.entries()) {
      const opened = tab.streams;
      assert(
        opened.length === 1 && opened[0] === '/api/v1/events',
        `tab ${i + 1} follows its jobs on one stream (${tab.streams.join(', ') || 'none'})`,
      );
    }
    log(`ok - ${TABS} tabs load and show their jobs moving, one live stream each`);
    // 3. The keyboard: Refresh, and "Older →" reaching the last page, keep the focus.
    await pressAndKeepFocus(first.page, 'Refresh');
    const older = first.page.getByRole('button', { name: 'Older →', exact: true });
    assert(!(await older.getAttribute('aria-disabled')), 'the user has a second page of jobs');
    for (let pages = 1; !(await older.getAttribute('aria-disabled')); pages++) {
      assert(pages < 50, 'the last page is reached');
      await pressAndKeepFocus(first.page, 'Older →');
    }
    log(`ok - Refresh, and "Older →" up to the last page (${first.page.url()}), keep the focus`);
    // The last page holds finished jobs only: asked again, the kernel answers 304 (the
    // browser sends If-None-Match by itself, and shows its own copy).
    const again = await pressAndKeepFocus(first.page, 'Refresh');
    const sent = await again.request().headerValue('if-none-match');
    assert(!!sent, 'the browser asks with If-None-Match');
    await first.page.waitForTimeout(500); // the wire status comes in an event of its own
    const lists = first.wire.filter((answer) => answer.path === '/api/v1/jobs');
    const last = lists.at(-1)?.status;
    assert(last === 304, `a list that did not change is answered 304 (${last})`);
    log('ok - the unchanged list is answered 304');
  } catch (error) {
    failed = true;
    log(`not ok - ${error?.stack ?? error}`);
  }
  await browser.close();
  if (pageErrors.length) {
    failed = true;
    log(`not ok - uncaught errors in the page:\n${pageErrors.join('\n')}`);
  }
  log(failed ? 'FAILED' : 'passed');
  process.exit(failed ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
