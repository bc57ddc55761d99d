import { test, expect } from '@playwright/test';
import { spawn, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { OwnConsole } from '../support';

// Single sign-on (issue 19) in the browser, through a real OpenID provider (npm's
// oidc-provider, its development sign-in and consent forms).
const providerPort = Number(process.env.E2E_PORT ?? 3107) + 9;
const SECRET = 'a browser test client secret';

function startProvider(redirect: string): Promise<ChildProcess> {
  const child = spawn('node', [path.resolve(__dirname, '../oidc-provider.mjs'), String(providerPort), redirect, SECRET], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready ')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`the provider exited with ${code}`)));
  });
}

test('a responder signs in through the identity provider; someone in no mapped group is told why', async ({ browser }) => {
  const probe = OwnConsole.fresh(8);
  fs.writeFileSync(path.join(probe.dir, 'client-secret'), SECRET);
  const own = new OwnConsole(probe.port, probe.dir, [
    '--public-url', probe.base,
    '--oidc-issuer', `http://127.0.0.1:${providerPort}`,
    '--oidc-client-id', 'gatewarden',
    '--oidc-client-secret-file', path.join(probe.dir, 'client-secret'),
    '--oidc-role-map', 'sre=responder',
    '--oidc-role-map', 'sre-leads=admin',
    '--oidc-provider-name', 'Test IdP',
  ]);
  const provider = await startProvider(`${own.base}/auth/oidc/callback`);
  const server = await own.start();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${own.base}/login`);
    const sso = page.getByRole('link', { name: 'Sign in with Test IdP' });
    await expect(sso).toBeVisible();
    await page.setViewportSize({ width: 800, height: 900 });
    await page.screenshot({ path: 'screenshots/login-sso-800.png' });
    await sso.click();
    // The provider's own forms.
    await page.locator('input[name="login"]').fill('bob');
    await page.locator('input[name="password"]').fill('anything');
    await page.locator('input[name="password"]').press('Enter');
    await page.getByRole('button', { name: 'Continue' }).click();
    // Back in the console, signed in, with the role bob's group gives.
    await expect(page).toHaveURL(`${own.base}/`);
    await expect(page.locator('.user-badge, header')).toContainText('bob');
    await expect(page.locator('header')).toContainText('responder', { ignoreCase: true });
    await expect(page.getByTestId('live-indicator')).toContainText('live');

    const carol = await (await browser.newContext()).newPage();
    await carol.goto(`${own.base}/login`);
    await carol.getByRole('link', { name: 'Sign in with Test IdP' }).click();
    await carol.locator('input[name="login"]').fill('carol');
    await carol.locator('input[name="password"]').fill('anything');
    await carol.locator('input[name="password"]').press('Enter');
    await carol.getByRole('button', { name: 'Continue' }).click();
    await expect(carol.getByRole('heading', { name: 'No role for you here' })).toBeVisible();
    await expect(carol.getByTestId('sso-said')).toContainText('none of your groups (marketing, everyone) is given a role');
    for (const width of [1440, 800]) {
      await carol.setViewportSize({ width, height: 900 });
      await carol.screenshot({ path: `screenshots/sso-no-role-${width}.png` });
    }
    await carol.getByRole('link', { name: 'Back to sign-in' }).click();
    await expect(carol).toHaveURL(/\/login$/);
  } finally {
    await OwnConsole.stop(server);
    provider.kill('SIGTERM');
  }
});
