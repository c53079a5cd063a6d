import { useMemo, useState, type ReactNode } from 'react'
import Form from '@rjsf/core'
import { schemaValidator as validator } from '../schemaValidator'
import type { ErrorSchema, IconButtonProps, RJSFSchema, RJSFValidationError, SubmitButtonProps, UiSchema } from '@rjsf/utils'
import { getSubmitButtonOptions } from '@rjsf/utils'
import { ApiError } from '../api'
import { ErrorBox } from '../ui'
import './plugins.css'

// Types of the plugin API's answers (core/api/openapi.yaml: Plugin,
// Installation, PluginStatus).
export type PluginKind = 'source' | 'processor' | 'sink' | 'app'
export const KINDS: PluginKind[] = ['processor', 'sink', 'source', 'app']
export const KIND_LABELS: Record<PluginKind, string> = { processor: 'Processors', sink: 'Sinks', source: 'Sources', app: 'Apps' }

export interface Plugin {
  id: string
  version: string
  kind: PluginKind
  runtime: 'grpc' | 'wasm'
  description: string
  config_schema: Record<string, unknown>
  permissions: { events: string[]; network: string[]; write: string[] }
  purposes: string[]
  deletion: boolean
  source: 'builtin' | 'file' | 'upload'
  sha256?: string
  size?: number
  uploaded_at?: string
}

export type PluginState = 'running' | 'stopped' | 'failing' | 'disabled' | 'unknown'

export interface PluginStatus {
  state: PluginState
  last_error: string | null
  last_error_at: string | null
  calls: number
  events_in: number
  events_out: number
  events_failed: number
  avg_latency_ms: number
  lag: number
  dead_letters: number
  updated_at: string | null
}

export interface Installation {
  id: string
  plugin_id: string
  workspace_id: string
  enabled: boolean
  config: Record<string, unknown>
  position: number
  rate_limit: number
  managed: boolean
  source: 'builtin' | 'file' | 'upload' | ''
  status: PluginStatus
  created_at: string
  updated_at: string
}

// kindOf reads a plugin's kind from its id (`kind.name`), for installations
// whose plugin left the catalog.
export function kindOf(pluginId: string): PluginKind | undefined {
  const k = pluginId.split('.')[0]
  return (KINDS as string[]).includes(k) ? (k as PluginKind) : undefined
}

const STATE_CLASS: Record<PluginState, string> = { running: 'ok', stopped: 'warn', failing: 'bad', disabled: '', unknown: '' }

export function StateBadge({ state }: { state: PluginState | undefined }) {
  const s = state ?? 'unknown'
  return <span className={'badge ' + (STATE_CLASS[s] ?? '')}>{s}</span>
}

// MASK is how the API shows a stored secret setting; sending it back keeps
// the stored value.
export const MASK = '********'

// A setting is secret when the schema marks it writeOnly or its name
// contains password, secret or token (the API's rule, docs/api.md).
const isSecret = (name: string, schema: Record<string, unknown>) => schema.writeOnly === true || /password|secret|token/i.test(name)

type JSONSchema = Record<string, unknown>

// uiSchemaFor shows secret settings as password inputs, at any depth.
function uiSchemaFor(schema: JSONSchema, editing: boolean): UiSchema {
  const ui: UiSchema = {}
  const props = schema.properties as Record<string, JSONSchema> | undefined
  if (props) {
    for (const [name, sub] of Object.entries(props)) {
      if (typeof sub !== 'object' || sub === null) continue
      if (isSecret(name, sub) && sub.type === 'string') {
        ui[name] = { 'ui:widget': 'password', ...(editing ? { 'ui:help': `Secret: a stored value shows as ${MASK}; leave it to keep it.` } : {}) }
      } else {
        const inner = uiSchemaFor(sub, editing)
        if (Object.keys(inner).length > 0) ui[name] = inner
      }
    }
  }
  const items = schema.items as JSONSchema | undefined
  if (items && typeof items === 'object' && !Array.isArray(items)) {
    const inner = uiSchemaFor(items, editing)
    if (Object.keys(inner).length > 0) ui.items = inner
  }
  return ui
}

// hasSettings says whether a schema describes any setting at all.
export function hasSettings(schema: JSONSchema | undefined): boolean {
  if (!schema) return false
  const props = schema.properties as Record<string, unknown> | undefined
  return (props !== undefined && Object.keys(props).length > 0) || (typeof schema.additionalProperties === 'object' && schema.additionalProperties !== null)
}

// valueAt reads the value rjsf's error `property` (".headers.0.value",
// ".['a.b']") points to.
function valueAt(data: unknown, property: string | undefined): unknown {
  if (!property) return undefined
  const parts = property.match(/\['((?:[^'\\]|\\.)*)'\]|[^.[\]]+/g) ?? []
  let v: unknown = data
  for (const p of parts) {
    const key = p.startsWith("['") ? p.slice(2, -2) : p
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string, unknown>)[key]
  }
  return v
}

// apiErrorSchema turns the API's 400 details on `config.…` into rjsf's
// error schema, so each message shows next to its field.
function apiErrorSchema(error: Error | null): ErrorSchema | undefined {
  if (!(error instanceof ApiError) || !error.details) return undefined
  const root: Record<string, any> = {}
  let any = false
  for (const d of error.details) {
    if (d.field !== 'config' && !d.field.startsWith('config.') && !d.field.startsWith('config[')) continue
    const path = d.field.slice('config'.length).match(/[^.[\]]+/g) ?? []
    let node = root
    for (const p of path) node = node[p] ??= {}
    ;(node.__errors ??= []).push(d.message)
    any = true
  }
  return any ? (root as ErrorSchema) : undefined
}

// Buttons with words rather than the default theme's icon fonts.
function TextButton({ label, danger, ...props }: IconButtonProps & { label: string; danger?: boolean }) {
  const { onClick, disabled, id, className } = props
  return (
    <button type="button" id={id} className={(danger ? 'danger ' : '') + (className ?? '')} onClick={onClick} disabled={disabled}>
      {label}
    </button>
  )
}
const templates = {
  ButtonTemplates: {
    AddButton: (p: IconButtonProps) => <TextButton {...p} className="pluginform-add" label="Add item" />,
    RemoveButton: (p: IconButtonProps) => <TextButton {...p} label="Remove" danger />,
    MoveUpButton: (p: IconButtonProps) => <TextButton {...p} label="Up" />,
    MoveDownButton: (p: IconButtonProps) => <TextButton {...p} label="Down" />,
    CopyButton: (p: IconButtonProps) => <TextButton {...p} label="Copy" />,
    ClearButton: (p: IconButtonProps) => <TextButton {...p} label="Clear" />,
    SubmitButton: ({ uiSchema }: SubmitButtonProps) => {
      const { submitText, props } = getSubmitButtonOptions(uiSchema)
      return (
        <div className="pluginform-submit">
          <button type="submit" className="primary" disabled={props?.disabled}>
            {submitText}
          </button>
        </div>
      )
    },
  },
}

// ConfigForm is a plugin's settings form, generated from its config_schema:
// the schema validates on the client, the API's 400 details show next to
// their fields, and masked secrets pass as they are (the API keeps them).
export function ConfigForm({
  schema,
  initial,
  submitText,
  busy,
  error,
  editing,
  onSubmit,
  children,
}: {
  schema: JSONSchema
  initial: Record<string, unknown>
  submitText: string
  busy: boolean
  error: Error | null
  editing: boolean
  onSubmit: (config: Record<string, unknown>) => void
  children?: ReactNode
}) {
  const [data, setData] = useState<Record<string, unknown>>(initial)
  const ui = useMemo<UiSchema>(
    () => ({ ...uiSchemaFor(schema, editing), 'ui:submitButtonOptions': { submitText: busy ? submitText + '…' : submitText, props: { disabled: busy } } }),
    [schema, editing, busy, submitText],
  )
  const extraErrors = useMemo(() => apiErrorSchema(error), [error])
  // A masked secret is the API's to check; a `not` rule's own words say
  // nothing useful.
  const transformErrors = (errors: RJSFValidationError[]) =>
    errors
      .filter((e) => valueAt(data, e.property) !== MASK)
      .map((e) => (e.name === 'not' ? { ...e, message: 'this combination of settings is not allowed', stack: `${e.property || 'settings'}: this combination of settings is not allowed` } : e))

  if (!hasSettings(schema)) {
    return (
      <div className="pluginform">
        <p className="muted">This plugin has no settings.</p>
        {children}
        <ErrorBox error={error} />
        <div className="pluginform-submit">
          <button type="button" className="primary" disabled={busy} onClick={() => onSubmit({})}>
            {busy ? submitText + '…' : submitText}
          </button>
        </div>
      </div>
    )
  }
  return (
    <div className="pluginform">
      {children}
      <Form
        schema={{ ...schema, title: undefined } as RJSFSchema}
        uiSchema={ui}
        formData={data}
        validator={validator}
        templates={templates}
        extraErrors={extraErrors}
        transformErrors={transformErrors}
        noHtml5Validate
        showErrorList="top"
        onChange={(e) => setData((e.formData ?? {}) as Record<string, unknown>)}
        onSubmit={(e) => onSubmit((e.formData ?? {}) as Record<string, unknown>)}
      />
      <ErrorBox error={error} />
    </div>
  )
}
