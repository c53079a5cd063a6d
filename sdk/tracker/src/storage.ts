// First-party storage: cookies and localStorage, both of which can throw
// (disabled storage, sandboxed frames), so nothing here ever does.

const YEAR_SECONDS = 31536000;

export const warn = (...args: unknown[]): void => console.warn('[eddy]', ...args);

export function getCookie(name: string): string | null {
  try {
    for (const part of document.cookie.split('; ')) {
      const eq = part.indexOf('=');
      if (part.slice(0, eq) === name) return decodeURIComponent(part.slice(eq + 1));
    }
  } catch {
    // no cookie access
  }
  return null;
}

/** Sets a one-year first-party cookie, or deletes it when value is null. */
export function setCookie(name: string, value: string | null): void {
  try {
    document.cookie =
      name +
      '=' +
      (value === null ? '; max-age=0' : encodeURIComponent(value) + '; max-age=' + YEAR_SECONDS) +
      '; path=/; SameSite=Lax' +
      (location.protocol === 'https:' ? '; Secure' : '');
  } catch {
    // no cookie access
  }
}

export function getLocal(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** Stores a value in localStorage (removes it when null); false when storage refused it. */
export function setLocal(key: string, value: string | null): boolean {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
    return true;
  } catch {
    return false;
  }
}

/** A value kept both as a cookie and in localStorage: whichever exists. */
export const readBoth = (key: string): string | null => getCookie(key) || getLocal(key);

export function writeBoth(key: string, value: string | null): void {
  setCookie(key, value);
  setLocal(key, value);
}

export function uuid(): string {
  const c = typeof crypto !== 'undefined' ? crypto : undefined;
  if (c && c.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let s = '';
  for (let i = 0; i < 16; i++) s += (i === 4 || i === 6 || i === 8 || i === 10 ? '-' : '') + (b[i] + 256).toString(16).slice(1);
  return s;
}
