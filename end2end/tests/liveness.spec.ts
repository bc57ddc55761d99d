import { test, expect, request as playwrightRequest } from '@playwright/test';
import { signIn, OwnConsole } from '../support';
import { ADMIN_PASSWORD } from '../playwright.config';

// A console of this test's own, so that it can be stopped and started under an open page.
const own = OwnConsole.fresh(1, ['--scenario', 'bad-deploy']);

test('a stopped console is shown as disconnected with the age of the data, and the page recovers by itself', async ({ page }) => {
  let server = await own.start();
  try {
    await signIn(page, 'admin', ADMIN_PASSWORD, own.base);
    await page.goto(`${own.base}/gateways/edge`);
    const indicator = page.getByTestId('live-indicator');
    await expect(indicator).toHaveText('live');
    const rollback = page.locator('button[data-action="rollback"]');
    await expect(rollback).toBeEnabled();

    await OwnConsole.stop(server);
    // Within a few seconds: red, says since when the data is, and how old it is.
    await expect(indicator).toContainText(/disconnected — data from \d\d:\d\d:\d\d UTC \(\d+ s ago\)/, { timeout: 8_000 });
    await expect(indicator).toHaveClass(/live-lost/);
    const banner = page.getByTestId('connection-banner');
    await expect(banner).toContainText('The console cannot be reached');
    await expect(banner).toContainText('actions cannot be sent');
    // Everything under the banner is greyed: the numbers are old.
    await expect(page.locator('main.page > .banner ~ *').first()).toHaveCSS('opacity', '0.45');
    await expect(rollback).toBeDisabled();
    await expect(rollback).toHaveAttribute('title', /cannot be reached/);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: 'screenshots/disconnected-1440.png' });
    await page.setViewportSize({ width: 800, height: 900 });
    await page.screenshot({ path: 'screenshots/disconnected-800.png' });

    server = await own.start();
    // Back without a reload: live again, says it reconnected, buttons work again.
    await expect(indicator).toHaveText('live — reconnected', { timeout: 40_000 });
    await expect(banner).toBeHidden();
    await expect(page.locator('main.page > *').first()).toHaveCSS('opacity', '1');
    await expect(rollback).toBeEnabled();
  } finally {
    await OwnConsole.stop(server);
  }
});

// Issue 29, item 12: a page whose session ended (idleness, an admin, another tab) goes to
// sign-in and comes back, instead of "cannot be reached" for ever.
test('a page whose session ends goes to sign-in and comes back to where it was', async ({ page, baseURL }) => {
  const api = await playwrightRequest.newContext({ baseURL });
  const login = await api.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
  const { csrf_token } = await login.json();
  const headers = { 'x-csrf-token': csrf_token };
  const created = await api.post('/api/v1/users', {
    data: { username: 'wall-display', password: 'a wall display password', role: 'viewer', reason: 'the team screen' }, headers,
  });
  expect([201, 409]).toContain(created.status());

  await signIn(page, 'wall-display', 'a wall display password');
  await page.goto('/gateways/edge');
  await expect(page.getByTestId('live-indicator')).toHaveText('live');
  const ended = await api.post('/api/v1/users/wall-display/revoke-sessions', { data: { reason: 'test: end its session' }, headers });
  expect(ended.status()).toBe(200);
  await expect(page).toHaveURL(/\/login\?next=%2Fgateways%2Fedge$/, { timeout: 15_000 });
  await page.getByLabel('Username').fill('wall-display');
  await page.getByLabel('Password').fill('a wall display password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/gateways\/edge$/);
  await expect(page.getByTestId('live-indicator')).toHaveText('live');
  await api.dispose();
});
