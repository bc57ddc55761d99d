// The dependency map at 2,000 services (issue 7; target: laid out and drawn in <= 500 ms).
// The server's answer is replaced by a generated graph (20 gateways, 2,000 services, 3,000
// routes, some failing), so what is timed is the browser's work: from the moment the JSON
// has arrived and been decoded (mark `gw-deps-data`) to the frame after the one that
// painted the map (mark `gw-deps-drawn`): layout, SVG text, DOM, style, layout, paint.
import { test, expect } from '@playwright/test';
import { signIn } from '../support';
import * as fs from 'fs';

function graph(gateways: number, services: number) {
  const nodes: object[] = [];
  const edges: object[] = [];
  const node = (id: string, kind: string, name: string, gateway: string | null, error_rate: number) => ({
    id, kind, name, gateway, health: error_rate >= 0.2 ? 'down' : error_rate >= 0.01 ? 'degraded' : 'ok',
    rps: 10, error_rate, latency_ms: 20, ready_endpoints: null, endpoints: null,
  });
  for (let k = 0; k < gateways; k++) nodes.push(node(`gateway:gw-${k}`, 'gateway', `gw-${k}`, `gw-${k}`, 0));
  for (let s = 0; s < services; s++) {
    const failing = s % 97 === 0 ? 0.5 : 0;
    nodes.push(node(`service:svc-${s}`, 'service', `svc-${s}`, null, failing));
    for (let r = 0; r < 1 + (s % 2); r++) {
      const gw = (s + r * 7) % gateways;
      const route = `route:gw-${gw}:/svc-${s}/${r}`;
      nodes.push(node(route, 'route', `/svc-${s}/${r}`, `gw-${gw}`, failing));
      edges.push({ from: `gateway:gw-${gw}`, to: route, rps: 10, error_rate: failing });
      edges.push({ from: route, to: `service:svc-${s}`, rps: 10, error_rate: failing });
    }
  }
  return { nodes, edges };
}

test('2,000 services: laid out and drawn', async ({ page }) => {
  const big = graph(20, 2000);
  const body = JSON.stringify(big);
  await signIn(page);
  await page.route('**/api/v1/dependencies', (r) => r.fulfill({ contentType: 'application/json', body }));
  const runs: { draw_ms: number; layout_ms: number; from_navigation_ms: number }[] = [];
  for (let i = 0; i < 7; i++) {
    await page.goto('/dependencies');
    await expect(page.getByTestId('dep-map').locator('rect.dep-node.service')).toHaveCount(2000, { timeout: 30_000 });
    const t = await page.waitForFunction(() => {
      const data = performance.getEntriesByName('gw-deps-data')[0];
      const drawn = performance.getEntriesByName('gw-deps-drawn')[0];
      const svg = performance.getEntriesByName('gw-deps-svg')[0];
      return data && drawn && svg
        ? { draw_ms: drawn.startTime - data.startTime, layout_ms: svg.startTime - data.startTime, from_navigation_ms: drawn.startTime }
        : null;
    });
    runs.push(await t.jsonValue() as { draw_ms: number; layout_ms: number; from_navigation_ms: number });
  }
  const sorted = (k: 'draw_ms' | 'layout_ms' | 'from_navigation_ms') => runs.map((r) => r[k]).sort((a, b) => a - b);
  const median = (xs: number[]) => xs[Math.floor(xs.length / 2)];
  const result = {
    date: new Date().toISOString(),
    nodes: big.nodes.length,
    edges: big.edges.length,
    json_bytes: body.length,
    draw_ms: { median: median(sorted('draw_ms')), min: sorted('draw_ms')[0], max: sorted('draw_ms').at(-1), runs: runs.map((r) => Math.round(r.draw_ms)) },
    layout_and_svg_text_ms: { median: median(sorted('layout_ms')), max: sorted('layout_ms').at(-1) },
    from_navigation_ms: { median: median(sorted('from_navigation_ms')), max: sorted('from_navigation_ms').at(-1) },
    dom_elements: await page.evaluate(() => document.querySelectorAll('*').length),
  };
  console.log(JSON.stringify(result, null, 2));
  fs.writeFileSync('bench-dependency-map.json', JSON.stringify(result, null, 2));
  await page.screenshot({ path: 'screenshots/dependencies-2000.png' });
});
