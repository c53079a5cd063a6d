import { useState, type FormEvent } from 'react'
import { Link } from 'react-router-dom'
import { get, post, type Page } from '../api'
import { useWorkspace } from '../workspace'
import { Empty, ErrorBox, Loaded, fmtNumber, fmtTime, useAction, useLoad } from '../ui'
import { ConfigForm, KIND_LABELS, KINDS, StateBadge, kindOf, type Installation, type Plugin, type PluginKind } from './pluginForm'
import './plugins.css'

interface Data {
  catalog: Plugin[]
  installed: Installation[]
}

// Plugins lists the workspace's installations and the organization's
// catalog of plugins not installed yet, and uploads WASM apps.
export default function Plugins() {
  const { org, path, canWrite, canAdmin } = useWorkspace()
  const [kind, setKind] = useState<PluginKind | ''>('')
  const [notice, setNotice] = useState<string | null>(null)
  const state = useLoad<Data>(async () => {
    const [catalog, installed] = await Promise.all([get<Page<Plugin>>(`/organizations/${encodeURIComponent(org)}/plugins`), allInstallations(path)])
    return { catalog: catalog.data, installed }
  }, [org, path])

  return (
    <div className="plugins">
      <div className="page-head">
        <h1>Plugins</h1>
        <label className="inline">
          Kind
          <select value={kind} onChange={(e) => setKind(e.target.value as PluginKind | '')}>
            <option value="">All kinds</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {KIND_LABELS[k]}
              </option>
            ))}
          </select>
        </label>
      </div>
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      <Loaded state={state} what="plugins">
        {(d) => (
          <>
            <InstalledList data={d} kind={kind} />
            <Catalog
              data={d}
              kind={kind}
              canInstall={canWrite}
              onInstalled={(i) => {
                setNotice(`Installed ${i.plugin_id}.`)
                state.reload()
              }}
            />
          </>
        )}
      </Loaded>
      {canAdmin && (
        <Upload
          org={org}
          onUploaded={(p) => {
            setNotice(`Uploaded ${p.id} ${p.version} to the catalog.`)
            state.reload()
          }}
        />
      )}
    </div>
  )
}

// allInstallations reads every page of the workspace's installations.
async function allInstallations(path: string): Promise<Installation[]> {
  const out: Installation[] = []
  let cursor: string | undefined
  do {
    const p = await get<Page<Installation>>(`${path}/plugins?limit=200${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`)
    out.push(...p.data)
    cursor = p.next_cursor
  } while (cursor)
  return out
}

function InstalledList({ data, kind }: { data: Data; kind: PluginKind | '' }) {
  const { ws } = useWorkspace()
  const rows = data.installed.filter((i) => !kind || kindOf(i.plugin_id) === kind)
  return (
    <section aria-labelledby="plugins-installed">
      <h2 id="plugins-installed">Installed</h2>
      {rows.length === 0 ? (
        <Empty>{kind ? `No ${KIND_LABELS[kind].toLowerCase()} installed.` : 'No plugin installed in this workspace yet.'}</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Plugin</th>
                <th>State</th>
                <th>Enabled</th>
                <th className="num">Lag</th>
                <th className="num">Dead letters</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((i) => (
                <tr key={i.id} data-testid="installed-plugin" data-plugin-id={i.plugin_id}>
                  <td>
                    <Link to={`/ws/${ws.id}/plugins/${encodeURIComponent(i.plugin_id)}`}>{i.plugin_id}</Link>
                    <div className="plugins-meta">
                      {kindOf(i.plugin_id) ?? 'plugin'}
                      {i.managed && <span className="badge">managed</span>}
                      {i.source === '' && <span className="badge warn">left the catalog</span>}
                    </div>
                  </td>
                  <td>
                    <StateBadge state={i.status?.state} />
                  </td>
                  <td>{i.enabled ? 'yes' : 'no'}</td>
                  <td className="num">{fmtNumber(i.status?.lag)}</td>
                  <td className="num">{i.status?.dead_letters ? <span className="badge warn">{fmtNumber(i.status.dead_letters)}</span> : fmtNumber(i.status?.dead_letters)}</td>
                  <td className="plugins-error">
                    {i.status?.last_error ? (
                      <>
                        <span>{i.status.last_error}</span>
                        <div className="muted">{fmtTime(i.status.last_error_at)}</div>
                      </>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

function Catalog({ data, kind, canInstall, onInstalled }: { data: Data; kind: PluginKind | ''; canInstall: boolean; onInstalled: (i: Installation) => void }) {
  const installed = new Set(data.installed.map((i) => i.plugin_id))
  const available = data.catalog.filter((p) => !installed.has(p.id) && (!kind || p.kind === kind))
  const kinds = kind ? [kind] : KINDS
  return (
    <section aria-labelledby="plugins-catalog">
      <h2 id="plugins-catalog">Catalog</h2>
      {available.length === 0 ? (
        <Empty>{data.catalog.length === 0 ? 'The catalog is empty.' : 'Every plugin of the catalog is installed here.'}</Empty>
      ) : (
        kinds.map((k) => {
          const ps = available.filter((p) => p.kind === k)
          if (ps.length === 0) return null
          return (
            <div key={k} className="plugins-group">
              <h3>{KIND_LABELS[k]}</h3>
              <div className="stack">
                {ps.map((p) => (
                  <CatalogEntry key={p.id} plugin={p} canInstall={canInstall} onInstalled={onInstalled} />
                ))}
              </div>
            </div>
          )
        })
      )}
    </section>
  )
}

function CatalogEntry({ plugin, canInstall, onInstalled }: { plugin: Plugin; canInstall: boolean; onInstalled: (i: Installation) => void }) {
  const { path } = useWorkspace()
  const [open, setOpen] = useState(false)
  const [enabled, setEnabled] = useState(true)
  const [rateLimit, setRateLimit] = useState('')
  const [position, setPosition] = useState('')
  const action = useAction()
  const install = async (config: Record<string, unknown>) => {
    const body: Record<string, unknown> = { plugin_id: plugin.id, config, enabled }
    if (plugin.kind === 'sink' && rateLimit.trim() !== '') body.rate_limit = Number(rateLimit)
    if (plugin.kind === 'processor' && position.trim() !== '') body.position = Number(position)
    const i = await action.run(() => post<Installation>(`${path}/plugins`, body))
    if (i) onInstalled(i)
  }
  const formId = 'install-' + plugin.id.replace(/[^a-z0-9_-]/gi, '-')
  return (
    <article className="card plugins-entry" data-testid="catalog-plugin" data-plugin-id={plugin.id}>
      <div className="plugins-entry-head">
        <div>
          <h4>
            {plugin.id} <span className="muted">{plugin.version}</span>
          </h4>
          <div className="plugins-meta">
            <span className="badge">{plugin.kind}</span>
            <span className="badge">{plugin.runtime}</span>
            <span className="badge">{plugin.source}</span>
            {plugin.deletion && <span className="badge ok">handles deletions</span>}
          </div>
        </div>
        {canInstall && (
          <button className={open ? '' : 'primary'} aria-expanded={open} aria-controls={formId} onClick={() => setOpen(!open)}>
            {open ? 'Cancel' : 'Install'}
          </button>
        )}
      </div>
      <p>{plugin.description}</p>
      <Manifest plugin={plugin} />
      {open && (
        <div id={formId} className="plugins-install">
          <h5>Install {plugin.id}</h5>
          <ConfigForm schema={plugin.config_schema} initial={{}} submitText="Install" busy={action.busy} error={action.error} editing={false} onSubmit={install}>
            <div className="row plugins-options">
              <label className="inline">
                <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled once installed
              </label>
              {plugin.kind === 'sink' && (
                <label>
                  Rate limit (events per second, 0 = unlimited)
                  <input type="number" min={0} max={1000000} step="any" value={rateLimit} placeholder="0" onChange={(e) => setRateLimit(e.target.value)} />
                </label>
              )}
              {plugin.kind === 'processor' && (
                <label>
                  Position (processors run in ascending order; last when empty)
                  <input type="number" min={0} max={100000} step={1} value={position} onChange={(e) => setPosition(e.target.value)} />
                </label>
              )}
            </div>
          </ConfigForm>
        </div>
      )}
    </article>
  )
}

// Manifest shows what a plugin may do: its purposes and permissions.
export function Manifest({ plugin }: { plugin: Plugin }) {
  const list = (xs: string[] | undefined) => (xs && xs.length > 0 ? xs.join(', ') : 'none')
  return (
    <dl className="plugins-manifest">
      <dt>Purposes</dt>
      <dd>{list(plugin.purposes)}</dd>
      <dt>Receives</dt>
      <dd>{list(plugin.permissions?.events)}</dd>
      <dt>Network</dt>
      <dd>{list(plugin.permissions?.network)}</dd>
      <dt>Writes</dt>
      <dd>{list(plugin.permissions?.write)}</dd>
      {plugin.uploaded_at && (
        <>
          <dt>Uploaded</dt>
          <dd>
            {fmtTime(plugin.uploaded_at)}
            {plugin.size !== undefined && ` · ${fmtNumber(plugin.size / 1024, 1)} KiB`}
          </dd>
        </>
      )}
    </dl>
  )
}

// Upload adds a WASM plugin (its plugin.yaml and module) to the
// organization's catalog.
function Upload({ org, onUploaded }: { org: string; onUploaded: (p: Plugin) => void }) {
  const [manifest, setManifest] = useState<File | null>(null)
  const [module, setModule] = useState<File | null>(null)
  const [formKey, setFormKey] = useState(0)
  const action = useAction()
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (!manifest || !module) return
    const body = new FormData()
    body.append('manifest', manifest, manifest.name)
    body.append('module', module, module.name)
    const p = await action.run(() => post<Plugin>(`/organizations/${encodeURIComponent(org)}/plugins`, body))
    if (p) {
      setManifest(null)
      setModule(null)
      setFormKey((k) => k + 1)
      onUploaded(p)
    }
  }
  return (
    <section aria-labelledby="plugins-upload">
      <h2 id="plugins-upload">Upload a WASM plugin</h2>
      <form key={formKey} className="card stack plugins-upload" onSubmit={submit}>
        <p className="muted">
          The organization's own apps and processors: a <code>plugin.yaml</code> with <code>runtime: wasm</code> and its compiled module, which must export Eddy's WASM ABI. Uploading a higher version replaces the one that
          runs.
        </p>
        <div className="grid-2">
          <label>
            Manifest (plugin.yaml)
            <input type="file" name="manifest" accept=".yaml,.yml,application/yaml,text/yaml" required onChange={(e) => setManifest(e.target.files?.[0] ?? null)} />
          </label>
          <label>
            Module (.wasm)
            <input type="file" name="module" accept=".wasm,application/wasm" required onChange={(e) => setModule(e.target.files?.[0] ?? null)} />
          </label>
        </div>
        <ErrorBox error={action.error} />
        <div>
          <button type="submit" className="primary" disabled={action.busy || !manifest || !module}>
            {action.busy ? 'Uploading…' : 'Upload'}
          </button>
        </div>
      </form>
    </section>
  )
}
