import { useEffect, useState } from 'react'
import { NavLink, Outlet, useNavigate, useParams } from 'react-router-dom'
import { get, type Page, type Workspace } from './api'
import { useSession } from './session'
import { ErrorBox, Loading, useLoad } from './ui'
import { WorkspaceContext, workspaceValue } from './workspace'

// WorkspaceLayout is every workspace page's frame: the organization and
// workspace switchers, the navigation, and the workspace's context.
export function WorkspaceLayout() {
  const { ws } = useParams()
  const { roleIn } = useSession()
  const state = useLoad(() => get<Workspace>('/workspaces/' + encodeURIComponent(ws!)), [ws])
  const w = state.data && state.data.id === ws ? state.data : undefined
  return (
    <Frame org={w?.organization_id} ws={ws}>
      {state.error && !w ? <ErrorBox error={state.error} retry={state.reload} /> : !w ? <Loading what="workspace" /> : (
        <WorkspaceContext.Provider value={workspaceValue(w, roleIn(w.organization_id))}>
          <Outlet />
        </WorkspaceContext.Provider>
      )}
    </Frame>
  )
}

// OrgLayout frames the organization's pages (team, audit log).
export function OrgLayout() {
  const { org } = useParams()
  return (
    <Frame org={org}>
      <Outlet />
    </Frame>
  )
}

function Frame({ org, ws, children }: { org?: string; ws?: string; children: React.ReactNode }) {
  const { me, logout, roleIn } = useSession()
  const navigate = useNavigate()
  const [menuOpen, setMenuOpen] = useState(false)
  const [workspaces, setWorkspaces] = useState<Workspace[]>([])
  useEffect(() => {
    if (!org) return
    let live = true
    get<Page<Workspace>>('/organizations/' + encodeURIComponent(org) + '/workspaces?limit=100')
      .then((p) => live && setWorkspaces(p.data))
      .catch(() => live && setWorkspaces([]))
    return () => {
      live = false
    }
  }, [org])
  if (!me) return null
  const role = roleIn(org)
  const wsLinks: [string, string][] = [
    ['overview', 'Overview'],
    ['live', 'Live sessions'],
    ['profiles', 'Profiles'],
    ['sources', 'Sources'],
    ['plugins', 'Plugins'],
    ['privacy', 'Privacy'],
    ['api-keys', 'API keys'],
  ]
  return (
    <div className={'shell' + (menuOpen ? ' menu-open' : '')}>
      <header className="topbar">
        <button className="menu-toggle" aria-label="Menu" onClick={() => setMenuOpen(!menuOpen)}>
          ☰
        </button>
        <span className="brand">Eddy</span>
        <label className="switcher">
          <span className="sr-only">Organization</span>
          <select
            aria-label="Organization"
            value={org ?? ''}
            onChange={async (e) => {
              const next = e.target.value
              try {
                const p = await get<Page<Workspace>>('/organizations/' + encodeURIComponent(next) + '/workspaces?limit=100')
                navigate(p.data.length > 0 ? `/ws/${p.data[0].id}/overview` : `/org/${next}/team`)
              } catch {
                navigate(`/org/${next}/team`)
              }
            }}
          >
            {!org && <option value="">Organization…</option>}
            {me.organizations.map((o) => (
              <option key={o.id} value={o.id}>
                {o.name}
              </option>
            ))}
          </select>
        </label>
        {org && (
          <label className="switcher">
            <span className="sr-only">Workspace</span>
            <select aria-label="Workspace" value={ws ?? ''} onChange={(e) => navigate(`/ws/${e.target.value}/overview`)}>
              {!ws && <option value="">Workspace…</option>}
              {workspaces.map((w) => (
                <option key={w.id} value={w.id}>
                  {w.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <span className="spacer" />
        <span className="who" title={me.admin.email}>
          {me.admin.name || me.admin.email}
          {role && <span className={'role role-' + role}>{role}</span>}
        </span>
        <button
          onClick={async () => {
            await logout()
            navigate('/login')
          }}
        >
          Log out
        </button>
      </header>
      <nav className="sidebar" onClick={() => setMenuOpen(false)}>
        {ws && (
          <>
            <div className="nav-title">Workspace</div>
            {wsLinks.map(([p, label]) => (
              <NavLink key={p} to={`/ws/${ws}/${p}`}>
                {label}
              </NavLink>
            ))}
          </>
        )}
        {org && (
          <>
            <div className="nav-title">Organization</div>
            <NavLink to={`/org/${org}/team`}>Team</NavLink>
            <NavLink to={`/org/${org}/audit-log`}>Audit log</NavLink>
          </>
        )}
      </nav>
      <main className="content">{children}</main>
    </div>
  )
}
