#!/usr/bin/env node
// The kernel's OpenAPI viewer in Debian's Chromium, against a running kernel.
//
//   BASE_URL=http://127.0.0.1:8000 node e2e/openapi.mjs
//
// For each viewer page (VIEWER_PATHS, default /schema): the page renders the API (its title
// and the submit operation are in the DOM), under the kernel's Content-Security-Policy (no
// violation, no page error), with no failed request and no request to another origin.
// Writes a screenshot to ARTIFACTS_DIR when set. Exit code 0 = passed.

import { launchChromium, logger } from './browser.mjs';

const BASE = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
const PATHS = (process.env.VIEWER_PATHS ?? '/schema').split(',').filter(Boolean);
const TITLE = process.env.API_TITLE ?? 'taskbroker kernel API';
const OPERATION = process.env.API_OPERATION ?? '/api/v1/job_executor/async';
const ARTIFACTS = process.env.ARTIFACTS_DIR ?? '';
const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 30_000);
if (!BASE) {
  console.error('BASE_URL is required');
  process.exit(2);
}

const log = logger('openapi');

const problems = []; // CSP violations, page errors, failed or foreign requests
const passed = [];

async function check(context, path) {
  const page = await context.newPage();
  const origin = new URL(BASE).origin;
  page.on('pageerror', (error) => problems.push(`page error on ${path}: ${error}`));
  page.on('console', (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) {
      problems.push(`CSP on ${path}: ${message.text()}`);
    }
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('data:') && new URL(url).origin !== origin) {
      problems.push(`request to another origin on ${path}: ${url}`);
    }
  });
  page.on('requestfailed', (request) =>
    problems.push(`failed request on ${path}: ${request.url()} (${request.failure()?.errorText})`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) {
      problems.push(`HTTP ${response.status()} on ${path}: ${response.url()}`);
    }
  });
  // The browser's own report of each violation, whatever the console says.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) =>
      window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`),
    );
  });

  await page.goto(`${BASE}${path}`, { waitUntil: 'load' });
  let rendered = true;
  try {
    await page.waitForFunction(
      ({ title, operation }) => {
        const text = document.body?.innerText ?? '';
        return text.includes(title) && text.includes(operation);
      },
      { title: TITLE, operation: OPERATION },
      { timeout: WAIT_MS },
    );
  } catch {
    rendered = false;
  }
  await page.waitForLoadState('networkidle').catch(() => {});
  const violations = await page.evaluate(() => window.__cspViolations ?? []);
  for (const violation of violations) {
    problems.push(`CSP violation on ${path}: ${violation}`);
  }
  if (ARTIFACTS) {
    const name = `openapi${path.replace(/[^\w]+/g, '-')}.png`;
    await page.screenshot({ path: `${ARTIFACTS}/${name}`, fullPage: false });
  }
  const text = (await page.evaluate(() => document.body?.innerText ?? '')).slice(0, 300);
  if (!rendered) {
    throw new Error(
      `${path} did not render "${TITLE}" and ${OPERATION}; the page shows: ${JSON.stringify(text)}`,
    );
  }
  // The operation is a real Swagger UI operation block, not just text somewhere.
  const operations = await page.$$eval('.opblock-summary-path', (nodes) =>
    nodes.map((node) => node.textContent.replace(/\u200b/g, '').trim()),
  );
  if (!operations.includes(OPERATION)) {
    throw new Error(`${path}: no operation block for ${OPERATION}: ${operations.join(', ')}`);
  }
  passed.push(`${path} renders the API (${operations.length} operations)`);
  await page.close();
}

async function main() {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    for (const path of PATHS) {
      await check(context, path);
    }
    if (problems.length) {
      throw new Error(`problems:\n${problems.join('\n')}`);
    }
    passed.push('no CSP violation, page error, failed or foreign request');
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
