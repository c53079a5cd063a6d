import { useCallback, useEffect, useRef, useState } from 'react'
import { Link, useLocation, useNavigate, useParams } from 'react-router-dom'
import { API, ApiError, del, get, put, type Page } from '../api'
import { ConfirmButton, CopyButton, Empty, ErrorBox, LoadMore, Loaded, Loading, fmtDuration, fmtNumber, fmtTime, useAction, useLoad, usePaged } from '../ui'
import { useWorkspace } from '../workspace'
import { urlPath, type Session } from './LiveSessions'
import './profile.css'

// A profile as the API answers it (openapi.yaml Profile).
export interface Identity {
  kind: 'anonymous_id' | 'user_id' | 'email'
  value: string
}
export interface Profile {
  id: string
  user_id: string | null
  first_seen: string | null
  last_seen: string | null
  sessions_count: number
  orders_count: number
  revenue: number
  average_order_value: number
  last_order: { id: string; at: string; value: number; currency: string } | null
  traits: Record<string, unknown>
  consent: Record<string, boolean>
  identities: Identity[]
  live_sessions: Session[]
}
interface ConsentState {
  profile_id: string
  purposes: Record<string, { granted: boolean; at: string; source: 'event' | 'api'; message_id: string | null }>
}
interface DeletionJob {
  id: string
  status: 'pending' | 'running' | 'done' | 'failed'
  counts: Record<string, number>
  error: string | null
  created_at: string
  finished_at: string | null
}
interface StoredEvent {
  message_id: string
  type: string
  event: string | null
  name: string | null
  anonymous_id: string | null
  user_id: string | null
  timestamp: string
  properties: Record<string, unknown> | null
  context: Record<string, unknown> | null
  traits: Record<string, unknown> | null
}

export default function ProfilePage() {
  const { profileId = '' } = useParams()
  const { ws, path } = useWorkspace()
  const navigate = useNavigate()
  const location = useLocation()
  const mergedFrom = (location.state as { mergedFrom?: string } | null)?.mergedFrom
  const state = useLoad(() => get<Profile>(`${path}/profiles/${encodeURIComponent(profileId)}`), [path, profileId])
  const [job, setJob] = useState<DeletionJob | null>(null)

  // A merged-away id answers the profile it was merged into: show that one
  // under its own id.
  const survivor = state.data?.id
  useEffect(() => {
    if (survivor && survivor !== profileId) navigate(`/ws/${ws.id}/profiles/${survivor}`, { replace: true, state: { mergedFrom: profileId } })
  }, [survivor, profileId, ws.id, navigate])

  if (job) return <DeletionStatus job={job} />
  if (state.error instanceof ApiError && state.error.status === 404) {
    return (
      <div className="profile">
        <h1>Profile</h1>
        <Empty>
          No profile has the id <code>{profileId}</code>. <Link to={`/ws/${ws.id}/profiles`}>Find a profile</Link>
        </Empty>
      </div>
    )
  }
  return (
    <div className="profile">
      <p className="profile-back">
        <Link to={`/ws/${ws.id}/profiles`}>← Profiles</Link>
      </p>
      <Loaded state={state} what="profile">
        {(p) => (p.id !== profileId ? <Loading what="profile" /> : <ProfileView p={p} mergedFrom={mergedFrom} onDeleting={setJob} />)}
      </Loaded>
    </div>
  )
}

function ProfileView({ p, mergedFrom, onDeleting }: { p: Profile; mergedFrom?: string; onDeleting: (j: DeletionJob) => void }) {
  const { ws, path, canAdmin } = useWorkspace()
  const currency: string = p.last_order?.currency || ws.settings.currency || 'USD'
  const money = (n: number) => n.toLocaleString(undefined, { style: 'currency', currency })
  const remove = useAction()
  const base = `${path}/profiles/${encodeURIComponent(p.id)}`
  const email = p.identities.find((i) => i.kind === 'email')?.value
  const traitName = typeof p.traits.name === 'string' ? p.traits.name : undefined

  return (
    <>
      <div className="page-head">
        <div>
          <h1>{traitName || p.user_id || email || 'Anonymous profile'}</h1>
          <div className="row muted profile-id">
            <code>{p.id}</code> <CopyButton text={p.id} label="Copy ID" />
          </div>
        </div>
        {canAdmin && (
          <div className="row">
            <a className="button" href={`${API}${base}/export`} download={`profile-${p.id}.json`} data-testid="profile-export">
              Export
            </a>
            <span data-testid="profile-delete">
              <ConfirmButton
                label="Delete profile"
                confirmLabel="Delete everything"
                question={
                  <>
                    <p>
                      Delete this person: every event, session, order, identity and merged profile of <strong>{traitName || p.user_id || email || p.id}</strong>?
                    </p>
                    <p>Their later events are dropped until they consent again. This cannot be undone.</p>
                  </>
                }
                onConfirm={async () => {
                  const j = await remove.run(() => del<DeletionJob>(base))
                  if (j) onDeleting(j)
                }}
              />
            </span>
          </div>
        )}
      </div>
      {mergedFrom && (
        <p className="notice">
          The profile <code>{mergedFrom}</code> was merged into this one.
        </p>
      )}
      <ErrorBox error={remove.error} />

      <div className="cards">
        <Stat label="First seen" value={fmtTime(p.first_seen)} />
        <Stat label="Last seen" value={fmtTime(p.last_seen)} />
        <Stat label="Sessions" value={fmtNumber(p.sessions_count) + (p.live_sessions.length > 0 ? ` + ${p.live_sessions.length} open` : '')} />
        <Stat label="Orders" value={fmtNumber(p.orders_count)} />
        <Stat label="Revenue" value={money(p.revenue)} />
        <Stat label="Average order" value={p.orders_count > 0 ? money(p.average_order_value) : '—'} />
      </div>

      <div className="grid-2">
        <section className="card">
          <h2>Identities</h2>
          <ul className="profile-identities" data-testid="profile-identities">
            {p.identities.map((i) => (
              <li key={i.kind + ':' + i.value} data-kind={i.kind}>
                <span className="badge">{KIND_LABEL[i.kind] ?? i.kind}</span> <code>{i.value}</code>
              </li>
            ))}
          </ul>
        </section>
        <section className="card">
          <h2>Traits</h2>
          {Object.keys(p.traits).length === 0 ? (
            <p className="muted">No traits.</p>
          ) : (
            <dl className="profile-traits">
              {Object.entries(p.traits).map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{typeof v === 'string' ? v : <code>{JSON.stringify(v)}</code>}</dd>
                </div>
              ))}
            </dl>
          )}
        </section>
      </div>

      <Consent profileId={p.id} />
      <Sessions profileId={p.id} currency={currency} />
      <Orders identities={p.identities} currency={currency} />
      <Timeline identities={p.identities} />
    </>
  )
}

const KIND_LABEL: Record<string, string> = { anonymous_id: 'Anonymous ID', user_id: 'User ID', email: 'Email' }

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div className="card stat">
      <div className="label">{label}</div>
      <div className="value profile-stat">{value}</div>
    </div>
  )
}

function Consent({ profileId }: { profileId: string }) {
  const { ws, path, canWrite } = useWorkspace()
  const url = `${path}/profiles/${encodeURIComponent(profileId)}/consent`
  const state = useLoad(() => get<ConsentState>(url), [url])
  const change = useAction()
  const policy: string[] = ws.settings.privacy?.purposes ?? []

  const decide = async (purpose: string, granted: boolean) => {
    const c = await change.run(() => put<ConsentState>(url, { categoryPreferences: { [purpose]: granted } }))
    if (c) state.setData(c)
  }

  return (
    <section>
      <h2>Consent</h2>
      <Loaded state={state} what="consent">
        {(c) => {
          const purposes = [...new Set([...policy, ...Object.keys(c.purposes)])]
          return (
            <>
              <ErrorBox error={change.error} />
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Purpose</th>
                      <th>Consent</th>
                      <th>Since</th>
                      <th>Source</th>
                      {canWrite && <th>Change</th>}
                    </tr>
                  </thead>
                  <tbody>
                    {purposes.map((purpose) => {
                      const d = c.purposes[purpose]
                      const fixed = purpose === 'necessary'
                      return (
                        <tr key={purpose} data-purpose={purpose}>
                          <td>{purpose}</td>
                          <td>
                            {fixed ? (
                              <span className="badge ok">always</span>
                            ) : !d ? (
                              <span className="badge">unknown</span>
                            ) : d.granted ? (
                              <span className="badge ok">granted</span>
                            ) : (
                              <span className="badge bad">refused</span>
                            )}
                          </td>
                          <td>{d ? fmtTime(d.at) : '—'}</td>
                          <td>{d ? (d.source === 'api' ? 'console / API' : 'event') : '—'}</td>
                          {canWrite && (
                            <td>
                              {!fixed && policy.includes(purpose) && (
                                <div className="row">
                                  {d?.granted !== true && (
                                    <button disabled={change.busy} onClick={() => decide(purpose, true)} aria-label={`Grant ${purpose}`}>
                                      Grant
                                    </button>
                                  )}
                                  {d?.granted !== false && (
                                    <button className="danger" disabled={change.busy} onClick={() => decide(purpose, false)} aria-label={`Withdraw ${purpose}`}>
                                      Withdraw
                                    </button>
                                  )}
                                </div>
                              )}
                            </td>
                          )}
                        </tr>
                      )
                    })}
                  </tbody>
                </table>
              </div>
            </>
          )
        }}
      </Loaded>
    </section>
  )
}

function Sessions({ profileId, currency }: { profileId: string; currency: string }) {
  const { path } = useWorkspace()
  const url = `${path}/sessions?profile_id=${encodeURIComponent(profileId)}&limit=20`
  const state = usePaged<Session>(url)
  return (
    <section>
      <h2>Sessions</h2>
      <Loaded state={state} what="sessions">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No sessions recorded on this profile.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Started</th>
                      <th>Landing page</th>
                      <th>Channel</th>
                      <th>Device</th>
                      <th className="num">Pages</th>
                      <th className="num">Duration</th>
                      <th className="num">Revenue</th>
                      <th>State</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((s) => (
                      <tr key={s.id}>
                        <td className="nowrap">{fmtTime(s.started_at)}</td>
                        <td>
                          <div className="profile-url" title={s.landing_page ?? undefined}>
                            {urlPath(s.landing_page)}
                          </div>
                        </td>
                        <td>{s.channel_group}</td>
                        <td>{[s.device_type, s.browser].filter(Boolean).join(' · ') || '—'}</td>
                        <td className="num">{fmtNumber(s.page_views)}</td>
                        <td className="num">{fmtDuration(s.duration_seconds * 1000)}</td>
                        <td className="num">{s.revenue > 0 ? s.revenue.toLocaleString(undefined, { style: 'currency', currency }) : '—'}</td>
                        <td>{s.closed ? <span className="badge">closed</span> : <span className="badge ok">open</span>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <LoadMore paged={state} label="Load more sessions" />
            </>
          )
        }
      </Loaded>
    </section>
  )
}

// useEvents reads the events of every anonymous and user id of a profile
// (the API filters by one id at a time) and merges them newest first. An
// event is shown once every id's stream has been read past it, so that
// "Load more" never inserts an event above those already shown.
interface Stream {
  param: 'anonymous_id' | 'user_id'
  value: string
  cursor?: string
  done: boolean
  // The oldest timestamp read so far (ms).
  oldest: number
}
interface EventsState {
  streams: Stream[]
  shown: StoredEvent[]
  buffered: StoredEvent[]
}

const newest = (a: StoredEvent, b: StoredEvent) => Date.parse(b.timestamp) - Date.parse(a.timestamp) || (a.message_id < b.message_id ? 1 : a.message_id > b.message_id ? -1 : 0)

function useEvents(identities: Identity[], filter: string, limit: number) {
  const { path } = useWorkspace()
  const ids = identities.filter((i): i is Identity & { kind: 'anonymous_id' | 'user_id' } => i.kind === 'anonymous_id' || i.kind === 'user_id')
  const key = ids.map((i) => i.kind + ':' + i.value).join('\n')
  const [state, setState] = useState<EventsState | null>(null)
  const [error, setError] = useState<Error | null>(null)
  const [busy, setBusy] = useState(false)

  const step = useCallback(
    async (prev: EventsState): Promise<EventsState> => {
      const streams = await Promise.all(
        prev.streams.map(async (s) => {
          if (s.done) return { s, events: [] as StoredEvent[] }
          const q = `${path}/events?${s.param}=${encodeURIComponent(s.value)}&limit=${limit}${filter}` + (s.cursor ? `&cursor=${encodeURIComponent(s.cursor)}` : '')
          const page = await get<Page<StoredEvent>>(q)
          const last = page.data[page.data.length - 1]
          return {
            s: { ...s, cursor: page.next_cursor, done: !page.next_cursor, oldest: last ? Date.parse(last.timestamp) : s.oldest },
            events: page.data,
          }
        }),
      )
      const seen = new Set([...prev.shown, ...prev.buffered].map((e) => e.message_id))
      const pool = [...prev.buffered]
      for (const { events } of streams) {
        for (const e of events) {
          if (seen.has(e.message_id)) continue
          seen.add(e.message_id)
          pool.push(e)
        }
      }
      const next = streams.map((x) => x.s)
      const open = next.filter((s) => !s.done)
      const watermark = open.length === 0 ? -Infinity : Math.max(...open.map((s) => s.oldest))
      pool.sort(newest)
      const show = pool.filter((e) => Date.parse(e.timestamp) > watermark)
      return { streams: next, shown: [...prev.shown, ...show], buffered: pool.filter((e) => Date.parse(e.timestamp) <= watermark) }
    },
    [path, filter, limit],
  )

  // gen tells the answers of the current identities from older ones.
  const gen = useRef(0)
  const run = useCallback(
    async (from: EventsState) => {
      const mine = gen.current
      setBusy(true)
      setError(null)
      try {
        const next = await step(from)
        if (mine === gen.current) setState(next)
      } catch (e) {
        if (mine === gen.current) setError(e as Error)
      } finally {
        if (mine === gen.current) setBusy(false)
      }
    },
    [step],
  )

  const initial = useCallback(
    (): EventsState => ({
      streams: ids.map((i) => ({ param: i.kind, value: i.value, done: false, oldest: Infinity })),
      shown: [],
      buffered: [],
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [key],
  )

  useEffect(() => {
    gen.current++
    setState(null)
    run(initial())
  }, [initial, run])

  const more = state && state.streams.some((s) => !s.done)
  return {
    events: state?.shown,
    error,
    busy,
    hasMore: Boolean(more),
    loadMore: () => state && run(state),
    retry: () => run(state ?? initial()),
  }
}

function Orders({ identities, currency }: { identities: Identity[]; currency: string }) {
  const ev = useEvents(identities, '&event=' + encodeURIComponent('Order Completed'), 50)
  const money = (n: unknown, cur: unknown) =>
    typeof n === 'number' ? n.toLocaleString(undefined, { style: 'currency', currency: typeof cur === 'string' && cur ? cur : currency }) : '—'
  return (
    <section>
      <h2>Orders</h2>
      <ErrorBox error={ev.error} retry={ev.retry} />
      {ev.events === undefined ? (
        !ev.error && <Loading what="orders" />
      ) : ev.events.length === 0 && !ev.hasMore ? (
        <Empty>No orders.</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Order</th>
                  <th>Products</th>
                  <th className="num">Total</th>
                </tr>
              </thead>
              <tbody>
                {ev.events.map((e) => {
                  const pr = e.properties ?? {}
                  const products = Array.isArray(pr.products) ? (pr.products as { name?: string; quantity?: number }[]) : []
                  return (
                    <tr key={e.message_id}>
                      <td>{fmtTime(e.timestamp)}</td>
                      <td>
                        <code>{typeof pr.order_id === 'string' ? pr.order_id : '—'}</code>
                      </td>
                      <td>{products.length === 0 ? '—' : products.map((x) => `${x.quantity ?? 1} × ${x.name ?? 'item'}`).join(', ')}</td>
                      <td className="num">{money(pr.total ?? pr.revenue, pr.currency)}</td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </div>
          <MoreButton ev={ev} what="orders" />
        </>
      )}
    </section>
  )
}

function Timeline({ identities }: { identities: Identity[] }) {
  const ev = useEvents(identities, '', 50)
  return (
    <section>
      <h2>Events</h2>
      <ErrorBox error={ev.error} retry={ev.retry} />
      {ev.events === undefined ? (
        !ev.error && <Loading what="events" />
      ) : ev.events.length === 0 && !ev.hasMore ? (
        <Empty>No events.</Empty>
      ) : (
        <>
          <ol className="profile-timeline" data-testid="profile-events">
            {ev.events.map((e) => (
              <TimelineEvent key={e.message_id} e={e} />
            ))}
          </ol>
          <MoreButton ev={ev} what="events" />
        </>
      )}
    </section>
  )
}

function MoreButton({ ev, what }: { ev: ReturnType<typeof useEvents>; what: string }) {
  if (!ev.hasMore) return null
  return (
    <div className="profile-more">
      <button onClick={ev.loadMore} disabled={ev.busy}>
        {ev.busy ? 'Loading…' : `Load more ${what}`}
      </button>
    </div>
  )
}

function TimelineEvent({ e }: { e: StoredEvent }) {
  const page = (e.context?.page ?? null) as { path?: string; url?: string } | null
  const title = e.type === 'track' ? e.event : e.type === 'page' || e.type === 'screen' ? e.name || page?.path || e.type : e.type
  return (
    <li className={'profile-event profile-event-' + e.type}>
      <time dateTime={e.timestamp}>{fmtTime(e.timestamp)}</time>
      <div className="profile-event-body">
        <details>
          <summary>
            <span className="badge">{e.type}</span> <strong>{title}</strong>
            {page?.path && e.type !== 'page' && <span className="muted"> on {page.path}</span>}
            {e.type === 'page' && page?.path && page.path !== title && <span className="muted"> {page.path}</span>}
          </summary>
          <pre>{JSON.stringify({ message_id: e.message_id, anonymous_id: e.anonymous_id, user_id: e.user_id, properties: e.properties, traits: e.traits, context: e.context }, null, 2)}</pre>
        </details>
      </div>
    </li>
  )
}

// DeletionStatus follows a deletion job until it is done or failed.
function DeletionStatus({ job: first }: { job: DeletionJob }) {
  const { ws, path } = useWorkspace()
  const [job, setJob] = useState(first)
  const [error, setError] = useState<Error | null>(null)
  // polls counts the status reads, so that a failed read is tried again.
  const [polls, setPolls] = useState(0)
  const finished = job.status === 'done' || job.status === 'failed'
  useEffect(() => {
    if (finished) return
    let live = true
    const t = setTimeout(async () => {
      try {
        const j = await get<DeletionJob>(`${path}/deletions/${encodeURIComponent(job.id)}`)
        if (live) {
          setJob(j)
          setError(null)
        }
      } catch (e) {
        if (live) setError(e as Error)
      } finally {
        if (live) setPolls((n) => n + 1)
      }
    }, 2000)
    return () => {
      live = false
      clearTimeout(t)
    }
  }, [polls, job.id, finished, path])
  return (
    <div className="profile">
      <h1>{job.status === 'done' ? 'Profile deleted' : job.status === 'failed' ? 'Deletion failed' : 'Deleting the profile'}</h1>
      <div className="card stack" data-testid="deletion-status" data-status={job.status}>
        <div className="row">
          Job <code>{job.id}</code>
          <span className={'badge ' + (job.status === 'done' ? 'ok' : job.status === 'failed' ? 'bad' : 'warn')}>{job.status}</span>
          {!finished && <span className="spinner" aria-hidden="true" />}
        </div>
        {job.status === 'pending' && <p className="muted">Waiting for a worker to start the deletion.</p>}
        {job.status === 'running' && <p className="muted">Deleting; the job waits until the person's queued events have passed the workers.</p>}
        {job.status === 'failed' && <p className="error">{job.error || 'The deletion failed.'}</p>}
        {job.status === 'done' && (
          <>
            <p>Everything held about the person is deleted{job.finished_at ? ` (${fmtTime(job.finished_at)})` : ''}.</p>
            {Object.keys(job.counts).length > 0 && (
              <dl className="profile-traits">
                {Object.entries(job.counts).map(([k, v]) => (
                  <div key={k}>
                    <dt>{k.replace(/_/g, ' ')}</dt>
                    <dd>{fmtNumber(v)}</dd>
                  </div>
                ))}
              </dl>
            )}
          </>
        )}
        <ErrorBox error={error} />
        <Link to={`/ws/${ws.id}/profiles`}>Back to profiles</Link>
      </div>
    </div>
  )
}
