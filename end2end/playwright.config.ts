import { defineConfig } from '@playwright/test';
import * as os from 'os';
import * as path from 'path';
import * as fs from 'fs';

// Debian's chromium, never a downloaded browser.
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const port = Number(process.env.E2E_PORT ?? 3107);
const bin = process.env.GATEWARDEN_BIN ?? path.resolve(__dirname, '../target/debug/gatewarden');
const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewarden-e2e-'));
export const ADMIN_PASSWORD = 'e2e admin password';

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'off',
    launchOptions: {
      executablePath: chromium,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: {
    command: `${bin} --listen 127.0.0.1:${port} --database-url sqlite:${dbDir}/gw.db --site-root target/site --scenario traffic-surge --sim-speed 4 --log-retention-mb 2 --require-approval=`,
    cwd: path.resolve(__dirname, '..'),
    url: `http://127.0.0.1:${port}/healthz`,
    env: { GATEWARDEN_ADMIN_PASSWORD: ADMIN_PASSWORD, RUST_LOG: 'warn' },
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
  },
});
