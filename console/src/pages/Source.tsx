import { useEffect, useRef, useState, type FormEvent } from 'react'
import { Link, useParams } from 'react-router-dom'
import { del, get, patch, post } from '../api'
import { ConfirmButton, ErrorBox, Loaded, fmtTime, useAction, useLoad } from '../ui'
import { useWorkspace } from '../workspace'
import { Snippet, SourceStatus, WriteKeyReveal, type SourceInfo, type SourceWithKey } from './Sources'
import './source.css'

export default function Source() {
  const { src } = useParams()
  const { ws, path, canWrite } = useWorkspace()
  const srcPath = path + '/sources/' + encodeURIComponent(src!)
  const state = useLoad(() => get<SourceInfo>(srcPath), [srcPath])
  const [rotated, setRotated] = useState<SourceWithKey | null>(null)
  const action = useAction()

  return (
    <div className="stack source-page">
      <Link to={`/ws/${encodeURIComponent(ws.id)}/sources`}>← Sources</Link>
      <Loaded state={state} what="source">
        {(s) => {
          const editable = canWrite && !s.managed && !s.revoked_at
          return (
            <>
              <div className="page-head">
                <div>
                  <h1>{s.name || s.id}</h1>
                  <div className="row muted">
                    <code>{s.id}</code>
                    <SourceStatus source={s} />
                  </div>
                </div>
                {editable && (
                  <div className="row">
                    <ConfirmButton
                      label="Rotate write key"
                      question={
                        <p>
                          Give <strong>{s.name || s.id}</strong> a new write key? The current key stops working at once: sites using it send nothing until they
                          get the new one.
                        </p>
                      }
                      onConfirm={async () => {
                        const r = await action.run(() => post<SourceWithKey>(srcPath + '/rotate'))
                        if (r) {
                          const { write_key: _shownOnce, ...info } = r
                          setRotated(r)
                          state.setData(info)
                        }
                      }}
                    />
                    <ConfirmButton
                      label="Revoke source"
                      question={
                        <p>
                          Revoke <strong>{s.name || s.id}</strong>? Its write key stops working for good and events sent with it are refused. This cannot be
                          undone.
                        </p>
                      }
                      onConfirm={async () => {
                        const ok = await action.run(() => del<void>(srcPath).then(() => true))
                        if (ok) {
                          setRotated(null)
                          state.reload()
                        }
                      }}
                    />
                  </div>
                )}
              </div>
              <ErrorBox error={action.error} />

              {s.managed && (
                <p className="notice">
                  This source is declared in <code>plugins.yaml</code>: it cannot be renamed, rotated or revoked here. Edit the file instead.
                </p>
              )}
              {s.revoked_at && <p className="notice">Revoked on {fmtTime(s.revoked_at)}: its write key no longer works.</p>}

              {rotated && <WriteKeyReveal source={rotated} onDone={() => setRotated(null)} />}

              <dl className="source-facts card">
                <div>
                  <dt>Write key</dt>
                  <dd>
                    <code>{s.write_key_prefix}…</code>
                  </dd>
                </div>
                <div>
                  <dt>Created</dt>
                  <dd>{fmtTime(s.created_at)}</dd>
                </div>
                <div>
                  <dt>Updated</dt>
                  <dd>{fmtTime(s.updated_at)}</dd>
                </div>
              </dl>

              {editable && <Rename key={s.id + s.updated_at} srcPath={srcPath} source={s} onSaved={(n) => state.setData(n)} />}

              <Debugger key={srcPath} srcPath={srcPath} />

              {!rotated && !s.revoked_at && (
                <section className="card">
                  <h2 className="source-h2">Install on a site</h2>
                  <Snippet />
                </section>
              )}
            </>
          )
        }}
      </Loaded>
    </div>
  )
}

function Rename({ srcPath, source, onSaved }: { srcPath: string; source: SourceInfo; onSaved: (s: SourceInfo) => void }) {
  const [name, setName] = useState(source.name)
  const action = useAction()
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const s = await action.run(() => patch<SourceInfo>(srcPath, { name: name.trim() }))
    if (s) onSaved(s)
  }
  const unchanged = name.trim() === source.name
  return (
    <form className="card source-rename" onSubmit={submit} aria-label="Rename the source">
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
      </label>
      <button type="submit" disabled={action.busy || unchanged}>
        {action.busy ? 'Saving…' : 'Save name'}
      </button>
      <ErrorBox error={action.error} />
    </form>
  )
}

// DebugEntry is one event the collector or the consent gate saw for this
// source while someone watched.
interface DebugEntry {
  id: string
  at: string
  stage: 'collector' | 'consent'
  outcome: 'accepted' | 'rejected'
  reason?: string
  message_id?: string
  type?: string
  event?: string
  anonymous_id?: string
  user_id?: string
  payload?: unknown
}

interface DebugPage {
  data: DebugEntry[]
  cursor: string
}

const KEEP = 200
const EVERY_MS = 1000
const AFTER_ERROR_MS = 5000

// Debugger polls the source's debugger every second while the page is
// visible and not paused: each call keeps the recording going for two
// minutes, and answers the entries newer than the cursor, oldest first.
function Debugger({ srcPath }: { srcPath: string }) {
  const [entries, setEntries] = useState<DebugEntry[]>([])
  const [paused, setPaused] = useState(false)
  const [hidden, setHidden] = useState(() => document.hidden)
  const [error, setError] = useState<Error | null>(null)
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set())
  const cursor = useRef<string | undefined>(undefined)

  useEffect(() => {
    const onVisibility = () => setHidden(document.hidden)
    document.addEventListener('visibilitychange', onVisibility)
    return () => document.removeEventListener('visibilitychange', onVisibility)
  }, [])

  useEffect(() => {
    if (paused || hidden) return
    let live = true
    let timer: number | undefined
    const poll = async () => {
      let next = EVERY_MS
      try {
        const after = cursor.current ? '?after=' + encodeURIComponent(cursor.current) : ''
        const page = await get<DebugPage>(srcPath + '/debugger' + after)
        if (!live) return
        if (page.cursor) cursor.current = page.cursor
        if (page.data.length > 0) {
          setEntries((prev) => {
            const seen = new Set(prev.map((e) => e.id))
            const fresh = page.data.filter((e) => !seen.has(e.id)).reverse()
            return fresh.length === 0 ? prev : [...fresh, ...prev].slice(0, KEEP)
          })
        }
        setError(null)
      } catch (e) {
        if (!live) return
        setError(e as Error)
        next = AFTER_ERROR_MS
      }
      timer = window.setTimeout(poll, next)
    }
    poll()
    return () => {
      live = false
      window.clearTimeout(timer)
    }
  }, [srcPath, paused, hidden])

  const toggle = (id: string) =>
    setOpen((prev) => {
      const next = new Set(prev)
      if (!next.delete(id)) next.add(id)
      return next
    })

  const status = paused ? 'Paused' : hidden ? 'Paused while this tab is hidden' : error ? 'Retrying…' : 'Recording'
  const rejected = entries.filter((e) => e.outcome === 'rejected').length

  return (
    <section className="card source-debugger" aria-labelledby="source-debugger-title">
      <div className="source-debugger-head">
        <div>
          <h2 id="source-debugger-title" className="source-h2">
            Live debugger
          </h2>
          <p className="muted source-debugger-sub">
            The events this source's key sends, as the collector and the consent gate judged them. Eddy records them only while this page is open.
          </p>
        </div>
        <div className="row">
          <span className={'source-live' + (paused || hidden ? '' : error ? ' warn' : ' on')} role="status" aria-live="polite">
            {status}
          </span>
          <button aria-pressed={paused} onClick={() => setPaused(!paused)}>
            {paused ? 'Resume' : 'Pause'}
          </button>
          <button
            disabled={entries.length === 0}
            onClick={() => {
              setEntries([])
              setOpen(new Set())
            }}
          >
            Clear
          </button>
        </div>
      </div>
      <ErrorBox error={error} />
      {entries.length === 0 ? (
        <div className="empty">{paused ? 'Paused.' : 'Waiting for events…'}</div>
      ) : (
        <>
          <p className="muted source-debugger-count">
            {entries.length} event{entries.length === 1 ? '' : 's'}
            {rejected > 0 ? `, ${rejected} rejected` : ''} (the latest {KEEP} are kept), newest first.
          </p>
          <ul className="source-dbg-list">
            {entries.map((e) => (
              <DebugRow key={e.id} entry={e} open={open.has(e.id)} onToggle={() => toggle(e.id)} />
            ))}
          </ul>
        </>
      )}
    </section>
  )
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3, hour12: false })

function DebugRow({ entry: e, open, onToggle }: { entry: DebugEntry; open: boolean; onToggle: () => void }) {
  const what = [e.type, e.event].filter(Boolean).join(' · ') || '—'
  const who = e.user_id ? 'user ' + e.user_id : e.anonymous_id ? 'anon ' + e.anonymous_id : ''
  return (
    <li data-testid="debugger-row" data-outcome={e.outcome} className={'source-dbg-row ' + e.outcome}>
      <button className="source-dbg-summary" aria-expanded={open} onClick={onToggle}>
        <span className="source-dbg-caret" aria-hidden="true">
          {open ? '▾' : '▸'}
        </span>
        <time dateTime={e.at} className="source-dbg-time">
          {timeFormat.format(new Date(e.at))}
        </time>
        <span className={'badge ' + (e.outcome === 'accepted' ? 'ok' : 'bad')}>{e.outcome}</span>
        <span className="badge">{e.stage}</span>
        <span className="source-dbg-what">{what}</span>
        {who && <span className="source-dbg-who muted">{who}</span>}
        {e.reason && <span className="source-dbg-reason">{e.reason}</span>}
      </button>
      {open && (
        <div className="source-dbg-detail">
          <dl>
            {e.message_id && (
              <div>
                <dt>Message id</dt>
                <dd>
                  <code>{e.message_id}</code>
                </dd>
              </div>
            )}
            {e.anonymous_id && (
              <div>
                <dt>Anonymous id</dt>
                <dd>
                  <code>{e.anonymous_id}</code>
                </dd>
              </div>
            )}
            {e.user_id && (
              <div>
                <dt>User id</dt>
                <dd>
                  <code>{e.user_id}</code>
                </dd>
              </div>
            )}
            <div>
              <dt>Received</dt>
              <dd>{fmtTime(e.at)}</dd>
            </div>
          </dl>
          {e.payload !== undefined && e.payload !== null ? <pre>{JSON.stringify(e.payload, null, 2)}</pre> : <p className="muted">No payload recorded.</p>}
        </div>
      )}
    </li>
  )
}
