// Writes <file>.br and <file>.gz beside each text file of the build worth compressing, at
// brotli's and gzip's best levels: the kernel sends those to browsers that take them
// (backend/api/frontend.py), so it never compresses the web app's files per request.
// Usage: node scripts/precompress.mjs [dist directory]
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const DIST = process.argv[2] ?? 'dist/frontend/browser';
// Smaller files gain less than the headers cost (the kernel compresses from 1 KiB too).
const MIN_BYTES = 1024;
const TEXT = /\.(?:js|mjs|css|html|json|svg|txt|map|webmanifest)$/;

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      yield* files(path);
    } else if (TEXT.test(entry.name)) {
      yield path;
    }
  }
}

let plain = 0;
let br = 0;
let gz = 0;
for (const path of files(DIST)) {
  if (statSync(path).size < MIN_BYTES) {
    continue;
  }
  const data = readFileSync(path);
  const brotli = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  const gzip = gzipSync(data, { level: 9 });
  writeFileSync(`${path}.br`, brotli);
  writeFileSync(`${path}.gz`, gzip);
  plain += data.length;
  br += brotli.length;
  gz += gzip.length;
}
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`precompressed ${DIST}: ${kib(plain)} -> gzip ${kib(gz)}, brotli ${kib(br)}`);
