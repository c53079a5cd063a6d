import { useEffect, useMemo, useState, type ReactNode } from 'react'
import { Link } from 'react-router-dom'
import { get, post, type Page } from '../api'
import { Chart, type ChartOption } from '../charts'
import { Empty, ErrorBox, Loading, fmtNumber, useLoad } from '../ui'
import { useWorkspace } from '../workspace'
import type { Session } from './LiveSessions'
import './overview.css'

// The dashboard: visitors live now, then the semantic layer's numbers over
// the chosen range, each widget loading (and failing) on its own.

type CubeValue = string | number | boolean | null
type CubeRow = Record<string, CubeValue>
interface CubeQuery {
  measures: string[]
  dimensions?: string[]
  timeDimensions: { dimension: string; granularity?: 'hour' | 'day'; dateRange: string }[]
  order?: Record<string, 'asc' | 'desc'>
  limit?: number
  timezone: string
}
interface CubeResult {
  data: CubeRow[]
}

interface Range {
  key: string
  label: string
  // dateRange is Cube's relative range in the workspace's timezone: the
  // current hour or day and the ones before it.
  dateRange: string
  granularity: 'hour' | 'day'
  buckets: number
}

const RANGES: Range[] = [
  { key: '24h', label: 'Last 24 hours', dateRange: 'from 23 hours ago to now', granularity: 'hour', buckets: 24 },
  { key: '7d', label: 'Last 7 days', dateRange: 'from 6 days ago to now', granularity: 'day', buckets: 7 },
  { key: '30d', label: 'Last 30 days', dateRange: 'from 29 days ago to now', granularity: 'day', buckets: 30 },
]

const num = (v: CubeValue | undefined): number | null => {
  if (v === null || v === undefined || v === '') return null
  const n = Number(v)
  return Number.isFinite(n) ? n : null
}

// Cube writes a time bucket as the wall clock in the query's timezone
// ("2006-01-02T15:04:05.000"). buckets lists the range's buckets the same
// way, oldest first, so that a bucket without data shows as zero.
function buckets(range: Range, timezone: string): string[] {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date())
      .map((p) => [p.type, p.value]),
  )
  const hour = range.granularity === 'hour' ? Number(parts.hour) : 0
  const last = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), hour)
  const step = range.granularity === 'hour' ? 3600_000 : 86400_000
  const out: string[] = []
  for (let i = range.buckets - 1; i >= 0; i--) out.push(new Date(last - i * step).toISOString().slice(0, 19) + '.000')
  return out
}

// bucketLabel shows a bucket's wall clock (kept as UTC) in the admin's locale.
function bucketLabel(bucket: string, granularity: 'hour' | 'day'): string {
  const d = new Date(bucket + 'Z')
  return granularity === 'hour'
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' })
}

interface Series {
  labels: string[]
  values: Record<string, (number | null)[]>
}

export default function Overview() {
  const { ws, path } = useWorkspace()
  const timezone: string = ws.settings.timezone || 'UTC'
  const currency: string = ws.settings.currency || 'USD'
  const [rangeKey, setRangeKey] = useState('7d')
  const range = RANGES.find((r) => r.key === rangeKey) ?? RANGES[1]

  const money = (n: number | null, digits = 0) =>
    n === null ? '—' : n.toLocaleString(undefined, { style: 'currency', currency, maximumFractionDigits: digits, minimumFractionDigits: digits })

  const load = (q: Omit<CubeQuery, 'timezone'>) => post<CubeResult>(`${path}/cube/load`, { query: { ...q, timezone } }).then((r) => r.data)
  const total = (measures: string[], dimension: string) =>
    load({ measures, timeDimensions: [{ dimension, dateRange: range.dateRange }] }).then((rows) => rows[0] ?? {})
  const series = async (measures: string[], dimension: string): Promise<Series> => {
    const all = buckets(range, timezone)
    const rows = await load({ measures, timeDimensions: [{ dimension, granularity: range.granularity, dateRange: range.dateRange }] })
    const key = `${dimension}.${range.granularity}`
    const byBucket = new Map(rows.map((r) => [String(r[key]), r]))
    const values: Record<string, (number | null)[]> = {}
    for (const m of measures) values[m] = all.map((b) => (byBucket.has(b) ? num(byBucket.get(b)![m]) : null))
    return { labels: all.map((b) => bucketLabel(b, range.granularity)), values }
  }
  const deps = [path, range.key, timezone]

  const events = useLoad(() => total(['events.count'], 'events.timestamp'), deps)
  const sessions = useLoad(() => total(['sessions.count', 'sessions.conversion_rate'], 'sessions.started_at'), deps)
  const orders = useLoad(() => total(['orders.revenue', 'orders.count'], 'orders.ts'), deps)
  const eventsSeries = useLoad(() => series(['events.count'], 'events.timestamp'), deps)
  const sessionsSeries = useLoad(() => series(['sessions.count', 'sessions.conversion_rate'], 'sessions.started_at'), deps)
  const revenueSeries = useLoad(() => series(['orders.revenue', 'orders.count'], 'orders.ts'), deps)
  const pages = useLoad(
    () =>
      load({
        measures: ['page_views.count', 'page_views.visitors'],
        dimensions: ['page_views.path'],
        timeDimensions: [{ dimension: 'page_views.ts', dateRange: range.dateRange }],
        order: { 'page_views.count': 'desc' },
        limit: 10,
      }),
    deps,
  )
  const channels = useLoad(
    () =>
      load({
        measures: ['sessions.count', 'sessions.conversion_rate', 'sessions.revenue'],
        dimensions: ['sessions.channel_group'],
        timeDimensions: [{ dimension: 'sessions.started_at', dateRange: range.dateRange }],
        order: { 'sessions.count': 'desc' },
        limit: 20,
      }),
    deps,
  )
  const devices = useLoad(
    () =>
      load({
        measures: ['sessions.count'],
        dimensions: ['sessions.device_type'],
        timeDimensions: [{ dimension: 'sessions.started_at', dateRange: range.dateRange }],
        order: { 'sessions.count': 'desc' },
        limit: 20,
      }),
    deps,
  )

  return (
    <div className="overview">
      <div className="page-head">
        <h1>Overview</h1>
        <label className="inline">
          Period
          <select value={range.key} onChange={(e) => setRangeKey(e.target.value)}>
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="cards">
        <LiveNow />
        <Stat label="Events" state={events}>
          {(r) => fmtNumber(num(r['events.count']))}
        </Stat>
        <Stat label="Sessions" state={sessions}>
          {(r) => fmtNumber(num(r['sessions.count']))}
        </Stat>
        <Stat label="Conversion rate" state={sessions}>
          {(r) => {
            const v = num(r['sessions.conversion_rate'])
            return v === null ? '—' : fmtNumber(v, 1) + ' %'
          }}
        </Stat>
        <Stat label="Revenue" state={orders}>
          {(r) => money(num(r['orders.revenue']))}
        </Stat>
      </div>
      <p className="muted overview-note">
        {range.label} in {timezone}, the current {range.granularity} included.
      </p>
      <div className="grid-2">
        <ChartWidget title="Events" label={`Events per ${range.granularity}`} state={eventsSeries} option={eventsOption} />
        <ChartWidget title="Sessions and conversion rate" label={`Sessions and conversion rate per ${range.granularity}`} state={sessionsSeries} option={sessionsOption} />
        <ChartWidget title="Revenue" label={`Revenue and orders per ${range.granularity}`} state={revenueSeries} option={(s) => revenueOption(s, currency)} />
        <ChartWidget title="Devices" label="Sessions by device type" state={devices} option={devicesOption} />
        <Widget title="Top pages" state={pages}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No page views in this period.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Page</th>
                      <th className="num">Views</th>
                      <th className="num">Visitors</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((r, i) => (
                      <tr key={i}>
                        <td className="overview-path">{String(r['page_views.path'] ?? '—')}</td>
                        <td className="num">{fmtNumber(num(r['page_views.count']))}</td>
                        <td className="num">{fmtNumber(num(r['page_views.visitors']))}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Widget>
        <Widget title="Channels" state={channels}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No sessions in this period.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Channel</th>
                      <th className="num">Sessions</th>
                      <th className="num">Conversion</th>
                      <th className="num">Revenue</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((r, i) => {
                      const rate = num(r['sessions.conversion_rate'])
                      return (
                        <tr key={i}>
                          <td>{String(r['sessions.channel_group'] ?? '—')}</td>
                          <td className="num">{fmtNumber(num(r['sessions.count']))}</td>
                          <td className="num">{rate === null ? '—' : fmtNumber(rate, 1) + ' %'}</td>
                          <td className="num">{money(num(r['sessions.revenue']))}</td>
                        </tr>
                      )
                    })}
                  </tbody>
                </table>
              </div>
            )
          }
        </Widget>
      </div>
    </div>
  )
}

interface LoadState<T> {
  data: T | undefined
  error: Error | null
  loading: boolean
  reload: () => void
}

// Widget is one card of the dashboard with its own loading and error state.
function Widget<T>({ title, state, children }: { title: string; state: LoadState<T>; children: (d: T) => ReactNode }) {
  return (
    <section className="card overview-widget" aria-busy={state.loading}>
      <h2>{title}</h2>
      {state.error ? <ErrorBox error={state.error} retry={state.reload} /> : state.data === undefined ? <Loading /> : children(state.data)}
    </section>
  )
}

// ChartWidget draws a widget's data as a chart; option answers null when
// there is nothing to draw. The option is computed once per answer, so that
// the chart is redrawn only when its data changes.
function ChartWidget<T>({ title, label, state, option }: { title: string; label: string; state: LoadState<T>; option: (d: T) => ChartOption | null }) {
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const opt = useMemo(() => (state.data === undefined ? undefined : option(state.data)), [state.data])
  return (
    <Widget title={title} state={state}>
      {() => (opt ? <Chart label={label} option={opt} /> : <Empty>Nothing in this period.</Empty>)}
    </Widget>
  )
}

function Stat<T>({ label, state, children }: { label: string; state: LoadState<T>; children: (d: T) => ReactNode }) {
  return (
    <div className="card stat" aria-busy={state.loading}>
      <div className="label">{label}</div>
      {state.error ? (
        <div className="overview-stat-error" role="alert" title={state.error.message}>
          Unavailable{' '}
          <button className="link" onClick={state.reload}>
            Retry
          </button>
        </div>
      ) : (
        <div className="value">{state.data === undefined ? <span className="spinner" aria-label="Loading" /> : children(state.data)}</div>
      )}
    </div>
  )
}

const LIVE_LIMIT = 100

// LiveNow counts the open sessions, read again every 10 seconds.
function LiveNow() {
  const { path, ws } = useWorkspace()
  const live = useLoad(() => get<Page<Session>>(`${path}/sessions/live?limit=${LIVE_LIMIT}`), [path])
  const { reload } = live
  useEffect(() => {
    const t = setInterval(reload, 10_000)
    return () => clearInterval(t)
  }, [reload])
  return (
    <div className="card stat overview-live">
      <div className="label">
        <span className="overview-pulse" aria-hidden="true" /> Visitors live now
      </div>
      {live.error && live.data === undefined ? (
        <div className="overview-stat-error" role="alert" title={live.error.message}>
          Unavailable{' '}
          <button className="link" onClick={reload}>
            Retry
          </button>
        </div>
      ) : (
        <div className="value" data-testid="live-now">
          {live.data === undefined ? <span className="spinner" aria-label="Loading" /> : live.data.data.length + (live.data.next_cursor ? '+' : '')}
        </div>
      )}
      <Link to={`/ws/${ws.id}/live`}>See live sessions</Link>
    </div>
  )
}

const axisLabel = { hideOverlap: true }

function eventsOption(s: Series): ChartOption {
  return {
    tooltip: { trigger: 'axis' },
    grid: { left: 48, right: 16, top: 16, bottom: 32 },
    xAxis: { type: 'category', data: s.labels, axisLabel },
    yAxis: { type: 'value', minInterval: 1 },
    series: [{ type: 'line', name: 'Events', data: s.values['events.count'].map((v) => v ?? 0), showSymbol: false, areaStyle: { opacity: 0.15 } }],
  }
}

function sessionsOption(s: Series): ChartOption {
  return {
    tooltip: { trigger: 'axis' },
    legend: { bottom: 0 },
    grid: { left: 48, right: 48, top: 16, bottom: 56 },
    xAxis: { type: 'category', data: s.labels, axisLabel },
    yAxis: [
      { type: 'value', minInterval: 1 },
      { type: 'value', axisLabel: { formatter: '{value} %' }, splitLine: { show: false } },
    ],
    series: [
      { type: 'bar', name: 'Sessions', data: s.values['sessions.count'].map((v) => v ?? 0) },
      {
        type: 'line',
        name: 'Conversion rate',
        yAxisIndex: 1,
        data: s.values['sessions.conversion_rate'].map((v) => (v === null ? null : Math.round(v * 10) / 10)),
        tooltip: { valueFormatter: (v) => (v === null || v === undefined ? '—' : `${v} %`) },
        connectNulls: true,
      },
    ],
  }
}

function revenueOption(s: Series, currency: string): ChartOption {
  const fmt = new Intl.NumberFormat(undefined, { style: 'currency', currency, maximumFractionDigits: 0 })
  return {
    tooltip: { trigger: 'axis' },
    legend: { bottom: 0 },
    grid: { left: 64, right: 40, top: 16, bottom: 56 },
    xAxis: { type: 'category', data: s.labels, axisLabel },
    yAxis: [
      { type: 'value', axisLabel: { formatter: (v: number) => fmt.format(v) } },
      { type: 'value', minInterval: 1, splitLine: { show: false } },
    ],
    series: [
      {
        type: 'bar',
        name: 'Revenue',
        data: s.values['orders.revenue'].map((v) => v ?? 0),
        tooltip: { valueFormatter: (v) => (typeof v === 'number' ? fmt.format(v) : '—') },
      },
      { type: 'line', name: 'Orders', yAxisIndex: 1, data: s.values['orders.count'].map((v) => v ?? 0), showSymbol: false },
    ],
  }
}

function devicesOption(rows: CubeRow[]): ChartOption | null {
  if (rows.length === 0) return null
  const data = rows.map((r) => ({ name: String(r['sessions.device_type'] ?? 'unknown'), value: num(r['sessions.count']) ?? 0 }))
  const all = data.reduce((n, d) => n + d.value, 0)
  const share = new Map(data.map((d) => [d.name, all > 0 ? Math.round((1000 * d.value) / all) / 10 : 0]))
  return {
    tooltip: { trigger: 'item', formatter: '{b}: {c} sessions ({d}%)' },
    legend: { bottom: 0, formatter: (name: string) => `${name} ${share.get(name) ?? 0}%` },
    series: [{ type: 'pie', name: 'Sessions', radius: ['42%', '70%'], center: ['50%', '45%'], data, label: { show: false } }],
  }
}
