import { test, expect } from '@playwright/test';
import * as fs from 'fs';
import { signIn } from '../support';

test('the audit export downloads the whole filtered set, not a page of it and not the "Not found" page', async ({ page }) => {
  await signIn(page);
  await page.goto('/audit');
  await expect(page.getByTestId('audit-filters')).toHaveAttribute('data-ready', 'true');
  await page.locator('input[name="actor"]').fill('admin');
  await page.getByRole('button', { name: 'Search' }).click();

  const total = (await (await page.request.get('/api/v1/audit?actor=admin&limit=500')).json()).entries.length;
  expect(total).toBeGreaterThan(0);

  const [jsonl] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export JSONL' }).click()]);
  expect(jsonl.suggestedFilename()).toBe('gatewarden-audit.jsonl');
  const lines = fs.readFileSync((await jsonl.path())!, 'utf8').split('\n').filter((l) => l.trim() !== '');
  expect(lines.length).toBe(total);
  expect(lines.every((l) => JSON.parse(l).actor === 'admin')).toBe(true);

  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
  const text = fs.readFileSync((await csv.path())!, 'utf8');
  expect(text.startsWith('id,')).toBe(true);
  await expect(page).toHaveURL(/\/audit$/);
  await expect(page.getByRole('heading', { name: 'Audit trail' })).toBeVisible();
});

test('a search that finds nothing says so, and the action and outcome filters offer their values', async ({ page }) => {
  await signIn(page);
  await page.goto('/audit');
  await expect(page.getByTestId('audit-filters')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('#audit-outcomes option')).toHaveCount(4);
  await expect(page.locator('input[name="action"]')).toHaveAttribute('list', 'audit-actions');
  await page.locator('input[name="actor"]').fill('nobody-at-all');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('audit-empty')).toHaveText('No entries match these filters.');
});
