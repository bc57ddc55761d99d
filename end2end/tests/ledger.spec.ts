import { test, expect, request as playwrightRequest } from '@playwright/test';
import { execFileSync } from 'child_process';
import * as path from 'path';
import { signIn, OwnConsole } from '../support';
import { ADMIN_PASSWORD } from '../playwright.config';

// A console of this test's own: its database file is edited while it is stopped.
const own = OwnConsole.fresh(2);
const dir = own.dir;

test('the audit page says which check failed, and where, after entries were cut from the ledger', async ({ page }) => {
  let server = await own.start();
  try {
    const api = await playwrightRequest.newContext({ baseURL: own.base });
    for (let i = 0; i < 3; i++) {
      expect((await api.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } })).status()).toBe(200);
    }
    await api.dispose();
    await OwnConsole.stop(server);

    // Someone with the database file drops the guard and deletes the newest two entries.
    const left = Number(
      execFileSync('python3', [
        '-c',
        'import sqlite3, sys\n' +
          'db = sqlite3.connect(sys.argv[1])\n' +
          'db.execute("drop trigger audit_log_no_delete")\n' +
          'head = db.execute("select max(id) from audit_log").fetchone()[0]\n' +
          'db.execute("delete from audit_log where id > ?", (head - 2,))\n' +
          'db.commit()\n' +
          'print(head - 2)',
        path.join(dir, 'gw.db'),
      ]).toString().trim(),
    );

    server = await own.start();
    await signIn(page, 'admin', ADMIN_PASSWORD, own.base);
    await page.goto(`${own.base}/audit`);
    // The button works once the page has hydrated.
    await expect(page.getByTestId('audit-filters')).toHaveAttribute('data-ready', 'true');
    await page.getByRole('button', { name: 'Verify chain' }).click();
    const result = page.getByTestId('verify-result');
    await expect(result).toContainText('Ledger check failed');
    await expect(result).toContainText(
      `truncation check, #${left}: found when the console started: 2 entries missing after #${left}`,
    );
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: 'screenshots/audit-cut-1440.png' });
    await page.setViewportSize({ width: 800, height: 900 });
    await page.screenshot({ path: 'screenshots/audit-cut-800.png' });
  } finally {
    await OwnConsole.stop(server);
  }
});
