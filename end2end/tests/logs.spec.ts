import { test, expect } from '@playwright/test';
import { signIn, OwnConsole } from '../support';
import { ADMIN_PASSWORD } from '../playwright.config';

test('a responder searches the logs, sees the matches marked, and gets told where a query is wrong', async ({ page }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'Logs' }).click();
  await expect(page).toHaveURL(/\/logs$/);

  // traffic-surge: the edge throttles; its 429 lines say so. Typed into once hydrated (a
  // click before submits the plain form, whose URL spells spaces '+').
  await expect(page.locator('[data-testid="log-search"][data-ready="true"]')).toBeVisible();
  const form = page.getByTestId('log-search');
  await form.locator('input[name="q"]').fill('gateway:edge status:429 upstream');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge%20status%3A429%20upstream$/);
  const hits = page.getByTestId('log-hits');
  await expect(hits.locator('tbody tr').first()).toContainText('edge');
  await expect(hits.locator('tbody tr').first()).toContainText('429');
  await expect(hits.locator('mark').first()).toHaveText('upstream');
  await expect(page.getByTestId('log-total')).toContainText('matching lines');
  // The histogram has a time axis: start, middle, end.
  await expect(page.getByTestId('log-histogram-axis').locator('span')).toHaveCount(3);
  await expect(page.getByTestId('log-histogram-axis').locator('span').first()).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // The test server keeps 2 MB of lines: the page says the older ones are gone.
  await expect(page.getByTestId('log-retention')).toContainText('dropped by retention; the oldest kept is from');

  // The URL is the search: opening it again gives the same results.
  await page.reload();
  await expect(page.getByTestId('log-hits').locator('mark').first()).toHaveText('upstream');
  await page.screenshot({ path: 'screenshots/logs.png', fullPage: false });

  // Clicking a bar of the histogram zooms into its seconds.
  const bar = page.getByTestId('log-histogram').locator('a:has(rect[height]:not([height="0"]))').last();
  await bar.click();
  await expect(page).toHaveURL(/since=\d+&until=\d+/);
  // The window in force is a chip; its × goes back to all times.
  await expect(page.getByTestId('log-window')).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d – \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ×$/);
  await expect(page.getByTestId('log-hits').locator('tbody tr').first()).toContainText('429');

  // The searches made are offered again, newest first, and survive a reload.
  const recent = page.getByTestId('recent-queries');
  await expect(recent.locator('a').first()).toHaveText('gateway:edge status:429 upstream');
  await recent.locator('a').first().click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge%20status%3A429%20upstream$/);

  await page.locator('input[name="q"]').fill('level:error AND (');
  await page.getByRole('button', { name: 'Search' }).click();
  // A sentence about the query, not the API's parameter name; and not offered again.
  await expect(page.getByTestId('log-error')).toContainText('Your query, at character 17');
  await expect(page.getByTestId('log-error')).not.toContainText('q:');
  await expect(recent.locator('a').first()).toHaveText('gateway:edge status:429 upstream');
  await expect(recent).not.toContainText('level:error AND (');
});

test('a minute of a gateway chart opens that gateway\'s log lines of that minute', async ({ page }) => {
  await signIn(page);
  await page.goto('/gateways/edge');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  await page.locator('figure.chart').nth(1).locator('a.minute').last().click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge&since=\d+&until=\d+$/);
  const chip = page.getByTestId('log-window');
  await expect(chip).toBeVisible();
  const rows = page.getByTestId('log-hits').locator('tbody tr');
  await expect(rows.first()).toContainText('edge');
  await chip.getByRole('link', { name: /Remove the time window/ }).click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge$/);
  await expect(chip).toBeHidden();
});

test('live tail shows new matching lines as the gateways write them, until stopped', async ({ page }) => {
  await signIn(page);
  await page.goto('/logs?q=gateway%3Aedge%20status%3A429');
  await expect(page.getByTestId('log-total')).toContainText('matching lines');
  // The toggle works once the page has hydrated (the live feed is its sign).
  await expect(page.getByTestId('live-indicator')).toContainText('live');
  await page.getByTestId('tail-toggle').click();
  const rows = page.getByTestId('tail-hits').locator('tr');
  await expect(rows.first()).toContainText('429', { timeout: 10_000 });
  await expect(rows.first()).toContainText('edge');

  // Someone reading (the pointer on the lines): new lines wait above, counted. A window
  // tall enough for the lines, so that hovering them does not scroll the page past their
  // top (which holds them too, by itself, and made this test flaky).
  await page.setViewportSize({ width: 1280, height: 1600 });
  await page.getByTestId('tail-hits').hover();
  const shown = await rows.count();
  const waiting = page.getByTestId('tail-waiting');
  await expect(waiting).toContainText(/\d+ new lines? waits? while you read/, { timeout: 10_000 });
  expect(await rows.count(), 'nothing replaced under the pointer').toBe(shown);
  // Done reading: the pointer off the lines and the page back at the top (hovering may
  // have scrolled it past the lines' top when many had arrived, which holds them too).
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.move(0, 0);
  await expect.poll(() => rows.count()).toBeGreaterThan(shown);
  await expect(waiting).toHaveText('');
  await page.setViewportSize({ width: 1280, height: 720 });

  // Someone reading further down (scrolled past the top of the lines, pointer elsewhere):
  // the lines hold still too, and take the waiting ones on scrolling back up.
  await expect.poll(() => rows.count(), { timeout: 20_000 }).toBeGreaterThan(30);
  const top = await page.getByTestId('tail-hits').evaluate((t) => (t as HTMLElement).offsetTop);
  await page.evaluate((y) => window.scrollTo(0, y), top + 300);
  expect(await page.evaluate(() => !!document.elementFromPoint(0, 0)?.closest('[data-testid="tail-hits"]')),
    'the pointer is not on the lines').toBe(false);
  const held = await rows.first().textContent();
  await expect(waiting).toContainText(/\d+ new lines? waits? while you read/, { timeout: 10_000 });
  expect(await rows.first().textContent(), 'nothing replaced while scrolled into the lines').toBe(held);
  await page.evaluate(() => window.scrollTo(0, 0));
  await expect(waiting).toHaveText('');
  await expect(rows.first()).not.toHaveText(held!);

  await page.getByTestId('tail-toggle').click();
  await expect(page.getByTestId('tail-hits')).toHaveCount(0);
});

test('a stack trace is one line until it is opened', async ({ page }) => {
  const own = OwnConsole.fresh(4, ['--scenario', 'bad-deploy']);
  const server = await own.start();
  try {
    await signIn(page, 'admin', ADMIN_PASSWORD, own.base);
    await page.goto(`${own.base}/logs?q=panic`);
    const row = page.getByTestId('log-hits').locator('tbody tr').first();
    const trace = row.locator('details.multi');
    await expect(trace.locator('summary')).toContainText('panic: runtime error');
    await expect(trace.locator('summary')).toContainText(/\(\+\d+ lines\)/);
    const folded = (await row.boundingBox())!.height;
    expect(folded, 'one line high').toBeLessThan(60);
    await trace.locator('summary').click();
    await expect(trace.locator('pre')).toContainText('goroutine');
    expect((await row.boundingBox())!.height).toBeGreaterThan(folded * 3);
  } finally {
    await OwnConsole.stop(server);
  }
});
