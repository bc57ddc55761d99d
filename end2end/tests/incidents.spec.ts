import { test, expect, request as playwrightRequest } from '@playwright/test';
import * as fs from 'fs';
import { ADMIN_PASSWORD } from '../playwright.config';
import { signIn, OwnConsole } from '../support';

const PASSWORD = 'a long enough password';

// Two people, two browsers: a responder declares an incident on the critical gateway and
// asks for a rollback (which needs a second person); an admin approves it from the inbox;
// both watch the timeline; the responder resolves it and downloads the postmortem.
test('a responder and an admin work an incident together, with a two-person rollback', async ({ browser }) => {
  test.setTimeout(120_000);
  const own = OwnConsole.fresh(7, ['--scenario', 'bad-deploy', '--sim-speed', '10', '--require-approval', 'rollback,bypass']);
  const child = await own.start();
  try {
    const api = await playwrightRequest.newContext({ baseURL: own.base });
    const login = await api.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } });
    const { csrf_token } = await login.json();
    const created = await api.post('/api/v1/users', {
      data: { username: 'oncall', password: PASSWORD, role: 'responder', reason: 'the on-call responder' },
      headers: { 'x-csrf-token': csrf_token },
    });
    expect(created.status()).toBe(201);
    await api.dispose();

    const responder = await (await browser.newContext()).newPage();
    const admin = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    for (const page of [responder, admin]) page.on('pageerror', (e) => errors.push(e.message));
    await signIn(responder, 'oncall', PASSWORD, own.base);
    await signIn(admin, 'admin', ADMIN_PASSWORD, own.base);

    // The health page's "Declare an incident" names the gateways critical now.
    await responder.goto(`${own.base}/`);
    await responder.getByTestId('declare-from-health').click();
    await expect(responder.getByTestId('declare').locator('input[name="gateways"]')).toHaveValue('edge');
    await expect(admin.getByTestId('approvals-badge')).toBeHidden();

    // Declared from the critical gateway's page, prefilled with it.
    await responder.goto(`${own.base}/gateways/edge`);
    await responder.getByTestId('declare-incident').click();
    const form = responder.getByTestId('declare');
    await expect(form.locator('input[name="gateways"]')).toHaveValue('edge');
    await form.locator('input[name="title"]').fill('edge answers 5xx since 2.15.0');
    await form.locator('select[name="severity"]').selectOption('sev1');
    await form.getByRole('button', { name: 'Declare incident' }).click();
    await expect(responder).toHaveURL(/\/incidents\?id=1$/);
    await expect(responder.getByTestId('timeline')).toContainText('oncall declared INC-1 (sev1)');
    await admin.goto(`${own.base}/incidents?id=1`);
    await expect(admin.getByTestId('timeline')).toContainText('oncall declared INC-1');

    // The runbook's log step searches the gateway's errors; a line found is pinned to the incident.
    await responder.getByTestId('checklist').locator('li[data-step="diagnosis-3"]').getByRole('link', { name: 'Open' }).click();
    const pin = responder.getByTestId('log-hits').getByTestId('pin').first();
    await pin.click();
    await expect(responder.getByTestId('log-hits').getByText('Pinned').first()).toBeVisible();
    await responder.goto(`${own.base}/incidents?id=1`);
    await expect(responder.getByTestId('timeline')).toContainText('oncall pinned a log line from public-edge-');

    // The runbook's endpoint test opens the gateway on the map; its probe goes on the timeline.
    await responder.getByTestId('checklist').locator('li[data-step="diagnosis-5"]').getByRole('link', { name: 'Open' }).click();
    const probe = responder.getByTestId('probe-form').filter({ has: responder.getByPlaceholder('/healthz') });
    await expect(probe.getByTestId('probe-incident')).toContainText("The result goes on INC-1's timeline.");
    await probe.locator('input').fill('/healthz');
    await probe.getByRole('button', { name: 'Send' }).click();
    await expect(probe).toContainText('200');
    await responder.goto(`${own.base}/incidents?id=1`);
    await expect(responder.getByTestId('timeline')).toContainText('oncall probed http://127.0.0.1:');

    // The runbook's "roll back" step opens the rollback dialog with the incident preset.
    await responder.getByTestId('checklist').locator('li[data-step="immediate-4"]').getByRole('link', { name: 'Open' }).click();
    const dialog = responder.getByTestId('action-dialog');
    await expect(dialog).toBeVisible();
    await expect(dialog.locator('input[name="incident"]')).toHaveValue('INC-1');
    await dialog.locator('input[name="reason"]').fill('2.15.0 fails 45% of requests');
    await dialog.getByRole('button', { name: 'Preview' }).click();
    await expect(dialog.getByTestId('preview')).toContainText('needs a second person');
    await dialog.locator('input[name="confirm"]').fill('edge');
    await dialog.getByRole('button', { name: 'Run' }).click();
    await expect(responder.getByTestId('run-notice')).toContainText('waiting for a second person');

    // The admin's open incident page shows the request as it happens, and the header counts it.
    await expect(admin.getByTestId('timeline')).toContainText("oncall asked for a second person's approval of rollback on edge");
    await expect(admin.getByTestId('approvals-badge')).toHaveText('1');
    await expect(responder.getByTestId('approvals-badge')).toBeHidden();
    await admin.goto(`${own.base}/incidents`);
    const request = admin.getByTestId('approval-row');
    await expect(request).toContainText('oncall asks:');
    for (const width of [1440, 800]) {
      await admin.setViewportSize({ width, height: 900 });
      await admin.screenshot({ path: `screenshots/approvals-${width}.png` });
    }
    await request.locator('input').fill('rollback is the runbook cure');
    await request.getByTestId('approve').click();
    await expect(admin.getByTestId('decided')).toContainText("Approved rollback on edge (oncall's request #1): it runs now");
    await expect(request).toHaveCount(0);
    await expect(admin.getByTestId('approvals-badge')).toBeHidden();

    // The responder watches the approval and the rollout land on the timeline and the runbook.
    await responder.goto(`${own.base}/incidents?id=1`);
    await expect(responder.getByTestId('timeline')).toContainText("admin approved oncall's rollback on edge");
    await expect(responder.getByTestId('checklist').locator('li[data-step="immediate-4"]')).toContainText('done by oncall', {
      timeout: 60_000,
    });
    await expect(responder.getByTestId('timeline')).toContainText('edge went from critical to', { timeout: 60_000 });
    for (const width of [1440, 800]) {
      await responder.setViewportSize({ width, height: 1000 });
      await responder.screenshot({ path: `screenshots/incident-${width}.png`, fullPage: true });
    }
    await responder.setViewportSize({ width: 1280, height: 900 });
    await responder.getByRole('button', { name: 'Mark resolved' }).click();
    await expect(responder.getByTestId('incident-status')).toHaveText('resolved');
    // In training, the end says how the response compares with the scenario's known cure.
    await expect(responder.getByTestId('training')).toContainText('You used rollback — a known cure — and mitigated it after');
    await admin.goto(`${own.base}/incidents?id=1`);
    await expect(admin.getByTestId('incident-status')).toHaveText('resolved');

    const [download] = await Promise.all([responder.waitForEvent('download'), responder.getByTestId('postmortem').click()]);
    const postmortem = fs.readFileSync((await download.path())!, 'utf8');
    expect(postmortem).toContain('# Postmortem: INC-1 — edge answers 5xx since 2.15.0');
    expect(postmortem).toMatch(/\| rollback \| edge \| oncall \| 2\.15\.0 fails 45% of requests \| succeeded \|/);
    expect(postmortem).toContain("admin approved oncall's rollback on edge");

    // Break-glass: an admin rolls back at once, without approval; another admin, on any
    // page, is told by a banner until they review it.
    const lead = await (await browser.newContext()).newPage();
    lead.on('pageerror', (e) => errors.push(e.message));
    const adminApi = await playwrightRequest.newContext({ baseURL: own.base });
    const { csrf_token: token } = await (
      await adminApi.post('/api/v1/session', { data: { username: 'admin', password: ADMIN_PASSWORD } })
    ).json();
    const lead_created = await adminApi.post('/api/v1/users', {
      data: { username: 'lead', password: PASSWORD, role: 'admin', reason: 'the incident lead' },
      headers: { 'x-csrf-token': token },
    });
    expect(lead_created.status()).toBe(201);
    await signIn(lead, 'lead', PASSWORD, own.base);
    await expect(lead.getByTestId('live-indicator')).toContainText('live');
    await expect(lead.getByTestId('break-glass-banner')).toBeHidden();
    const glass = await adminApi.post('/api/v1/gateways/edge/actions/rollback', {
      data: { reason: 'testing the way back', confirm: 'edge', break_glass: true },
      headers: { 'x-csrf-token': token },
    });
    expect(glass.status()).toBe(202);
    await adminApi.dispose();
    const banner = lead.getByTestId('break-glass-banner');
    await expect(banner).toBeVisible();
    await expect(banner).toContainText('waits for your review');
    await expect(lead.getByTestId('approvals-badge')).toHaveText('1');
    await lead.setViewportSize({ width: 800, height: 600 });
    await lead.screenshot({ path: 'screenshots/break-glass-banner-800.png' });
    await banner.getByRole('link', { name: 'Review it' }).click();
    const row = lead.getByTestId('approval-row');
    await expect(row).toContainText('admin ran by break-glass');
    await row.locator('input').fill('a test of the way back');
    await row.getByRole('button', { name: 'Mark reviewed' }).click();
    await expect(banner).toBeHidden();
    await expect(lead.getByTestId('approvals-badge')).toBeHidden();
    expect(errors, 'no page error (a failed hydration shows here)').toEqual([]);
  } finally {
    await OwnConsole.stop(child);
  }
});
