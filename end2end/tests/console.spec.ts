import { test, expect, Page } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';

async function signIn(page: Page, username: string, password: string) {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a wrong password shows an error and stays on the login page', async ({ page }) => {
  await signIn(page, 'admin', 'not the password');
  await expect(page.getByTestId('login-error')).toHaveText('invalid username or password');
  // Before the page has hydrated the form posts to the server, which says so in the URL.
  await expect(page).toHaveURL(/\/login(\?failed=credentials)?$/);
});

test('an admin signs in, watches live gateway health, opens a gateway and signs out', async ({ page }) => {
  await signIn(page, 'admin', ADMIN_PASSWORD);

  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId('current-user')).toContainText('admin');
  await expect(page.getByTestId('current-role')).toHaveText('admin');
  const table = page.getByTestId('gateway-table');
  await expect(table.locator('tr[data-gateway="edge"]')).toContainText('public-edge');
  await expect(table.locator('tr[data-gateway="partner"]')).toContainText('partner-api');

  // The traffic-surge scenario: the edge is throttling and slow, in colour.
  await expect(table.locator('tr[data-gateway="edge"] [data-testid="status"]')).not.toHaveText('healthy');

  // Live: the request rate changes without a reload.
  await expect(page.locator('.live-on')).toBeVisible();
  const rps = table.locator('tr[data-gateway="edge"] [data-testid="rps"]');
  const first = await rps.textContent();
  const navigations: string[] = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  await expect.poll(async () => rps.textContent(), { timeout: 15_000 }).not.toBe(first);
  expect(navigations).toEqual([]);

  await page.screenshot({ path: 'screenshots/health.png', fullPage: true });

  // The gateway page: instances and charts, also live.
  await table.locator('tr[data-gateway="edge"] a.gw-name').click();
  await expect(page).toHaveURL(/\/gateways\/edge$/);
  await expect(page.getByTestId('instances').locator('tbody tr')).toHaveCount(4);
  await expect(page.locator('svg polyline').first()).toBeVisible();
  const tile = page.locator('.tile-value[data-testid="rps"]');
  const before = await tile.textContent();
  await expect.poll(async () => tile.textContent(), { timeout: 15_000 }).not.toBe(before);
  await page.screenshot({ path: 'screenshots/gateway.png', fullPage: true });

  await page.getByTestId('logout').click();
  await expect(page).toHaveURL(/\/login$/);
  // The session is gone on the server too.
  // (Asked with the browser's cookies: the sign-in page's policy allows it no requests.)
  expect((await page.request.get('/api/v1/session')).status()).toBe(401);
});

test('at 800 px nothing makes the page scroll sideways: wide tables scroll in their own box, names stay', async ({ page }) => {
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/$/);
  const pageWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
  const pages = ['/', '/gateways/edge', '/audit', '/logs', '/dependencies'];
  // Every page at 1440 px as well, to look at.
  await page.setViewportSize({ width: 1440, height: 900 });
  for (const path of pages) {
    await page.goto(path);
    await expect(page.getByTestId('live-indicator')).toHaveText(/live/);
    expect(await pageWidth(), `${path} scrolls sideways`).toBeLessThanOrEqual(1440);
    await page.screenshot({ path: `screenshots/wide${path === '/' ? '-health' : path.replace(/\//g, '-')}-1440.png` });
  }
  await page.setViewportSize({ width: 800, height: 900 });
  for (const path of pages) {
    await page.goto(path);
    await expect(page.getByTestId('live-indicator')).toHaveText(/live/);
    expect(await pageWidth(), `${path} scrolls sideways`).toBeLessThanOrEqual(800);
    await page.screenshot({ path: `screenshots/narrow${path === '/' ? '-health' : path.replace(/\//g, '-')}-800.png` });
  }
  await page.goto('/');
  const table = page.getByTestId('gateway-table');
  const box = await table.evaluate((t) => ({ scroll: t.scrollWidth, client: t.clientWidth }));
  expect(box.scroll, 'the health table is wider than the screen and scrolls inside').toBeGreaterThan(box.client);
  await table.evaluate((t) => (t.scrollLeft = t.scrollWidth));
  await expect(table.locator('tbody tr').first().locator('td').first()).toBeInViewport();
});

test('a chart says its values and times: y values, clock times, and a readout under the pointer', async ({ page }) => {
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await expect(page).toHaveURL(/\/$/);
  await page.goto('/gateways/edge');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  const chart = page.locator('figure.chart').first();
  // Every y value says its unit.
  await expect(chart.getByTestId('y-max')).toHaveText(/^\d+(\.\d)? req\/s$/);
  await expect(page.locator('figure.chart').nth(1).getByTestId('y-max')).toHaveText(/%$/);
  await expect(page.locator('figure.chart').nth(2).getByTestId('y-max')).toHaveText(/ m?s$/);
  const times = chart.getByTestId('chart-times').locator('span');
  await expect(times).toHaveCount(3);
  await expect(times.first()).toHaveText(/^\d\d:\d\d UTC$/);
  await expect(times.last()).toHaveText(/^\d\d:\d\d$/);
  const svg = chart.locator('svg[role="img"]');
  const box = (await svg.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  const readout = chart.getByTestId('chart-readout');
  await expect(readout).toHaveText(/^\d\d:\d\d:\d\d · req\/s \S+/);
  await page.screenshot({ path: 'screenshots/chart-readout.png' });
  await page.mouse.move(0, 0);
  await expect(readout).toBeHidden();
});
