import { Fragment, useEffect, useMemo, useState, type FormEvent } from 'react'
import { useParams, useSearchParams } from 'react-router-dom'
import { canAdmin, get, type Page, type Workspace } from '../api'
import { useSession } from '../session'
import { Empty, ErrorBox, LoadMore, Loaded, Loading, fmtTime, usePaged, useLoad } from '../ui'
import './auditlog.css'

interface AuditEntry {
  id: string
  at: string
  actor: { type: 'admin' | 'api_key' | 'cli' | 'system'; id: string | null; label: string }
  action: string
  target: { type: string; id: string }
  workspace_id: string | null
  before: unknown
  after: unknown
  request_id: string | null
  ip: string | null
}

// Actions the API records (docs/api.md), offered as suggestions next to
// those seen in the loaded entries.
const KNOWN_ACTIONS = [
  'api_key.create',
  'api_key.revoke',
  'deletion.request',
  'invitation.accept',
  'invitation.create',
  'invitation.revoke',
  'member.add',
  'member.remove',
  'member.update',
  'organization.create',
  'organization.update',
  'plugin.dead_letters.replay',
  'plugin.install',
  'plugin.uninstall',
  'plugin.update',
  'plugin.upload',
  'profile.consent',
  'source.create',
  'source.revoke',
  'source.rotate',
  'source.update',
  'workspace.create',
  'workspace.cubes.update',
  'workspace.delete',
  'workspace.privacy.necessary_only',
  'workspace.update',
]

const ACTOR_LABEL: Record<AuditEntry['actor']['type'], string> = { admin: 'admin', api_key: 'API key', cli: 'CLI', system: 'system' }

const PAGE = 50

export default function AuditLog() {
  const { org } = useParams()
  const { roleIn } = useSession()
  return (
    <div className="stack audit-page">
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      {canAdmin(roleIn(org)) ? (
        <AuditTable org={org!} />
      ) : (
        <p className="notice">The audit log is readable by the organization's owners and admins.</p>
      )}
    </div>
  )
}

function AuditTable({ org }: { org: string }) {
  const orgPath = '/organizations/' + encodeURIComponent(org)
  const [params, setParams] = useSearchParams()
  const workspace = params.get('workspace') ?? ''
  const action = params.get('action') ?? ''
  const query = useMemo(() => {
    const q = new URLSearchParams({ limit: String(PAGE) })
    if (workspace) q.set('workspace', workspace)
    if (action) q.set('action', action)
    return q.toString()
  }, [workspace, action])

  const list = usePaged<AuditEntry>(orgPath + '/audit-log?' + query)
  const workspaces = useLoad(() => get<Page<Workspace>>(orgPath + '/workspaces?limit=200'), [orgPath])
  const [draft, setDraft] = useState(action)
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set())

  useEffect(() => setDraft(action), [action])

  const setFilter = (key: 'workspace' | 'action', value: string) => {
    const next = new URLSearchParams(params)
    if (value) next.set(key, value)
    else next.delete(key)
    setParams(next, { replace: true })
  }

  const applyAction = (e: FormEvent) => {
    e.preventDefault()
    setFilter('action', draft.trim())
  }


  const actions = useMemo(() => {
    const seen = new Set(KNOWN_ACTIONS)
    for (const e of list.data?.data ?? []) seen.add(e.action)
    return [...seen].sort()
  }, [list.data])

  const toggle = (id: string) =>
    setOpen((prev) => {
      const next = new Set(prev)
      if (!next.delete(id)) next.add(id)
      return next
    })

  const wsOptions = workspaces.data?.data ?? []
  const filtered = workspace !== '' || action !== ''

  return (
    <>
      <form className="card audit-filters" onSubmit={applyAction} aria-label="Filter the audit log">
        <label>
          Workspace
          <select value={workspace} onChange={(e) => setFilter('workspace', e.target.value)} data-testid="audit-workspace">
            <option value="">All workspaces</option>
            {workspace && !wsOptions.some((w) => w.id === workspace) && <option value={workspace}>{workspace}</option>}
            {wsOptions.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name ? `${w.name} (${w.id})` : w.id}
              </option>
            ))}
          </select>
        </label>
        <label className="audit-action">
          Action
          <input
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            list="audit-actions"
            placeholder="e.g. source.rotate"
            autoComplete="off"
            spellCheck={false}
            data-testid="audit-action"
          />
          <datalist id="audit-actions">
            {actions.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <button type="submit" className="primary">
          Filter
        </button>
        {filtered && (
          <button type="button" onClick={() => setParams(new URLSearchParams(), { replace: true })}>
            Clear filters
          </button>
        )}
      </form>
      <ErrorBox error={workspaces.error} />
      {list.loading && list.data && <Loading what="entries" />}

      <Loaded state={list} what="the audit log">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>{filtered ? 'No entries match these filters.' : 'No entries yet.'}</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table className="audit-table">
                  <thead>
                    <tr>
                      <th>Time</th>
                      <th>Actor</th>
                      <th>Action</th>
                      <th>Workspace</th>
                      <th>Target</th>
                      <th>Details</th>
                      <th>Request id</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((e) => {
                      const isOpen = open.has(e.id)
                      return (
                        <Fragment key={e.id}>
                          <tr data-testid="audit-row" className={isOpen ? 'audit-open' : undefined}>
                            <td data-label="Time">
                              <time dateTime={e.at} className="audit-nowrap">
                                {fmtTime(e.at)}
                              </time>
                            </td>
                            <td data-label="Actor">
                              <div>
                                <div className="audit-wrap">{e.actor.label}</div>
                                <span className="badge">{ACTOR_LABEL[e.actor.type] ?? e.actor.type}</span>
                              </div>
                            </td>
                            <td data-label="Action">
                              <button type="button" className="link audit-code" title="Show only this action" onClick={() => setFilter('action', e.action)}>
                                {e.action}
                              </button>
                            </td>
                            <td data-label="Workspace">
                              {e.workspace_id ? (
                                <button type="button" className="link audit-code" title="Show only this workspace" onClick={() => setFilter('workspace', e.workspace_id!)}>
                                  {e.workspace_id}
                                </button>
                              ) : (
                                <span className="muted">—</span>
                              )}
                            </td>
                            <td data-label="Target">
                              <div className="audit-wrap">
                                <span className="muted">{e.target.type}</span> <code>{e.target.id}</code>
                              </div>
                            </td>
                            <td data-label="Details">
                              <button type="button" aria-expanded={isOpen} onClick={() => toggle(e.id)}>
                                {isOpen ? 'Hide' : 'Show'}
                              </button>
                            </td>
                            <td data-label="Request id">{e.request_id ? <code className="audit-wrap">{e.request_id}</code> : <span className="muted">—</span>}</td>
                          </tr>
                          {isOpen && (
                            <tr className="audit-detail">
                              <td colSpan={7}>
                                <div className="audit-diff">
                                  <div>
                                    <h3>Before</h3>
                                    {e.before === null || e.before === undefined ? <p className="muted">Nothing.</p> : <pre>{JSON.stringify(e.before, null, 2)}</pre>}
                                  </div>
                                  <div>
                                    <h3>After</h3>
                                    {e.after === null || e.after === undefined ? <p className="muted">Nothing.</p> : <pre>{JSON.stringify(e.after, null, 2)}</pre>}
                                  </div>
                                </div>
                                <p className="muted audit-meta">
                                  Entry {e.id}
                                  {e.actor.id ? ` · actor id ${e.actor.id}` : ''}
                                  {e.ip ? ` · from ${e.ip}` : ''}
                                </p>
                              </td>
                            </tr>
                          )}
                        </Fragment>
                      )
                    })}
                  </tbody>
                </table>
              </div>
              {list.error && <ErrorBox error={list.error} retry={list.reload} />}
              <LoadMore paged={list} />
            </>
          )
        }
      </Loaded>
    </>
  )
}
