// The consent gate: nothing sent or stored before the required purposes are granted.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, waitFor, quietPeriod } from '../testkit/harness.mjs';

const CONSENT_EVENT = 'Segment Consent Preference Updated';
const purposes = ['necessary', 'analytics', 'marketing', 'personalization'];
const storage = (page) =>
  page.evaluate(() => ({
    aid: localStorage.getItem('eddy_aid'),
    queue: localStorage.getItem('eddy_queue'),
    consent: localStorage.getItem('eddy_consent'),
  }));
const cookie = async (context, name) => (await context.cookies()).find((c) => c.name === name)?.value;
const summary = (m) => [m.event || m.type, m.context.consent.categoryPreferences];

describe('consent', () => {
  let env;
  before(async () => (env = await setup()));
  afterEach(() => env.reset());
  after(() => env.close());

  const requireAnalytics = (allowNecessaryOnly = false) =>
    env.eddy.keys.set('consent_key', { required: ['analytics'], purposes, allowNecessaryOnly });

  test('holds everything until the required purpose is granted, then sends it with the new consent', async () => {
    requireAnalytics();
    const { context, page } = await env.visit('/?key=consent_key');
    await page.evaluate(() => window.eddy.track('Held Click', { n: 1 }));
    await quietPeriod();
    assert.equal(env.eddy.requests.length, 0, 'nothing sent before consent');
    assert.deepEqual(await storage(page), { aid: null, queue: null, consent: null }, 'nothing stored');
    assert.equal(await cookie(context, 'eddy_aid'), undefined);

    // A purpose that is not required: the update goes out, the rest still waits.
    await page.evaluate(() => window.eddy.consent({ marketing: true }));
    await waitFor(() => env.eddy.messages.length === 1, 'the first consent update');
    await quietPeriod();
    assert.deepEqual(env.eddy.messages.map(summary), [[CONSENT_EVENT, { marketing: true }]]);

    await page.evaluate(() => window.eddy.consent({ analytics: true }));
    await waitFor(() => env.eddy.messages.length === 4, 'the held messages');
    const granted = { marketing: true, analytics: true };
    assert.deepEqual(env.eddy.messages.map(summary), [
      [CONSENT_EVENT, { marketing: true }],
      [CONSENT_EVENT, granted],
      ['page', granted],
      ['Held Click', granted],
    ]);
    const aid = env.eddy.messages[0].anonymousId;
    assert.ok(env.eddy.messages.every((m) => m.anonymousId === aid));
    assert.deepEqual(env.eddy.tracks('Held Click')[0].properties, { n: 1 });
    assert.equal(await cookie(context, 'eddy_aid'), aid, 'the id is stored once granted');
    assert.deepEqual(JSON.parse(decodeURIComponent(await cookie(context, 'eddy_consent'))), granted);
    assert.deepEqual(JSON.parse((await storage(page)).consent), granted);

    // The stored consent holds on the next page.
    await page.reload();
    await waitFor(() => env.eddy.pages().length === 2, 'the next page view');
    assert.deepEqual(summary(env.eddy.pages()[1]), ['page', granted]);
    assert.equal(env.eddy.pages()[1].anonymousId, aid);
  });

  test('a refusal drops the held messages; only the consent update goes out', async () => {
    requireAnalytics();
    const { context, page } = await env.visit('/?key=consent_key');
    await page.evaluate(() => {
      window.eddy.track('Never Sent');
      window.eddy.consent({ analytics: false, marketing: false });
      window.eddy.track('Also Never Sent');
    });
    await waitFor(() => env.eddy.messages.length === 1, 'the consent update');
    await quietPeriod();
    assert.deepEqual(env.eddy.messages.map(summary), [[CONSENT_EVENT, { analytics: false, marketing: false }]]);
    assert.equal(env.eddy.requests.length, 1);
    assert.equal(await cookie(context, 'eddy_aid'), undefined, 'no id stored after a refusal');
    assert.equal((await storage(page)).aid, null);
  });

  test('allowNecessaryOnly sends with the consent as it is', async () => {
    requireAnalytics(true);
    const { page } = await env.visit('/?key=consent_key');
    await waitFor(() => env.eddy.pages().length === 1, 'the page view');
    await page.evaluate(() => {
      window.eddy.consent({ analytics: false });
      window.eddy.track('Necessary Only');
    });
    await waitFor(() => env.eddy.messages.length === 3, 'the consent update and the track');
    assert.deepEqual(env.eddy.messages.map(summary), [
      ['page', {}],
      [CONSENT_EVENT, { analytics: false }],
      ['Necessary Only', { analytics: false }],
    ]);
  });

  test('without consent rules every message carries the stored preferences', async () => {
    const { page, logs } = await env.visit('/');
    await page.evaluate(() => {
      window.eddy.consent({ marketing: false, personalization: true });
      window.eddy.consent({ marketing: true, nonsense: 'yes' });
      window.eddy.track('After');
    });
    await waitFor(() => env.eddy.tracks('After').length, 'the track');
    const prefs = { marketing: true, personalization: true };
    assert.deepEqual(env.eddy.messages.map(summary), [
      ['page', {}],
      [CONSENT_EVENT, { marketing: false, personalization: true }],
      [CONSENT_EVENT, prefs],
      ['After', prefs],
    ]);
    assert.ok(logs.some((l) => l.includes('nonsense')), logs.join('\n'));
  });
});
