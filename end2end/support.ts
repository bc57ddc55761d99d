import { expect, Page } from '@playwright/test';
import { ADMIN_PASSWORD } from './playwright.config';

/** Signs in through the login form and waits for the health page. */
export async function signIn(page: Page, username = 'admin', password = ADMIN_PASSWORD, base = '') {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/$/);
}
