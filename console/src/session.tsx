import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import { ApiError, get, post, setCSRF, setUnauthorizedHandler, type Me, type OrgRef, type Role } from './api'

// The logged-in admin: who they are and their organizations with their
// role in each. null while unknown (loading), false when logged out.
interface SessionValue {
  me: Me | null | false
  error: string
  login(email: string, password: string): Promise<void>
  logout(): Promise<void>
  refresh(): Promise<void>
  roleIn(org: string | undefined): Role | undefined
}

const SessionContext = createContext<SessionValue | null>(null)

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null | false>(null)
  const [error, setError] = useState('')

  const refresh = useCallback(async () => {
    try {
      const m = await get<Me>('/auth/me')
      setCSRF(m.csrf_token)
      setMe(m)
      setError('')
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setMe(false)
      } else {
        setError((e as Error).message)
      }
    }
  }, [])

  useEffect(() => {
    setUnauthorizedHandler(() => setMe(false))
    refresh()
  }, [refresh])

  const login = useCallback(
    async (email: string, password: string) => {
      const r = await post<{ csrf_token: string }>('/auth/login', { email, password })
      setCSRF(r.csrf_token)
      await refresh()
    },
    [refresh],
  )

  const logout = useCallback(async () => {
    try {
      await post('/auth/logout')
    } finally {
      setCSRF('')
      setMe(false)
    }
  }, [])

  const value = useMemo<SessionValue>(
    () => ({
      me,
      error,
      login,
      logout,
      refresh,
      roleIn: (org) => (me ? me.organizations.find((o: OrgRef) => o.id === org)?.role : undefined),
    }),
    [me, error, login, logout, refresh],
  )
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>
}

export function useSession(): SessionValue {
  const v = useContext(SessionContext)
  if (!v) throw new Error('useSession outside SessionProvider')
  return v
}
