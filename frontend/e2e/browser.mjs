// What the browser scripts (run.mjs, dashboard.mjs, openapi.mjs) share: Debian's Chromium
// with flags for a closed network and a root user, an assert and a timestamped log.

import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// No sandbox (root), no background fetches (no network but this machine's).
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

/** Headless Chromium as every browser script starts it. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export function assert(condition, message) {
  if (!condition) {
    throw new Error(`assertion failed: ${message}`);
  }
}

/** A log function whose lines start with `[name hh:mm:ss.mmm]`. */
export function logger(name) {
  return (message) => console.log(`[${name} ${new Date().toISOString().slice(11, 23)}] ${message}`);
}
