// The delivery queue: messages persisted in localStorage (`eddy_queue`) until
// the collector accepted them, batched to POST {origin}/v1/batch, retried with
// backoff, and handed to sendBeacon when the page is hidden.

import type { Message } from './types';
import { getLocal, setLocal, warn } from './storage';

const QUEUE_KEY = 'eddy_queue';
const MAX_QUEUED = 500;
const MAX_QUEUED_CHARS = 1000000;
const BATCH_SIZE = 20;
const BATCH_WAIT_MS = 500;
const MAX_BACKOFF_MS = 60000;
/** keepalive fetches and beacons share a 64 KiB in-flight budget. */
const MAX_KEEPALIVE_BYTES = 60000;

export interface Sender {
  /** Queues (and persists) messages, then sends them within BATCH_WAIT_MS. */
  add(messages: Message[]): void;
  /** Sends what is queued now, ending any backoff wait (the `online` event). */
  retryNow(): void;
  /** Sends what is queued within BATCH_WAIT_MS, unless waiting for a retry (the page is visible again). */
  schedule(): void;
  /** Hands everything queued to sendBeacon (the page is being hidden). */
  beacon(): void;
}

const byteLength = (s: string): number => new Blob([s]).size;

export function createSender(endpoint: string, writeKey: string): Sender {
  // Used instead of localStorage once localStorage refused a write.
  let memory: Message[] | null = null;
  // Messages this page is sending by fetch right now.
  const inflight = new Set<string>();
  let sending = false;
  let batchTimer = 0;
  let backoffTimer = 0;
  let attempt = 0;

  function read(): Message[] {
    if (memory) return memory;
    try {
      const list = JSON.parse(getLocal(QUEUE_KEY) || '[]');
      return Array.isArray(list) ? list : [];
    } catch {
      return [];
    }
  }

  function write(list: Message[], json = JSON.stringify(list)): void {
    if (memory || !setLocal(QUEUE_KEY, list.length ? json : null)) memory = list;
  }

  function remove(sent: Message[]): void {
    const ids = new Set(sent.map((m) => m.messageId));
    write(read().filter((m) => !ids.has(m.messageId)));
  }

  const pending = (): Message[] => read().filter((m) => !inflight.has(m.messageId));

  const body = (batch: Message[]): string =>
    JSON.stringify({ batch, writeKey, sentAt: new Date().toISOString() });

  function add(messages: Message[]): void {
    if (!messages.length) return;
    const list = read().concat(messages);
    let json = JSON.stringify(list);
    let dropped = 0;
    while (list.length > MAX_QUEUED || (list.length > 1 && json.length > MAX_QUEUED_CHARS)) {
      list.shift();
      dropped++;
      json = JSON.stringify(list);
    }
    if (dropped) warn(`queue full: dropped the ${dropped} oldest unsent message(s)`);
    write(list, json);
    schedule();
  }

  function schedule(): void {
    if (sending || backoffTimer) return; // the response or the backoff timer flushes
    if (pending().length >= BATCH_SIZE) flush();
    else if (!batchTimer) batchTimer = window.setTimeout(flush, BATCH_WAIT_MS);
  }

  function retryAfterMs(res: Response): number | undefined {
    const value = res.headers.get('Retry-After');
    if (!value) return undefined;
    const seconds = Number(value);
    const ms = isNaN(seconds) ? Date.parse(value) - Date.now() : seconds * 1000;
    return isNaN(ms) ? undefined : Math.max(0, ms);
  }

  function backoff(retryAfter?: number): void {
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempt++);
    const delay = retryAfter !== undefined ? retryAfter : base * (0.75 + Math.random() / 2);
    backoffTimer = window.setTimeout(() => {
      backoffTimer = 0;
      flush();
    }, Math.min(delay, 2 ** 31 - 1));
  }

  /** A 4xx other than 429: drop what the collector refused, never resend it as is. */
  async function refused(res: Response, batch: Message[]): Promise<void> {
    const bad: Message[] = [];
    try {
      const error = res.status === 400 && (await res.json()).error;
      if (error && error.code === 'invalid_messages') {
        for (const d of error.details) {
          const m = batch[d.index];
          if (m && bad.indexOf(m) < 0) {
            bad.push(m);
            warn(`message ${m.messageId} rejected (${d.reason}): ${d.message}`);
          }
        }
      }
    } catch {
      // not the collector's error shape: drop the whole batch below
    }
    if (!bad.length) warn(`collector refused a batch of ${batch.length} message(s) (HTTP ${res.status}); dropped`);
    remove(bad.length ? bad : batch);
  }

  async function flush(): Promise<void> {
    clearTimeout(batchTimer);
    batchTimer = 0;
    if (sending) return;
    const batch = pending().slice(0, BATCH_SIZE);
    if (!batch.length) return;
    sending = true;
    batch.forEach((m) => inflight.add(m.messageId));
    let retry = false;
    let retryAfter: number | undefined;
    try {
      const data = body(batch);
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: data,
        credentials: 'omit',
        keepalive: byteLength(data) < MAX_KEEPALIVE_BYTES,
      });
      if (res.ok) {
        attempt = 0;
        remove(batch);
      } else if (res.status === 429 || res.status >= 500) {
        retry = true;
        retryAfter = retryAfterMs(res);
      } else {
        await refused(res, batch);
      }
    } catch {
      retry = true; // network error: offline, blocked, aborted
    }
    batch.forEach((m) => inflight.delete(m.messageId));
    sending = false;
    if (retry) backoff(retryAfter);
    else flush();
  }

  function retryNow(): void {
    if (backoffTimer) {
      clearTimeout(backoffTimer);
      backoffTimer = 0;
    }
    flush();
  }

  function beacon(): void {
    // Offline, or while the collector is failing (5xx, 429), a beacon would be
    // lost: the persisted queue goes out later, on this page or the next one.
    if (!navigator.onLine || backoffTimer || !navigator.sendBeacon) return;
    clearTimeout(batchTimer);
    batchTimer = 0;
    let chunk: Message[] = [];
    let size = 0;
    const send = (): void => {
      if (chunk.length && navigator.sendBeacon(endpoint, new Blob([body(chunk)], { type: 'text/plain' }))) remove(chunk);
      chunk = [];
      size = 200; // the envelope: writeKey, sentAt
    };
    send();
    for (const m of pending()) {
      const n = byteLength(JSON.stringify(m)) + 1;
      if (chunk.length && size + n > MAX_KEEPALIVE_BYTES) send();
      chunk.push(m);
      size += n;
    }
    send();
  }

  return { add, retryNow, schedule, beacon };
}
