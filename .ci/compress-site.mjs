#!/usr/bin/env node
// Precompresses the built site for the server to send as is (issue 19): next to each
// .wasm, .js and .css file under the given folder, a .br (brotli, quality 11, the size
// hint set so the window fits) and a .gz (gzip -9). Node's own zlib, so nothing to
// install; run by the site build (`make site`, `make run`, the Dockerfile).
// Usage: .ci/compress-site.mjs target/site/pkg
import { readdirSync, readFileSync, writeFileSync, statSync, copyFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: compress-site.mjs DIR');
  process.exit(2);
}

// The first download under names that change with its content, so that browsers may keep
// it for a year (immutable): gatewarden.<hash>.{js,wasm,css}, the hash over all three.
// The split loader imports the main module by name; it is pointed at the hashed one (one
// module instance), and keeps its own fixed name (revalidated, 2 KB). The server reads
// the name from site.json.
const MAIN = 'gatewarden';
for (const name of readdirSync(dir)) {
  if (new RegExp(`^${MAIN}\\.[0-9a-f]{16}\\.`).test(name)) unlinkSync(join(dir, name));
}
const hash = createHash('sha256');
for (const ext of ['js', 'wasm', 'css']) hash.update(readFileSync(join(dir, `${MAIN}.${ext}`)));
const hashed = `${MAIN}.${hash.digest('hex').slice(0, 16)}`;
for (const ext of ['js', 'wasm', 'css']) copyFileSync(join(dir, `${MAIN}.${ext}`), join(dir, `${hashed}.${ext}`));
for (const name of readdirSync(dir)) {
  if (!/^__wasm_split\..*\.js$/.test(name)) continue;
  const path = join(dir, name);
  const text = readFileSync(path, 'utf8').replaceAll(`"./${MAIN}.js"`, `"./${hashed}.js"`).replace(/"\.\/gatewarden\.[0-9a-f]{16}\.js"/g, `"./${hashed}.js"`);
  writeFileSync(path, text);
}
writeFileSync(join(dir, 'site.json'), JSON.stringify({ name: hashed }) + '\n');
console.log(`the first download as ${hashed}.{js,wasm,css}`);
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
