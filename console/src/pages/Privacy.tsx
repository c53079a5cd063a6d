import { useMemo, useState, type FormEvent } from 'react'
import { ApiError, get, patch, type FieldError, type Page, type Workspace } from '../api'
import { useWorkspace } from '../workspace'
import { ErrorBox, Loaded, useAction, useLoad } from '../ui'
import type { Plugin } from './pluginForm'
import './privacy.css'

type IPMode = 'keep' | 'truncate' | 'remove'

// PrivacyPolicy is settings.privacy (core/api/openapi.yaml).
interface PrivacyPolicy {
  purposes: string[]
  required: string[]
  allow_necessary_only: boolean
  plugins: Record<string, string[]>
  minimise: { ip: IPMode; hash: string[]; drop: string[] }
}

const NECESSARY = 'necessary'
const PURPOSE_RE = /^[a-z][a-z0-9_]{0,62}$/
const PLUGIN_RE = /^(source|processor|sink|app)\.[a-z][a-z0-9_]{0,62}$/
const MAX_PURPOSES = 20
const IP_MODES: { value: IPMode; label: string }[] = [
  { value: 'keep', label: 'Keep the address' },
  { value: 'truncate', label: 'Truncate it (IPv4 /24, IPv6 /48)' },
  { value: 'remove', label: 'Remove it' },
]
const PREFIX = 'settings.privacy.'

const DEFAULTS: PrivacyPolicy = {
  purposes: [NECESSARY, 'analytics', 'marketing', 'personalization'],
  required: ['analytics'],
  allow_necessary_only: false,
  plugins: {},
  minimise: { ip: 'keep', hash: [], drop: [] },
}

function policyOf(ws: Workspace): PrivacyPolicy {
  const p = (ws.settings?.privacy ?? {}) as Partial<PrivacyPolicy>
  return {
    purposes: p.purposes ?? DEFAULTS.purposes,
    required: p.required ?? DEFAULTS.required,
    allow_necessary_only: p.allow_necessary_only ?? false,
    plugins: p.plugins ?? {},
    minimise: { ...DEFAULTS.minimise, ...(p.minimise ?? {}) },
  }
}

// Privacy edits the workspace's consent policy and data minimisation.
export default function Privacy() {
  const { path, org } = useWorkspace()
  // The workspace context keeps the settings it loaded first: this page
  // reads its own copy, and again after each save.
  const state = useLoad(() => get<Workspace>(path), [path])
  const catalog = useLoad(() => get<Page<Plugin>>(`/organizations/${encodeURIComponent(org)}/plugins`), [org])
  // Saving remounts the form with the settings read again: whether it was
  // just saved is kept here.
  const [saved, setSaved] = useState(false)
  return (
    <div className="privacy">
      <div className="page-head">
        <h1>Privacy</h1>
      </div>
      <p className="notice">
        Consent reaches Eddy with each event as <code>context.consent.categoryPreferences</code> (<code>{'{purpose: true|false}'}</code>): the tracker sets it with <code>eddy.consent({'{…}'})</code>, and any
        Segment library sends it as its consent context. <code>necessary</code> is always granted.
      </p>
      <Loaded state={state} what="privacy policy">
        {(ws) => (
          <PolicyForm
            key={ws.updated_at + JSON.stringify(ws.settings?.privacy ?? null)} initial={policyOf(ws)}
            pluginIds={catalog.data?.data.map((p) => p.id) ?? []}
            saved={saved}
            onSaved={(w) => {
              state.setData(w)
              setSaved(true)
            }}
          />
        )}
      </Loaded>
    </div>
  )
}

const lines = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')

function PolicyForm({ initial, pluginIds, saved, onSaved }: { initial: PrivacyPolicy; pluginIds: string[]; saved: boolean; onSaved: (ws: Workspace) => void }) {
  const { path, canWrite } = useWorkspace()
  const [purposes, setPurposes] = useState(initial.purposes.includes(NECESSARY) ? initial.purposes : [NECESSARY, ...initial.purposes])
  const [required, setRequired] = useState(initial.required)
  const [necessaryOnly, setNecessaryOnly] = useState(initial.allow_necessary_only)
  const [plugins, setPlugins] = useState(initial.plugins)
  const [ip, setIP] = useState<IPMode>(initial.minimise.ip)
  const [hash, setHash] = useState(initial.minimise.hash.join('\n'))
  const [drop, setDrop] = useState(initial.minimise.drop.join('\n'))
  const [newPurpose, setNewPurpose] = useState('')
  const [purposeError, setPurposeError] = useState<string | null>(null)
  const [newPlugin, setNewPlugin] = useState('')
  const [pluginError, setPluginError] = useState<string | null>(null)
  const save = useAction()

  const policy: PrivacyPolicy = useMemo(
    () => ({ purposes, required: required.filter((r) => purposes.includes(r)), allow_necessary_only: necessaryOnly, plugins, minimise: { ip, hash: lines(hash), drop: lines(drop) } }),
    [purposes, required, necessaryOnly, plugins, ip, hash, drop],
  )
  const dirty = JSON.stringify(policy) !== JSON.stringify(initial)

  // The API's 400 details, by the field they name.
  const details: FieldError[] = save.error instanceof ApiError ? (save.error.details ?? []) : []
  const errorsFor = (field: string) => details.filter((d) => d.field === PREFIX + field || d.field.startsWith(PREFIX + field + '[') || d.field.startsWith(PREFIX + field + '.'))
  const shown = ['purposes', 'required', 'allow_necessary_only', 'plugins', 'minimise.ip', 'minimise.hash', 'minimise.drop']
  const otherDetails = details.filter((d) => !shown.some((f) => d.field === PREFIX + f || d.field.startsWith(PREFIX + f + '[') || d.field.startsWith(PREFIX + f + '.')))
  const topError = save.error instanceof ApiError ? new ApiError(save.error.status, save.error.code, save.error.message, otherDetails) : save.error

  const addPurpose = () => {
    const p = newPurpose.trim()
    setPurposeError(null)
    if (!PURPOSE_RE.test(p)) return setPurposeError('A purpose is a lower-case name: a letter, then letters, digits or _ (at most 63).')
    if (purposes.includes(p)) return setPurposeError(`${p} is already a purpose.`)
    if (purposes.length >= MAX_PURPOSES) return setPurposeError(`At most ${MAX_PURPOSES} purposes.`)
    setPurposes([...purposes, p])
    setNewPurpose('')
  }
  const removePurpose = (p: string) => {
    setPurposes(purposes.filter((x) => x !== p))
    setRequired(required.filter((x) => x !== p))
    setPlugins(Object.fromEntries(Object.entries(plugins).map(([id, ps]) => [id, ps.filter((x) => x !== p)])))
  }
  // Lists of purposes keep the order of the workspace's purposes.
  const toggleIn = (list: string[], p: string, on: boolean) => purposes.filter((x) => (x === p ? on : list.includes(x)))
  const addPlugin = () => {
    const id = newPlugin.trim()
    setPluginError(null)
    if (!PLUGIN_RE.test(id)) return setPluginError('A plugin id is kind.name, such as sink.webhook.')
    if (id in plugins) return setPluginError(`${id} is already listed.`)
    setPlugins({ ...plugins, [id]: [] })
    setNewPlugin('')
  }
  const removePlugin = (id: string) => {
    const next = { ...plugins }
    delete next[id]
    setPlugins(next)
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const ws = await save.run(async () => {
      await patch<Workspace>(path, { settings: { privacy: policy } })
      return get<Workspace>(path)
    })
    if (ws) onSaved(ws)
  }
  const reset = () => {
    setPurposes(initial.purposes.includes(NECESSARY) ? initial.purposes : [NECESSARY, ...initial.purposes])
    setRequired(initial.required)
    setNecessaryOnly(initial.allow_necessary_only)
    setPlugins(initial.plugins)
    setIP(initial.minimise.ip)
    setHash(initial.minimise.hash.join('\n'))
    setDrop(initial.minimise.drop.join('\n'))
    save.clear()
  }
  const candidates = pluginIds.filter((id) => !(id in plugins))

  return (
    <form className="stack privacy-form" onSubmit={submit}>
      {!canWrite && <div className="notice">You can read this policy; members, admins and owners can change it.</div>}
      <fieldset className="card" disabled={!canWrite}>
        <legend>Purposes</legend>
        <p className="muted">What visitors consent to, one name each. Events say which purposes the visitor granted.</p>
        <ul className="privacy-chips" aria-label="Purposes">
          {purposes.map((p) => (
            <li key={p} className="privacy-chip">
              <span>{p}</span>
              {p === NECESSARY ? (
                <span className="muted privacy-always">always granted</span>
              ) : (
                canWrite && (
                  <button type="button" className="link danger" onClick={() => removePurpose(p)} aria-label={`Remove purpose ${p}`}>
                    Remove
                  </button>
                )
              )}
            </li>
          ))}
        </ul>
        {canWrite && (
          <div className="row privacy-add">
            <label>
              New purpose
              <input
                value={newPurpose}
                onChange={(e) => setNewPurpose(e.target.value)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter') {
                    e.preventDefault()
                    addPurpose()
                  }
                }}
                placeholder="e.g. support"
                maxLength={63}
                aria-invalid={purposeError ? true : undefined}
              />
            </label>
            <button type="button" onClick={addPurpose} disabled={newPurpose.trim() === '' || purposes.length >= MAX_PURPOSES}>
              Add purpose
            </button>
          </div>
        )}
        {purposeError && <p className="privacy-field-error">{purposeError}</p>}
        <FieldErrors errors={errorsFor('purposes')} />
      </fieldset>

      <fieldset className="card" disabled={!canWrite}>
        <legend>Required purposes</legend>
        <p className="muted">Every processing needs these: an event whose visitor did not grant them all is not stored, sessionized or given to any plugin, only counted.</p>
        <div className="privacy-checks">
          {purposes.map((p) => (
            <label key={p} className="inline">
              <input type="checkbox" checked={required.includes(p)} onChange={(e) => setRequired(toggleIn(required, p, e.target.checked))} />
              {p}
            </label>
          ))}
        </div>
        <FieldErrors errors={errorsFor('required')} />
      </fieldset>

      <fieldset className="card" disabled={!canWrite}>
        <legend>Events without consent</legend>
        <label className="inline">
          <input type="checkbox" checked={necessaryOnly} onChange={(e) => setNecessaryOnly(e.target.checked)} />
          Process events without the required purposes for necessary purposes only
        </label>
        <p className="muted">
          Off (the default), such events are dropped and only counted. On, Eddy still stores and sessionizes them for necessary purposes (such as security and the shop's own operation), but no plugin receives
          them. Turning this on or off is recorded in the audit log.
        </p>
        <FieldErrors errors={errorsFor('allow_necessary_only')} />
      </fieldset>

      <fieldset className="card" disabled={!canWrite}>
        <legend>Plugins' extra purposes</legend>
        <p className="muted">What a plugin needs in this workspace on top of the purposes its manifest declares: it only receives events whose visitor granted them all.</p>
        {Object.keys(plugins).length === 0 ? (
          <p className="muted">No plugin needs extra purposes here.</p>
        ) : (
          <ul className="privacy-plugins">
            {Object.entries(plugins).map(([id, ps]) => (
              <li key={id} className="privacy-plugin">
                <code>{id}</code>
                <div className="privacy-checks" role="group" aria-label={`Extra purposes of ${id}`}>
                  {purposes
                    .filter((p) => p !== NECESSARY)
                    .map((p) => (
                      <label key={p} className="inline">
                        <input type="checkbox" checked={ps.includes(p)} onChange={(e) => setPlugins({ ...plugins, [id]: toggleIn(ps, p, e.target.checked) })} />
                        {p}
                      </label>
                    ))}
                </div>
                {canWrite && (
                  <button type="button" className="danger" onClick={() => removePlugin(id)} aria-label={`Remove ${id}`}>
                    Remove
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
        {canWrite && (
          <div className="row privacy-add">
            <label>
              Plugin id
              <input list="privacy-plugin-ids" value={newPlugin} onChange={(e) => setNewPlugin(e.target.value)} placeholder="e.g. sink.webhook" aria-invalid={pluginError ? true : undefined} />
              <datalist id="privacy-plugin-ids">
                {candidates.map((id) => (
                  <option key={id} value={id} />
                ))}
              </datalist>
            </label>
            <button type="button" onClick={addPlugin} disabled={newPlugin.trim() === ''}>
              Add plugin
            </button>
          </div>
        )}
        {pluginError && <p className="privacy-field-error">{pluginError}</p>}
        <FieldErrors errors={errorsFor('plugins')} />
      </fieldset>

      <fieldset className="card" disabled={!canWrite}>
        <legend>Data minimisation</legend>
        <p className="muted">Applied to each event before it is stored or given to any plugin.</p>
        <div className="privacy-ip" role="radiogroup" aria-label="IP address">
          <strong>IP address</strong>
          {IP_MODES.map((m) => (
            <label key={m.value} className="inline">
              <input type="radio" name="privacy-ip" value={m.value} checked={ip === m.value} onChange={() => setIP(m.value)} />
              {m.label}
            </label>
          ))}
        </div>
        <FieldErrors errors={errorsFor('minimise.ip')} />
        <div className="grid-2">
          <div>
            <label>
              Hash these paths (one per line)
              <textarea value={hash} onChange={(e) => setHash(e.target.value)} placeholder={'traits.email\nproperties.phone'} rows={5} spellCheck={false} />
            </label>
            <p className="muted privacy-hint">
              Dot paths under <code>properties.</code>, <code>traits.</code> or <code>context.</code>. A value becomes <code>sha256:</code> and its HMAC keyed by the workspace, so equal values stay equal here only.
            </p>
            <FieldErrors errors={errorsFor('minimise.hash')} values={policy.minimise.hash} />
          </div>
          <div>
            <label>
              Drop these paths (one per line)
              <textarea value={drop} onChange={(e) => setDrop(e.target.value)} placeholder={'context.ip\nproperties.address'} rows={5} spellCheck={false} />
            </label>
            <p className="muted privacy-hint">Their keys are removed from every event. At most 100 paths in all.</p>
            <FieldErrors errors={errorsFor('minimise.drop')} values={policy.minimise.drop} />
          </div>
        </div>
      </fieldset>

      <ErrorBox error={topError} />
      {canWrite && (
        <div className="row privacy-actions">
          <button type="submit" className="primary" disabled={save.busy || !dirty}>
            {save.busy ? 'Saving…' : 'Save privacy policy'}
          </button>
          <button type="button" onClick={reset} disabled={save.busy || !dirty}>
            Discard changes
          </button>
          {dirty && <span className="muted">Unsaved changes.</span>}
          {saved && !dirty && (
            <span className="badge ok" role="status">
              Privacy policy saved
            </span>
          )}
        </div>
      )}
    </form>
  )
}

// FieldErrors lists the API's messages for one field; for a list of
// values, it names the value an indexed message is about.
function FieldErrors({ errors, values }: { errors: FieldError[]; values?: string[] }) {
  if (errors.length === 0) return null
  return (
    <ul className="privacy-field-error" role="alert">
      {errors.map((d) => {
        const i = /\[(\d+)\]/.exec(d.field)
        const v = i && values ? values[Number(i[1])] : undefined
        return (
          <li key={d.field + d.message}>
            {v !== undefined ? (
              <>
                <code>{v}</code>:{' '}
              </>
            ) : (
              d.field !== PREFIX.slice(0, -1) && /\[|\./.test(d.field.slice(PREFIX.length)) && (
                <>
                  <code>{d.field.slice(PREFIX.length)}</code>:{' '}
                </>
              )
            )}
            {d.message}
          </li>
        )
      })}
    </ul>
  )
}
