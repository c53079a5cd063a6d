// Automatic page views, single-page-app navigations and the visitor's ids.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ISO, UUID, setup, waitFor, quietPeriod } from '../testkit/harness.mjs';

const pkg = JSON.parse(await (await import('node:fs/promises')).readFile(new URL('../package.json', import.meta.url), 'utf8'));

describe('page views and identity', () => {
  let env;
  before(async () => (env = await setup()));
  afterEach(() => env.reset());
  after(() => env.close());

  test('sends an automatic page view on load as a CORS-simple text/plain batch', async () => {
    const { page } = await env.visit('/shop?q=1');
    const req = await waitFor(() => env.eddy.requests[0], 'the first batch');
    const browser = await page.evaluate(() => ({
      userAgent: navigator.userAgent,
      locale: navigator.language,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      screen: { width: screen.width, height: screen.height, density: devicePixelRatio },
    }));
    const cookieAid = (await page.context().cookies()).find((c) => c.name === 'eddy_aid');

    assert.equal(req.headers['content-type'], 'text/plain');
    assert.equal(env.eddy.preflights, 0);
    assert.deepEqual(Object.keys(req.body).sort(), ['batch', 'sentAt', 'writeKey']);
    assert.equal(req.body.writeKey, 'test_key');
    assert.match(req.body.sentAt, ISO);
    assert.equal(req.body.batch.length, 1);
    const [m] = req.body.batch;
    assert.match(m.messageId, UUID);
    assert.match(m.timestamp, ISO);
    const url = env.siteUrl('/shop?q=1');
    const pageInfo = { path: '/shop', referrer: '', search: '?q=1', title: 'Test page', url };
    assert.deepEqual(m, {
      type: 'page',
      messageId: m.messageId,
      timestamp: m.timestamp,
      anonymousId: cookieAid.value,
      properties: pageInfo,
      context: {
        library: { name: 'eddy.js', version: pkg.version },
        page: pageInfo,
        ...browser,
        consent: { categoryPreferences: {} },
      },
    });
  });

  test('SPA navigations: pushState, same-URL replaceState, replaceState, hash, popstate', async () => {
    const { page } = await env.visit('/');
    await waitFor(() => env.eddy.pages().length === 1, 'the load page view');
    await page.evaluate(() => history.pushState({}, '', '/products?id=7'));
    await waitFor(() => env.eddy.pages().length === 2, 'the pushState page view');
    await page.evaluate(() => history.replaceState({ changed: 'state only' }, '', location.href));
    await page.evaluate(() => history.replaceState({}, '', '/products?id=8'));
    await page.evaluate(() => (location.hash = '#reviews'));
    await waitFor(() => env.eddy.pages().length === 4, 'the replaceState and hash page views');
    await page.evaluate(() => history.back());
    await waitFor(() => env.eddy.pages().length === 5, 'the popstate page view');
    await quietPeriod();

    const views = env.eddy.pages().map((m) => [m.properties.path, m.properties.search, m.properties.url, m.properties.referrer]);
    const u = env.siteUrl;
    assert.deepEqual(views, [
      ['/', '', u('/'), ''],
      ['/products', '?id=7', u('/products?id=7'), u('/')],
      ['/products', '?id=8', u('/products?id=8'), u('/products?id=7')],
      ['/products', '?id=8', u('/products?id=8#reviews'), u('/products?id=8')],
      ['/products', '?id=8', u('/products?id=8'), u('/products?id=8#reviews')],
    ]);
    // The context carries the SPA page too.
    assert.deepEqual(env.eddy.pages()[1].context.page, env.eddy.pages()[1].properties);
  });

  test('the anonymous id is the eddy_aid cookie, mirrored in localStorage, and survives reloads', async () => {
    const { context, page } = await env.visit('/');
    await waitFor(() => env.eddy.pages().length === 1, 'the first page view');
    await page.reload();
    await waitFor(() => env.eddy.pages().length === 2, 'the page view after reload');
    const second = await context.newPage(); // another tab
    await env.open(second, '/other');
    await waitFor(() => env.eddy.pages().length === 3, 'the page view of the second tab');

    const cookie = (await context.cookies()).find((c) => c.name === 'eddy_aid');
    assert.match(cookie.value, UUID);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/');
    assert.equal(cookie.secure, false);
    const days = (cookie.expires - Date.now() / 1000) / 86400;
    assert.ok(days > 364 && days <= 365, `cookie lasts a year, not ${days} days`);
    assert.equal(await page.evaluate(() => localStorage.getItem('eddy_aid')), cookie.value);
    assert.deepEqual(
      env.eddy.pages().map((m) => m.anonymousId),
      [cookie.value, cookie.value, cookie.value],
    );

    // With only localStorage left (cookie cleared), the same id is reused.
    await context.clearCookies();
    await page.reload();
    await waitFor(() => env.eddy.pages().length === 4, 'the page view after clearing cookies');
    assert.equal(env.eddy.pages()[3].anonymousId, cookie.value);
  });

  test('identify persists the user id (eddy_uid); reset forgets it and starts a new anonymous id', async () => {
    const { context, page } = await env.visit('/');
    await page.evaluate(() => window.eddy.identify('user-42', { plan: 'pro' }));
    await page.reload();
    await env.open(page);
    await page.evaluate(() => window.eddy.track('After Reload'));
    await waitFor(() => env.eddy.tracks('After Reload').length, 'the track after reload');

    const identify = env.eddy.messages.find((m) => m.type === 'identify');
    assert.equal(identify.userId, 'user-42');
    assert.deepEqual(identify.traits, { plan: 'pro' });
    assert.equal(env.eddy.tracks('After Reload')[0].userId, 'user-42');
    assert.equal((await context.cookies()).find((c) => c.name === 'eddy_uid').value, 'user-42');

    const before = env.eddy.tracks('After Reload')[0].anonymousId;
    await page.evaluate(() => {
      window.eddy.reset();
      window.eddy.track('After Reset');
    });
    const [m] = await waitFor(() => env.eddy.tracks('After Reset').length && env.eddy.tracks('After Reset'), 'the track after reset');
    assert.equal(m.userId, undefined);
    assert.match(m.anonymousId, UUID);
    assert.notEqual(m.anonymousId, before);
    const cookies = await context.cookies();
    assert.equal(cookies.find((c) => c.name === 'eddy_aid').value, m.anonymousId);
    assert.equal(cookies.find((c) => c.name === 'eddy_uid'), undefined);
  });
});
