import { test, expect, Page } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';

async function signIn(page: Page) {
  await page.goto('/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/$/);
}

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

  // The URL is the search: opening it again gives the same results.
  await page.reload();
  await expect(page.getByTestId('log-hits').locator('mark').first()).toHaveText('upstream');

  await page.locator('input[name="q"]').fill('level:error AND (');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('log-error')).toContainText('at character 17');
  await page.screenshot({ path: 'screenshots/logs.png', fullPage: true });
});
