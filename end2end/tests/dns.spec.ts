import { test, expect } from '@playwright/test';
import { execFileSync, spawn, ChildProcess } from 'child_process';
import { Resolver } from 'dns/promises';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { signIn, OwnConsole } from '../support';

// A real authoritative server (Debian's BIND 9) for the zone gw.test, accepting updates
// signed with a key made here, and a console of this test's own that manages the zone.
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function startNamed(dir: string, port: number): Promise<ChildProcess> {
  const key = execFileSync('tsig-keygen', ['-a', 'hmac-sha256', 'gatewarden']).toString();
  fs.writeFileSync(path.join(dir, 'gatewarden.key'), key);
  fs.writeFileSync(
    path.join(dir, 'zone'),
    '$TTL 300\n@ IN SOA ns.gw.test. admin.gw.test. 1 60 60 600 60\n@ IN NS ns.gw.test.\nns IN A 127.0.0.1\n' +
      'payments 300 IN A 127.0.1.1\n',
  );
  fs.writeFileSync(
    path.join(dir, 'named.conf'),
    `include "${dir}/gatewarden.key";\n` +
      `options { directory "${dir}"; pid-file "${dir}/named.pid"; listen-on port ${port} { 127.0.0.1; };\n` +
      'listen-on-v6 { none; }; recursion no; dnssec-validation no; };\ncontrols { };\n' +
      `zone "gw.test" { type primary; file "${dir}/zone"; update-policy { grant gatewarden zonesub A; }; };\n`,
  );
  const named = spawn('named', ['-g', '-c', path.join(dir, 'named.conf')], { stdio: 'ignore' });
  await expect.poll(() => lookup(port).catch(() => []), { timeout: 20_000 }).toEqual(['127.0.1.1']);
  return named;
}

async function lookup(port: number): Promise<string[]> {
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  return resolver.resolve4('payments.gw.test');
}

test('an admin bypasses payments by DNS, sees the record before and after, and undoes it', async ({ page }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewarden-dns-'));
  const port = await freePort();
  const named = await startNamed(dir, port);
  const own = OwnConsole.fresh(6, [
    '--scenario', 'auth-failure',
    '--dns-server', `127.0.0.1:${port}`, '--dns-zone', 'gw.test', '--dns-tsig-key-file', path.join(dir, 'gatewarden.key'),
  ]);
  const child = await own.start();
  try {
    await signIn(page, 'admin', undefined, own.base);
    await page.goto(`${own.base}/gateways/edge`);
    await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
    await page.locator('button[data-action="bypass"]').click();
    const dialog = page.getByTestId('action-dialog');
    await dialog.locator('input[name="service"]').fill('payments');
    await dialog.locator('input[name="method"]').fill('dns');
    await dialog.locator('input[name="reason"]').fill('auth layer down: payments must work');
    await dialog.getByRole('button', { name: 'Preview' }).click();
    const preview = dialog.getByTestId('preview');
    await expect(preview).toContainText('payments.gw.test. 300 IN A 127.0.1.1');
    await expect(preview).toContainText('payments.gw.test. 60 IN A 127.0.2.7');
    await expect(preview).toContainText('all within 300 s');
    for (const width of [1440, 800]) {
      await page.setViewportSize({ width, height: 1000 });
      await expect(preview).toContainText('127.0.2.7');
      await page.screenshot({ path: `screenshots/dns-bypass-preview-${width}.png` });
    }
    await page.setViewportSize({ width: 1280, height: 720 });
    await dialog.locator('input[name="confirm"]').fill('edge');
    await dialog.getByRole('button', { name: 'Run' }).click();
    await expect(dialog).toBeHidden();
    const row = page.getByTestId('action-list').locator('tbody tr', { hasText: 'payments must work' });
    await expect(row.getByTestId('action-status')).toHaveText('succeeded', { timeout: 30_000 });
    expect(await lookup(port)).toEqual(['127.0.2.7']);

    // Undo: previewed, confirmed, and the record is what it was.
    await row.getByRole('button', { name: 'Undo' }).click();
    const undo = row.getByTestId('undo');
    await undo.getByLabel('Why undo?').fill('auth is back');
    await undo.getByRole('button', { name: 'Preview undo' }).click();
    await expect(undo.getByTestId('undo-preview')).toContainText('payments.gw.test. 300 IN A 127.0.1.1');
    await undo.locator('input[name="confirm"]').fill('edge');
    await undo.getByRole('button', { name: 'Undo now' }).click();
    await expect(page.getByTestId('action-list').locator('tbody tr', { hasText: 'auth is back' })).toContainText('undo of #');
    await expect.poll(() => lookup(port)).toEqual(['127.0.1.1']);
  } finally {
    await OwnConsole.stop(child);
    named.kill();
  }
});
