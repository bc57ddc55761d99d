import { test, expect, Page, request as playwrightRequest } from '@playwright/test';
import { ADMIN_PASSWORD } from '../playwright.config';
import { signIn as signInAs, OwnConsole } from '../support';

const PASSWORD = 'a long enough password';

// Accounts are created through the API, as an admin's script would.
test.beforeAll(async ({ baseURL }) => {
  const api = await playwrightRequest.newContext({ baseURL });
  const login = await api.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
  const { csrf_token } = await login.json();
  for (const [username, role] of [['oncall', 'responder'], ['watcher', 'viewer']]) {
    const r = await api.post('/api/v1/users', { data: { username, password: PASSWORD, role, reason: 'a test account' }, headers: { 'x-csrf-token': csrf_token } });
    expect([201, 409]).toContain(r.status());
  }
  await api.dispose();
});

async function signIn(page: Page, username: string) {
  await signInAs(page, username, PASSWORD);
}

function millis(text: string | null): number {
  const t = (text ?? '').trim();
  return t.endsWith(' s') ? parseFloat(t) * 1000 : parseFloat(t);
}

test('a responder resolves the traffic surge from the gateway page', async ({ page }) => {
  await signIn(page, 'oncall');
  await expect(page.getByTestId('scenario')).toContainText('traffic-surge');
  await page.goto('/gateways/edge');
  const p99 = page.locator('.tile-value[data-testid="p99"]');
  await expect.poll(async () => millis(await p99.textContent())).toBeGreaterThan(2000);
  // The page's wasm chunk has loaded and hydrated.
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();

  await page.locator('button[data-action="scale"]').click();
  const dialog = page.getByTestId('action-dialog');
  await dialog.locator('input[name="replicas"]').fill('8');
  await dialog.locator('input[name="reason"]').fill('surge: add capacity');
  await expect(dialog.getByRole('button', { name: 'Run' })).toBeDisabled();
  await dialog.getByRole('button', { name: 'Preview' }).click();
  await expect(dialog.getByTestId('preview')).toContainText('Scale edge from 4 to 8 replicas');
  await dialog.getByRole('button', { name: 'Run' }).click();
  await expect(dialog).toBeHidden();

  // Progress arrives live, then the outcome; latency recovers without a reload.
  const row = page.getByTestId('action-list').locator('tbody tr').first();
  await expect(row).toContainText('scale');
  await expect(row.getByTestId('action-status')).toHaveText('succeeded', { timeout: 30_000 });
  await expect(row).toContainText('8/8 updated');
  await expect.poll(async () => millis(await p99.textContent()), { timeout: 30_000 }).toBeLessThan(500);
  await page.screenshot({ path: 'screenshots/mitigation.png', fullPage: true });

  // The trail shows who did it and why.
  await page.goto('/audit');
  // Typed into before the page has hydrated, the filters would be reset by hydration.
  await expect(page.locator('[data-testid="audit-filters"][data-ready="true"]')).toBeVisible();
  await expect(page.getByTestId('audit-table')).toContainText('surge: add capacity');
  await page.locator('input[name="action"]').fill('scale');
  await page.getByTestId('audit-window').selectOption('15');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByTestId('audit-table').locator('tbody tr.entry')).toHaveCount(2); // intent + outcome
  // The intent's row shows how it ended, not the "pending" it was written with.
  await expect(
    page.getByTestId('audit-table').locator('tr.entry', { hasText: 'surge: add capacity' }).getByTestId('entry-outcome'),
  ).toHaveText('succeeded');
  await expect(page.getByTestId('audit-table')).toContainText('surge: add capacity');
  // The intent's row expands to what changed, from the state before to the state after.
  await page.getByTestId('audit-table').locator('tr.entry', { hasText: 'surge: add capacity' }).click();
  await expect(page.getByTestId('state-diff')).toContainText('replicas');
  await expect(page.getByTestId('state-diff')).toContainText('8');
  // Entries written elsewhere show up live, and the list refreshes on request.
  const other = await playwrightRequest.newContext({ baseURL: page.url().replace(/\/audit.*$/, '') });
  await other.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
  await other.dispose();
  await expect(page.getByTestId('new-entries')).toHaveText(/^\d+ new entr(y|ies) · show$/);
  await page.getByTestId('new-entries').click();
  await expect(page.getByTestId('new-entries')).toBeHidden();
  await page.getByTestId('verify').click();
  await expect(page.getByTestId('verify-result')).toContainText('Ledger intact');
  await page.screenshot({ path: 'screenshots/audit.png', fullPage: true });
});

test('a viewer sees the buttons but cannot use them', async ({ page }) => {
  await signIn(page, 'watcher');
  await page.goto('/gateways/edge');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  const buttons = page.locator('button[data-action]');
  await expect(buttons).toHaveCount(7);
  for (const b of await buttons.all()) {
    await expect(b).toBeDisabled();
    await expect(b).toHaveAttribute('title', /Needs the (responder|admin) role/);
  }
});

test('undo is previewed first: the exact change, then the undo', async ({ page }) => {
  await signIn(page, 'oncall');
  await page.goto('/gateways/partner');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  await page.locator('button[data-action="scale"]').click();
  const dialog = page.getByTestId('action-dialog');
  await dialog.locator('input[name="replicas"]').fill('5');
  await dialog.locator('input[name="reason"]').fill('more room for the partners');
  await dialog.getByRole('button', { name: 'Preview' }).click();
  await dialog.getByRole('button', { name: 'Run' }).click();
  await expect(dialog).toBeHidden();
  // Where the eyes are: a notice at the top follows the action to its outcome.
  const notice = page.getByTestId('run-notice');
  await expect(notice).toBeInViewport();
  await expect(notice).toContainText('Scale partner');

  const row = page.getByTestId('action-list').locator('tbody tr', { hasText: 'more room for the partners' });
  // The undo form is opened while the rollout still reports progress: live updates
  // change the row's cells and leave the open form, and what was typed, alone.
  await row.getByRole('button', { name: 'Undo' }).click();
  const undo = row.getByTestId('undo');
  await undo.getByLabel('Why undo?').fill('not needed after all');
  await expect(row.getByTestId('action-status')).toHaveText('succeeded', { timeout: 30_000 });
  await expect(notice).toContainText('succeeded');
  await expect(undo.getByLabel('Why undo?')).toHaveValue('not needed after all');

  // From the top of the page, the notice leads to the row.
  await page.setViewportSize({ width: 1440, height: 500 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await notice.getByRole('button', { name: 'Show' }).click();
  await expect(row).toBeInViewport();
  await notice.getByRole('button', { name: 'Dismiss' }).click();
  await expect(notice).toBeHidden();
  await page.setViewportSize({ width: 1280, height: 720 });
  await undo.getByRole('button', { name: 'Preview undo' }).click();
  await expect(undo.getByTestId('undo-preview')).toContainText('spec.replicas: 5 → 3');
  await page.screenshot({ path: 'screenshots/undo-preview.png', fullPage: true });
  await undo.getByRole('button', { name: 'Undo now' }).click();
  await expect(page.getByTestId('action-list').locator('tbody tr', { hasText: 'not needed after all' })).toContainText(
    'undo of #',
  );
});

// Issue 29, item 13: before, Run sent the edited fields unseen.
test('what runs is what was previewed: editing a field after Preview clears it and disables Run', async ({ page }) => {
  await signIn(page, 'oncall');
  await page.goto('/gateways/partner');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  await page.locator('button[data-action="scale"]').click();
  const dialog = page.getByTestId('action-dialog');
  await dialog.locator('input[name="replicas"]').fill('7');
  await dialog.locator('input[name="reason"]').fill('the preview binds what runs');
  await dialog.getByRole('button', { name: 'Preview' }).click();
  await expect(dialog.getByTestId('preview')).toContainText('to 7 replicas');
  const run = dialog.getByRole('button', { name: 'Run' });
  await expect(run).toBeEnabled();
  await dialog.locator('input[name="replicas"]').fill('11');
  await expect(dialog.getByTestId('preview')).toBeHidden();
  await expect(dialog.getByTestId('preview-stale')).toContainText('preview again');
  await expect(run).toBeDisabled();
  // The reason is not what runs: editing it keeps the preview.
  await dialog.getByRole('button', { name: 'Preview' }).click();
  await expect(dialog.getByTestId('preview')).toContainText('to 11 replicas');
  await dialog.locator('input[name="reason"]').fill('the preview binds what runs, really');
  await expect(dialog.getByTestId('preview')).toBeVisible();
  await expect(run).toBeEnabled();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
});

test('a mitigation dialog is keyboard-safe: focus moves in, Tab stays inside, Escape closes, focus comes back', async ({ page }) => {
  await signIn(page, 'oncall');
  await page.goto('/gateways/partner');
  await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
  const scale = page.locator('button[data-action="scale"]');
  await scale.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByTestId('action-dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('input').first()).toBeFocused();
  const insideDialog = () =>
    page.evaluate(() => !!document.activeElement?.closest('[data-testid="action-dialog"]'));
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    expect(await insideDialog(), `after ${i + 1} Tab presses`).toBe(true);
  }
  await dialog.locator('input').first().focus();
  await page.keyboard.press('Shift+Tab');
  expect(await insideDialog(), 'Shift+Tab from the first control').toBe(true);
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(scale).toBeFocused();
});

test('the charts mark the bad revision and the rollback, link to them, and are one tab stop each', async ({ page }) => {
  const own = OwnConsole.fresh(5, ['--scenario', 'bad-deploy']);
  const server = await own.start();
  try {
    await signInAs(page, 'admin', ADMIN_PASSWORD, own.base);
    await page.goto(`${own.base}/gateways/edge`);
    await expect(page.locator('.actions-panel[data-ready="true"]')).toBeVisible();
    const errors = page.locator('figure.chart').nth(1);
    // The bad revision rolled out five minutes ago: marked, and linked to its first minute of logs.
    const rev = errors.getByTestId('chart-mark').filter({ hasText: 'rev 3 (2.15.0)' });
    await expect(rev).toBeVisible();
    await expect(rev).toHaveAttribute('href', /\/logs\?q=gateway%3Aedge&since=\d+&until=\d+/);
    await expect(rev.locator('title')).toHaveText(/rolled out at \d\d:\d\d:\d\d UTC: its first minute of logs/);

    // Keyboard: each chart's minutes are one tab stop; arrows move between minutes and the readout follows.
    for (const chart of await page.locator('figure.chart').all()) {
      await expect(chart.locator('a.minute[tabindex="0"]')).toHaveCount(1);
      await expect(chart.locator('a.minute[tabindex="-1"]')).toHaveCount(14);
    }
    await page.getByRole('link', { name: "search this gateway's logs" }).focus();
    await page.keyboard.press('Tab');
    const first = page.locator('figure.chart').first();
    const focusedMinute = () => page.evaluate(() => {
      const el = document.activeElement;
      return el?.classList.contains('minute') ? [...el.closest('svg')!.querySelectorAll('a.minute')].indexOf(el) : -1;
    });
    expect(await focusedMinute(), 'Tab lands on the newest minute of the first chart').toBe(14);
    const readout = first.getByTestId('chart-readout');
    await expect(readout).toHaveText(/^\d\d:\d\d:\d\d · req\/s/);
    const before = (await readout.textContent())!.slice(0, 8);
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    expect(await focusedMinute()).toBe(12);
    await expect(readout).not.toHaveText(new RegExp(`^${before}`));
    await page.keyboard.press('Home');
    expect(await focusedMinute()).toBe(0);
    // The next Tab leaves the minutes (to a mark or the next chart), not to the next minute.
    await page.keyboard.press('Tab');
    expect(await focusedMinute()).toBe(-1);
    await page.screenshot({ path: 'screenshots/chart-marks-1440.png' });

    // The rollback is marked as it runs, and its mark leads to its row.
    await page.locator('button[data-action="rollback"]').click();
    const dialog = page.getByTestId('action-dialog');
    await dialog.locator('input[name="reason"]').fill('2.15.0 fails 45% of requests');
    await dialog.getByRole('button', { name: 'Preview' }).click();
    await dialog.locator('input[name="confirm"]').fill('edge');
    await dialog.getByRole('button', { name: 'Run' }).click();
    await expect(dialog).toBeHidden();
    const mark = errors.getByTestId('chart-mark').filter({ hasText: 'rollback' });
    await expect(mark).toBeVisible();
    const id = (await mark.getAttribute('href'))!.replace('#action-', '');
    expect(Number(id)).toBeGreaterThan(0);
    await page.evaluate(() => window.scrollTo(0, 0));
    await mark.locator('text').click();
    await expect(page).toHaveURL(new RegExp(`#action-${id}$`));
    // Charts re-rendered by live points keep SVG links (an HTML <a> in an SVG is not drawn).
    const svgNs = 'http://www.w3.org/2000/svg';
    expect(await errors.locator('a.minute').first().evaluate((e) => e.namespaceURI)).toBe(svgNs);
    expect(await mark.evaluate((e) => e.namespaceURI)).toBe(svgNs);
    await expect(page.locator(`tr#action-${id}`)).toBeInViewport();
    await page.setViewportSize({ width: 800, height: 900 });
    await errors.scrollIntoViewIfNeeded();
    await page.screenshot({ path: 'screenshots/chart-marks-800.png' });
  } finally {
    await OwnConsole.stop(server);
  }
});
