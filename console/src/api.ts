// The console's one way to the management API: same origin, the session
// cookie, and the CSRF token (from login or /auth/me) on every write.

export const API = '/api/v1'

let csrfToken = ''

export function setCSRF(token: string) {
  csrfToken = token
}

export interface FieldError {
  field: string
  message: string
}

// ApiError is an error the API answered: its status, code and message, and
// the per-field details of a 400 when it gave them.
export class ApiError extends Error {
  status: number
  code: string
  details?: FieldError[]
  constructor(status: number, code: string, message: string, details?: FieldError[]) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

// unauthorized is called when any call answers 401 (the session expired):
// the app sends the admin back to the login page.
let onUnauthorized: () => void = () => {}
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f
}

export async function request<T>(method: string, path: string, body?: unknown, init?: RequestInit): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  let payload: BodyInit | undefined
  if (body instanceof FormData) {
    payload = body
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken
  let res: Response
  try {
    res = await fetch(path.startsWith('/') && !path.startsWith(API) && !path.startsWith('/cubejs-api') ? API + path : path, {
      method,
      headers,
      body: payload,
      credentials: 'same-origin',
      ...init,
    })
  } catch (e) {
    throw new ApiError(0, 'network', `Eddy cannot be reached (${(e as Error).message})`)
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let data: any = undefined
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = undefined
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !path.endsWith('/auth/login')) onUnauthorized()
    // The management API answers {error: {code, message, details}}; the
    // Cube routes answer Cube's {error: "message"}.
    const err = typeof data?.error === 'string' ? { message: data.error } : (data?.error ?? {})
    const details = Array.isArray(err.details) ? (err.details as FieldError[]) : undefined
    throw new ApiError(res.status, err.code ?? 'http_' + res.status, err.message ?? `${res.status} ${res.statusText}`, details)
  }
  return data as T
}

export const get = <T>(path: string) => request<T>('GET', path)
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {})
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, body)
export const put = <T>(path: string, body: unknown) => request<T>('PUT', path, body)
export const del = <T>(path: string) => request<T>('DELETE', path)

// Types of the API's answers the console reads (core/api/openapi.yaml is
// the contract).
export interface Admin {
  id: string
  email: string
  name: string
}
export interface OrgRef {
  id: string
  name: string
  role: Role
}
export type Role = 'owner' | 'admin' | 'member' | 'viewer'
export interface Me {
  admin: Admin
  organizations: OrgRef[]
  csrf_token: string
}
export interface Workspace {
  id: string
  organization_id: string
  name: string
  managed: boolean
  settings: Record<string, any>
  created_at: string
  updated_at: string
}
export interface Page<T> {
  data: T[]
  next_cursor?: string
}

// canWrite says whether a role may change a workspace's sources, plugins,
// consent and cubes (member and above); canAdmin whether it may manage
// members, keys, deletion and export (owner, admin).
export const canWrite = (r?: Role) => r === 'owner' || r === 'admin' || r === 'member'
export const canAdmin = (r?: Role) => r === 'owner' || r === 'admin'
