import { useState, type FormEvent } from 'react'
import { Link } from 'react-router-dom'
import { post } from '../api'
import { CopyButton, Empty, ErrorBox, LoadMore, Loaded, fmtTime, useAction, usePaged } from '../ui'
import { useWorkspace } from '../workspace'
import './sources.css'

// A source as the API answers it (openapi.yaml's Source): its write key is
// stored only hashed, so the API gives the key's first characters.
export interface SourceInfo {
  id: string
  workspace_id: string
  name: string
  managed: boolean
  write_key_prefix: string
  revoked_at: string | null
  created_at: string
  updated_at: string
}

// SourceWithKey is what creating or rotating answers: the key, this once.
export interface SourceWithKey extends SourceInfo {
  write_key: string
}

const SLUG = /^[a-z0-9][a-z0-9_-]{0,62}$/

function slugProblem(id: string): string {
  if (id === '') return 'Give the source an id.'
  if (!SLUG.test(id)) return 'Use 1 to 63 lowercase letters, digits, "_" or "-", starting with a letter or digit.'
  return ''
}

const USAGE = `// Record an event, with its properties:
eddy.track('Product Added', {sku: 'A1'})
// Say who the visitor is (their later events carry the user id):
eddy.identify('user-1', {email: 'user@example.com'})
// Pass the visitor's consent choices on:
eddy.consent({analytics: true})
// React to actions Eddy's plugins send back to the page:
eddy.on('action', (action) => console.log(action))`

// Snippet is the one line a site pastes into its pages, with the write key
// filled in when the console has just been given it, and how to use it.
export function Snippet({ writeKey }: { writeKey?: string }) {
  const line = `<script async src="${window.location.origin}/sdk/eddy.js?key=${writeKey ? encodeURIComponent(writeKey) : 'YOUR_WRITE_KEY'}"></script>`
  return (
    <div className="sources-snippet">
      <p>
        Paste this line into every page of your site{writeKey ? '' : <>, with the source's write key in place of <code>YOUR_WRITE_KEY</code></>}:
      </p>
      <div className="sources-code">
        <pre data-testid="snippet">
          <code>{line}</code>
        </pre>
        <CopyButton text={line} label="Copy snippet" />
      </div>
      <p>Then, in your pages' scripts:</p>
      <pre className="sources-usage">
        <code>{USAGE}</code>
      </pre>
    </div>
  )
}

// WriteKeyReveal shows a write key the API has just given, the only time it
// is seen, with the snippet ready to paste.
export function WriteKeyReveal({ source, onDone }: { source: SourceWithKey; onDone: () => void }) {
  return (
    <section className="card sources-reveal" aria-label={`Write key of ${source.id}`}>
      <h2>Write key of “{source.name || source.id}”</h2>
      <p className="notice" role="status">
        Copy the key now: it is shown once and not again (Eddy stores only a hash of it). If it is lost, rotate the key to get a new one.
      </p>
      <div className="sources-key-row">
        <code className="sources-key" data-testid="write-key">
          {source.write_key}
        </code>
        <CopyButton text={source.write_key} label="Copy key" />
      </div>
      <Snippet writeKey={source.write_key} />
      <div className="row">
        <button onClick={onDone}>I have copied it, hide the key</button>
      </div>
    </section>
  )
}

// SourceStatus says whether a source takes events and who manages it.
export function SourceStatus({ source }: { source: SourceInfo }) {
  return (
    <span className="row sources-status">
      {source.revoked_at ? <span className="badge bad">Revoked</span> : <span className="badge ok">Active</span>}
      {source.managed && (
        <span className="badge warn" title="Declared in plugins.yaml: edit the file to change it">
          Managed
        </span>
      )}
    </span>
  )
}

export default function Sources() {
  const { ws, path, canWrite } = useWorkspace()
  const list = usePaged<SourceInfo>(path + '/sources?limit=100')
  const [created, setCreated] = useState<SourceWithKey | null>(null)


  return (
    <div className="stack sources-page">
      <div className="page-head">
        <h1>Sources</h1>
      </div>
      <p className="muted sources-intro">
        A source is a site or app sending events to this workspace with its own write key. Revoke a source to stop its key; rotate the key if it leaked.
      </p>

      {canWrite && (
        <CreateSource
          path={path}
          onCreated={(s) => {
            setCreated(s)
            list.reload()
          }}
        />
      )}

      {created && <WriteKeyReveal source={created} onDone={() => setCreated(null)} />}

      <Loaded state={list} what="sources">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No sources yet.{canWrite ? ' Create one above to get its write key.' : ''}</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Source</th>
                      <th>Write key</th>
                      <th>Status</th>
                      <th>Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((s) => (
                      <tr key={s.id} data-testid="source-row" className={s.revoked_at ? 'sources-revoked' : undefined}>
                        <td>
                          <Link to={`/ws/${encodeURIComponent(ws.id)}/sources/${encodeURIComponent(s.id)}`}>{s.name || s.id}</Link>
                          <div className="muted">
                            <code>{s.id}</code>
                          </div>
                        </td>
                        <td>
                          <code>{s.write_key_prefix}…</code>
                        </td>
                        <td>
                          <SourceStatus source={s} />
                        </td>
                        <td>{fmtTime(s.created_at)}</td>
                      </tr>
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

      {!created && (
        <section className="card">
          <h2 className="sources-h2">Install on a site</h2>
          <Snippet />
        </section>
      )}
    </div>
  )
}

function CreateSource({ path, onCreated }: { path: string; onCreated: (s: SourceWithKey) => void }) {
  const [id, setId] = useState('')
  const [name, setName] = useState('')
  const [touched, setTouched] = useState(false)
  const action = useAction()
  const problem = slugProblem(id)
  const showProblem = touched && problem !== ''

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setTouched(true)
    if (problem) return
    const s = await action.run(() => post<SourceWithKey>(path + '/sources', name.trim() ? { id, name: name.trim() } : { id }))
    if (s) {
      setId('')
      setName('')
      setTouched(false)
      onCreated(s)
    }
  }

  return (
    <form className="card sources-create" onSubmit={submit} noValidate aria-label="Create a source">
      <h2 className="sources-h2">New source</h2>
      <div className="sources-fields">
        <label>
          Id
          <input
            data-testid="create-source-id"
            value={id}
            onChange={(e) => setId(e.target.value)}
            onBlur={() => id !== '' && setTouched(true)}
            placeholder="web"
            autoComplete="off"
            spellCheck={false}
            aria-invalid={showProblem}
            aria-describedby="create-source-id-help"
          />
        </label>
        <label>
          <span>
            Name <span className="muted">(optional)</span>
          </span>
          <input data-testid="create-source-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="Website" autoComplete="off" />
        </label>
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create source'}
        </button>
      </div>
      <p id="create-source-id-help" className={showProblem ? 'sources-field-error' : 'muted sources-help'}>
        {showProblem ? problem : 'The id is permanent: lowercase letters, digits, "_" and "-".'}
      </p>
      <ErrorBox error={action.error} />
    </form>
  )
}
