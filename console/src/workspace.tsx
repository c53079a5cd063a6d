import { createContext, useContext } from 'react'
import { canAdmin, canWrite, type Role, type Workspace } from './api'

// The workspace the console is showing, and what the admin may do in it.
export interface WorkspaceValue {
  ws: Workspace
  org: string
  role: Role | undefined
  canWrite: boolean
  canAdmin: boolean
  // path is the API path of the workspace: /workspaces/{ws}.
  path: string
}

export const WorkspaceContext = createContext<WorkspaceValue | null>(null)

export function workspaceValue(ws: Workspace, role: Role | undefined): WorkspaceValue {
  return { ws, org: ws.organization_id, role, canWrite: canWrite(role), canAdmin: canAdmin(role), path: '/workspaces/' + encodeURIComponent(ws.id) }
}

export function useWorkspace(): WorkspaceValue {
  const v = useContext(WorkspaceContext)
  if (!v) throw new Error('useWorkspace outside a workspace page')
  return v
}
