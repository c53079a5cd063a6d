import { useState, type FormEvent } from 'react'
import { Link, useNavigate } from 'react-router-dom'
import { ApiError, get } from '../api'
import { Empty, ErrorBox, LoadMore, Loaded, fmtDuration, fmtNumber, fmtTime, useAction, usePaged } from '../ui'
import { useWorkspace } from '../workspace'
import { urlPath, type Session } from './LiveSessions'
import type { Profile } from './Profile'
import './profiles.css'

type IdentityKind = 'user_id' | 'anonymous_id' | 'email'
const KINDS: [IdentityKind, string][] = [
  ['user_id', 'User ID'],
  ['anonymous_id', 'Anonymous ID'],
  ['email', 'Email'],
]

// Profiles: find a profile by one of its identities, or browse the latest
// sessions to their profiles.
export default function Profiles() {
  const { ws, path } = useWorkspace()
  const navigate = useNavigate()
  const [kind, setKind] = useState<IdentityKind>('user_id')
  const [value, setValue] = useState('')
  const [notFound, setNotFound] = useState('')
  const search = useAction()

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const v = value.trim()
    if (!v) return
    setNotFound('')
    search.clear()
    await search.run(async () => {
      try {
        const p = await get<Profile>(`${path}/profiles?identity=${encodeURIComponent(kind + ':' + v)}`)
        navigate(`/ws/${ws.id}/profiles/${p.id}`)
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) setNotFound(`No profile has the ${KINDS.find(([k]) => k === kind)![1].toLowerCase()} “${v}”.`)
        else throw err
      }
    })
  }

  return (
    <div className="profiles">
      <div className="page-head">
        <h1>Profiles</h1>
      </div>
      <form className="card profiles-search" onSubmit={submit} role="search" aria-label="Find a profile">
        <label>
          Identity
          <select data-testid="profile-search-kind" value={kind} onChange={(e) => setKind(e.target.value as IdentityKind)}>
            {KINDS.map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label className="profiles-value">
          Value
          <input
            data-testid="profile-search-value"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            placeholder={kind === 'email' ? 'name@example.com' : kind === 'user_id' ? 'usr_…' : 'anonymous id'}
            type={kind === 'email' ? 'email' : 'text'}
            required
            autoComplete="off"
          />
        </label>
        <button className="primary" type="submit" data-testid="profile-search-submit" disabled={search.busy || !value.trim()}>
          {search.busy ? 'Searching…' : 'Find profile'}
        </button>
      </form>
      {notFound && (
        <p className="notice" role="status" data-testid="profile-not-found">
          {notFound}
        </p>
      )}
      <ErrorBox error={search.error} />
      <RecentSessions />
    </div>
  )
}

function RecentSessions() {
  const { ws, path } = useWorkspace()
  const state = usePaged<Session>(`${path}/sessions?limit=20`)

  return (
    <section>
      <div className="page-head profiles-recent-head">
        <h2>Recent sessions</h2>
        <button onClick={state.reload} disabled={state.loading}>
          Refresh
        </button>
      </div>
      <Loaded state={state} what="sessions">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No sessions yet.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Started</th>
                      <th>Profile</th>
                      <th>Landing page</th>
                      <th>Channel</th>
                      <th>Device</th>
                      <th className="num">Pages</th>
                      <th className="num">Duration</th>
                      <th>State</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((s) => (
                      <tr key={s.id}>
                        <td className="nowrap">{fmtTime(s.started_at)}</td>
                        <td>
                          {s.profile_id ? (
                            <Link to={`/ws/${ws.id}/profiles/${s.profile_id}`}>{s.user_id ?? 'Anonymous'}</Link>
                          ) : (
                            <span className="muted">{s.user_id ?? 'Anonymous'}</span>
                          )}
                        </td>
                        <td>
                          <div className="profiles-url" title={s.landing_page ?? undefined}>
                            {urlPath(s.landing_page)}
                          </div>
                        </td>
                        <td>{s.channel_group}</td>
                        <td>{s.device_type ?? '—'}</td>
                        <td className="num">{fmtNumber(s.page_views)}</td>
                        <td className="num">{fmtDuration(s.duration_seconds * 1000)}</td>
                        <td>
                          {s.closed ? <span className="badge">closed</span> : <span className="badge ok">open</span>}
                          {s.converted && <span className="badge ok profiles-badge">converted</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <LoadMore paged={state} />
            </>
          )
        }
      </Loaded>
    </section>
  )
}
