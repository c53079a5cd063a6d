import { useState, type FormEvent } from 'react'
import { useNavigate, useParams } from 'react-router-dom'
import { canAdmin, del, patch, post, type Role } from '../api'
import { useSession } from '../session'
import { ConfirmButton, CopyButton, Empty, ErrorBox, LoadMore, Loaded, fmtTime, useAction, usePaged } from '../ui'
import './team.css'

interface Member {
  admin_id: string
  email: string
  name: string
  role: Role
  joined_at: string
}

type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired'

interface Invitation {
  id: string
  email: string
  role: Role
  status: InvitationStatus
  invited_by: string | null
  created_at: string
  expires_at: string
}

interface InvitationCreated extends Invitation {
  token: string
}

const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer']

const ROLE_HELP: Record<Role, string> = {
  owner: 'everything, including granting owner',
  admin: 'manages members, invitations and workspaces',
  member: 'changes workspace configuration',
  viewer: 'reads only',
}

// rolesGrantable are the roles the caller may give: only an owner grants owner.
const rolesGrantable = (mine: Role | undefined): Role[] => (mine === 'owner' ? ROLES : ROLES.filter((r) => r !== 'owner'))

export default function Team() {
  const { org } = useParams()
  const { me, roleIn } = useSession()
  const role = roleIn(org)
  const admin = canAdmin(role)
  const orgPath = '/organizations/' + encodeURIComponent(org!)
  const members = usePaged<Member>(orgPath + '/members?limit=200')
  const myId = me ? me.admin.id : ''


  return (
    <div className="stack team-page">
      <div className="page-head">
        <h1>Team</h1>
        {role && <span className="muted">Your role here: {role}</span>}
      </div>
      {!admin && <p className="notice">Owners and admins manage members and invitations. You can see who is on the team, or leave it.</p>}

      <section aria-labelledby="team-members-title">
        <h2 id="team-members-title">Members</h2>
        <Loaded state={members} what="members">
          {(page) =>
            page.data.length === 0 ? (
              <Empty>No members.</Empty>
            ) : (
              <>
                <div className="table-wrap">
                  <table className="team-table">
                    <thead>
                      <tr>
                        <th>Member</th>
                        <th>Role</th>
                        <th>Joined</th>
                        <th className="team-actions">Actions</th>
                      </tr>
                    </thead>
                    <tbody>
                      {page.data.map((m) => (
                        <MemberRow
                          key={m.admin_id}
                          member={m}
                          orgPath={orgPath}
                          myRole={role}
                          isMe={m.admin_id === myId}
                          onChanged={(next) => members.setData((prev) => prev && { ...prev, data: prev.data.map((x) => (x.admin_id === next.admin_id ? next : x)) })}
                          onRemoved={() => members.setData((prev) => prev && { ...prev, data: prev.data.filter((x) => x.admin_id !== m.admin_id) })}
                        />
                      ))}
                    </tbody>
                  </table>
                </div>
                {members.error && <ErrorBox error={members.error} retry={members.reload} />}
                <LoadMore paged={members} />
              </>
            )
          }
        </Loaded>
      </section>

      {admin && <Invitations orgPath={orgPath} myRole={role} />}
    </div>
  )
}

function MemberRow({
  member: m,
  orgPath,
  myRole,
  isMe,
  onChanged,
  onRemoved,
}: {
  member: Member
  orgPath: string
  myRole: Role | undefined
  isMe: boolean
  onChanged: (m: Member) => void
  onRemoved: () => void
}) {
  const { refresh } = useSession()
  const navigate = useNavigate()
  const action = useAction()
  const memberPath = orgPath + '/members/' + encodeURIComponent(m.admin_id)
  // Only owners and admins change others; only an owner touches an owner.
  const mayEdit = canAdmin(myRole) && (myRole === 'owner' || m.role !== 'owner')
  const roles = rolesGrantable(myRole)

  const changeRole = async (role: Role) => {
    const next = await action.run(() => patch<Member>(memberPath, { role }))
    if (next) {
      onChanged(next)
      if (isMe) await refresh()
    }
  }

  const remove = async () => {
    const ok = await action.run(() => del<void>(memberPath).then(() => true))
    if (!ok) return
    if (isMe) {
      await refresh()
      navigate('/', { replace: true })
    } else {
      onRemoved()
    }
  }

  const who = m.name || m.email
  return (
    <tr data-testid="member-row" data-email={m.email}>
      <td>
        <div className="team-name">
          {m.name || m.email}
          {isMe && <span className="badge">you</span>}
        </div>
        {m.name && <div className="muted team-email">{m.email}</div>}
      </td>
      <td>
        {mayEdit ? (
          <select aria-label={`Role of ${m.email}`} value={m.role} disabled={action.busy} onChange={(e) => changeRole(e.target.value as Role)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        ) : (
          <span className={'badge' + (m.role === 'owner' ? ' warn' : '')}>{m.role}</span>
        )}
      </td>
      <td>{fmtTime(m.joined_at)}</td>
      <td className="team-actions">
        {(mayEdit || isMe) && (
          <ConfirmButton
            label={isMe ? 'Leave' : 'Remove'}
            question={
              isMe ? (
                <p>Leave this organization? You lose access to its workspaces until someone invites you again.</p>
              ) : (
                <p>
                  Remove <strong>{who}</strong> from this organization? They lose access to its workspaces at once.
                </p>
              )
            }
            onConfirm={remove}
          />
        )}
        <ErrorBox error={action.error} />
      </td>
    </tr>
  )
}

function Invitations({ orgPath, myRole }: { orgPath: string; myRole: Role | undefined }) {
  const list = usePaged<Invitation>(orgPath + '/invitations?limit=200')
  const [created, setCreated] = useState<InvitationCreated | null>(null)


  return (
    <section className="stack" aria-labelledby="team-invitations-title">
      <h2 id="team-invitations-title">Invitations</h2>
      <InviteForm
        orgPath={orgPath}
        myRole={myRole}
        onCreated={(inv) => {
          setCreated(inv)
          list.reload()
        }}
      />
      {created && <InvitationReveal invitation={created} onDone={() => setCreated(null)} />}
      <Loaded state={list} what="invitations">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No invitations.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table className="team-table">
                  <thead>
                    <tr>
                      <th>Email</th>
                      <th>Role</th>
                      <th>Status</th>
                      <th>Invited</th>
                      <th>Expires</th>
                      <th className="team-actions">Actions</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((inv) => (
                      <InvitationRow key={inv.id} invitation={inv} orgPath={orgPath} onRevoked={list.reload} />
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
    </section>
  )
}

const STATUS_BADGE: Record<InvitationStatus, string> = { pending: 'badge warn', accepted: 'badge ok', revoked: 'badge bad', expired: 'badge' }

function InvitationRow({ invitation: inv, orgPath, onRevoked }: { invitation: Invitation; orgPath: string; onRevoked: () => void }) {
  const action = useAction()
  return (
    <tr data-testid="invitation-row" data-email={inv.email}>
      <td className="team-email-cell">{inv.email}</td>
      <td>
        <span className="badge">{inv.role}</span>
      </td>
      <td>
        <span className={STATUS_BADGE[inv.status]}>{inv.status}</span>
      </td>
      <td>
        {fmtTime(inv.created_at)}
        {inv.invited_by && <div className="muted team-email">by {inv.invited_by}</div>}
      </td>
      <td>{fmtTime(inv.expires_at)}</td>
      <td className="team-actions">
        {inv.status === 'pending' && (
          <ConfirmButton
            label="Revoke"
            question={
              <p>
                Revoke the invitation of <strong>{inv.email}</strong>? Its token stops working.
              </p>
            }
            onConfirm={async () => {
              const ok = await action.run(() => del<void>(orgPath + '/invitations/' + encodeURIComponent(inv.id)).then(() => true))
              if (ok) onRevoked()
            }}
          />
        )}
        <ErrorBox error={action.error} />
      </td>
    </tr>
  )
}

function InviteForm({ orgPath, myRole, onCreated }: { orgPath: string; myRole: Role | undefined; onCreated: (i: InvitationCreated) => void }) {
  const [email, setEmail] = useState('')
  const [role, setRole] = useState<Role>('member')
  const [problem, setProblem] = useState('')
  const action = useAction()

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const address = email.trim()
    if (!/^[^\s@]+@[^\s@]+$/.test(address)) return setProblem('Give the email address of the person to invite.')
    setProblem('')
    const inv = await action.run(() => post<InvitationCreated>(orgPath + '/invitations', { email: address, role }))
    if (inv) {
      setEmail('')
      onCreated(inv)
    }
  }

  return (
    <form className="card team-invite" onSubmit={submit} noValidate aria-label="Invite someone">
      <div className="team-invite-fields">
        <label className="team-invite-email">
          Email
          <input type="email" data-testid="invite-email" value={email} onChange={(e) => setEmail(e.target.value)} placeholder="name@example.com" autoComplete="off" />
        </label>
        <label>
          Role
          <select data-testid="invite-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {rolesGrantable(myRole).map((r) => (
              <option key={r} value={r}>
                {r} — {ROLE_HELP[r]}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Inviting…' : 'Invite'}
        </button>
      </div>
      {problem && (
        <p className="team-problem" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={action.error} />
    </form>
  )
}

function InvitationReveal({ invitation: inv, onDone }: { invitation: InvitationCreated; onDone: () => void }) {
  const call = `curl -X POST ${window.location.origin}/api/v1/invitations/accept \\
  -H 'Content-Type: application/json' \\
  -d '${JSON.stringify({ token: inv.token, name: 'Their name', password: 'a long password' })}'`
  return (
    <section className="card team-reveal" aria-label={`Invitation of ${inv.email}`}>
      <h3>
        Invitation for {inv.email} ({inv.role})
      </h3>
      <p className="notice" role="status">
        Give this token to {inv.email}: it is shown once and not again. It expires {fmtTime(inv.expires_at)}.
      </p>
      <div className="team-token-row">
        <code className="team-token" data-testid="invitation-token">
          {inv.token}
        </code>
        <CopyButton text={inv.token} label="Copy token" />
      </div>
      <p>
        They accept it with <code>POST /api/v1/invitations/accept</code>: a new admin sends the token with a name and password; someone who already has an
        account logs in as {inv.email} and sends the token alone.
      </p>
      <div className="team-token-row">
        <pre>
          <code>{call}</code>
        </pre>
        <CopyButton text={call} label="Copy command" />
      </div>
      <div className="row">
        <button onClick={onDone}>Done, hide the token</button>
      </div>
    </section>
  )
}
