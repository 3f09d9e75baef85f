// Lighthouse 12 over every page of the web app, on a phone and on a desktop, against a
// running system; prints one table (performance, accessibility, best practices, SEO, LCP,
// TBT per page and preset). `make lighthouse` starts a system with data and runs this
// (benchmarks/lighthouse.py); by hand:
//
//   BASE_URL=http://127.0.0.1:8000 SESSION_COOKIE='name=value' JOB_ID=<id> \
//     node frontend/perf/lighthouse.mjs
//
// SESSION_COOKIE: the cookies of a signed-in admin (`name=value; ...` as a browser sends
// them back), put into the browser the signed-in pages are measured in (the sign-in page
// is measured in a browser of its own, signed out). JOB_ID: the job the job page shows. Lighthouse comes from npm on first use (npx --yes lighthouse@12; LIGHTHOUSE to use
// another command); CHROME_PATH (default /usr/bin/chromium) is the browser. REPORTS_DIR, if
// set, keeps each run's JSON report. Exits 1 when a score misses its target.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const BASE_URL = (process.env.BASE_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const COOKIE = process.env.SESSION_COOKIE ?? '';
const JOB_ID = process.env.JOB_ID ?? '';
const CHROME_PATH = process.env.CHROME_PATH ?? '/usr/bin/chromium';
const LIGHTHOUSE = (process.env.LIGHTHOUSE ?? 'npx --yes lighthouse@12').split(' ');
const REPORTS_DIR = process.env.REPORTS_DIR ?? '';
const PRESETS = (process.env.PRESETS ?? 'mobile,desktop').split(',');

/** Targets: performance 95 on a phone and 100 on a desktop; 100 for the other three. */
const TARGETS = {
  mobile: { performance: 95, accessibility: 100, 'best-practices': 100, seo: 100 },
  desktop: { performance: 100, accessibility: 100, 'best-practices': 100, seo: 100 },
};

const PAGES = [
  { name: 'overview', path: '/overview', signedIn: true },
  { name: 'jobs list', path: '/jobs', signedIn: true },
  { name: 'job detail', path: `/jobs/${JOB_ID}`, signedIn: true },
  { name: 'submit', path: '/submit', signedIn: true },
  { name: 'tokens', path: '/tokens', signedIn: true },
  { name: 'sign-in', path: '/sign-in', signedIn: false },
];

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, CHROME_PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = [];
    const err = [];
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString());
      } else {
        reject(new Error(`${command} ${args.join(' ')}: exit ${code}\n${Buffer.concat(err)}`));
      }
    });
  });
}

/**
 * A Chromium with the session cookies, that Lighthouse drives through its debugging port
 * (a cookie in --extra-headers reaches the page but not the app's own API calls).
 */
async function signedInBrowser() {
  const dir = mkdtempSync(join(tmpdir(), 'lighthouse-profile-'));
  const child = spawn(
    CHROME_PATH,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--remote-debugging-port=0',
      `--user-data-dir=${dir}`,
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const endpoint = await new Promise((resolve, reject) => {
    let seen = '';
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const found = seen.match(/DevTools listening on (ws:\/\/\S+)/);
      if (found) {
        resolve(found[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`${CHROME_PATH} exited (${code}):\n${seen}`)));
  });
  const browser = await chromium.connectOverCDP(endpoint);
  const cookies = COOKIE.split(/;\s*/)
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf('=');
      return { name: pair.slice(0, at), value: pair.slice(at + 1), url: BASE_URL };
    });
  await browser.contexts()[0].addCookies(cookies);
  return {
    port: new URL(endpoint).port,
    close: async () => {
      // Chromium writes its profile until it has exited: remove the folder after that.
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/**
 * One Lighthouse run; a run Lighthouse itself gives up on (NO_NAVSTART and the like, on a
 * busy machine) is tried again, twice at most: it says nothing about the page.
 */
async function lighthouse(args) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run(LIGHTHOUSE[0], args);
    } catch (error) {
      if (attempt === 3 || !/Runtime error encountered/.test(String(error))) {
        throw error;
      }
      process.stderr.write(
        `  Lighthouse failed (${attempt}), again: ${String(error).split('\n')[1]}\n`,
      );
    }
  }
}

async function measure(page, preset, port) {
  const args = [
    ...LIGHTHOUSE.slice(1),
    `${BASE_URL}${page.path}`,
    '--output=json',
    '--output-path=stdout',
    '--quiet',
    '--only-categories=performance,accessibility,best-practices,seo',
  ];
  if (page.signedIn) {
    args.push(`--port=${port}`);
  } else {
    // No sandbox: the browser may run as root in a container.
    args.push('--chrome-flags=--headless=new --no-sandbox --disable-gpu');
  }
  if (preset === 'desktop') {
    args.push('--preset=desktop');
  }
  const report = JSON.parse(await lighthouse(args));
  if (REPORTS_DIR) {
    mkdirSync(REPORTS_DIR, { recursive: true });
    const file = `${page.name.replace(/\W+/g, '-')}-${preset}.json`;
    writeFileSync(join(REPORTS_DIR, file), JSON.stringify(report));
  }
  if (report.finalDisplayedUrl && !report.finalDisplayedUrl.endsWith(page.path)) {
    throw new Error(`${page.path} ended at ${report.finalDisplayedUrl}: not signed in?`);
  }
  const score = (id) => Math.round((report.categories[id]?.score ?? 0) * 100);
  const audit = (id) => report.audits[id]?.numericValue ?? NaN;
  // What costs points outside performance: the audits to read first.
  const failing = ['accessibility', 'best-practices', 'seo'].flatMap((category) =>
    (report.categories[category]?.auditRefs ?? [])
      .filter((ref) => ref.weight > 0 && (report.audits[ref.id]?.score ?? 1) < 1)
      .map((ref) => ref.id),
  );
  return {
    page: page.name,
    preset,
    performance: score('performance'),
    accessibility: score('accessibility'),
    'best-practices': score('best-practices'),
    seo: score('seo'),
    fcp: audit('first-contentful-paint'),
    lcp: audit('largest-contentful-paint'),
    tbt: audit('total-blocking-time'),
    cls: audit('cumulative-layout-shift'),
    failing,
  };
}

function table(rows) {
  const header = ['page', 'preset', 'perf', 'a11y', 'best pr.', 'SEO', 'FCP', 'LCP', 'TBT', 'CLS'];
  const ms = (value) => (Number.isNaN(value) ? '?' : `${Math.round(value)} ms`);
  const body = rows.map((r) => [
    r.page,
    r.preset,
    String(r.performance),
    String(r.accessibility),
    String(r['best-practices']),
    String(r.seo),
    ms(r.fcp),
    ms(r.lcp),
    ms(r.tbt),
    Number.isNaN(r.cls) ? '?' : r.cls.toFixed(3),
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const line = (row) =>
    `| ${row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => '-'.repeat(w + 1) + (i < 2 ? '-' : ':')).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}

const rows = [];
const signedIn = await signedInBrowser();
try {
  for (const page of PAGES) {
    for (const preset of PRESETS) {
      process.stderr.write(`lighthouse ${preset} ${page.path} …\n`);
      rows.push(await measure(page, preset, signedIn.port));
    }
  }
} finally {
  await signedIn.close();
}
console.log(table(rows));
const misses = [];
for (const row of rows) {
  for (const [category, target] of Object.entries(TARGETS[row.preset])) {
    if (row[category] < target) {
      misses.push(`${row.page} (${row.preset}): ${category} ${row[category]} < ${target}`);
    }
  }
  if (row.failing.length) {
    console.log(`${row.page} (${row.preset}) failed audits: ${row.failing.join(', ')}`);
  }
}
if (misses.length) {
  console.log(`\nbelow target:\n  ${misses.join('\n  ')}`);
  process.exitCode = 1;
} else {
  console.log('\nevery page meets its targets');
}
