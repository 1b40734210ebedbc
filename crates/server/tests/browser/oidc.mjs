// Single sign-on in a real browser against a real OpenID provider: the npm package
// oidc-provider (the certified Node.js implementation) runs here, Debian's Chromium is driven by
// playwright-core. Run by crates/server/tests/api/sso.rs, which starts Elevate (configured for
// this provider) with two pending requests and moves its clock when told to.
//
// Environment:
//   OIDC_PORT            where the provider listens (issuer http://127.0.0.1:OIDC_PORT)
//   OIDC_SECRET          the client secret of client "elevate"
//   ELEVATE_URL          Elevate's base URL (its callback is ELEVATE_URL/portal/oidc/callback)
//   ELEVATE_PLAIN        a pending request of a rule without reauth
//   ELEVATE_FRESH        a pending request of a rule with reauth = "5m"
//   CHROMIUM             browser executable (default /usr/bin/chromium)
//
// Talks to the test on stdout/stdin: prints `LISTENING` once the provider answers, `CLOCK +600`
// and `CLOCK now` when Elevate's clock must move (and waits for a line back), and `OK` at the
// end. Exits 1 with the failed step otherwise.

import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import Provider from 'oidc-provider';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
};
const port = Number(env('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const elevate = env('ELEVATE_URL').replace(/\/+$/, '');
const callback = `${elevate}/portal/oidc/callback`;

// Who signs in, and their groups at the provider.
const GROUPS = {
  alice: ['it-helpdesk', 'staff'],
  mallory: ['staff'],
};

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'elevate', client_secret: env('OIDC_SECRET'), redirect_uris: [callback],
      grant_types: ['authorization_code'], response_types: ['code'] },
    // Another application of the same provider, allowed to send people to Elevate's address.
    { client_id: 'other-app', client_secret: 'other-secret', redirect_uris: [callback],
      grant_types: ['authorization_code'], response_types: ['code'] },
  ],
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, preferred_username: sub, name: sub, email: `${sub}@example.test`,
      groups: GROUPS[sub] ?? [] }),
  }),
  cookies: { keys: ['elevate-test-cookie-key'] },
});
const server = provider.listen(port, '127.0.0.1');

const lines = createInterface({ input: process.stdin });
const replies = lines[Symbol.asyncIterator]();
async function ask(what) {
  console.log(what);
  const { value, done } = await replies.next();
  assert.ok(!done && value.trim() === 'ok', `the test did not answer ${what}`);
}

let step = 'starting the provider';
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  await new Promise((resolve) => (server.listening ? resolve() : server.once('listening', resolve)));
  console.log('LISTENING');
  const context = await browser.newContext();
  const page = await context.newPage();

  // At the provider: its sign-in form (any password), then its consent form when it asks.
  async function atProvider(login) {
    await page.locator('input[name=login]').waitFor();
    await page.locator('input[name=login]').fill(login);
    await page.locator('input[name=password]').fill('any');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await page.waitForURL((u) => u.origin === elevate || u.pathname.includes('/interaction/'));
    if (new URL(page.url()).origin !== elevate) {
      await page.getByRole('button', { name: 'Continue' }).click();
    }
    await page.waitForURL((u) => u.origin === elevate && u.pathname !== '/portal/oidc/callback', { timeout: 15_000 });
  }

  step = 'signing in with the provider';
  await page.goto(`${elevate}/portal/`);
  assert.equal(new URL(page.url()).pathname, '/portal/login');
  await page.locator('#sso').click();
  await atProvider('alice');
  assert.equal(new URL(page.url()).pathname, '/portal/', 'back at the queue');
  assert.equal((await page.locator('header form.logout span').textContent())?.trim(), 'alice',
    'signed in as the provider named her, with the approver role its groups map to');

  step = 'approving a request of a rule without reauth';
  async function approve(id) {
    await page.goto(`${elevate}/portal/requests/${id}`);
    const form = page.locator('form.decide');
    await form.locator('textarea[name=comment]').fill('approved after single sign-on');
    await form.locator('button[name=verdict][value=approve]').click();
    await page.waitForLoadState();
  }
  await approve(env('ELEVATE_PLAIN'));
  await page.locator('main h1 .state.approved').waitFor();

  step = 'a sign-in older than the rule allows';
  await ask('CLOCK +600');
  await approve(env('ELEVATE_FRESH'));
  await page.waitForURL((u) => u.pathname === '/portal/login');
  assert.match(await page.locator('.flash').textContent(), /recent sign-in/);
  await ask('CLOCK now');

  step = 'a fresh sign-in at the provider';
  await page.locator('#sso').click();
  await atProvider('alice'); // prompt=login: the provider asks again although she has a session
  assert.equal(new URL(page.url()).pathname, `/portal/requests/${env('ELEVATE_FRESH')}`);
  await approve(env('ELEVATE_FRESH'));
  await page.locator('main h1 .state.approved').waitFor();

  step = 'a provider account without an Elevate role';
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(`${elevate}/portal/login`);
  await p2.locator('#sso').click();
  await p2.locator('input[name=login]').fill('mallory');
  await p2.locator('input[name=password]').fill('any');
  await p2.getByRole('button', { name: 'Sign-in' }).click();
  await p2.getByRole('button', { name: 'Continue' }).click();
  await p2.waitForURL((u) => u.pathname === '/portal/oidc/callback');
  assert.match(await p2.locator('.flash').textContent(), /no Elevate role/);

  step = 'a code the provider issued to another application';
  // Elevate's own start (its state, nonce and PKCE challenge), sent to the provider as
  // another client: the provider sends a code back to Elevate, which must not take it.
  await p2.goto(`${elevate}/portal/login`);
  const start = await p2.locator('#sso').getAttribute('href');
  const response = await p2.request.get(`${elevate}${start}`, { maxRedirects: 0 });
  const location = new URL(response.headers().location);
  location.searchParams.set('client_id', 'other-app');
  await p2.goto(location.toString());
  if (new URL(p2.url()).origin !== elevate) {
    await p2.getByRole('button', { name: 'Continue' }).click(); // consent for the other app
  }
  await p2.waitForURL((u) => u.pathname === '/portal/oidc/callback');
  assert.match(await p2.locator('.flash').textContent(), /refused the sign-in code|another client/);
  assert.equal(await p2.locator('header form.logout').count(), 0, 'not signed in');

  step = 'an answer replayed in another browser';
  const third = await browser.newContext();
  const p3 = await third.newPage();
  await p3.goto(`${elevate}/portal/oidc/callback?code=x&state=y`);
  assert.match(await p3.locator('.flash').textContent(), /did not start a sign-in/);

  console.log('OK');
} catch (e) {
  console.error(`failed while ${step}: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
  lines.close();
}
