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

// The zone's primary on `port`, which notifies a secondary on `second` of every change (BIND
// waits 5 s before it does), and that secondary: the console follows the change until both
// serve it.
async function startNamed(dir: string, port: number, second: number): Promise<ChildProcess[]> {
  const key = execFileSync('tsig-keygen', ['-a', 'hmac-sha256', 'gatewarden']).toString();
  fs.writeFileSync(path.join(dir, 'gatewarden.key'), key);
  fs.writeFileSync(
    path.join(dir, 'zone'),
    '$TTL 300\n@ IN SOA ns.gw.test. admin.gw.test. 1 60 60 600 60\n@ IN NS ns.gw.test.\nns IN A 127.0.0.1\n' +
      'payments 300 IN A 127.0.1.1\n',
  );
  const options = (name: string, p: number) =>
    `include "${dir}/gatewarden.key";\n` +
    `options { directory "${dir}"; pid-file "${dir}/${name}.pid"; listen-on port ${p} { 127.0.0.1; };\n` +
    'listen-on-v6 { none; }; recursion no; dnssec-validation no; notify-source 127.0.0.1; transfer-source 127.0.0.1; };\n' +
    'controls { };\n';
  fs.writeFileSync(
    path.join(dir, 'primary.conf'),
    options('primary', port) +
      `zone "gw.test" { type primary; file "${dir}/zone"; update-policy { grant gatewarden zonesub A; };\n` +
      `notify explicit; also-notify { 127.0.0.1 port ${second}; }; allow-transfer { 127.0.0.1; }; };\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'secondary.conf'),
    options('secondary', second) +
      `zone "gw.test" { type secondary; file "${dir}/secondary"; primaries { 127.0.0.1 port ${port}; }; };\n`,
  );
  const servers = [];
  for (const [name, p] of [['primary', port], ['secondary', second]] as const) {
    servers.push(spawn('named', ['-g', '-c', path.join(dir, `${name}.conf`)], { stdio: 'ignore' }));
    await expect.poll(() => lookup(p).catch(() => []), { timeout: 20_000 }).toEqual(['127.0.1.1']);
  }
  return servers;
}

async function lookup(port: number): Promise<string[]> {
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  return resolver.resolve4('payments.gw.test');
}

test('an admin bypasses payments by DNS, sees the record before and after, watches it propagate, and undoes it', async ({ page }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewarden-dns-'));
  const port = await freePort();
  let second = await freePort();
  while (second === port) second = await freePort();
  const named = await startNamed(dir, port, second);
  const own = OwnConsole.fresh(6, [
    '--scenario', 'auth-failure',
    '--dns-server', `127.0.0.1:${port}`, '--dns-zone', 'gw.test', '--dns-tsig-key-file', path.join(dir, 'gatewarden.key'),
    '--dns-check-server', `127.0.0.1:${second}`,
  ]);
  const child = await own.start();
  try {
    await signIn(page, 'admin', undefined, own.base);
    await page.goto(`${own.base}/gateways/edge`);
    await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
    await page.locator('button[data-action="bypass"]').click();
    const dialog = page.getByTestId('action-dialog');
    await dialog.locator('input[name="service"]').fill('payments');
    await dialog.locator('select[name="method"]').selectOption('dns');
    await dialog.locator('input[name="reason"]').fill('auth layer down: payments must work');
    await dialog.getByRole('button', { name: 'Preview' }).click();
    const preview = dialog.getByTestId('preview');
    await expect(preview).toContainText('payments.gw.test. 300 IN A 127.0.1.1');
    await expect(preview).toContainText('payments.gw.test. 60 IN A 127.0.2.7');
    await expect(preview).toContainText('all within 300 s');
    // The direct target answered its health path before anything changes.
    await expect(preview).toContainText(/Preflight passed: GET http:\/\/payments\.gw\.test:\d+\/healthz at 127\.0\.2\.7:\d+ answered 200/);
    for (const width of [1440, 800]) {
      await page.setViewportSize({ width, height: 1000 });
      await expect(preview).toContainText('127.0.2.7');
      await page.screenshot({ path: `screenshots/dns-bypass-preview-${width}.png` });
    }
    await page.setViewportSize({ width: 1280, height: 720 });
    await dialog.locator('input[name="confirm"]').fill('edge');
    await dialog.getByRole('button', { name: 'Run' }).click();
    await expect(dialog).toBeHidden();
    // Where the person is looking: the primary serves it, the secondary not yet, then both.
    const notice = page.getByTestId('run-notice');
    await expect(notice).toContainText(
      `running · propagating: 1 of 2 DNS servers serve the new record; waiting for 127.0.0.1:${second}`,
    );
    for (const width of [1440, 800]) {
      await page.setViewportSize({ width, height: 900 });
      await page.screenshot({ path: `screenshots/dns-bypass-propagating-${width}.png` });
    }
    await page.setViewportSize({ width: 1280, height: 720 });
    await expect(notice).toContainText(`succeeded · served by all 2 DNS servers asked (127.0.0.1:${port}, 127.0.0.1:${second}) after`, {
      timeout: 20_000,
    });
    const row = page.getByTestId('action-list').locator('tbody tr', { hasText: 'payments must work' });
    await expect(row.getByTestId('action-status')).toHaveText('succeeded');
    await expect(row.getByTestId('action-detail')).toContainText('served by all 2 DNS servers');
    expect(await lookup(port)).toEqual(['127.0.2.7']);
    expect(await lookup(second)).toEqual(['127.0.2.7']);
    // The gateway stays critical (everything else fails through its auth layer); the page
    // says which service goes around it and how that service's own clients fare.
    const bypasses = page.getByTestId('bypasses');
    await expect(bypasses.locator('tr[data-service="payments"]')).toContainText('DNS record');
    await expect(bypasses.locator('tr[data-service="payments"]')).toContainText(/100(\.0)?% ok · p99 \d+ ms/);
    for (const width of [1440, 800]) {
      await page.setViewportSize({ width, height: 900 });
      await bypasses.scrollIntoViewIfNeeded();
      await page.screenshot({ path: `screenshots/dns-bypass-gateway-${width}.png` });
    }
    await page.setViewportSize({ width: 1280, height: 720 });

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
    await expect.poll(() => lookup(second), { timeout: 20_000 }).toEqual(['127.0.1.1']);
  } finally {
    await OwnConsole.stop(child);
    named.forEach((n) => n.kill());
  }
});
