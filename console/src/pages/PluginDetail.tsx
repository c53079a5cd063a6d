import { Fragment, useEffect, useState, type FormEvent } from 'react'
import { Link, useNavigate, useParams } from 'react-router-dom'
import { ApiError, del, get, patch, post, type Page } from '../api'
import { useWorkspace } from '../workspace'
import { ConfirmButton, Empty, ErrorBox, Loaded, Loading, fmtNumber, fmtTime, useAction, useLoad } from '../ui'
import { ConfigForm, StateBadge, kindOf, type Installation, type Plugin } from './pluginForm'
import './plugins.css'

const REFRESH_MS = 5000

// PluginDetail is one installation: its status (refreshed every 5 s), the
// enable toggle, its configuration, and a sink's dead letters.
export default function PluginDetail() {
  const { pluginId = '' } = useParams()
  const { ws, org, path } = useWorkspace()
  const base = `${path}/plugins/${encodeURIComponent(pluginId)}`
  const state = useLoad(() => get<Installation>(base), [base])
  const catalog = useLoad(() => get<Page<Plugin>>(`/organizations/${encodeURIComponent(org)}/plugins`), [org])
  const { reload } = state

  // The status is refreshed every 5 s while the page is open.
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') reload()
    }, REFRESH_MS)
    return () => clearInterval(t)
  }, [reload])

  return (
    <div className="plugins">
      <p>
        <Link to={`/ws/${ws.id}/plugins`}>← Plugins</Link>
      </p>
      <Loaded state={state} what="installation">
        {(inst) => <Detail inst={inst} plugin={catalog.data?.data.find((p) => p.id === inst.plugin_id)} catalogLoading={catalog.loading && !catalog.data} refreshError={state.error} onChange={state.setData} base={base} />}
      </Loaded>
    </div>
  )
}

function Detail({
  inst,
  plugin,
  catalogLoading,
  refreshError,
  onChange,
  base,
}: {
  inst: Installation
  plugin: Plugin | undefined
  catalogLoading: boolean
  refreshError: Error | null
  onChange: (i: Installation) => void
  base: string
}) {
  const { canWrite } = useWorkspace()
  const kind = plugin?.kind ?? kindOf(inst.plugin_id)
  const editable = canWrite && !inst.managed
  const toggle = useAction()
  const uninstall = useAction()
  const navigate = useNavigate()
  const { ws } = useWorkspace()

  return (
    <>
      <div className="page-head">
        <div>
          <h1>{inst.plugin_id}</h1>
          <div className="plugins-meta">
            {kind && <span className="badge">{kind}</span>}
            {plugin && <span className="badge">{plugin.runtime}</span>}
            {plugin && <span className="badge">v{plugin.version}</span>}
            {inst.source && <span className="badge">{inst.source}</span>}
            {inst.managed && <span className="badge warn">managed by plugins.yaml</span>}
          </div>
        </div>
        <div className="row">
          {editable ? (
            <label className="inline plugins-toggle">
              <input
                type="checkbox"
                data-testid="plugin-enabled"
                checked={inst.enabled}
                disabled={toggle.busy}
                onChange={async (e) => {
                  // The switch moves at once; it moves back if the API refuses.
                  const enabled = e.target.checked
                  onChange({ ...inst, enabled })
                  const i = await toggle.run(() => patch<Installation>(base, { enabled }))
                  onChange(i ?? { ...inst, enabled: !enabled })
                }}
              />
              Enabled
            </label>
          ) : (
            <span className={'badge ' + (inst.enabled ? 'ok' : '')}>{inst.enabled ? 'enabled' : 'disabled'}</span>
          )}
          {editable && (
            <ConfirmButton
              label="Uninstall"
              question={
                <p>
                  Uninstall <strong>{inst.plugin_id}</strong> from this workspace? Its configuration is deleted{kind === 'sink' ? ', and events are no longer delivered to it' : ''}.
                </p>
              }
              onConfirm={async () => {
                const ok = await uninstall.run(() => del<void>(base).then(() => true))
                if (ok) navigate(`/ws/${ws.id}/plugins`)
              }}
            />
          )}
        </div>
      </div>
      <ErrorBox error={toggle.error} />
      <ErrorBox error={uninstall.error} />
      {inst.managed && (
        <div className="notice">
          This installation is managed by <code>plugins.yaml</code>: Eddy syncs it from the file at every start, and the API refuses changes. Edit the file to change it.
        </div>
      )}
      {plugin && <p>{plugin.description}</p>}

      <Status inst={inst} refreshError={refreshError} />

      <section aria-labelledby="plugin-config">
        <h2 id="plugin-config">Configuration</h2>
        {editable ? (
          catalogLoading ? (
            <Loading what="the plugin's settings" />
          ) : plugin ? (
            <Configure inst={inst} plugin={plugin} base={base} onChange={onChange} />
          ) : (
            <>
              <div className="notice">This plugin is no longer in the organization's catalog, so its settings cannot be edited.</div>
              <pre>{JSON.stringify(inst.config, null, 2)}</pre>
            </>
          )
        ) : Object.keys(inst.config ?? {}).length === 0 ? (
          <p className="muted">No settings.</p>
        ) : (
          <pre>{JSON.stringify(inst.config, null, 2)}</pre>
        )}
        {kind === 'sink' && <RateLimit inst={inst} base={base} editable={editable} onChange={onChange} />}
        {kind === 'processor' && <Position inst={inst} base={base} editable={editable} onChange={onChange} />}
      </section>

      {kind === 'sink' && <DeadLetters base={base} canReplay={canWrite} />}
    </>
  )
}

function Status({ inst, refreshError }: { inst: Installation; refreshError: Error | null }) {
  const s = inst.status
  return (
    <section aria-labelledby="plugin-status">
      <h2 id="plugin-status">
        Status <StateBadge state={s?.state} />
      </h2>
      {refreshError && <ErrorBox error={refreshError} />}
      {s?.last_error && (
        <div className="error" role="status">
          <strong>Last error</strong> ({fmtTime(s.last_error_at)}): {s.last_error}
        </div>
      )}
      <div className="cards">
        <Stat label="Calls" value={fmtNumber(s?.calls)} />
        <Stat label="Events in" value={fmtNumber(s?.events_in)} />
        <Stat label="Events out" value={fmtNumber(s?.events_out)} />
        <Stat label="Events failed" value={fmtNumber(s?.events_failed)} />
        <Stat label="Average latency" value={s ? fmtNumber(s.avg_latency_ms, 2) + ' ms' : '—'} />
        <Stat label="Lag" value={fmtNumber(s?.lag)} />
        <Stat label="Dead letters" value={fmtNumber(s?.dead_letters)} />
      </div>
      <p className="muted">Counters since each worker started it · reported {fmtTime(s?.updated_at)} · refreshed every 5 s.</p>
    </section>
  )
}

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div className="card stat">
      <div className="value">{value}</div>
      <div className="label">{label}</div>
    </div>
  )
}

function Configure({ inst, plugin, base, onChange }: { inst: Installation; plugin: Plugin; base: string; onChange: (i: Installation) => void }) {
  const action = useAction()
  // A new form after each save starts from the saved configuration.
  const [version, setVersion] = useState(0)
  const [saved, setSaved] = useState(false)
  return (
    <div className="card">
      {saved && (
        <div className="notice" role="status">
          Configuration saved.
        </div>
      )}
      <ConfigForm
        key={version}
        schema={plugin.config_schema}
        initial={inst.config ?? {}}
        submitText="Save configuration"
        busy={action.busy}
        error={action.error}
        editing
        onSubmit={async (config) => {
          setSaved(false)
          const i = await action.run(() => patch<Installation>(base, { config }))
          if (i) {
            onChange(i)
            setVersion((v) => v + 1)
            setSaved(true)
          }
        }}
      />
    </div>
  )
}

// NumberSetting edits one number of an installation (rate_limit, position).
function NumberSetting({
  inst,
  base,
  editable,
  onChange,
  field,
  label,
  help,
  min,
  max,
  step,
}: {
  inst: Installation
  base: string
  editable: boolean
  onChange: (i: Installation) => void
  field: 'rate_limit' | 'position'
  label: string
  help: string
  min: number
  max: number
  step: string
}) {
  const [value, setValue] = useState(String(inst[field]))
  const action = useAction()
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const i = await action.run(() => patch<Installation>(base, { [field]: Number(value) }))
    if (i) {
      onChange(i)
      setValue(String(i[field]))
    }
  }
  if (!editable) {
    return (
      <p>
        <strong>{label}:</strong> {field === 'rate_limit' && inst.rate_limit === 0 ? 'unlimited' : fmtNumber(inst[field], field === 'rate_limit' ? 2 : 0)} <span className="muted">{help}</span>
      </p>
    )
  }
  const fieldError = action.error instanceof ApiError ? action.error.details?.find((d) => d.field === field) : undefined
  return (
    <form className="card plugins-number" onSubmit={submit}>
      <label>
        {label}
        <input type="number" min={min} max={max} step={step} value={value} required onChange={(e) => setValue(e.target.value)} aria-invalid={fieldError ? true : undefined} />
      </label>
      <span className="muted">{help}</span>
      <button type="submit" disabled={action.busy || value === String(inst[field])}>
        {action.busy ? 'Saving…' : 'Save'}
      </button>
      <ErrorBox error={action.error} />
    </form>
  )
}

function RateLimit(props: { inst: Installation; base: string; editable: boolean; onChange: (i: Installation) => void }) {
  return <NumberSetting {...props} field="rate_limit" label="Rate limit (events per second)" help="0 is unlimited; fractions allowed (0.5 is one every 2 s)." min={0} max={1000000} step="any" />
}

function Position(props: { inst: Installation; base: string; editable: boolean; onChange: (i: Installation) => void }) {
  return <NumberSetting {...props} field="position" label="Position" help="The workspace's processors run in ascending position." min={0} max={100000} step="1" />
}

interface DeadLetter {
  id: string
  reason: string
  failed_at: string
  attempts: number
  message_id: string
  type: string
  event: string | null
  received_at: string
  payload: unknown
}

interface DeadLetterPage extends Page<DeadLetter> {
  total: number
}

// DeadLetters lists what a sink failed to deliver (oldest first), and
// replays it.
function DeadLetters({ base, canReplay }: { base: string; canReplay: boolean }) {
  const [rows, setRows] = useState<DeadLetter[]>([])
  const [cursor, setCursor] = useState<string | undefined>(undefined)
  const [open, setOpen] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const first = useLoad(() => get<DeadLetterPage>(`${base}/dead-letters?limit=50`), [base])
  const more = useAction()
  const replay = useAction()

  useEffect(() => {
    if (first.data) {
      setRows(first.data.data)
      setCursor(first.data.next_cursor)
    }
  }, [first.data])

  const loadMore = async () => {
    if (!cursor) return
    const p = await more.run(() => get<DeadLetterPage>(`${base}/dead-letters?limit=50&after=${encodeURIComponent(cursor)}`))
    if (p) {
      setRows((r) => [...r, ...p.data])
      setCursor(p.next_cursor)
    }
  }
  const doReplay = async (ids?: string[]) => {
    setNotice(null)
    const r = await replay.run(() => post<{ replayed: number }>(`${base}/dead-letters/replay`, ids ? { ids } : {}))
    if (r) {
      setNotice(`Replayed ${fmtNumber(r.replayed)} dead letter${r.replayed === 1 ? '' : 's'}.`)
      first.reload()
    }
  }

  return (
    <section aria-labelledby="plugin-dead-letters">
      <div className="page-head plugins-dl-head">
        <h2 id="plugin-dead-letters">
          Dead letters {first.data && first.data.total > 0 && <span className="badge warn">{fmtNumber(first.data.total)}</span>}
        </h2>
        <div className="row">
          <button onClick={first.reload} disabled={first.loading}>
            {first.loading ? 'Refreshing…' : 'Refresh'}
          </button>
          {canReplay && rows.length > 0 && (
            <ConfirmButton
              label="Replay all"
              danger={false}
              question={<p>Deliver every dead letter of this sink again? Each one replayed leaves the list; those that fail again come back.</p>}
              onConfirm={() => doReplay()}
            />
          )}
        </div>
      </div>
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <ErrorBox error={replay.error} />
      {first.error && !first.data ? (
        <ErrorBox error={first.error} retry={first.reload} />
      ) : !first.data ? (
        <Loading what="dead letters" />
      ) : rows.length === 0 ? (
        <Empty>No dead letters: everything was delivered or is on its way.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="plugins-dl-table">
            <thead>
              <tr>
                <th>Failed at</th>
                <th>Message</th>
                <th>Reason</th>
                <th className="num">Attempts</th>
                <th>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <Fragment key={d.id}>
                  <tr data-testid="dead-letter-row" data-dead-letter-id={d.id}>
                    <td>
                      {fmtTime(d.failed_at)}
                      <div className="muted">received {fmtTime(d.received_at)}</div>
                    </td>
                    <td>
                      {d.type}
                      {d.event ? `: ${d.event}` : ''}
                      <div className="muted plugins-mono">{d.message_id}</div>
                    </td>
                    <td className="plugins-error">{d.reason}</td>
                    <td className="num">{fmtNumber(d.attempts)}</td>
                    <td>
                      <div className="row plugins-actions">
                        <button aria-expanded={open === d.id} onClick={() => setOpen(open === d.id ? null : d.id)}>
                          {open === d.id ? 'Hide payload' : 'Payload'}
                        </button>
                        {canReplay && (
                          <button disabled={replay.busy} onClick={() => doReplay([d.id])}>
                            Replay
                          </button>
                        )}
                      </div>
                    </td>
                  </tr>
                  {open === d.id && (
                    <tr className="plugins-payload">
                      <td colSpan={5}>
                        <pre>{JSON.stringify(d.payload, null, 2)}</pre>
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorBox error={more.error} />
      {cursor && (
        <button onClick={loadMore} disabled={more.busy}>
          {more.busy ? 'Loading…' : 'Load more'}
        </button>
      )}
    </section>
  )
}
