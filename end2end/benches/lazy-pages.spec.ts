// What the first visit to each lazily loaded page costs on the wire (issue 19, recorded in
// BENCHMARKS.md): signed in, the health page loaded and idle, then a click to the page;
// the wasm chunks it pulls in (count and bytes, headers included) and everything else.
// A measurement, not a test: it prints and asserts only that the page showed up.
import { test, expect } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';

const pages: [string, string, string][] = [
  ['gateway', 'tr[data-gateway="edge"] a.gw-name', '[data-testid="instances"]'],
  ['audit', 'nav a[href="/audit"]', '[data-testid="audit-table"]'],
  ['logs', 'nav a[href="/logs"]', 'main h1'],
  ['incidents', 'nav a[href="/incidents"]', 'main h1'],
  ['dependencies', 'nav a[href="/dependencies"]', 'main svg'],
  ['users', 'nav a[href="/users"]', 'main h1'],
];

for (const [name, link, ready] of pages) {
  test(`first visit to the ${name} page after the health page`, async ({ page }) => {
    const login = await page.request.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
    expect(login.status()).toBe(200);
    await page.goto('/');
    await expect(page.getByTestId('live-indicator')).toContainText('live');
    await page.waitForLoadState('networkidle');

    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const urls = new Map<string, string>();
    const sizes = new Map<string, number>();
    cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
    cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));
    await page.locator(link).first().click();
    await expect(page.locator(ready).first()).toBeVisible();
    await page.waitForTimeout(1500);

    let [files, wasm, other] = [0, 0, 0];
    for (const [id, bytes] of sizes) {
      if (/\.wasm$/.test(urls.get(id) ?? '')) {
        files += 1;
        wasm += bytes;
      } else {
        other += bytes;
      }
    }
    console.log(`${name}: ${files} wasm files, ${wasm} B; other answers ${other} B`);
    expect(files).toBeGreaterThan(0);
  });
}
