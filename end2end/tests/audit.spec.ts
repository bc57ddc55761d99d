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

test.describe('in a browser at UTC+05:30', () => {
  test.use({ timezoneId: 'Asia/Kolkata' });

  test('times can be shown in local time, named, on the server-rendered page and after hydration', async ({ page }) => {
    await signIn(page);
    await page.goto('/audit');
    await expect(page.getByTestId('audit-filters')).toHaveAttribute('data-ready', 'true');
    const zone = page.getByTestId('time-zone');
    await expect(zone).toHaveText('Times: UTC');
    const table = page.getByTestId('audit-table');
    await expect(table.locator('th').nth(1)).toHaveText('Time (UTC)');
    const firstRow = table.locator('tbody tr').last();
    const utc = (await firstRow.locator('td').nth(1).textContent())!;
    const id = (await firstRow.locator('td').first().textContent())!;

    await zone.click();
    await expect(zone).toHaveText('Times: UTC+05:30');
    await expect(page.getByTestId('audit-filters')).toHaveAttribute('data-ready', 'true');
    await expect(table.locator('th').nth(1)).toHaveText('Time (UTC+05:30)');
    // The same entry, 5 h 30 min later on the clock.
    const row = table.locator('tbody tr').last();
    expect(await row.locator('td').first().textContent()).toBe(id);
    const local = (await row.locator('td').nth(1).textContent())!;
    const ms = (t: string) => Date.parse(t.replace(' ', 'T') + 'Z');
    expect(ms(local) - ms(utc)).toBe(5.5 * 3600 * 1000);
    // The server renders in the chosen zone too: the text is the same before any script runs.
    const html = await (await page.request.get('/audit')).text();
    expect(html).toContain('Time (UTC+05:30)');
    await page.screenshot({ path: 'screenshots/local-time-1440.png' });

    // The charts' axis and the disconnected banner's clock name the zone as well.
    await page.goto('/gateways/edge');
    await expect(page.getByTestId('chart-times').first().locator('span').first()).toHaveText(/^\d\d:\d\d UTC\+05:30$/);
    // The switch works once the page has hydrated (the live feed is its sign).
    await expect(page.getByTestId('live-indicator')).toContainText('live');
    await zone.click();
    await expect(zone).toHaveText('Times: UTC');
  });
});
