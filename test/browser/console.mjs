// The console and the one-line tracker in a real browser (Debian's
// Chromium driven by playwright-core), against a running Eddy: run by
// test/system/browser_test.go, which starts Eddy, then checks in the
// database what this script did through the browser.
//
// Environment: EDDY_URL, OWNER_EMAIL, OWNER_PASSWORD, VIEWER_EMAIL,
// VIEWER_PASSWORD, WORKSPACE, GREETER_MANIFEST, GREETER_MODULE (the test app
// to upload), HOOK_URL (the webhook the sink is configured with),
// ARTIFACTS (where screenshots go). On success it prints one JSON line,
// `RESULT {...}`, with what the Go test checks.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { mkdirSync } from 'node:fs'
import { chromium } from 'playwright-core'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set`)
  return v
}
const EDDY = env('EDDY_URL')
const WS = env('WORKSPACE')
const ARTIFACTS = env('ARTIFACTS')
mkdirSync(ARTIFACTS, { recursive: true })
const here = path.dirname(fileURLToPath(import.meta.url))

let current = 'start'
const shots = []
async function shot(page, name) {
  const file = path.join(ARTIFACTS, name + '.png')
  await page.screenshot({ path: file, fullPage: true })
  shots.push(file)
}
async function step(name, page, fn) {
  current = name
  const t0 = Date.now()
  try {
    await fn()
    console.log(`ok   ${name} (${Date.now() - t0} ms)`)
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`)
    if (page) await page.screenshot({ path: path.join(ARTIFACTS, 'failure-' + name.replace(/\W+/g, '-') + '.png'), fullPage: true }).catch(() => {})
    throw e
  }
}

// The test shop, on its own origin: every path answers the same page, with
// the snippet the console gave.
function serveShop(snippet) {
  return new Promise((resolve) => {
    const srv = http.createServer(async (req, res) => {
      if (req.url === '/shop.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript' })
        res.end(await readFile(path.join(here, 'site/shop.js')))
        return
      }
      if (req.url === '/favicon.ico') {
        res.writeHead(404)
        res.end()
        return
      }
      const html = (await readFile(path.join(here, 'site/index.html'), 'utf8')).replace('{{SNIPPET}}', snippet)
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
      res.end(html)
    })
    srv.listen(0, '127.0.0.1', () => resolve(srv))
  })
}

async function login(page, email, password) {
  await page.goto(EDDY + '/login')
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((u) => !u.pathname.startsWith('/login'))
}

// api calls the management API with the page's session (cookie and CSRF
// token), as the console does.
async function api(page, method, p, body) {
  return page.evaluate(
    async ({ method, p, body }) => {
      const me = await (await fetch('/api/v1/auth/me')).json()
      const res = await fetch('/api/v1' + p, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return { status: res.status, body: await res.json().catch(() => null) }
    },
    { method, p, body },
  )
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
const result = {}
let shop
try {
  const admin = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await admin.newPage()
  page.setDefaultTimeout(20000)
  const consoleErrors = []
  page.on('pageerror', (e) => consoleErrors.push(e.message))

  await step('log in', page, async () => {
    await page.goto(EDDY + '/')
    await page.waitForURL(/\/login/)
    await page.getByLabel('Email').fill(env('OWNER_EMAIL'))
    await page.getByLabel('Password').fill('wrong password')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').waitFor()
    await shot(page, '01-login-error')
    await login(page, env('OWNER_EMAIL'), env('OWNER_PASSWORD'))
    await page.waitForURL(new RegExp(`/ws/${WS}/overview`))
    await page.getByTestId('live-now').waitFor()
    await shot(page, '02-overview')
  })

  await step('require consent on the privacy page', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/privacy`)
    const necessary = page.getByLabel('Process events without the required purposes for necessary purposes only')
    await necessary.waitFor()
    assert.equal(await necessary.isChecked(), true, 'the test workspace starts with necessary-only processing allowed')
    await necessary.uncheck()
    await page.getByRole('button', { name: 'Save privacy policy' }).click()
    await page.getByText('Privacy policy saved').waitFor()
    await shot(page, '03-privacy')
  })

  let writeKey
  await step('create a source', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/sources`)
    await page.getByTestId('create-source-id').fill('site')
    await page.getByTestId('create-source-name').fill('Test shop')
    await page.getByRole('button', { name: 'Create source' }).click()
    writeKey = (await page.getByTestId('write-key').textContent()).trim()
    assert.match(writeKey, /^\S{16,}$/, 'a write key is shown')
    const snippet = (await page.getByTestId('snippet').first().textContent()).trim()
    assert.equal(snippet, `<script async src="${EDDY}/sdk/eddy.js?key=${writeKey}"></script>`)
    result.snippet = snippet
    await shot(page, '04-source-created')
  })

  await step('upload a WASM app and install it', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/plugins`)
    await page.getByLabel('Manifest (plugin.yaml)').setInputFiles(env('GREETER_MANIFEST'))
    await page.getByLabel('Module (.wasm)').setInputFiles(env('GREETER_MODULE'))
    await page.getByRole('button', { name: 'Upload' }).click()
    const app = page.locator('[data-testid=catalog-plugin][data-plugin-id="app.greeter"]')
    await app.waitFor()
    // Install opens the entry's form (the button becomes Cancel), whose
    // submit button is Install too.
    await app.getByRole('button', { name: 'Install' }).click()
    await app.getByRole('button', { name: 'Install', exact: true }).click()
    await page.locator('[data-testid=installed-plugin][data-plugin-id="app.greeter"]').waitFor()
  })

  await step('install and configure a sink through its generated form', page, async () => {
    const hook = page.locator('[data-testid=catalog-plugin][data-plugin-id="sink.webhook"]')
    await hook.getByRole('button', { name: 'Install' }).click()
    // The form is generated from the plugin's JSON Schema: a wrong value is
    // refused before anything is sent.
    await hook.getByLabel(/^url/).fill('not a url')
    await hook.getByLabel(/^secret/).fill('short')
    await hook.getByRole('button', { name: 'Install', exact: true }).click()
    await hook.getByText(/does not match|is shorter than/).first().waitFor()
    await shot(page, '05-plugin-form-errors')
    await hook.getByLabel(/^url/).fill(env('HOOK_URL'))
    await hook.getByLabel(/^secret/).fill('a-webhook-secret-of-32-characters')
    await hook.getByRole('button', { name: 'Install', exact: true }).click()
    await page.locator('[data-testid=installed-plugin][data-plugin-id="sink.webhook"]').waitFor()
    await shot(page, '06-plugins')
  })

  // The source's live debugger, open in its own tab while the visitor browses.
  const debuggerPage = await admin.newPage()
  debuggerPage.setDefaultTimeout(20000)
  await step('open the live debugger', debuggerPage, async () => {
    await debuggerPage.goto(`${EDDY}/ws/${WS}/sources/site`)
    await debuggerPage.getByText('Waiting for events').waitFor()
  })

  // A visitor on the shop.
  shop = await serveShop(result.snippet)
  const shopURL = `http://127.0.0.1:${shop.address().port}`
  const visitor = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const site = await visitor.newPage()
  site.setDefaultTimeout(20000)
  const sent = []
  site.on('request', (r) => {
    if (r.url().startsWith(EDDY + '/v1/batch')) sent.push(JSON.parse(r.postData()))
  })
  await step('browse the shop', site, async () => {
    await site.goto(shopURL + '/')
    await site.waitForFunction(() => typeof window.eddy === 'object' && typeof window.eddy.track === 'function')
    // Nothing leaves before the visitor consents: the workspace requires it.
    await site.waitForTimeout(1200)
    assert.equal(sent.length, 0, 'nothing is sent before consent')
    await site.getByRole('button', { name: 'Accept' }).click()
    await site.getByRole('link', { name: 'Blue mug' }).click()
    await site.getByRole('heading', { name: 'Product 42' }).waitFor()
    await site.getByRole('button', { name: 'Add to cart' }).click()
    await site.getByRole('button', { name: 'Sign up' }).click()
    // The greeter app answers a sign-up with a "welcome" action, which
    // reaches this page through eddy.on('action').
    await site.locator('#actions li[data-type="welcome"]').waitFor({ timeout: 30000 })
    await site.getByRole('link', { name: 'Cart' }).click()
    await site.getByRole('heading', { name: 'Cart' }).waitFor()
    const cookies = await visitor.cookies(shopURL)
    result.anonymousId = cookies.find((c) => c.name === 'eddy_aid')?.value
    assert.ok(result.anonymousId, 'the tracker keeps a first-party anonymous id cookie')
    await shot(site, '07-shop')
  })

  await step('see the events in the live debugger', debuggerPage, async () => {
    await debuggerPage.locator('[data-testid=debugger-row][data-outcome=accepted]').first().waitFor()
    await debuggerPage.getByText('Product Added').first().waitFor()
    await shot(debuggerPage, '08-debugger')
  })

  await step('see the session live', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/live`)
    let sessionId
    for (let i = 0; i < 60 && !sessionId; i++) {
      const r = await api(page, 'GET', `/workspaces/${WS}/sessions/live?anonymous_id=${encodeURIComponent(result.anonymousId)}`)
      sessionId = r.body?.data?.[0]?.id
      if (!sessionId) await page.waitForTimeout(500)
    }
    assert.ok(sessionId, 'the session is live')
    result.sessionId = sessionId
    const row = page.locator(`[data-testid=live-session-row][data-session-id="${sessionId}"]`)
    await row.waitFor()
    // The page updates in real time: the visitor's last page and cart.
    await row.getByText('/cart').first().waitFor()
    await row.getByText(/25/).first().waitFor()
    await shot(page, '09-live-sessions')
  })

  await step('find the profile', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/profiles`)
    await page.getByTestId('profile-search-kind').selectOption('anonymous_id')
    await page.getByTestId('profile-search-value').fill(result.anonymousId)
    await page.getByTestId('profile-search-value').press('Enter')
    await page.waitForURL(/\/profiles\/[0-9a-f-]{36}$/)
    await page.getByTestId('profile-identities').getByText(result.anonymousId).waitFor()
    await page.getByText('Product Added').first().waitFor()
    result.profileId = page.url().split('/').pop()
    await shot(page, '10-profile')
  })

  await step('the other pages', page, async () => {
    await page.goto(`${EDDY}/ws/${WS}/overview`)
    await page.getByTestId('live-now').waitFor()
    await page.waitForLoadState('networkidle')
    await shot(page, '11-overview')
    await page.goto(`${EDDY}/ws/${WS}/api-keys`)
    await page.getByTestId('create-api-key-name').waitFor()
    await shot(page, '12-api-keys')
    const org = (await api(page, 'GET', `/workspaces/${WS}`)).body.organization_id
    await page.goto(`${EDDY}/org/${org}/team`)
    await page.getByTestId('member-row').first().waitFor()
    await shot(page, '13-team')
    await page.goto(`${EDDY}/org/${org}/audit-log`)
    await page.getByTestId('audit-row').first().waitFor()
    await page.getByText('source.create').first().waitFor()
    await shot(page, '14-audit-log')
    await page.goto(`${EDDY}/ws/${WS}/plugins/sink.webhook`)
    await page.getByTestId('plugin-enabled').waitFor()
    await shot(page, '15-plugin-detail')
  })

  await step('a narrow window', page, async () => {
    await page.setViewportSize({ width: 400, height: 800 })
    for (const p of ['live', 'sources', 'plugins', 'overview']) {
      await page.goto(`${EDDY}/ws/${WS}/${p}`)
      await page.waitForLoadState('networkidle')
      const width = await page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(width <= 402, `${p} fits a 400 px window (scroll width ${width})`)
    }
    await shot(page, '16-narrow-overview')
    await page.setViewportSize({ width: 1280, height: 800 })
  })

  await step('log out', page, async () => {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(/\/login/)
    const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status)
    assert.equal(me, 401, 'the session ended')
  })

  await step('a viewer cannot edit', page, async () => {
    await login(page, env('VIEWER_EMAIL'), env('VIEWER_PASSWORD'))
    await page.goto(`${EDDY}/ws/${WS}/sources`)
    await page.getByTestId('source-row').first().waitFor()
    assert.equal(await page.getByRole('button', { name: 'Create source' }).count(), 0, 'no create-source form')
    await page.goto(`${EDDY}/ws/${WS}/plugins`)
    await page.locator('[data-testid=installed-plugin]').first().waitFor()
    assert.equal(await page.getByRole('button', { name: 'Install' }).count(), 0, 'no install buttons')
    await page.goto(`${EDDY}/ws/${WS}/plugins/sink.webhook`)
    await page.getByRole('heading', { name: 'sink.webhook' }).waitFor()
    await page.getByText('Dead letters').first().waitFor()
    assert.equal(await page.getByTestId('plugin-enabled').count(), 0, 'no enable toggle')
    assert.equal(await page.getByRole('button', { name: 'Uninstall' }).count(), 0, 'no uninstall button')
    await page.goto(`${EDDY}/ws/${WS}/privacy`)
    await page.getByLabel('Process events without the required purposes for necessary purposes only').waitFor()
    assert.equal(await page.getByRole('button', { name: 'Save privacy policy' }).count(), 0, 'no save button')
    await page.goto(`${EDDY}/ws/${WS}/profiles/${result.profileId}`)
    await page.getByTestId('profile-identities').waitFor()
    assert.equal(await page.getByRole('button', { name: 'Delete profile' }).count(), 0, 'no delete button')
    await shot(page, '17-viewer-profile')
    // The API refuses edits anyway.
    const r = await api(page, 'POST', `/workspaces/${WS}/sources`, { id: 'viewer-made' })
    assert.equal(r.status, 403, 'the API refuses a viewer')
    result.viewerRefused = r.status
  })

  assert.deepEqual(consoleErrors, [], 'no uncaught errors in the console')
  result.sentBatches = sent.length
  result.screenshots = shots.length
  console.log('RESULT ' + JSON.stringify(result))
} catch (e) {
  console.error(`browser test failed at "${current}": ${e.stack}`)
  process.exitCode = 1
} finally {
  shop?.close()
  await browser.close()
}
