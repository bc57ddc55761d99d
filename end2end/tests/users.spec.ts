import { test, expect, Browser, Page } from '@playwright/test';
import { signIn } from '../support';

// User management (issue 19): an admin creates an account, disables it (the person's
// open page loses its session at once), enables it, resets its password; the person
// changes their own. Each change is confirmed in the form it was made in.

async function asPerson(browser: Browser, username: string, password: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await signIn(page, username, password);
  return page;
}

async function change(page: Page, user: string, what: string, why: string) {
  // From the account's row: the form below gets the account, keyboard only from there.
  await page.getByRole('link', { name: `Change ${user}` }).click();
  const form = page.getByTestId('change-user');
  await expect(form.locator('select[name="user"]')).toHaveValue(user);
  await form.locator('select[name="change"]').selectOption(what);
  await form.locator('input[name="reason"]').fill(why);
  await form.locator('input[name="reason"]').press('Enter');
}

test('an admin creates, disables, enables and resets an account; its owner changes the password', async ({ page, browser }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await expect(page).toHaveURL(/\/users$/);
  const list = page.getByTestId('user-list');
  await expect(list).toContainText('admin');

  // Create: a refusal says why, in the form; then it works.
  const create = page.getByTestId('create-user');
  await create.locator('input[name="username"]').fill('ops.kim');
  await create.locator('select[name="role"]').selectOption('responder');
  await create.locator('input[name="password"]').fill('kim first password');
  await create.getByRole('button', { name: 'Create account' }).click();
  await expect(create.getByTestId('create-result')).toContainText('Not created: reason: is required');
  await create.locator('input[name="reason"]').fill('joins the on-call rota');
  await create.locator('input[name="reason"]').press('Enter');
  await expect(create.getByTestId('create-result')).toContainText('ops.kim was created');
  const row = list.locator('tr[data-user="ops.kim"]');
  await expect(row).toContainText('responder');
  await expect(row).toContainText('never');

  // Kim signs in elsewhere; the admin sees the session without reloading (the sign-in is a
  // ledger entry, and the list follows the ledger).
  const kim = await asPerson(browser, 'ops.kim', 'kim first password');
  await expect(row).toContainText('active');
  await expect(row.locator('td').nth(5)).toHaveText('1');

  // Disable: without a reason the form says so and nothing changes.
  await page.getByRole('link', { name: 'Change ops.kim' }).click();
  const form = page.getByTestId('change-user');
  await form.locator('select[name="change"]').selectOption('disable');
  await form.getByRole('button', { name: 'Apply' }).click();
  await expect(form.getByTestId('change-result')).toContainText('Say why');
  await change(page, 'ops.kim', 'disable', 'left the rota');
  await expect(form.getByTestId('change-result')).toContainText('ops.kim is disabled');
  await expect(row).toContainText('disabled since');
  await expect(row.locator('td').nth(5)).toHaveText('0');

  // Kim's open page: the live feed ends with the session, and the page goes to sign-in
  // (issue 29: before, it said "disconnected" until reloaded by hand).
  await expect(kim).toHaveURL(/\/login\?next=/, { timeout: 15_000 });
  await kim.getByLabel('Username').fill('ops.kim');
  await kim.getByLabel('Password').fill('kim first password');
  await kim.getByRole('button', { name: 'Sign in' }).click();
  await expect(kim.getByRole('alert')).toContainText('this account is disabled');

  // The last admin is kept.
  await change(page, 'admin', 'viewer', 'testing the guard');
  await expect(form.getByTestId('change-result')).toContainText('Not changed: admin is the last active admin');

  await page.setViewportSize({ width: 1440, height: 900 });
  await page.screenshot({ path: 'screenshots/users-1440.png', fullPage: true });
  await page.setViewportSize({ width: 800, height: 900 });
  await page.screenshot({ path: 'screenshots/users-800.png', fullPage: true });

  // Enable, then reset the password: the new one is shown once, where the admin looks.
  await change(page, 'ops.kim', 'enable', 'back on the rota');
  await expect(form.getByTestId('change-result')).toContainText('ops.kim is enabled');
  await change(page, 'ops.kim', 'reset', 'forgot it');
  await expect(form.getByTestId('change-result')).toContainText("ops.kim's new password is");
  const said = await form.getByTestId('change-result').textContent();
  const password = /new password is (\S+)/.exec(said ?? '')?.[1];
  expect(password, said ?? '').toMatch(/^[A-Za-z0-9]{20}$/);

  // Kim signs in with it and changes it on the same page; a viewer's view has no accounts.
  await signIn(kim, 'ops.kim', password!);
  await kim.goto('/users');
  await expect(kim.getByTestId('users-not-admin')).toContainText('needs the admin role');
  const own = kim.getByTestId('own-password');
  await own.locator('input[name="current_password"]').fill('a wrong guess');
  await own.locator('input[name="new_password"]').fill('kim second password');
  await own.locator('input[name="new_password"]').press('Enter');
  await expect(own.getByTestId('own-password-result')).toContainText('Not changed: current_password: is not your password');
  await own.locator('input[name="current_password"]').fill(password!);
  await own.getByRole('button', { name: 'Change my password' }).click();
  await expect(own.getByTestId('own-password-result')).toContainText('Your password is changed');
  await kim.setViewportSize({ width: 800, height: 900 });
  await kim.screenshot({ path: 'screenshots/users-own-800.png', fullPage: true });

  // The audit trail has every change with its reason.
  await page.goto('/audit?kind=user_change');
  for (const reason of ['joins the on-call rota', 'left the rota', 'back on the rota', 'forgot it']) {
    await expect(page.getByText(reason).first()).toBeVisible();
  }
});
