import { test, expect } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';

// What the first page costs over the network (issue 19): bytes on the wire, headers
// included, as Chromium's network layer counts them (DevTools' "transferred"), for the
// health page with an empty cache. The site goes out brotli-compressed; the page's HTML
// is not compressed (it carries the session's CSRF token: BREACH).
//
// Budget: 230,000 B (218,443 B when it was set). The target is 200 KB; see
// BENCHMARKS.md for where it stands.
const BUDGET = 230_000;

test('the first page view transfers less than its budget, the site brotli-compressed', async ({ page }) => {
  // Signed in without loading any page, so the cache is empty for the first view.
  const login = await page.request.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
  expect(login.status()).toBe(200);

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const urls = new Map<string, string>();
  const encodings = new Map<string, string>();
  const caching = new Map<string, string>();
  const sizes = new Map<string, number>();
  cdp.on('Network.responseReceived', (e) => {
    urls.set(e.requestId, e.response.url);
    const headers = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    encodings.set(e.requestId, headers['content-encoding'] ?? 'none');
    caching.set(e.requestId, headers['cache-control'] ?? '');
  });
  cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));

  await page.goto('/');
  await expect(page.getByTestId('live-indicator')).toContainText('live');
  await page.waitForLoadState('networkidle');

  let total = 0;
  const lines: string[] = [];
  for (const [id, bytes] of sizes) {
    const url = urls.get(id) ?? '?';
    total += bytes;
    lines.push(`${bytes} B ${encodings.get(id)} ${url.replace(/^https?:\/\/[^/]+/, '')}`);
  }
  console.log(`first page view: ${total} B transferred\n  ${lines.join('\n  ')}`);
  // The first download is named by its content, and kept for a year.
  const wasm = [...urls].find(([, u]) => /\/pkg\/gatewarden\.[0-9a-f]{16}\.wasm$/.test(u));
  expect(wasm, 'the content-named wasm was loaded').toBeTruthy();
  expect(encodings.get(wasm![0])).toBe('br');
  expect(caching.get(wasm![0])).toBe('public, max-age=31536000, immutable');
  const css = [...urls].find(([, u]) => /\/pkg\/gatewarden\.[0-9a-f]{16}\.css$/.test(u));
  expect(css && caching.get(css[0])).toBe('public, max-age=31536000, immutable');
  expect(total).toBeLessThan(BUDGET);
});
