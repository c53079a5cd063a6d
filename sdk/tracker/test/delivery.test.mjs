// Delivery: batching, the persisted queue, offline, retries, refusals, beacons.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, waitFor, quietPeriod } from '../testkit/harness.mjs';

const queued = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('eddy_queue') || '[]'));
const events = (body) => body.batch.map((m) => m.event || m.type);
const hidePage = (page) =>
  page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
const showPage = (page) =>
  page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    document.dispatchEvent(new Event('visibilitychange'));
  });

describe('delivery', () => {
  let env;
  before(async () => (env = await setup()));
  afterEach(() => env.reset());
  after(() => env.close());

  /** A visitor whose load page view was delivered. */
  async function loaded(path = '/') {
    const v = await env.visit(path);
    await waitFor(() => env.eddy.pages().length === 1, 'the load page view');
    return v;
  }

  test('batches up to 20 messages', async () => {
    const { page } = await loaded();
    await page.evaluate(() => {
      for (let i = 0; i < 45; i++) window.eddy.track('Item ' + i, { i });
    });
    await waitFor(() => env.eddy.tracks().length === 45, '45 tracks');
    assert.deepEqual(env.eddy.requests.slice(1).map((r) => r.body.batch.length), [20, 20, 5]);
    assert.deepEqual(
      env.eddy.tracks().map((m) => m.properties.i),
      Array.from({ length: 45 }, (_, i) => i),
    );
    assert.deepEqual(await queued(page), []);
  });

  test('queues while offline and delivers at once when back online', async () => {
    const { context, page } = await loaded();
    await context.setOffline(true);
    await page.evaluate(() => window.eddy.track('Offline Click', { n: 1 }));
    // Two failed attempts: the next retry is at least 1.5 s away.
    await waitFor(() => page.evaluate(() => window.__batchFailures >= 2), 'two failed attempts');
    const [held] = await queued(page);
    assert.equal(held.event, 'Offline Click');
    assert.equal(env.eddy.tracks().length, 0);

    const online = Date.now();
    await context.setOffline(false);
    await waitFor(() => env.eddy.tracks('Offline Click').length, 'delivery after the online event');
    assert.ok(Date.now() - online < 1000, 'sent on the online event, not on the next retry');
    assert.equal(env.eddy.tracks('Offline Click')[0].messageId, held.messageId);
    assert.deepEqual(env.eddy.tracks('Offline Click')[0].properties, { n: 1 });
    await waitFor(async () => (await queued(page)).length === 0, 'an empty persisted queue');
  });

  test('retries a 503 after its Retry-After seconds, with the same messages', async () => {
    env.eddy.answers.push({ status: 503, headers: { 'Retry-After': '2' }, body: { error: { code: 'unavailable', message: 'busy' } } });
    await env.visit('/');
    await waitFor(() => env.eddy.requests.length === 2, 'the retry');
    const [failed, retried] = env.eddy.requests;
    assert.equal(failed.status, 503);
    assert.equal(retried.status, 200);
    assert.deepEqual(retried.body.batch, failed.body.batch);
    const gap = retried.at - failed.at;
    assert.ok(gap >= 1950 && gap < 3000, `retried after ${gap} ms`);
  });

  test('retries after a network error with backoff', async () => {
    const { page } = await loaded();
    await page.route('**/v1/batch', (route) => route.abort('connectionreset'), { times: 1 });
    await page.evaluate(() => window.eddy.track('Aborted Once'));
    await waitFor(() => env.eddy.tracks('Aborted Once').length, 'the retried track');
    assert.equal(await page.evaluate(() => window.__batchAttempts), 3); // page view, aborted, retried
    await quietPeriod();
    assert.equal(env.eddy.tracks('Aborted Once').length, 1);
  });

  test('a 400 with details drops only the bad messages and resends the others', async () => {
    const { page, logs } = await loaded();
    env.eddy.answers.push({
      status: 400,
      body: {
        error: {
          code: 'invalid_messages',
          message: '1 invalid message',
          details: [{ index: 1, reason: 'invalid_event', message: 'event name is too long' }],
        },
      },
    });
    await page.evaluate(() => ['Good A', 'Bad B', 'Good C'].forEach((e) => window.eddy.track(e)));
    await waitFor(() => env.eddy.requests.length === 3, 'the resend');
    await quietPeriod();
    const [, refused, resent] = env.eddy.requests;
    assert.equal(env.eddy.requests.length, 3);
    assert.deepEqual(events(refused.body), ['Good A', 'Bad B', 'Good C']);
    assert.deepEqual(resent.body.batch, [refused.body.batch[0], refused.body.batch[2]]);
    const bad = refused.body.batch[1].messageId;
    assert.ok(logs.some((l) => l.includes(bad) && l.includes('event name is too long')), logs.join('\n'));
    assert.deepEqual(await queued(page), []);
  });

  test('a 401 drops the batch with a warning and never loops', async () => {
    const { page, logs } = await loaded();
    env.eddy.answers.push({ status: 401, body: { error: { code: 'unauthorized', message: 'revoked' } } });
    await page.evaluate(() => window.eddy.track('Refused'));
    await waitFor(() => env.eddy.requests.length === 2, 'the refused batch');
    await quietPeriod();
    assert.equal(env.eddy.requests.length, 2);
    assert.ok(logs.some((l) => l.includes('HTTP 401')), logs.join('\n'));
    assert.deepEqual(await queued(page), []);
  });

  test('the persisted queue survives closing the tab and goes out from the next page', async () => {
    const { context, page } = await loaded();
    // The collector is failing and asks for a minute: no retry, and no beacon, from this tab.
    env.eddy.answers.push({ status: 503, headers: { 'Retry-After': '60' }, body: { error: { code: 'unavailable', message: 'busy' } } });
    await page.evaluate(() => window.eddy.track('Unsent', { left: true }));
    await waitFor(() => env.eddy.requests.some((r) => r.status === 503), 'the failed attempt');
    const [unsent] = await queued(page);
    assert.equal(unsent.event, 'Unsent');
    const closed = page.waitForEvent('close');
    await page.close({ runBeforeUnload: true });
    await closed;

    const { page: next } = await env.newPage(context);
    await env.open(next, '/next');
    await waitFor(() => env.eddy.tracks('Unsent').length, 'the persisted track');
    const req = env.eddy.requests.at(-1);
    assert.equal(env.eddy.requests.length, 3, 'page view, 503, then the next page');
    assert.deepEqual(events(req.body), ['Unsent', 'page']); // the old message first
    assert.deepEqual(req.body.batch[0], unsent);
    assert.equal(req.body.batch[1].properties.path, '/next');
  });

  test('the persisted queue keeps at most 500 messages, dropping the oldest with a warning', async () => {
    const { page, logs } = await loaded();
    env.eddy.answers.push({ status: 503, headers: { 'Retry-After': '60' }, body: {} });
    await page.evaluate(() => {
      for (let i = 0; i < 510; i++) window.eddy.track('Event ' + i);
    });
    const list = await queued(page);
    assert.equal(list.length, 500);
    assert.equal(list[0].event, 'Event 10');
    assert.equal(list[499].event, 'Event 509');
    assert.ok(logs.some((l) => l.includes('queue full')), logs.join('\n'));
  });

  test('sends the queue with sendBeacon when the page is hidden', async () => {
    const { page } = await loaded();
    await page.evaluate(() => {
      window.eddy.track('Leaving', { via: 'beacon' });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const [m] = await waitFor(() => env.eddy.tracks('Leaving').length && env.eddy.tracks('Leaving'), 'the beacon');
    const req = env.eddy.requests.at(-1);
    assert.equal(req.headers['sec-fetch-mode'], 'no-cors', 'a beacon, not a fetch');
    assert.equal(req.headers['content-type'], 'text/plain');
    assert.equal(req.body.writeKey, 'test_key');
    assert.deepEqual(m.properties, { via: 'beacon' });
    assert.deepEqual(await queued(page), []);
    await quietPeriod();
    assert.equal(env.eddy.tracks('Leaving').length, 1, 'not sent again by fetch');
  });

  test('navigating away sends what is queued before the next page loads', async () => {
    const { page } = await loaded('/first');
    await Promise.all([
      page.waitForURL('**/second'),
      page.evaluate(() => {
        window.eddy.track('Clicked Link');
        location.href = '/second';
      }),
    ]);
    await waitFor(() => env.eddy.tracks('Clicked Link').length && env.eddy.pages().length === 2, 'the track and the next page view');
    await quietPeriod();
    assert.equal(env.eddy.tracks('Clicked Link').length, 1);
    assert.equal(env.eddy.tracks('Clicked Link')[0].context.page.path, '/first');
    assert.equal(env.eddy.pages()[1].properties.path, '/second');
  });

  test('beacons go in chunks under 60 KB; what the browser refused is sent later', async () => {
    const { page } = await loaded();
    // A slow collector keeps the first batch of 20 in flight while the page hides.
    env.eddy.answers.push({ status: 200, body: {}, delayMs: 1500 });
    await page.evaluate(() => {
      for (let i = 0; i < 100; i++) window.eddy.track('Big ' + i, { i, pad: 'x'.repeat(1000) });
    });
    await hidePage(page);
    await showPage(page);
    await waitFor(() => env.eddy.tracks().length === 100, 'all 100 tracks');
    await quietPeriod();
    const beacons = env.eddy.requests.filter((r) => r.headers['sec-fetch-mode'] === 'no-cors');
    assert.ok(beacons.length >= 1, 'at least one beacon');
    for (const b of beacons) assert.ok(Number(b.headers['content-length']) < 60000, `beacon of ${b.headers['content-length']} bytes`);
    assert.deepEqual(
      env.eddy.sent.filter((m) => m.type === 'track').map((m) => m.properties.i).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
      'every track sent exactly once',
    );
  });
});
