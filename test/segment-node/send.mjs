// Sends a fixed set of events to Eddy through the official Segment Node.js SDK.
//
//   EDDY_URL=http://127.0.0.1:18080 EDDY_WRITE_KEY=... EDDY_RUN_ID=abc node send.mjs
//
// Every message gets an explicit messageId, node-<runid>-<n>, so the caller can check exactly
// which ones were stored. On success it prints one JSON line, {"sent":5,"messageIds":[...]},
// and exits 0; on any delivery error it prints the error to stderr and exits 1.
import { Analytics } from '@segment/analytics-node'

function need(name) {
  const v = process.env[name]
  if (!v) {
    console.error(`send.mjs: ${name} is not set`)
    process.exit(2)
  }
  return v
}

const host = need('EDDY_URL')
const writeKey = need('EDDY_WRITE_KEY')
const runId = need('EDDY_RUN_ID')

const analytics = new Analytics({ writeKey, host, flushAt: 20, maxRetries: 3 })

const errors = []
analytics.on('error', (err) => {
  errors.push(err)
})

const userId = `node-user-${runId}`
const messageIds = []
let delivered = 0
let n = 0
const nextId = () => {
  const id = `node-${runId}-${++n}`
  messageIds.push(id)
  return id
}
// Called once per message when its batch is delivered (err unset) or given up on.
const done = (err) => {
  if (err) errors.push(err)
  else delivered++
}

for (let i = 1; i <= 3; i++) {
  analytics.track(
    {
      messageId: nextId(),
      userId,
      event: `Node Test ${i}`,
      properties: {
        run: runId,
        index: i,
        nested: { sdk: 'analytics-node', tags: ['a', 'b'], depth: { level: 2 } },
      },
    },
    done,
  )
}

analytics.identify(
  {
    messageId: nextId(),
    userId,
    traits: { email: `node-${runId}@example.com`, name: `Node User ${runId}` },
  },
  done,
)

analytics.page(
  {
    messageId: nextId(),
    anonymousId: `node-anon-${runId}`,
    name: 'Home',
    properties: { url: `https://example.com/?run=${encodeURIComponent(runId)}` },
  },
  done,
)

try {
  await analytics.closeAndFlush({ timeout: 10000 })
} catch (err) {
  errors.push(err)
}

if (errors.length > 0 || delivered !== messageIds.length) {
  // The SDK reports each failed message twice (its callback and the 'error' event): print
  // each distinct reason once.
  const reasons = new Set(
    errors.map((err) => {
      const reason = err && err.reason !== undefined ? err.reason : err
      return reason instanceof Error ? reason.message : String(reason)
    }),
  )
  for (const reason of reasons) console.error(`send.mjs: delivery error: ${reason}`)
  if (delivered !== messageIds.length) {
    console.error(`send.mjs: only ${delivered} of ${messageIds.length} messages were delivered`)
  }
  process.exit(1)
}

console.log(JSON.stringify({ sent: messageIds.length, messageIds }))
