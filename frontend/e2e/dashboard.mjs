#!/usr/bin/env node
// rq-dashboard in Debian's Chromium, against a running dashboard (python -m backend.dashboard).
//
//   DASHBOARD_URL=http://127.0.0.1:9181 DASHBOARD_USERNAME=admin DASHBOARD_PASSWORD=... \
//   JOB_ID=<a failed job> QUEUE=standard PAYLOAD='<img src=x onerror=...>' node e2e/dashboard.mjs
//
// JOB_ID is a job that failed with PAYLOAD (HTML meant to run script) in its message. The
// checks: the queues and workers lists, the failed list and the job page work under the
// dashboard's Content-Security-Policy (no violation, no page error); the failed list and the
// job page show PAYLOAD as text, with no element and no script of it; and markup injected
// into the page after load still runs no inline handler (the CSP). Exit code 0 = passed.

import { assert, launchChromium, logger } from './browser.mjs';

const BASE = (process.env.DASHBOARD_URL ?? '').replace(/\/+$/, '');
const JOB_ID = process.env.JOB_ID ?? '';
const QUEUE = process.env.QUEUE ?? 'standard';
const PAYLOAD = process.env.PAYLOAD ?? '';
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 60_000);
if (!BASE || !JOB_ID || !PAYLOAD) {
  console.error('DASHBOARD_URL, JOB_ID and PAYLOAD are required');
  process.exit(2);
}

const log = logger('dashboard');

const problems = []; // page errors, CSP violations, dialogs: any one fails the run
const passed = [];

/** Open ``path`` and wait for ``selector``; returns the page. */
async function open(context, path, selector) {
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error on ${path}: ${error}`));
  page.on('dialog', async (dialog) => {
    problems.push(`dialog on ${path}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on('console', (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) {
      problems.push(`CSP on ${path}: ${message.text()}`);
    }
  });
  await page.goto(`${BASE}${path}`);
  await page.waitForSelector(selector, { timeout: WAIT_MS });
  return page;
}

/** Nothing of the payload ran: no flag set, no element of it in ``scope``. */
async function assertInert(page, scope, where) {
  const state = await page.evaluate(
    (selector) => ({
      xss: typeof window.__xss,
      script: typeof window.__xss_script,
      images: document.querySelectorAll(`${selector} img`).length,
      scripts: document.querySelectorAll(`${selector} script`).length,
    }),
    scope,
  );
  assert(state.xss === 'undefined', `${where}: the payload's onerror ran`);
  assert(state.script === 'undefined', `${where}: the payload's <script> ran`);
  assert(state.images === 0, `${where}: the payload became an <img> element`);
  assert(state.scripts === 0, `${where}: the payload became a <script> element`);
}

async function main() {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({
      httpCredentials: {
        username: process.env.DASHBOARD_USERNAME ?? 'admin',
        password: process.env.DASHBOARD_PASSWORD ?? '',
      },
    });

    // The queues list: rows come from /0/data/queues.json through an underscore template.
    const queues = await open(context, '/0/view/queues', 'table#queues tr[data-role=queue]');
    const names = await queues.$$eval('table#queues tr[data-role=queue] td:first-child', (cells) =>
      cells.map((cell) => cell.textContent.trim()),
    );
    assert(names.includes(QUEUE), `the queues list shows ${QUEUE}: ${names}`);
    passed.push('queues list');

    // The workers list: the system's RQ workers, from /0/data/workers.json.
    await open(context, '/0/view/workers', 'table#workers tr[data-role=worker]');
    passed.push('workers list');

    // The failed list: the job's row, its traceback shown as text.
    const listPath = `/0/view/jobs/${encodeURIComponent(QUEUE)}/failed/8/asc/1`;
    const list = await open(context, listPath, `tr[data-job-id="${JOB_ID}"]`);
    const listText = await list.$eval(
      `tr[data-job-id="${JOB_ID}"] pre.exc_info`,
      (pre) => pre.textContent,
    );
    assert(listText.includes(PAYLOAD), `the failed list shows the payload as text: ${listText}`);
    await assertInert(list, 'table#jobs', 'failed list');
    passed.push('failed list');

    // The job page: where rq-dashboard 0.9 rendered the traceback as HTML.
    const job = await open(context, `/0/view/job/${encodeURIComponent(JOB_ID)}`, 'pre.exc_info');
    // Wait for the traceback (its last line names the error), then read it.
    await job.waitForFunction(
      () => /Error/.test(document.querySelector('pre.exc_info').textContent),
      null,
      { timeout: WAIT_MS },
    );
    const jobText = await job.$eval('pre.exc_info', (pre) => pre.textContent);
    assert(jobText.includes(PAYLOAD), `the job page shows the payload as text: ${jobText}`);
    const status = await job.$eval('#job-data', (data) => data.textContent);
    assert(/failed/.test(status), `the job page shows the status: ${status}`);
    await assertInert(job, '#job-data', 'job page');
    passed.push('job page shows the payload as text');

    // The pages above worked under the CSP: no violation, no error, no dialog.
    assert(problems.length === 0, `problems:\n${problems.join('\n')}`);
    passed.push('no CSP violation, page error or dialog');

    // The second wall: markup that reaches the page anyway runs no inline handler.
    const ran = await job.evaluate(async () => {
      const holder = document.createElement('div');
      document.body.appendChild(holder);
      holder.innerHTML = '<img src="/no-such-image" onerror="window.__csp_ran = 1">';
      const image = holder.querySelector('img');
      // Dispatched after the inline handler (registered first), whether it ran or not.
      await new Promise((resolve) => image.addEventListener('error', resolve));
      return typeof window.__csp_ran;
    });
    assert(ran === 'undefined', 'the CSP let an injected inline handler run');
    // Refused by the CSP (it says so), not by some other failure of the handler.
    assert(
      problems.length > 0 && problems.every((p) => p.startsWith('CSP on /0/view/job/')),
      `expected only the CSP's refusal of the injected handler:\n${problems.join('\n')}`,
    );
    passed.push('CSP refuses an injected inline handler');
    log(`passed: ${passed.join('; ')}`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(String(error?.stack ?? error));
  if (problems.length) {
    console.error(`problems:\n${problems.join('\n')}`);
  }
  process.exit(1);
});
