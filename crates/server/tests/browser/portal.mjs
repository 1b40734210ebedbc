// The approver portal in a real browser: Debian's headless Chromium driven by playwright-core.
// Run by crates/server/tests/api/browser.rs, which starts the server, creates the accounts and one
// pending request whose argv holds `<script>` and an escape character, then checks the outcome
// through the API.
//
// Environment:
//   ELEVATE_URL               server base URL, e.g. http://127.0.0.1:41234
//   ELEVATE_ACCOUNT           approver account (in the group the request is routed to)
//   ELEVATE_PASSWORD          its password
//   ELEVATE_AUDITOR           account with the auditor (or admin) role, for the audit page
//   ELEVATE_AUDITOR_PASSWORD  its password (default: ELEVATE_PASSWORD)
//   ELEVATE_REQUEST_ID        the pending request to approve
//   ELEVATE_COMMENT           the comment to type (default: "approved from the browser test")
//   SCREENSHOT_DIR            where queue.png, detail-pending.png, detail-approved.png and
//                             audit.png go
//   CHROMIUM                  browser executable (default: /usr/bin/chromium)
//   ELEVATE_DEVICE_TOKEN      an enrolled device's token, to ask for a request while the queue
//                             is open (it must appear there without a reload)
//   ELEVATE_LIVE_REQUEST      the JSON body of that request
//
// Exits 0 when every check holds, 1 with a message naming the failed step otherwise.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    throw new Error(`environment variable ${name} is not set`);
  }
  return value;
}

function readConfig() {
  return {
    url: env('ELEVATE_URL').replace(/\/+$/, ''),
    account: env('ELEVATE_ACCOUNT'),
    password: env('ELEVATE_PASSWORD'),
    auditor: env('ELEVATE_AUDITOR'),
    auditorPassword: env('ELEVATE_AUDITOR_PASSWORD', process.env.ELEVATE_PASSWORD),
    requestId: env('ELEVATE_REQUEST_ID'),
    comment: env('ELEVATE_COMMENT', 'approved from the browser test'),
    screenshots: env('SCREENSHOT_DIR'),
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    deviceToken: env('ELEVATE_DEVICE_TOKEN'),
    liveRequest: env('ELEVATE_LIVE_REQUEST'),
  };
}

// Flags that work on a closed network as root: no sandbox (root), no GPU, and nothing that phones
// home. Playwright adds its own --headless and a fresh, empty --user-data-dir.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let config;
let step = 'reading the environment';
const dialogs = [];
const pageErrors = [];
const blockedByCsp = [];

// Fails if a dialog opened, a script threw, or the Content-Security-Policy had to block something
// (which would mean untrusted text reached the page as markup): untrusted text must never run.
function noScriptRan() {
  assert.deepEqual(dialogs, [], `a dialog fired (untrusted text ran as script): ${dialogs.join(' | ')}`);
  assert.deepEqual(pageErrors, [], `a script error on the page: ${pageErrors.join(' | ')}`);
  assert.deepEqual(blockedByCsp, [], `the CSP blocked something on the page: ${blockedByCsp.join(' | ')}`);
}

async function signIn(page, account, password) {
  await page.goto(`${config.url}/portal/`);
  assert.match(new URL(page.url()).pathname, /^\/portal\/login$/, 'signed out, the queue sends you to sign in');
  await page.locator('input[name=account]').fill(account);
  await page.locator('input[name=password]').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/portal/'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  assert.equal(
    (await page.locator('header form.logout span').textContent())?.trim(),
    account,
    'the header names the signed-in account',
  );
}

async function signOut(page) {
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/portal/login'),
    page.getByRole('button', { name: 'Sign out' }).click(),
  ]);
}

async function main() {
  mkdirSync(config.screenshots, { recursive: true });
  step = `launching ${config.executablePath}`;
  const browser = await chromium.launch({
    executablePath: config.executablePath,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    page.on('dialog', async (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      await dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) blockedByCsp.push(message.text());
    });

    step = `signing in as ${config.account} through the form`;
    await signIn(page, config.account, config.password);

    step = 'finding the request in the pending queue';
    assert.equal(await page.locator('main h1').textContent(), 'Waiting for a decision', 'the pending queue');
    const href = `a[href="/portal/requests/${config.requestId}"]`;
    const link = page.locator(`main table ${href}`);
    assert.equal(await link.count(), 1, `the queue lists request ${config.requestId} once`);
    const row = page.locator('main tbody tr', { has: page.locator(href) });
    assert.equal((await row.locator('.state').textContent())?.trim(), 'pending');
    const queued = await row.locator('code').textContent();
    assert.ok(queued.includes('<script>alert(1)</script>'), `the queue shows the argv as text: ${queued}`);
    assert.equal(await page.locator('main script').count(), 0, 'no script element in the queue');
    noScriptRan();
    await page.screenshot({ path: join(config.screenshots, 'queue.png'), fullPage: true });

    step = 'seeing a new request appear in the open queue without a reload (server-sent events)';
    await page.locator('#live[data-live=open]').waitFor();
    await page.evaluate(() => { window.stillThisPage = true; });
    const asked = await fetch(`${config.url}/v1/requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${config.deviceToken}`, 'content-type': 'application/json' },
      body: config.liveRequest,
    });
    assert.equal(asked.status, 201, 'the device could ask');
    const live = await asked.json();
    await page.locator(`main table a[href="/portal/requests/${live.id}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.stillThisPage), true, 'the page was not reloaded');
    assert.equal(await page.locator('main script').count(), 0, 'no script element in the live list');
    noScriptRan();

    step = 'opening the request';
    await Promise.all([
      page.waitForURL((u) => u.pathname === `/portal/requests/${config.requestId}`),
      link.click(),
    ]);
    assert.equal((await page.locator('main h1 .state').textContent())?.trim(), 'pending');

    step = 'checking that untrusted text is shown escaped and not run';
    const what = await page.locator('dl.facts dt:text-is("What") + dd code').textContent();
    assert.ok(what.includes('<script>alert(1)</script>'), `the argv is shown as text: ${what}`);
    assert.ok(what.includes('\\u{001b}'), `the escape character is shown visibly: ${what}`);
    const mainText = await page.locator('main').textContent();
    assert.ok(!mainText.includes('\u001b'), 'no raw escape character reaches the page');
    assert.equal(await page.locator('main script').count(), 0, 'no script element on the detail page');
    assert.equal(await page.locator('main img').count(), 0, 'no img element from untrusted text');
    noScriptRan();
    await page.screenshot({ path: join(config.screenshots, 'detail-pending.png'), fullPage: true });

    step = 'approving with a comment';
    const form = page.locator('form.decide');
    assert.equal(await form.locator('input[type=hidden][name=csrf]').count(), 1, 'the form carries a CSRF token');
    await form.locator('textarea[name=comment]').fill(config.comment);
    const [decided] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === `/portal/requests/${config.requestId}/decide`),
      form.locator('button[name=verdict][value=approve]').click(),
    ]);
    assert.equal(decided.status(), 303, 'the decision is accepted and redirects to the request');

    step = 'checking the request is now approved';
    // The redirect lands on the same URL, so wait for the new page rather than for the URL.
    await page.locator('main h1 .state.approved').waitFor();
    assert.equal((await page.locator('main h1 .state').textContent())?.trim(), 'approved');
    const decisions = (await page.locator('main ul li').allTextContents()).map((t) => t.trim());
    assert.ok(
      decisions.some((d) => d.startsWith(`${config.account} approved at `) && d.endsWith(`: ${config.comment}`)),
      `the decision lists "${config.account} approved" with the comment: ${JSON.stringify(decisions)}`,
    );
    assert.equal(await page.locator('form.decide').count(), 0, 'nothing left to decide');
    assert.ok(
      (await page.locator('main p.note').textContent()).includes('approved'),
      'the page says why there is nothing to decide',
    );
    noScriptRan();
    await page.screenshot({ path: join(config.screenshots, 'detail-approved.png'), fullPage: true });

    step = 'checking the request left the pending queue';
    await page.getByRole('link', { name: 'Pending' }).click();
    await page.waitForURL((u) => u.pathname === '/portal/');
    assert.equal(
      await page.locator(`main a[href="/portal/requests/${config.requestId}"]`).count(),
      0,
      'the approved request is no longer pending',
    );

    step = `opening the audit page as ${config.account}`;
    const refused = await page.goto(`${config.url}/portal/audit`);
    assert.equal(refused.status(), 403, `${config.account} is no auditor`);

    step = `signing out, then in as ${config.auditor}`;
    await page.goto(`${config.url}/portal/`); // the error page has no sign-out button
    await signOut(page);
    await signIn(page, config.auditor, config.auditorPassword);

    step = 'checking the audit page';
    const audit = await page.goto(`${config.url}/portal/audit`);
    assert.equal(audit.status(), 200);
    const chain = (await page.locator('main p.chain').textContent()).trim();
    assert.match(chain, /^Chain intact: \d+ records verified/, `the chain status: ${chain}`);
    const actions = await page.locator('main tbody tr td:nth-child(4)').allTextContents();
    for (const action of ['request.created', 'request.approval_given']) {
      assert.ok(actions.includes(action), `the audit trail lists ${action}: ${JSON.stringify(actions)}`);
    }
    noScriptRan();
    await page.screenshot({ path: join(config.screenshots, 'audit.png'), fullPage: true });

    step = 'reading the request on a phone-sized screen';
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    phone.setDefaultTimeout(15_000);
    const small = await phone.newPage();
    small.on('pageerror', (error) => pageErrors.push(String(error)));
    await signIn(small, config.auditor, config.auditorPassword);
    await small.goto(`${config.url}/portal/requests/${config.requestId}`);
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the request page fits the phone's width (overflows by ${overflow}px)`);
    const facts = await small.locator('dl.facts dt').first().boundingBox();
    const fact = await small.locator('dl.facts dd').first().boundingBox();
    assert.ok(fact.y > facts.y, 'facts stack under their labels on a phone');
    noScriptRan();
    await small.screenshot({ path: join(config.screenshots, 'phone.png'), fullPage: true });
    await phone.close();
  } finally {
    await browser.close();
  }
}

const started = Date.now();
try {
  config = readConfig();
  await main();
  console.log(`portal.mjs: all checks passed in ${Date.now() - started} ms; screenshots in ${config.screenshots}`);
} catch (error) {
  console.error(`portal.mjs: FAILED while ${step}:\n${error?.stack ?? error}`);
  process.exitCode = 1;
}
