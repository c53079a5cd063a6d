// Test harness for the eddy.js unit tests (test/*.test.mjs).
//
// FakeEddy is a FAKE collector for these unit tests only: it serves the built
// script behind a config the way Eddy does, records what the tracker posts to
// /v1/batch, can be told to fail, and pushes actions over /v1/actions (SSE).
// The real collector is covered by the lead's end-to-end tests.
//
// The test site runs on another port, so every request of the tracker is a
// real cross-origin one (a preflight would show up in FakeEddy.preflights).
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const DIST = new URL('../dist/eddy.js', import.meta.url);

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function close(server) {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
}

const CORS = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Retry-After' };

export class FakeEddy {
  constructor() {
    this.script = readFileSync(DIST, 'utf8');
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.clear();
  }

  /** Forgets everything recorded and configured (between tests). */
  clear() {
    /** write key → consent config (null: no consent rules); other keys are unknown. */
    this.keys = new Map([['test_key', null]]);
    /** Every POST /v1/batch: {status, body, headers, at}. */
    this.requests = [];
    this.preflights = 0;
    /** Answers for the next batch requests, in order: {status, headers?, body?, delayMs?}. */
    this.answers = [];
    /** Open /v1/actions streams: {writeKey, anonymousId, res}. */
    for (const s of this.streams || []) s.res.destroy();
    this.streams = [];
    this.scriptRequests = 0;
  }

  /**
   * Messages of the requests the collector accepted (200), in order, each
   * message id once: what Eddy stores. A page that unloads between the
   * collector's answer and its own bookkeeping sends a message again from
   * the persisted queue, which Eddy's message-id idempotency absorbs.
   */
  get messages() {
    const seen = new Set();
    return this.sent.filter((m) => !seen.has(m.messageId) && seen.add(m.messageId));
  }

  /** Every message of the accepted requests, repeats included. */
  get sent() {
    return this.requests.filter((r) => r.status === 200).flatMap((r) => r.body.batch);
  }

  tracks(event) {
    return this.messages.filter((m) => m.type === 'track' && (event === undefined || m.event === event));
  }

  pages() {
    return this.messages.filter((m) => m.type === 'page');
  }

  handle(req, res) {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'OPTIONS') {
      this.preflights++;
      res.writeHead(405).end();
      return;
    }
    if (req.method === 'GET' && url.pathname === '/sdk/eddy.js') {
      this.scriptRequests++;
      const key = url.searchParams.get('key');
      const config = this.keys.has(key) ? { writeKey: key, consent: this.keys.get(key) } : { writeKey: null, consent: null };
      res.writeHead(200, { 'Content-Type': 'text/javascript', 'Cache-Control': 'no-store' });
      res.end(`window.__eddyConfig=${JSON.stringify(config)};\n${this.script}`);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/batch') {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        const answer = this.answers.shift() || { status: 200, body: {} };
        const record = { status: answer.status, body: JSON.parse(raw), headers: req.headers, at: Date.now() };
        const reply = () => {
          this.requests.push(record);
          res.writeHead(answer.status, { ...CORS, 'Content-Type': 'application/json', ...answer.headers });
          res.end(JSON.stringify(answer.body ?? {}));
        };
        if (answer.delayMs) setTimeout(reply, answer.delayMs);
        else reply();
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/actions') {
      res.writeHead(200, { ...CORS, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.write(': connected\n\n');
      const stream = { writeKey: url.searchParams.get('writeKey'), anonymousId: url.searchParams.get('anonymousId'), res };
      this.streams.push(stream);
      req.on('close', () => (stream.closed = true));
      return;
    }
    res.writeHead(404, CORS).end();
  }

  /** Pushes an action to every open stream of that visitor. */
  sendAction(anonymousId, action) {
    let sent = 0;
    for (const s of this.streams) {
      if (s.anonymousId === anonymousId && !s.closed) {
        s.res.write(`event: action\nid: ${action.id}\ndata: ${JSON.stringify(action)}\n\n`);
        sent++;
      }
    }
    return sent;
  }
}

/** The site that embeds the one-line snippet; `head` is extra HTML put before it. */
export class Site {
  constructor(eddyPort) {
    this.eddyPort = eddyPort;
    this.head = '';
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/favicon.ico') return res.writeHead(404).end();
      const key = url.searchParams.get('key') || 'test_key';
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Test page</title>${this.head}
<script async src="http://127.0.0.1:${this.eddyPort}/sdk/eddy.js?key=${encodeURIComponent(key)}"></script>
</head><body><p>A site with Eddy.</p></body></html>`);
    });
  }
}

/** Polls cond until it returns something truthy (and returns that), or fails after timeoutMs. */
export async function waitFor(cond, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await cond();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** For "nothing is sent" assertions only: longer than the tracker's 500 ms batch wait. */
export const quietPeriod = () => new Promise((r) => setTimeout(r, 700));

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Starts FakeEddy, the site and a headless Chromium; `newPage` opens a fresh visitor (its own context). */
export async function setup() {
  const eddy = new FakeEddy();
  const eddyPort = await listen(eddy.server);
  const site = new Site(eddyPort);
  const sitePort = await listen(site.server);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const contexts = [];
  const env = {
    eddy,
    site,
    browser,
    siteUrl: (path = '/') => `http://127.0.0.1:${sitePort}${path}`,
    /** A new visitor: a fresh browser context. */
    async newContext() {
      const context = await browser.newContext();
      contexts.push(context);
      return context;
    },
    /** Opens path on the site in page and waits for eddy.js to have started. */
    async open(page, path = '/') {
      await page.goto(env.siteUrl(path));
      await page.waitForFunction(() => window.eddy && window.eddy.__eddy);
    },
    /** A new tab whose console lines are collected in `logs`. */
    async newPage(context) {
      const page = await context.newPage();
      const logs = [];
      page.on('console', (m) => logs.push(m.text()));
      return { page, logs };
    },
    /** A fresh visitor on the site's page: {context, page, logs}. */
    async visit(path = '/') {
      const context = await env.newContext();
      // Counts the tracker's batch attempts, and those that failed (network errors).
      await context.addInitScript(() => {
        const original = window.fetch;
        window.__batchAttempts = 0;
        window.__batchFailures = 0;
        window.fetch = function (input, init) {
          const response = original.call(this, input, init);
          if (String(input).includes('/v1/batch')) {
            window.__batchAttempts++;
            response.catch(() => window.__batchFailures++);
          }
          return response;
        };
      });
      const { page, logs } = await env.newPage(context);
      await env.open(page, path);
      return { context, page, logs };
    },
    /** Between tests: close the visitors and forget what FakeEddy recorded. */
    async reset() {
      await Promise.all(contexts.splice(0).map((c) => c.close()));
      eddy.clear();
      site.head = '';
    },
    async close() {
      await env.reset();
      await browser.close();
      await Promise.all([close(eddy.server), close(site.server)]);
    },
  };
  return env;
}
