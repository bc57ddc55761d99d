import { test, expect, type Page } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';

// What a first page costs over the network (issue 19): bytes on the wire, headers
// included, as Chromium's network layer counts them (DevTools' "transferred"), with an
// empty cache, for both first pages: the health page (signed in) and the sign-in page.
// Everything goes out brotli-compressed: the site's files precompressed by the site
// build, the pages by the server (they carry no secret: the CSRF token is not in them).
//
// Budget: the target, 200 KB (200,000 B).
const BUDGET = 200_000;

type Transfer = {
  total: number;
  lines: string[];
  urls: Map<string, string>;
  encodings: Map<string, string>;
  caching: Map<string, string>;
};

/// Loads `path` with the cache off, waits for `ready`, and counts what came over the wire
/// (the live event stream never finishes, so it is not counted).
async function firstView(page: Page, path: string, ready: () => Promise<void>): Promise<Transfer> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const t: Transfer = { total: 0, lines: [], urls: new Map(), encodings: new Map(), caching: new Map() };
  const sizes = new Map<string, number>();
  cdp.on('Network.responseReceived', (e) => {
    t.urls.set(e.requestId, e.response.url);
    const headers = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    t.encodings.set(e.requestId, headers['content-encoding'] ?? 'none');
    t.caching.set(e.requestId, headers['cache-control'] ?? '');
  });
  cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));

  await page.goto(path);
  await ready();
  await page.waitForLoadState('networkidle');

  for (const [id, bytes] of sizes) {
    const url = t.urls.get(id) ?? '?';
    t.total += bytes;
    t.lines.push(`${bytes} B ${t.encodings.get(id)} ${url.replace(/^https?:\/\/[^/]+/, '')}`);
  }
  console.log(`first view of ${path}: ${t.total} B transferred\n  ${t.lines.join('\n  ')}`);
  return t;
}

function find(t: Transfer, pattern: RegExp): string | undefined {
  return [...t.urls].find(([, u]) => pattern.test(u.replace(/^https?:\/\/[^/]+/, '')))?.[0];
}

test('the health page, first viewed, transfers at most 200 KB, all of it brotli-compressed', async ({ page }) => {
  // Signed in without loading any page, so the cache is empty for the first view.
  const login = await page.request.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
  expect(login.status()).toBe(200);

  const t = await firstView(page, '/', async () => {
    await expect(page.getByTestId('live-indicator')).toContainText('live');
  });
  // The page itself is compressed.
  const html = find(t, /^\/$/);
  expect(html && t.encodings.get(html)).toBe('br');
  // The first download is named by its content, and kept for a year.
  const wasm = find(t, /^\/pkg\/gatewarden\.[0-9a-f]{16}\.wasm$/);
  expect(wasm, 'the content-named wasm was loaded').toBeTruthy();
  expect(t.encodings.get(wasm!)).toBe('br');
  expect(t.caching.get(wasm!)).toBe('public, max-age=31536000, immutable');
  const css = find(t, /^\/pkg\/gatewarden\.[0-9a-f]{16}\.css$/);
  expect(css && t.caching.get(css)).toBe('public, max-age=31536000, immutable');
  expect(t.total).toBeLessThanOrEqual(BUDGET);
});

test('the sign-in page, first viewed, is plain HTML and its stylesheet: no wasm', async ({ page }) => {
  const t = await firstView(page, '/login', async () => {
    await expect(page.getByTestId('login-form')).toBeVisible();
  });
  expect(find(t, /\.(wasm|js)$/), 'no script or wasm loaded').toBeUndefined();
  expect(t.total).toBeLessThanOrEqual(10_000);
});
