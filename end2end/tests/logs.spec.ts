import { test, expect } from '@playwright/test';
import { signIn } from '../support';

test('a responder searches the logs, sees the matches marked, and gets told where a query is wrong', async ({ page }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'Logs' }).click();
  await expect(page).toHaveURL(/\/logs$/);

  // traffic-surge: the edge throttles; its 429 lines say so.
  const form = page.getByTestId('log-search');
  await form.locator('input[name="q"]').fill('gateway:edge status:429 upstream');
  await form.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge%20status%3A429%20upstream$/);
  const hits = page.getByTestId('log-hits');
  await expect(hits.locator('tbody tr').first()).toContainText('edge');
  await expect(hits.locator('tbody tr').first()).toContainText('429');
  await expect(hits.locator('mark').first()).toHaveText('upstream');
  await expect(page.getByTestId('log-total')).toContainText('matching lines');
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
  await expect(page.getByTestId('log-total')).toContainText('all times');
  await expect(page.getByTestId('log-hits').locator('tbody tr').first()).toContainText('429');

  // The searches made are offered again, newest first, and survive a reload.
  const recent = page.getByTestId('recent-queries');
  await expect(recent.locator('a').first()).toHaveText('gateway:edge status:429 upstream');
  await recent.locator('a').first().click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge%20status%3A429%20upstream$/);

  await page.locator('input[name="q"]').fill('level:error AND (');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('log-error')).toContainText('at character 17');
});

test('a minute of a gateway chart opens that gateway\'s log lines of that minute', async ({ page }) => {
  await signIn(page);
  await page.goto('/gateways/edge');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  await page.locator('figure.chart').nth(1).locator('a.minute').last().click();
  await expect(page).toHaveURL(/\/logs\?q=gateway%3Aedge&since=\d+&until=\d+$/);
  await expect(page.getByTestId('log-total')).toContainText('all times');
  const rows = page.getByTestId('log-hits').locator('tbody tr');
  await expect(rows.first()).toContainText('edge');
});

test('live tail shows new matching lines as the gateways write them, until stopped', async ({ page }) => {
  await signIn(page);
  await page.goto('/logs?q=gateway%3Aedge%20status%3A429');
  await expect(page.getByTestId('log-total')).toContainText('matching lines');
  await page.getByTestId('tail-toggle').click();
  const rows = page.getByTestId('tail-hits').locator('tr');
  await expect(rows.first()).toContainText('429', { timeout: 10_000 });
  await expect(rows.first()).toContainText('edge');
  await page.getByTestId('tail-toggle').click();
  await expect(page.getByTestId('tail-hits')).toHaveCount(0);
});
