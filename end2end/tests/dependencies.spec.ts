import { test, expect } from '@playwright/test';
import { signIn, OwnConsole } from '../support';
import { ADMIN_PASSWORD } from '../playwright.config';

test('the dependency map shows who depends on a service, what to do about it, and probes a gateway', async ({ page }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'Dependencies' }).click();
  await expect(page).toHaveURL(/\/dependencies$/);
  await expect(page.getByTestId('dep-summary')).toHaveText(/^2 gateways, 12 routes, 10 services \((all healthy|unhealthy: .+)\)$/);
  const map = page.getByTestId('dep-map');
  await expect(map.locator('rect.dep-node')).toHaveCount(24);
  // Edges are drawn as one path per colour, one curve each.
  const curves = await map.locator('path.dep-edge').evaluateAll((ps) => ps.map((p) => (p.getAttribute('d') ?? '').split('C').length - 1).reduce((a, b) => a + b, 0));
  expect(curves).toBe(24);

  // Search: the matches are offered, the rest of the map dims.
  await page.getByTestId('dep-search').locator('input[name="q"]').fill('payments');
  await page.getByTestId('dep-search').getByRole('button', { name: 'Find' }).click();
  await expect(page).toHaveURL(/\/dependencies\?q=payments$/);
  await expect(page.getByTestId('dep-found')).toContainText('3 match "payments"');
  await expect(map.locator('rect.dep-node.dim')).toHaveCount(21);

  // Select the service: its blast radius is both gateways and their payments routes.
  await map.locator('[data-id="service:payments"]').click();
  await expect(page).toHaveURL(/node=service%3Apayments/);
  const panel = page.getByTestId('dep-panel');
  await expect(panel.locator('h2')).toHaveText('service payments');
  await expect(panel.getByTestId('blast-radius')).toHaveText('2 gateway(s): public-edge, partner-api');
  await expect(panel).toContainText('edge /api/payments');
  await expect(panel).toContainText('partner /v1/payments');
  await expect(map.locator('rect.dep-node.blast')).toHaveCount(4);
  // An admin may run every action that applies; each leads to its gateway's page.
  const actions = panel.getByTestId('dep-actions');
  await expect(actions.getByRole('link', { name: 'Circuit breaker on edge (fail fast to payments)' })).toHaveAttribute('href', '/gateways/edge');
  await expect(actions.getByRole('link', { name: "Send payments's traffic around partner" })).toBeVisible();
  await page.screenshot({ path: 'screenshots/dependencies.png', fullPage: false });

  // The selection is in the URL: reopening it shows the same panel.
  await page.reload();
  await expect(page.getByTestId('dep-panel').locator('h2')).toHaveText('service payments');

  // Pan and zoom change the drawing's transform.
  const layer = map.locator('g').first();
  const before = await layer.getAttribute('transform');
  await map.hover();
  await page.mouse.wheel(0, -400);
  await expect.poll(async () => layer.getAttribute('transform')).not.toBe(before);
  // The map refreshes with the live feed; the view stays where the person put it.
  const zoomed = await layer.getAttribute('transform');
  let refreshes = 0;
  page.on('requestfinished', (r) => { if (r.url().endsWith('/api/v1/dependencies')) refreshes++; });
  // (The next live snapshot at least 5 s after the last read brings the next one.)
  await expect.poll(() => refreshes, { timeout: 10_000, message: 'the live feed brings a refresh' }).toBeGreaterThanOrEqual(1);
  await page.waitForTimeout(300);
  expect(await layer.getAttribute('transform')).toBe(zoomed);
  // Far enough out, labels give way to the failing nodes' outlines.
  await expect(map).not.toHaveClass(/far/);
  for (let i = 0; i < 4; i++) await page.mouse.wheel(0, 800);
  await expect(map).toHaveClass(/far/);
  await expect(map.locator('text.dep-label').first()).toBeHidden();

  // A gateway: probe its health path through its real listener.
  await map.locator('[data-id="gateway:edge"]').click();
  const probe = page.getByTestId('dep-panel').getByTestId('probe-form');
  await expect(probe.locator('h3')).toHaveText('Test an endpoint of edge');
  await probe.getByRole('button', { name: 'Send' }).click();
  const result = probe.getByTestId('probe-result');
  await expect(result).toContainText('HTTP 200');
  await expect(result).toContainText('first byte');
  await expect(result.locator('pre')).toContainText('x-gateway: edge');

  // A URL probe to the cloud metadata address is refused, with the reason.
  const urlProbe = page.getByTestId('probe-form').last();
  await urlProbe.locator('input').fill('http://169.254.169.254/latest/meta-data/');
  await urlProbe.getByRole('button', { name: 'Send' }).click();
  await expect(urlProbe.getByTestId('probe-error')).toContainText('link-local');
});

test('the health view and a gateway page show the synthetic checks', async ({ page }) => {
  await signIn(page);
  await expect(page.locator('tr[data-gateway="edge"] [data-testid="checks"]')).toHaveText(/^\d\/3$/);
  await page.goto('/gateways/edge');
  const checks = page.getByTestId('synthetics');
  await expect(checks.locator('.synthetic-row')).toHaveCount(3);
  await expect(checks.locator('.synthetic-row').filter({ hasText: '/healthz' })).toContainText('HTTP 200');
  await expect(checks.locator('.synthetic-row').first().locator('.check').first()).toBeVisible();
});

test('the find box shows its whole placeholder and the probe input is styled and readable', async ({ page }) => {
  await signIn(page);
  await page.goto('/dependencies');
  const find = page.getByTestId('dep-search').locator('input[name="q"]');
  const fits = await find.evaluate((input: HTMLInputElement) => {
    const style = getComputedStyle(input);
    const ctx = document.createElement('canvas').getContext('2d')!;
    ctx.font = `${style.fontSize} ${style.fontFamily}`;
    const text = ctx.measureText(input.placeholder).width;
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return { text, room };
  });
  expect(fits.text, 'placeholder width vs room').toBeLessThanOrEqual(fits.room);

  const probe = page.getByTestId('probe-form').first().locator('input');
  const look = await probe.evaluate((input: HTMLInputElement) => ({
    border: getComputedStyle(input).borderTopColor,
    background: getComputedStyle(input).backgroundColor,
    placeholder: getComputedStyle(input, '::placeholder').color,
  }));
  // The panel's line colour, the page background, the muted text (about 6:1 on it).
  expect(look).toEqual({ border: 'rgb(42, 49, 64)', background: 'rgb(13, 17, 23)', placeholder: 'rgb(139, 148, 158)' });
});

test('selecting a node re-fits the map so the selection stays fully in view, at 1440 and 800 px', async ({ page }) => {
  await signIn(page);
  for (const width of [1440, 800]) {
    await page.setViewportSize({ width, height: 900 });
    await page.goto('/dependencies');
    const map = page.getByTestId('dep-map');
    await expect(map.locator('rect.dep-node')).toHaveCount(24);
    await map.locator('[data-id="service:payments"]').click();
    await expect(page.getByTestId('dep-panel')).toBeVisible();
    const inside = async (id: string) => {
      const [m, n] = [await map.boundingBox(), await map.locator(`[data-id="${id}"]`).boundingBox()];
      return !!m && !!n && n.x >= m.x && n.y >= m.y && n.x + n.width <= m.x + m.width && n.y + n.height <= m.y + m.height;
    };
    await expect.poll(() => inside('service:payments'), { message: `selected node at ${width} px` }).toBe(true);
    // The whole service column too (the rightmost one).
    for (const id of ['service:orders', 'service:users']) {
      expect(await inside(id), `${id} at ${width} px`).toBe(true);
    }
    await page.screenshot({ path: `screenshots/dependencies-selected-${width}.png` });
  }
});

test("the map's summary counts unhealthy nodes of every kind (a bad deploy: a gateway and its routes, not services)", async ({ page }) => {
  const own = OwnConsole.fresh(3, ['--scenario', 'bad-deploy']);
  const server = await own.start();
  try {
    await signIn(page, 'admin', ADMIN_PASSWORD, own.base);
    await page.goto(`${own.base}/dependencies`);
    const summary = page.getByTestId('dep-summary');
    await expect(summary).toContainText('unhealthy: 1 gateway');
    const text = (await summary.textContent()) ?? '';
    const red = await page.getByTestId('dep-map').locator('rect.dep-node.down, rect.dep-node.degraded').count();
    // "2 gateways, 12 routes, 10 services (unhealthy: 1 gateway, 8 routes)".
    const bad = text.slice(text.indexOf('unhealthy:'));
    const counted = [...bad.matchAll(/(\d+) (gateway|route|service)/g)].reduce((a, m) => a + Number(m[1]), 0);
    expect(counted, text).toBe(red);
    expect(red).toBeGreaterThan(1);
  } finally {
    await OwnConsole.stop(server);
  }
});
