import { test, expect } from '@playwright/test';
import { signIn } from '../support';

// Every page is served with a Content-Security-Policy (scripts only with the response's
// nonce): walking them all must raise no violation and no page error, and each must
// still hydrate (the live indicator comes from the wasm bundle's event stream).
test('every page hydrates under the Content-Security-Policy with no violation or page error', async ({ page }) => {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Nothing a page asks for is missing (the favicon was a 404 on every page).
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const w = window as unknown as { __csp?: string[] };
      w.__csp = (w.__csp ?? []).concat(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  await signIn(page);
  for (const path of ['/', '/gateways/edge', '/logs?q=level%3Aerror', '/audit', '/dependencies']) {
    const response = await page.goto(path);
    expect(response?.headers()['content-security-policy'], path).toContain("'nonce-");
    await expect(page.locator('.live-on'), `${path} hydrated`).toBeVisible();
    // Lazily loaded pages fetch their chunk after hydration: give it a moment.
    await page.waitForTimeout(500);
    const violations = await page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
    expect(violations, path).toEqual([]);
  }
  const icon = await page.request.get('/favicon.ico');
  expect(icon.status()).toBe(200);
  expect(problems).toEqual([]);
});
