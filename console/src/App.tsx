import { lazy, Suspense, useEffect, useState } from 'react'
import { BrowserRouter, Navigate, Outlet, Route, Routes, useLocation } from 'react-router-dom'
import { get, type Page, type Workspace } from './api'
import { OrgLayout, WorkspaceLayout } from './Layout'
import { Login } from './Login'
import { SessionProvider, useSession } from './session'
import { Empty, ErrorBox, Loading } from './ui'

// Pages load on demand: the dashboard's charts are the largest part.
const Overview = lazy(() => import('./pages/Overview'))
const LiveSessions = lazy(() => import('./pages/LiveSessions'))
const Profiles = lazy(() => import('./pages/Profiles'))
const Profile = lazy(() => import('./pages/Profile'))
const Sources = lazy(() => import('./pages/Sources'))
const Source = lazy(() => import('./pages/Source'))
const Plugins = lazy(() => import('./pages/Plugins'))
const PluginDetail = lazy(() => import('./pages/PluginDetail'))
const Privacy = lazy(() => import('./pages/Privacy'))
const ApiKeys = lazy(() => import('./pages/ApiKeys'))
const Team = lazy(() => import('./pages/Team'))
const AuditLog = lazy(() => import('./pages/AuditLog'))

export function App() {
  return (
    <SessionProvider>
      <BrowserRouter>
        <Suspense fallback={<Loading />}>
          <Routes>
            <Route path="/login" element={<Login />} />
            <Route element={<RequireLogin />}>
              <Route path="/" element={<Home />} />
              <Route path="/ws/:ws" element={<WorkspaceLayout />}>
                <Route index element={<Navigate to="overview" replace />} />
                <Route path="overview" element={<Overview />} />
                <Route path="live" element={<LiveSessions />} />
                <Route path="profiles" element={<Profiles />} />
                <Route path="profiles/:profileId" element={<Profile />} />
                <Route path="sources" element={<Sources />} />
                <Route path="sources/:src" element={<Source />} />
                <Route path="plugins" element={<Plugins />} />
                <Route path="plugins/:pluginId" element={<PluginDetail />} />
                <Route path="privacy" element={<Privacy />} />
                <Route path="api-keys" element={<ApiKeys />} />
              </Route>
              <Route path="/org/:org" element={<OrgLayout />}>
                <Route path="team" element={<Team />} />
                <Route path="audit-log" element={<AuditLog />} />
              </Route>
              <Route path="*" element={<Empty>No such page.</Empty>} />
            </Route>
          </Routes>
        </Suspense>
      </BrowserRouter>
    </SessionProvider>
  )
}

function RequireLogin() {
  const { me, error } = useSession()
  const location = useLocation()
  if (me === null) return error ? <ErrorBox error={new Error(error)} /> : <Loading />
  if (me === false) return <Navigate to="/login" state={{ from: location.pathname + location.search }} replace />
  return <Outlet />
}

// Home opens the first workspace of the admin's first organization.
function Home() {
  const { me } = useSession()
  const [target, setTarget] = useState<string | null>(null)
  const [error, setError] = useState<Error | null>(null)
  useEffect(() => {
    if (!me || me.organizations.length === 0) return
    const org = me.organizations[0].id
    get<Page<Workspace>>('/organizations/' + encodeURIComponent(org) + '/workspaces?limit=1')
      .then((p) => setTarget(p.data.length > 0 ? `/ws/${p.data[0].id}/overview` : `/org/${org}/team`))
      .catch(setError)
  }, [me])
  if (me && me.organizations.length === 0) return <Empty>You belong to no organization yet. Ask an owner for an invitation.</Empty>
  if (error) return <ErrorBox error={error} />
  return target ? <Navigate to={target} replace /> : <Loading />
}
