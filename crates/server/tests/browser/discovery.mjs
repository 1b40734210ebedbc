// The discovery pages in a real browser: Debian's headless Chromium driven by playwright-core.
// Run by crates/server/tests/api/browser.rs (`the_discovery_pages_show_the_apis_numbers`), which
// imports a generated month, fetches the same reports from the API and writes them to a file;
// every number the pages show must be the API's.
//
// Environment:
//   ELEVATE_URL        server base URL
//   ELEVATE_ACCOUNT    an admin or auditor account, and ELEVATE_PASSWORD its password
//   ELEVATE_EXPECTED   a JSON file: { since, until, reports: { name: Report }, evidence: { who, count } }
//   SCREENSHOT_DIR     where the pages' screenshots go
//   CHROMIUM           browser executable (default: /usr/bin/chromium)
//
// Exits 0 when every check holds, 1 with a message naming the failed step otherwise.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`environment variable ${name} is not set`);
  return value;
}

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let step = 'reading the environment';
const problems = [];

// What the page shows for an API value: numbers compared as numbers (25.0 is 25).
function same(cell, value, where) {
  if (value === null) {
    assert.equal(cell, '—', `${where}: empty`);
  } else if (typeof value === 'number') {
    assert.equal(Number(cell), value, `${where}: ${cell} is not ${value}`);
  } else if (typeof value === 'boolean') {
    assert.equal(cell, String(value), where);
  } else {
    assert.equal(cell, value, where);
  }
}

async function main() {
  const config = {
    url: env('ELEVATE_URL').replace(/\/+$/, ''),
    account: env('ELEVATE_ACCOUNT'),
    password: env('ELEVATE_PASSWORD'),
    screenshots: env('SCREENSHOT_DIR'),
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  };
  const expected = JSON.parse(readFileSync(env('ELEVATE_EXPECTED'), 'utf8'));
  mkdirSync(config.screenshots, { recursive: true });
  step = `launching ${config.executablePath}`;
  const browser = await chromium.launch({ executablePath: config.executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('dialog', (d) => { problems.push(`dialog ${d.message()}`); d.dismiss().catch(() => {}); });
    page.on('console', (m) => { if (m.text().includes('Content Security Policy')) problems.push(m.text()); });

    step = 'signing in';
    await page.goto(`${config.url}/portal/login`);
    await page.locator('input[name=account]').fill(config.account);
    await page.locator('input[name=password]').fill(config.password);
    await Promise.all([page.waitForURL((u) => u.pathname === '/portal/'), page.getByRole('button', { name: 'Sign in' }).click()]);

    step = 'opening Discovery from the navigation';
    await Promise.all([page.waitForURL((u) => u.pathname === '/portal/discovery'), page.locator('header nav a', { hasText: 'Discovery' }).click()]);

    for (const [name, report] of Object.entries(expected.reports)) {
      step = `the ${name} page`;
      await page.goto(`${config.url}/portal/discovery?report=${name}&since=${expected.since}&until=${expected.until}`);
      assert.equal((await page.locator('#title').textContent()).trim(), report.title);
      assert.equal(await page.locator('.tabs a.current').count(), 1, 'one tab is current');
      // The table: every row and every value, in the API's order.
      const cells = await page.locator('#report tbody tr').evaluateAll((rows) => rows.map((r) =>
        Object.fromEntries([...r.querySelectorAll('td')].map((td) => [td.dataset.key, td.textContent.trim()]))));
      assert.equal(cells.length, report.rows.length, `${name}: as many rows as the API`);
      report.rows.forEach((row, i) => {
        for (const c of report.columns) same(cells[i][c.key], row[c.key], `${name} row ${i + 1} ${c.key}`);
      });
      // The facts.
      for (const [k, v] of Object.entries(report.facts)) {
        same((await page.locator(`#facts dd[data-fact="${k}"]`).textContent()).trim(), v, `${name} fact ${k}`);
      }
      // The chart: drawn, and its numbers are the table's.
      if (name === 'timing') {
        assert.equal(await page.locator('#heatmap rect').count(), 7 * 24, 'a cell per weekday and hour');
      } else {
        const values = await page.locator('#chart text[data-value]').evaluateAll((t) => t.map((x) => Number(x.dataset.value)));
        assert.ok(values.length > 0 && values.length <= 15, `${name}: the chart has bars`);
        if (name === 'segments') {
          assert.deepEqual(values, ['high', 'moderate', 'low'].map((s) => report.facts[s]));
        } else {
          const key = { applications: 'users', users: 'runs', departments: 'programs', system: 'runs' }[name];
          assert.deepEqual(values, report.rows.slice(0, 15).map((r) => r[key]), `${name}: bars are the table's`);
        }
      }
      await page.screenshot({ path: join(config.screenshots, `discovery-${name}.png`), fullPage: true });
    }

    step = "following a person's link to their evidence";
    await page.goto(`${config.url}/portal/discovery?report=segments&since=${expected.since}&until=${expected.until}`);
    const first = page.locator('#report tbody tr').first().locator('td[data-key=who] a');
    assert.equal((await first.textContent()).trim(), expected.evidence.who);
    await Promise.all([page.waitForURL((u) => u.pathname.startsWith('/portal/discovery/people/')), first.click()]);
    assert.equal(Number((await page.locator('#count').textContent()).trim()), expected.evidence.count);
    assert.equal(await page.locator('#evidence tbody tr').count(), expected.evidence.count);
    await page.screenshot({ path: join(config.screenshots, 'discovery-evidence.png'), fullPage: true });

    step = 'changing the thresholds in the form';
    await page.goto(`${config.url}/portal/discovery?report=segments&since=${expected.since}&until=${expected.until}`);
    await page.locator('input[name=moderate]').fill('2');
    await page.locator('input[name=high]').fill('8');
    await Promise.all([page.waitForURL((u) => u.search.includes('high=8')), page.getByRole('button', { name: 'Show' }).click()]);
    same((await page.locator('#facts dd[data-fact="high"]').textContent()).trim(), expected.strict_high, 'people high at 8');
    assert.deepEqual(problems, [], 'no script ran and nothing was blocked');
  } finally {
    await browser.close();
  }
}

const started = Date.now();
try {
  await main();
  console.log(`discovery.mjs: all checks passed in ${Date.now() - started} ms`);
} catch (error) {
  console.error(`discovery.mjs: FAILED while ${step}:\n${error?.stack ?? error}`);
  process.exitCode = 1;
}
