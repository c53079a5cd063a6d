import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react'
import { ApiError, get, type Page } from './api'

// useLoad runs load when deps change and keeps its answer, error and
// loading state; reload runs it again. An answer that arrives after deps
// changed again is dropped.
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined)
  const [error, setError] = useState<Error | null>(null)
  const [loading, setLoading] = useState(true)
  const gen = useRef(0)
  const run = useCallback(async () => {
    const mine = ++gen.current
    setLoading(true)
    try {
      const d = await load()
      if (mine === gen.current) {
        setData(d)
        setError(null)
      }
    } catch (e) {
      if (mine === gen.current) setError(e as Error)
    } finally {
      if (mine === gen.current) setLoading(false)
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps)
  useEffect(() => {
    run()
  }, [run])
  return { data, error, loading, reload: run, setData }
}

// useAction wraps a change (a POST, PATCH, DELETE): busy while it runs, its
// error kept for display.
export function useAction() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | null>(null)
  const run = useCallback(async <T,>(f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true)
    setError(null)
    try {
      return await f()
    } catch (e) {
      setError(e as Error)
      return undefined
    } finally {
      setBusy(false)
    }
  }, [])
  return { busy, error, run, clear: () => setError(null) }
}

// usePaged loads the first page of a list at url (which may hold a query
// already) and appends the next pages on loadMore.
export function usePaged<T>(url: string) {
  const state = useLoad(() => get<Page<T>>(url), [url])
  const more = useAction()
  const { data, setData } = state
  const { run } = more
  const loadMore = useCallback(async () => {
    const cursor = data?.next_cursor
    if (!cursor) return
    const next = await run(() => get<Page<T>>(url + (url.includes('?') ? '&' : '?') + 'cursor=' + encodeURIComponent(cursor)))
    if (next) setData((prev) => ({ data: [...(prev?.data ?? []), ...next.data], next_cursor: next.next_cursor }))
  }, [data, setData, run, url])
  return { ...state, more, loadMore }
}

// LoadMore is a paged list's "Load more" button, with the error of the
// last attempt.
export function LoadMore({ paged, label = 'Load more' }: { paged: { data?: { next_cursor?: string }; more: { busy: boolean; error: Error | null }; loadMore: () => void }; label?: string }) {
  return (
    <>
      <ErrorBox error={paged.more.error} retry={paged.loadMore} />
      {paged.data?.next_cursor && (
        <div className="row">
          <button disabled={paged.more.busy} onClick={paged.loadMore}>
            {paged.more.busy ? 'Loading…' : label}
          </button>
        </div>
      )}
    </>
  )
}

export function Loading({ what }: { what?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading{what ? ' ' + what : ''}…
    </div>
  )
}

export function ErrorBox({ error, retry }: { error: Error | null | undefined; retry?: () => void }) {
  if (!error) return null
  const details = error instanceof ApiError ? error.details : undefined
  return (
    <div className="error" role="alert">
      <strong>{error instanceof ApiError && error.status === 403 ? 'Not allowed: ' : 'Error: '}</strong>
      {error.message}
      {details && details.length > 0 && (
        <ul>
          {details.map((d) => (
            <li key={d.field}>
              <code>{d.field}</code>: {d.message}
            </li>
          ))}
        </ul>
      )}
      {retry && (
        <button className="link" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  )
}

// Loaded shows loading, then the error, then its children.
export function Loaded<T>({ state, what, children }: { state: { data: T | undefined; error: Error | null; loading: boolean; reload: () => void }; what?: string; children: (d: T) => ReactNode }) {
  if (state.error && state.data === undefined) return <ErrorBox error={state.error} retry={state.reload} />
  if (state.data === undefined) return <Loading what={what} />
  return <>{children(state.data)}</>
}

// ConfirmButton asks before doing something that cannot be undone.
export function ConfirmButton({ label, question, confirmLabel, onConfirm, danger = true, disabled }: { label: string; question: ReactNode; confirmLabel?: string; onConfirm: () => void | Promise<void>; danger?: boolean; disabled?: boolean }) {
  const [open, setOpen] = useState(false)
  const [busy, setBusy] = useState(false)
  return (
    <>
      <button className={danger ? 'danger' : ''} disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open && (
        <div className="modal-backdrop" onClick={() => !busy && setOpen(false)}>
          <div className="modal" role="dialog" aria-modal="true" aria-label={label} onClick={(e) => e.stopPropagation()}>
            <div className="modal-body">{question}</div>
            <div className="modal-actions">
              <button onClick={() => setOpen(false)} disabled={busy}>
                Cancel
              </button>
              <button
                className={danger ? 'danger' : 'primary'}
                disabled={busy}
                onClick={async () => {
                  setBusy(true)
                  try {
                    await onConfirm()
                  } finally {
                    setBusy(false)
                    setOpen(false)
                  }
                }}
              >
                {confirmLabel ?? label}
              </button>
            </div>
          </div>
        </div>
      )}
    </>
  )
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false)
  return (
    <button
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text)
        } catch {
          // Clipboard refused (insecure origin): select a temporary field.
          const t = document.createElement('textarea')
          t.value = text
          document.body.appendChild(t)
          t.select()
          document.execCommand('copy')
          t.remove()
        }
        setDone(true)
        setTimeout(() => setDone(false), 1500)
      }}
    >
      {done ? 'Copied' : label}
    </button>
  )
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>
}

export const fmtTime = (s?: string | null) => (s ? new Date(s).toLocaleString() : '—')
export const fmtNumber = (n?: number | null, digits = 0) =>
  n === undefined || n === null || Number.isNaN(n) ? '—' : n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits })
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—'
  const s = Math.floor(ms / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${sec}s` : `${sec}s`
}
