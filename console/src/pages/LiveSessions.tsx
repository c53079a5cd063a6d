import { useCallback, useEffect, useRef, useState } from 'react'
import { Link } from 'react-router-dom'
import { API, get, type Page } from '../api'
import { Empty, ErrorBox, Loading, fmtDuration, fmtNumber, fmtTime } from '../ui'
import { useWorkspace } from '../workspace'
import './live.css'

// A session as the API answers it (openapi.yaml Session), open or closed.
export interface CartItem {
  product_id: string | null
  sku: string | null
  name: string | null
  price: number
  quantity: number
}
export interface Session {
  id: string
  anonymous_id: string
  user_id: string | null
  profile_id: string | null
  started_at: string
  last_event_at: string
  duration_seconds: number
  events: number
  page_views: number
  landing_page: string | null
  current_page: string | null
  exit_page: string | null
  referrer: string | null
  channel_group: string
  source: string | null
  medium: string | null
  campaign: string | null
  device_type: string | null
  os: string | null
  browser: string | null
  country: string | null
  city: string | null
  cart: { items: CartItem[]; value: number } | null
  orders_count: number
  revenue: number
  converted: boolean
  bounced: boolean
  closed: boolean
  updated_at: string
}

// A change of the live stream (openapi.yaml LiveChange).
interface LiveChange {
  kind: 'started' | 'updated' | 'merged' | 'closed'
  session: Session
  absorbed: string[]
}

type Connection = 'connecting' | 'connected' | 'reconnecting'

// The list is read in pages of 200, at most MAX_PAGES of them.
const PAGE = 200
const MAX_PAGES = 5
// How long a changed row stays highlighted.
const FLASH_MS = 2500

// urlPath shows a page URL without its scheme and host.
export function urlPath(url: string | null): string {
  if (!url) return '—'
  try {
    const u = new URL(url)
    return u.pathname + u.search
  } catch {
    return url
  }
}

// apply puts one change into the sessions: absorbed sessions go, a closed
// one goes, any other replaces the session unless what is there is newer.
function apply(sessions: Map<string, Session>, c: LiveChange) {
  for (const id of c.absorbed) sessions.delete(id)
  if (c.kind === 'closed' || c.session.closed) {
    sessions.delete(c.session.id)
    return
  }
  const had = sessions.get(c.session.id)
  if (had && Date.parse(had.updated_at) > Date.parse(c.session.updated_at)) return
  sessions.set(c.session.id, c.session)
}

export default function LiveSessions() {
  const { path } = useWorkspace()
  const [sessions, setSessions] = useState<Map<string, Session> | null>(null)
  const [truncated, setTruncated] = useState(false)
  const [listError, setListError] = useState<Error | null>(null)
  const [connection, setConnection] = useState<Connection>('connecting')
  const [changed, setChanged] = useState<Map<string, number>>(new Map())
  const [now, setNow] = useState(() => Date.now())
  // Changes that arrive while the list is being read, applied on top of it.
  const pending = useRef<LiveChange[] | null>(null)
  const listGen = useRef(0)

  const readList = useCallback(async () => {
    const mine = ++listGen.current
    pending.current = []
    try {
      const all: Session[] = []
      let cursor: string | undefined
      let pages = 0
      do {
        const p = await get<Page<Session>>(`${path}/sessions/live?limit=${PAGE}` + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''))
        all.push(...p.data)
        cursor = p.next_cursor
        pages++
      } while (cursor && pages < MAX_PAGES)
      if (mine !== listGen.current) return
      const m = new Map(all.map((s) => [s.id, s]))
      for (const c of pending.current ?? []) apply(m, c)
      pending.current = null
      setSessions(m)
      setTruncated(Boolean(cursor))
      setListError(null)
    } catch (e) {
      if (mine !== listGen.current) return
      pending.current = null
      setListError(e as Error)
    }
  }, [path])

  // The stream: (re)read the list whenever it (re)connects, since it does
  // not replay what was missed. EventSource retries by itself after a
  // network error; a stream the server refused is opened again here, every
  // 5 seconds, reading the list each time meanwhile.
  useEffect(() => {
    let es: EventSource | null = null
    let retry: ReturnType<typeof setTimeout> | undefined
    let stopped = false
    const onChange = (ev: MessageEvent<string>) => {
      let c: LiveChange
      try {
        c = JSON.parse(ev.data) as LiveChange
      } catch {
        return
      }
      if (pending.current) pending.current.push(c)
      setSessions((prev) => {
        if (!prev) return prev
        const m = new Map(prev)
        apply(m, c)
        return m
      })
      if (c.kind !== 'closed') {
        const at = Date.now()
        setChanged((prev) => new Map(prev).set(c.session.id, at))
      }
    }
    const open = () => {
      es = new EventSource(`${API}${path}/sessions/live/stream`, { withCredentials: true })
      es.onopen = () => {
        setConnection('connected')
        readList()
      }
      es.onerror = () => {
        if (stopped || !es) return
        setConnection('reconnecting')
        if (es.readyState === EventSource.CLOSED) {
          // Refused (too many streams, or the server is restarting): show
          // the list as it is meanwhile, and try the stream again.
          es.close()
          readList()
          retry = setTimeout(open, 5000)
        }
      }
      for (const kind of ['started', 'updated', 'merged', 'closed']) es.addEventListener(kind, onChange as EventListener)
    }
    setConnection('connecting')
    open()
    return () => {
      stopped = true
      clearTimeout(retry)
      es?.close()
      listGen.current++
    }
  }, [path, readList])

  // The clock the durations tick with; it also ends highlights.
  useEffect(() => {
    const t = setInterval(() => {
      const at = Date.now()
      setNow(at)
      setChanged((prev) => {
        if (prev.size === 0) return prev
        const m = new Map([...prev].filter(([, t]) => at - t < FLASH_MS))
        return m.size === prev.size ? prev : m
      })
    }, 1000)
    return () => clearInterval(t)
  }, [])

  const rows = sessions ? [...sessions.values()].sort((a, b) => Date.parse(b.last_event_at) - Date.parse(a.last_event_at)) : []

  return (
    <div className="live">
      <div className="page-head">
        <h1>Live sessions</h1>
        <div className="row">
          <span className={'live-conn live-conn-' + connection} role="status" aria-live="polite">
            <span className="live-dot" aria-hidden="true" />
            {connection === 'connected' ? 'Connected' : connection === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
          </span>
          {sessions && (
            <span className="muted">
              {fmtNumber(rows.length)}
              {truncated ? '+' : ''} open
            </span>
          )}
        </div>
      </div>
      <ErrorBox error={listError} retry={readList} />
      {sessions === null ? (
        listError ? null : <Loading what="live sessions" />
      ) : rows.length === 0 ? (
        <Empty>No session is open right now.</Empty>
      ) : (
        <>
          {truncated && <p className="notice">Showing the {fmtNumber(rows.length)} most recently active sessions.</p>}
          <div className="table-wrap">
            <table className="live-table">
              <thead>
                <tr>
                  <th>Current page</th>
                  <th className="num">Duration</th>
                  <th className="num">Events</th>
                  <th>Cart</th>
                  <th>Channel</th>
                  <th>Device</th>
                  <th>Country</th>
                  <th>Profile</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((s) => (
                  <LiveRow key={s.id} s={s} now={now} flash={changed.has(s.id)} />
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </div>
  )
}

function LiveRow({ s, now, flash }: { s: Session; now: number; flash: boolean }) {
  const { ws } = useWorkspace()
  const currency: string = ws.settings.currency || 'USD'
  const items = s.cart?.items.reduce((n, i) => n + i.quantity, 0) ?? 0
  return (
    <tr data-testid="live-session-row" data-session-id={s.id} className={flash ? 'live-flash' : undefined}>
      <td className="live-page">
        <div className="live-url" title={s.current_page ?? undefined}>
          {urlPath(s.current_page)}
        </div>
        <div className="muted live-sub">
          {fmtNumber(s.page_views)} {s.page_views === 1 ? 'page' : 'pages'} · since{' '}
          <time dateTime={s.started_at} title={fmtTime(s.started_at)}>
            {new Date(s.started_at).toLocaleTimeString()}
          </time>
        </div>
      </td>
      <td className="num">{fmtDuration(Math.max(0, now - Date.parse(s.started_at)))}</td>
      <td className="num">{fmtNumber(s.events)}</td>
      <td>
        {s.cart ? (
          <span title={s.cart.items.map((i) => `${i.quantity} × ${i.name ?? i.sku ?? i.product_id ?? 'item'}`).join('\n')}>
            {fmtNumber(items)} {items === 1 ? 'item' : 'items'} · {s.cart.value.toLocaleString(undefined, { style: 'currency', currency })}
          </span>
        ) : (
          <span className="muted">—</span>
        )}
        {s.orders_count > 0 && <span className="badge ok">ordered</span>}
      </td>
      <td>
        {s.channel_group}
        {s.source && <div className="muted live-sub">{s.source}{s.medium ? ' / ' + s.medium : ''}</div>}
      </td>
      <td>
        {s.device_type ?? '—'}
        {(s.os || s.browser) && <div className="muted live-sub">{[s.os, s.browser].filter(Boolean).join(' · ')}</div>}
      </td>
      <td>{[s.city, s.country].filter(Boolean).join(', ') || '—'}</td>
      <td>
        {s.profile_id ? (
          <Link to={`/ws/${ws.id}/profiles/${s.profile_id}`}>{s.user_id ?? 'Anonymous'}</Link>
        ) : (
          <span className="muted">{s.user_id ?? 'Anonymous'}</span>
        )}
      </td>
    </tr>
  )
}
