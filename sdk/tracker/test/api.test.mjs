// The stub queue, actions (eddy.on), unknown keys and robustness.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { UUID, setup, waitFor, quietPeriod } from '../testkit/harness.mjs';

describe('api', () => {
  let env;
  before(async () => (env = await setup()));
  afterEach(() => env.reset());
  after(() => env.close());

  test('replays calls made through the stub array, in order', async () => {
    env.site.head = `<script>
      window.eddy = window.eddy || [];
      eddy.push(['identify', 'user-7', { plan: 'pro' }]);
      eddy.push(['track', 'Early Click', { a: 1 }]);
      eddy.push(['page', 'Pricing', { tier: 2 }]);
    </script>`;
    const { page } = await env.visit('/pricing');
    await waitFor(() => env.eddy.messages.length === 4, 'the replayed calls');
    const [view, identify, track, named] = env.eddy.messages;
    assert.deepEqual(
      [view.type, identify.type, track.event, named.name],
      ['page', 'identify', 'Early Click', 'Pricing'],
    );
    assert.equal(env.eddy.requests.length, 1, 'one batch');
    assert.deepEqual(identify.traits, { plan: 'pro' });
    assert.deepEqual(track.properties, { a: 1 });
    assert.equal(track.userId, 'user-7');
    assert.equal(named.properties.tier, 2);
    assert.equal(named.properties.path, '/pricing');

    // push keeps working once loaded.
    await page.evaluate(() => window.eddy.push(['track', 'Late Push']));
    await waitFor(() => env.eddy.tracks('Late Push').length, 'the pushed track');
  });

  test('actions reach every eddy.on listener; a throwing one does not stop the others', async () => {
    const { page } = await env.visit('/');
    const aid = await page.evaluate(() => localStorage.getItem('eddy_aid'));
    await page.evaluate(() => {
      window.received = [];
      window.eddy.on('action', () => {
        throw new Error('a broken listener');
      });
      window.eddy.on('action', (a) => window.received.push(a));
    });
    await waitFor(() => env.eddy.streams.some((s) => s.anonymousId === aid && !s.closed), 'the actions stream');
    assert.equal(env.eddy.streams.length, 1, 'one stream for all listeners');
    assert.equal(env.eddy.streams[0].writeKey, 'test_key');
    const action = { id: 'act_1', type: 'show_banner', data: { text: 'Hello' }, at: '2026-01-01T00:00:00Z' };
    env.eddy.sendAction(aid, action);
    await waitFor(() => page.evaluate(() => window.received.length === 1), 'the action');
    assert.deepEqual(await page.evaluate(() => window.received), [action]);

    // reset: a new anonymous id, and the stream reopens for it.
    await page.evaluate(() => window.eddy.reset());
    const newAid = await page.evaluate(() => localStorage.getItem('eddy_aid'));
    assert.notEqual(newAid, aid);
    await waitFor(() => env.eddy.streams.some((s) => s.anonymousId === newAid), 'the stream of the new id');
    await waitFor(() => env.eddy.streams.find((s) => s.anonymousId === aid).closed, 'the old stream closed');
    env.eddy.sendAction(newAid, { ...action, id: 'act_2' });
    await waitFor(() => page.evaluate(() => window.received.length === 2), 'the second action');
  });

  test('an action delivered again (a retried batch, a reloaded page) reaches the visitor once', async () => {
    const { page } = await env.visit('/');
    const aid = await page.evaluate(() => localStorage.getItem('eddy_aid'));
    const listen = () =>
      page.evaluate(() => {
        window.received = [];
        window.eddy.on('action', (a) => window.received.push(a.type));
      });
    await listen();
    await waitFor(() => env.eddy.streams.some((s) => s.anonymousId === aid && !s.closed), 'the actions stream');
    const at = '2026-01-01T00:00:00Z';
    env.eddy.sendAction(aid, { id: '1-0', message_id: 'act-a', type: 'first', data: {}, at });
    env.eddy.sendAction(aid, { id: '2-0', message_id: 'act-a', type: 'first', data: {}, at });
    env.eddy.sendAction(aid, { id: '3-0', message_id: 'act-b', type: 'second', data: {}, at });
    await waitFor(() => page.evaluate(() => window.received.length === 2), 'two actions');
    await page.reload();
    await listen();
    await waitFor(() => env.eddy.streams.filter((s) => s.anonymousId === aid && !s.closed).length === 1, 'the stream after reload');
    env.eddy.sendAction(aid, { id: '4-0', message_id: 'act-b', type: 'second', data: {}, at });
    env.eddy.sendAction(aid, { id: '5-0', message_id: 'act-c', type: 'third', data: {}, at });
    await waitFor(() => page.evaluate(() => window.received.length >= 1), 'the new action');
    assert.deepEqual(await page.evaluate(() => window.received), ['third']);
  });

  test('actions wait for consent', async () => {
    env.eddy.keys.set('consent_key', { required: ['analytics'], purposes: ['analytics'], allowNecessaryOnly: false });
    const { page } = await env.visit('/?key=consent_key');
    await page.evaluate(() => window.eddy.on('action', () => {}));
    await quietPeriod();
    assert.equal(env.eddy.streams.length, 0);
    await page.evaluate(() => window.eddy.consent({ analytics: true }));
    await waitFor(() => env.eddy.streams.length === 1, 'the stream after consent');
  });

  test('an unknown or revoked key warns once and sends nothing', async () => {
    const { context, page, logs } = await env.visit('/?key=revoked');
    await page.evaluate(() => {
      window.eddy.track('Ignored');
      window.eddy.identify('u1');
      window.eddy.on('action', () => {});
    });
    await quietPeriod();
    assert.equal(env.eddy.requests.length, 0);
    assert.equal(env.eddy.streams.length, 0);
    assert.equal(logs.filter((l) => l.includes('[eddy]')).length, 1, logs.join('\n'));
    assert.deepEqual(await context.cookies(), []);
  });

  test('never throws into the page', async () => {
    const { page, logs } = await env.visit('/');
    const thrown = await page.evaluate(() => {
      const cycle = {};
      cycle.self = cycle;
      try {
        window.eddy.track('Cycle', cycle);
        window.eddy.identify('u', { big: BigInt(1) });
        window.eddy.push('not an array');
        window.eddy.consent(null);
        return null;
      } catch (e) {
        return String(e);
      }
    });
    assert.equal(thrown, null);
    await page.evaluate(() => window.eddy.track('Still Working'));
    await waitFor(() => env.eddy.tracks('Still Working').length, 'the next track');
    assert.equal(env.eddy.tracks('Cycle').length, 0);
    assert.ok(logs.some((l) => l.includes('[eddy]')));
    const [m] = env.eddy.tracks('Still Working');
    assert.match(m.messageId, UUID);
  });
});
