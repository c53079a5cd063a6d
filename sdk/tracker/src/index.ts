// eddy.js: the one-line tracker. Eddy serves it as
//   window.__eddyConfig = {...};\n<this bundle>
// from GET /sdk/eddy.js?key=WRITE_KEY. Nothing here may throw into, or block,
// the host page: every entry point is wrapped by `safe`.

import type { Action, ActionListener, EddyConfig, Message, PageInfo, Preferences, Properties } from './types';
import { createSender } from './sender';
import { getLocal, readBoth, setLocal, uuid, warn, writeBoth } from './storage';

declare const __VERSION__: string;

declare global {
  interface Window {
    __eddyConfig?: EddyConfig;
    eddy?: unknown;
  }
}

type Call = [string, ...unknown[]];

/** Messages held in memory, at most, while consent is pending. */
const MAX_HELD = 100;
// Action ids remembered, so that each action reaches the visitor once.
const SEEN_KEY = 'eddy_actions_seen';
const MAX_SEEN = 100;
const CONSENT_EVENT = 'Segment Consent Preference Updated';

const safe =
  <A extends unknown[]>(fn: (...args: A) => void) =>
  (...args: A): void => {
    try {
      fn(...args);
    } catch (e) {
      console.error('[eddy]', e);
    }
  };

const isObject = (v: unknown): v is Properties => !!v && typeof v === 'object' && !Array.isArray(v);

/** Eddy's origin, from this script's own URL. */
function scriptOrigin(): string | null {
  const own = document.currentScript as HTMLScriptElement | null;
  const tag = own && own.src ? own : document.querySelector<HTMLScriptElement>('script[src*="/sdk/eddy.js"]');
  return tag ? new URL(tag.src, location.href).origin : null;
}

function start(): void {
  const stub = window.eddy;
  if (isObject(stub) && stub.__eddy) return; // loaded twice
  const config = window.__eddyConfig;
  const origin = scriptOrigin();
  const writeKey = config && config.writeKey;
  const noop = (): void => undefined;
  if (!writeKey || !origin) {
    warn(writeKey ? 'cannot tell where eddy.js was loaded from' : 'unknown or revoked write key: nothing will be sent');
    window.eddy = { __eddy: true, track: noop, page: noop, identify: noop, consent: noop, on: noop, off: noop, reset: noop, push: noop };
    return;
  }

  const consentConfig = config.consent;
  const required = (consentConfig && consentConfig.required) || [];
  const purposes = consentConfig && consentConfig.purposes;
  const sender = createSender(origin + '/v1/batch', writeKey);

  let prefs: Preferences = {};
  try {
    const stored = JSON.parse(readBoth('eddy_consent') || '{}');
    if (isObject(stored)) prefs = stored as Preferences;
  } catch {
    // unreadable: ask again
  }
  let anonymousId = readBoth('eddy_aid') || uuid();
  let userId = readBoth('eddy_uid') || undefined;
  let held: Message[] = [];
  let referrer = document.referrer;
  let lastUrl = location.href;
  let lastPath = location.pathname + location.search + location.hash;
  const listeners: ActionListener[] = [];
  let source: EventSource | null = null;

  /** true: every required purpose granted; false: one refused; undefined: not decided yet. */
  function decision(): boolean | undefined {
    if (required.every((p) => prefs[p] === true)) return true;
    if (required.some((p) => prefs[p] === false)) return false;
    return undefined;
  }
  const allowed = (): boolean => decision() === true || !!(consentConfig && consentConfig.allowNecessaryOnly);

  /** Ids are stored only while consent allows it (and forgotten when it stops). */
  function persistIds(): void {
    const ok = allowed();
    writeBoth('eddy_aid', ok ? anonymousId : null);
    writeBoth('eddy_uid', ok && userId ? userId : null);
  }

  function pageInfo(): PageInfo {
    return { path: location.pathname, referrer, search: location.search, title: document.title, url: location.href };
  }

  function message(type: Message['type'], fields: Partial<Message>): Message {
    let timezone: string | undefined;
    try {
      timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch {
      // no Intl
    }
    const m: Message = {
      type,
      messageId: uuid(),
      timestamp: new Date().toISOString(),
      anonymousId,
      ...fields,
      context: {
        library: { name: 'eddy.js', version: __VERSION__ },
        page: pageInfo(),
        userAgent: navigator.userAgent,
        locale: navigator.language,
        timezone,
        screen: { width: screen.width, height: screen.height, density: window.devicePixelRatio || 1 },
        consent: { categoryPreferences: { ...prefs } },
      },
    };
    if (userId) m.userId = userId;
    // A copy: the page may change its objects later, and what cannot be sent
    // (a cycle, a BigInt) fails here, in the caller's call, not in the queue.
    return JSON.parse(JSON.stringify(m));
  }

  function emit(m: Message): void {
    if (allowed()) sender.add([m]);
    else if (decision() === undefined) {
      held.push(m);
      if (held.length > MAX_HELD) {
        held.shift();
        warn('waiting for consent: dropped the oldest held message');
      }
    }
    // refused: dropped
  }

  function onAction(e: MessageEvent): void {
    const d = JSON.parse(e.data);
    // Eddy delivers at least once, and replays the last minute's actions
    // to a page that (re)loads: each action reaches a visitor's pages once,
    // by its message id, remembered across pages.
    const key = String(d.message_id || d.id);
    let seen: string[];
    try {
      seen = JSON.parse(getLocal(SEEN_KEY) || '[]');
      if (!Array.isArray(seen)) seen = [];
    } catch {
      seen = [];
    }
    if (seen.indexOf(key) >= 0) return;
    seen.push(key);
    setLocal(SEEN_KEY, JSON.stringify(seen.slice(-MAX_SEEN)));
    const action: Action = { id: d.id, type: d.type, data: d.data, at: d.at };
    for (const fn of listeners.slice()) {
      try {
        fn(action);
      } catch (err) {
        console.error('[eddy] action listener failed', err);
      }
    }
  }

  /** Opens the actions stream while someone listens and consent allows it. */
  function syncActions(reopen?: boolean): void {
    const want = listeners.length > 0 && allowed() && typeof EventSource === 'function';
    if (source && (reopen || !want)) {
      source.close();
      source = null;
    }
    if (want && !source) {
      source = new EventSource(
        origin + '/v1/actions?writeKey=' + encodeURIComponent(writeKey as string) + '&anonymousId=' + encodeURIComponent(anonymousId),
      );
      source.addEventListener('action', safe(onAction) as EventListener);
    }
  }

  const track = (event: string, properties?: Properties): void => {
    emit(message('track', { event: String(event), properties: isObject(properties) ? properties : {} }));
  };

  const page = (name?: string | Properties, properties?: Properties): void => {
    if (isObject(name)) {
      properties = name;
      name = undefined;
    }
    const fields: Partial<Message> = { properties: { ...pageInfo(), ...(isObject(properties) ? properties : {}) } };
    if (name) fields.name = String(name);
    emit(message('page', fields));
  };

  const identify = (id?: string | number | null, traits?: Properties): void => {
    if (id !== undefined && id !== null && id !== '') {
      userId = String(id);
      persistIds();
    }
    emit(message('identify', { traits: isObject(traits) ? traits : {} }));
  };

  const consent = (update: Preferences): void => {
    if (!isObject(update)) return;
    for (const purpose in update) {
      if (typeof update[purpose] !== 'boolean') warn(`consent for "${purpose}" must be true or false`);
      else if (purposes && purposes.indexOf(purpose) < 0) warn(`unknown consent purpose "${purpose}"`);
      else prefs[purpose] = update[purpose];
    }
    writeBoth('eddy_consent', JSON.stringify(prefs));
    persistIds();
    // Always sent: it is how Eddy learns of a grant and of a refusal.
    sender.add([message('track', { event: CONSENT_EVENT, properties: {} })]);
    if (allowed()) {
      for (const m of held) m.context.consent.categoryPreferences = { ...prefs };
      sender.add(held);
      held = [];
    } else if (decision() === false) held = [];
    syncActions();
  };

  const on = (event: string, fn: ActionListener): void => {
    if (event === 'action' && typeof fn === 'function' && listeners.indexOf(fn) < 0) {
      listeners.push(fn);
      syncActions();
    }
  };

  const off = (event: string, fn: ActionListener): void => {
    const i = event === 'action' ? listeners.indexOf(fn) : -1;
    if (i >= 0) {
      listeners.splice(i, 1);
      syncActions();
    }
  };

  const reset = (): void => {
    anonymousId = uuid();
    userId = undefined;
    persistIds();
    syncActions(true);
  };

  type Method = (...args: unknown[]) => void;
  const api = { track, page, identify, consent, on, off, reset } as unknown as Record<string, Method>;
  const dispatch = (call: Call): void => {
    const fn = Array.isArray(call) && api.hasOwnProperty(call[0]) && api[call[0]];
    if (fn) fn(...call.slice(1));
    else warn('unknown call', call);
  };
  const eddy: Record<string, unknown> = { __eddy: true, push: safe(dispatch) };
  for (const name in api) eddy[name] = safe(api[name]);
  window.eddy = eddy;

  persistIds();

  // Single-page-app navigations: a page view whenever path, search or hash changed.
  const navigated = safe(() => {
    const path = location.pathname + location.search + location.hash;
    if (path === lastPath) return;
    lastPath = path;
    referrer = lastUrl;
    lastUrl = location.href;
    page();
  });
  for (const method of ['pushState', 'replaceState'] as const) {
    const original = history[method];
    history[method] = function (this: History, ...args: Parameters<History['pushState']>) {
      const result = original.apply(this, args);
      navigated();
      return result;
    };
  }
  addEventListener('popstate', navigated);
  addEventListener('hashchange', navigated);
  addEventListener('online', safe(sender.retryNow));
  const hide = safe(sender.beacon);
  addEventListener('pagehide', hide);
  document.addEventListener(
    'visibilitychange',
    safe(() => (document.visibilityState === 'hidden' ? hide() : sender.schedule())),
  );

  page();
  // Calls made before the script loaded, in order.
  if (Array.isArray(stub)) stub.forEach(safe(dispatch));
}

safe(start)();
