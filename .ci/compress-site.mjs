#!/usr/bin/env node
// Precompresses the built site for the server to send as is (issue 19): next to each
// .wasm, .js and .css file under the given folder, a .br (brotli, quality 11, the size
// hint set so the window fits) and a .gz (gzip -9). Node's own zlib, so nothing to
// install; run by the site build (`make site`, `make run`, the Dockerfile).
// Usage: .ci/compress-site.mjs target/site/pkg
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: compress-site.mjs DIR');
  process.exit(2);
}
let raw = 0, br = 0, gz = 0;
for (const name of readdirSync(dir)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const path = join(dir, name);
  if (!statSync(path).isFile()) continue;
  const data = readFileSync(path);
  const b = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      [constants.BROTLI_PARAM_MODE]: name.endsWith('.wasm') ? constants.BROTLI_MODE_GENERIC : constants.BROTLI_MODE_TEXT,
    },
  });
  const g = gzipSync(data, { level: 9 });
  writeFileSync(path + '.br', b);
  writeFileSync(path + '.gz', g);
  raw += data.length; br += b.length; gz += g.length;
  console.log(`${name}: ${data.length} B raw, ${b.length} B brotli, ${g.length} B gzip`);
}
console.log(`all: ${raw} B raw, ${br} B brotli, ${gz} B gzip`);
