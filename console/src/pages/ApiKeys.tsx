import { useState, type FormEvent } from 'react'
import { ApiError, del, post } from '../api'
import { ConfirmButton, CopyButton, Empty, ErrorBox, LoadMore, Loaded, fmtTime, useAction, usePaged } from '../ui'
import { useWorkspace } from '../workspace'
import './apikeys.css'

type Scope = 'read' | 'write' | 'admin'

interface ApiKey {
  id: string
  workspace_id: string
  name: string
  prefix: string
  scopes: Scope[]
  created_by: string
  created_at: string
  last_used_at: string | null
  revoked_at: string | null
}

interface ApiKeyCreated extends ApiKey {
  key: string
}

const SCOPES: { scope: Scope; what: string }[] = [
  { scope: 'read', what: 'read the workspace, its sources, events, sessions and profiles' },
  { scope: 'write', what: 'change the workspace settings and sources' },
  { scope: 'admin', what: 'manage API keys and delete the workspace' },
]

export default function ApiKeys() {
  // Members and above manage keys (docs/api.md); the API refuses a member
  // an admin-scoped key.
  const { ws, path, canWrite: canManage } = useWorkspace()
  const list = usePaged<ApiKey>(path + '/api-keys?limit=100')
  const [created, setCreated] = useState<ApiKeyCreated | null>(null)


  const forbidden = list.error instanceof ApiError && list.error.status === 403

  return (
    <div className="stack apikeys-page">
      <div className="page-head">
        <h1>API keys</h1>
      </div>
      <p className="muted apikeys-intro">
        API keys let programs call Eddy's API for this workspace (<code>{ws.id}</code>) with <code>Authorization: Bearer eddy_sk_…</code>. A key can do only what
        its scopes allow.
      </p>

      {!canManage && (
        <div className="notice" role="note">
          API keys are managed by the organization's owners, admins and members.
          {forbidden && (
            <>
              {' '}
              The API answered: <em>{list.error!.message}</em>
            </>
          )}
        </div>
      )}

      {canManage && (
        <CreateKey
          path={path}
          onCreated={(k) => {
            setCreated(k)
            list.reload()
          }}
        />
      )}

      {created && <KeyReveal created={created} wsId={ws.id} onDone={() => setCreated(null)} />}

      {!(forbidden && !canManage) && (
        <Loaded state={list} what="API keys">
          {(page) =>
            page.data.length === 0 ? (
              <Empty>No API keys yet.</Empty>
            ) : (
              <>
                <div className="table-wrap">
                  <table className="apikeys-table">
                    <thead>
                      <tr>
                        <th>Name</th>
                        <th>Key</th>
                        <th>Scopes</th>
                        <th>Created</th>
                        <th>Last used</th>
                        <th>Status</th>
                      </tr>
                    </thead>
                    <tbody>
                      {page.data.map((k) => (
                        <KeyRow key={k.id} apiKey={k} path={path} canRevoke={canManage} onRevoked={list.reload} />
                      ))}
                    </tbody>
                  </table>
                </div>
                {list.error && <ErrorBox error={list.error} retry={list.reload} />}
                <LoadMore paged={list} />
              </>
            )
          }
        </Loaded>
      )}
    </div>
  )
}

function KeyRow({ apiKey: k, path, canRevoke, onRevoked }: { apiKey: ApiKey; path: string; canRevoke: boolean; onRevoked: () => void }) {
  const action = useAction()
  return (
    <tr data-testid="api-key-row" className={k.revoked_at ? 'apikeys-revoked' : undefined}>
      <td>
        {k.name}
        <div className="muted apikeys-by">by {k.created_by}</div>
      </td>
      <td>
        <code>{k.prefix}…</code>
      </td>
      <td>
        <span className="row apikeys-scopes">
          {k.scopes.map((s) => (
            <span key={s} className="badge">
              {s}
            </span>
          ))}
        </span>
      </td>
      <td>{fmtTime(k.created_at)}</td>
      <td>{k.last_used_at ? fmtTime(k.last_used_at) : <span className="muted">never</span>}</td>
      <td>
        {k.revoked_at ? (
          <span className="badge bad" title={'Revoked ' + fmtTime(k.revoked_at)}>
            Revoked
          </span>
        ) : canRevoke ? (
          <ConfirmButton
            label="Revoke"
            question={
              <p>
                Revoke the API key <strong>{k.name}</strong> (<code>{k.prefix}…</code>)? Programs using it are refused from now on. This cannot be undone.
              </p>
            }
            onConfirm={async () => {
              const ok = await action.run(() => del<void>(path + '/api-keys/' + encodeURIComponent(k.id)).then(() => true))
              if (ok) onRevoked()
            }}
          />
        ) : (
          <span className="badge ok">Active</span>
        )}
        <ErrorBox error={action.error} />
      </td>
    </tr>
  )
}

function CreateKey({ path, onCreated }: { path: string; onCreated: (k: ApiKeyCreated) => void }) {
  const [name, setName] = useState('')
  const [scopes, setScopes] = useState<ReadonlySet<Scope>>(new Set<Scope>(['read']))
  const [problem, setProblem] = useState('')
  const action = useAction()

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (!name.trim()) return setProblem('Give the key a name, to recognize it later.')
    if (scopes.size === 0) return setProblem('Choose at least one scope.')
    setProblem('')
    const chosen = SCOPES.map((s) => s.scope).filter((s) => scopes.has(s))
    const k = await action.run(() => post<ApiKeyCreated>(path + '/api-keys', { name: name.trim(), scopes: chosen }))
    if (k) {
      setName('')
      setScopes(new Set<Scope>(['read']))
      onCreated(k)
    }
  }

  return (
    <form className="card apikeys-create" onSubmit={submit} noValidate aria-label="Create an API key">
      <h2 className="apikeys-h2">New API key</h2>
      <label className="apikeys-name">
        Name
        <input data-testid="create-api-key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="Nightly export" autoComplete="off" />
      </label>
      <fieldset className="apikeys-scopes-field">
        <legend>Scopes</legend>
        {SCOPES.map(({ scope, what }) => (
          <label key={scope} className="inline">
            <input
              type="checkbox"
              checked={scopes.has(scope)}
              onChange={(e) =>
                setScopes((prev) => {
                  const next = new Set(prev)
                  if (e.target.checked) next.add(scope)
                  else next.delete(scope)
                  return next
                })
              }
            />
            <span>
              <code>{scope}</code> <span className="muted">— {what}</span>
            </span>
          </label>
        ))}
      </fieldset>
      {problem && (
        <p className="apikeys-problem" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={action.error} />
      <div className="row">
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create API key'}
        </button>
      </div>
    </form>
  )
}

function KeyReveal({ created, wsId, onDone }: { created: ApiKeyCreated; wsId: string; onDone: () => void }) {
  const example = `curl -H 'Authorization: Bearer ${created.key}' ${window.location.origin}/api/v1/workspaces/${encodeURIComponent(wsId)}/sources`
  return (
    <section className="card apikeys-reveal" aria-label={`API key ${created.name}`}>
      <h2 className="apikeys-h2">API key “{created.name}”</h2>
      <p className="notice" role="status">
        Copy the key now: it is shown once and not again (Eddy stores only a hash of it).
      </p>
      <div className="apikeys-key-row">
        <code className="apikeys-key" data-testid="api-key">
          {created.key}
        </code>
        <CopyButton text={created.key} label="Copy key" />
      </div>
      <p>For example:</p>
      <div className="apikeys-example">
        <pre>
          <code>{example}</code>
        </pre>
        <CopyButton text={example} label="Copy command" />
      </div>
      <div className="row">
        <button onClick={onDone}>I have copied it, hide the key</button>
      </div>
    </section>
  )
}
