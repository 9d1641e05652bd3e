import type { KeyTraffic } from "../domain/ApiKey.ts"
import {
  isGeneration,
  type ModelUsage,
  type UpstreamHealth,
  type UsageEvent,
  type UsagePoint,
  type UsageSummary,
  type UsageWindow
} from "../domain/Usage.ts"

/**
 * The statistics store's SQL, over the smallest interface both SQLite hosts
 * offer: the Durable Object's `ctx.storage.sql` in the Worker, `node:sqlite`
 * in the unit tests. Synchronous, as both are; one writer (the object), so
 * an event and its rollup are written together.
 *
 * Retention: raw events for 7 days (and at most MAX_EVENTS rows), hourly
 * rollups for 90 days. The 30-day window reads rollups only.
 */
export interface Sql {
  all<T>(query: string, ...params: ReadonlyArray<SqlValue>): Array<T>
}
export type SqlValue = string | number | null

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR
export const EVENT_RETENTION_MS = 7 * DAY
export const ROLLUP_RETENTION_MS = 90 * DAY
export const MAX_EVENTS = 100_000
/** The start of the rollup hour that holds `ms`: the key of the rollup tables. */
const hourOf = (ms: number) => Math.floor(ms / HOUR) * HOUR

/**
 * Longest stored text per field: a client chooses the model id and the path, so an event's size must not be
 * its choice. Longer values are cut (the prompt's limit is the API's own).
 */
const FIELD_LIMITS = {
  method: 16,
  path: 256,
  key: 64,
  model: 128,
  upstream: 64,
  error: 64,
  requestId: 64,
  prompt: 32_000
} as const
const clip = (value: string | null, limit: number) => (value === null || value.length <= limit ? value : value.slice(0, limit))

/** Pruning runs on a write at most this often (and from the cron trigger). */
export const PRUNE_EVERY_MS = 10 * MINUTE

/** Upper bounds (ms) of the latency histogram kept in rollups; the last bucket is open. */
export const LATENCY_BOUNDS = [250, 500, 1000, 2000, 3000, 5000, 8000, 12_000, 20_000, 30_000, 60_000, 120_000] as const
const BUCKETS = LATENCY_BOUNDS.length + 1
const bucketColumns = Array.from({ length: BUCKETS }, (_, i) => `h${i}`)

/** The histogram columns summed over the rows of a group, for the 30-day window and the rollup series. */
const SUM_BUCKETS = bucketColumns.map((column) => `SUM(${column}) AS ${column}`).join(", ")

/** A rollup row's (or a sum of rows') latency histogram, in bucket order. */
const histogramOf = (row: Record<string, number | string>) => bucketColumns.map((column) => Number(row[column] ?? 0))

export const bucketOf = (latencyMs: number) => {
  const index = LATENCY_BOUNDS.findIndex((bound) => latencyMs <= bound)
  return index === -1 ? LATENCY_BOUNDS.length : index
}

/** Nearest-rank percentile from histogram counts: the upper bound of the bucket holding that rank. */
export const percentileFromHistogram = (counts: ReadonlyArray<number>, p: number, maxMs: number): number | null => {
  const total = counts.reduce((sum, count) => sum + count, 0)
  if (total === 0) return null
  const rank = Math.max(1, Math.ceil(p * total))
  let seen = 0
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0
    if (seen >= rank) return Math.min(LATENCY_BOUNDS[i] ?? maxMs, maxMs)
  }
  return maxMs
}

export const WINDOWS: Record<UsageWindow, { readonly spanMs: number; readonly bucketMs: number }> = {
  "1h": { spanMs: HOUR, bucketMs: MINUTE },
  "24h": { spanMs: DAY, bucketMs: HOUR },
  "7d": { spanMs: 7 * DAY, bucketMs: 6 * HOUR },
  "30d": { spanMs: 30 * DAY, bucketMs: DAY }
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL, request_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, endpoint TEXT NOT NULL,
    model TEXT, upstream TEXT, status INTEGER NOT NULL, latency_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,
    images INTEGER NOT NULL, failed_images INTEGER NOT NULL, error TEXT, stream INTEGER NOT NULL, prompt TEXT,
    generation INTEGER NOT NULL, ok INTEGER NOT NULL, failovers INTEGER NOT NULL DEFAULT 0)`,
  "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
  `CREATE TABLE IF NOT EXISTS rollups (
    hour INTEGER NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL,
    requests INTEGER NOT NULL, generations INTEGER NOT NULL, succeeded INTEGER NOT NULL, images INTEGER NOT NULL,
    failed_images INTEGER NOT NULL, attempts INTEGER NOT NULL, latency_max INTEGER NOT NULL,
    ${bucketColumns.map((column) => `${column} INTEGER NOT NULL`).join(", ")},
    PRIMARY KEY (hour, model, endpoint))`,
  `CREATE TABLE IF NOT EXISTS rollup_errors (
    hour INTEGER NOT NULL, error TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (hour, error))`,
  // Per key and hour, for the Keys panel's 30-day window (shorter windows read the events).
  `CREATE TABLE IF NOT EXISTS key_rollups (
    hour INTEGER NOT NULL, key TEXT NOT NULL,
    requests INTEGER NOT NULL, generations INTEGER NOT NULL, images INTEGER NOT NULL, errors INTEGER NOT NULL,
    latency_max INTEGER NOT NULL, ${bucketColumns.map((column) => `${column} INTEGER NOT NULL`).join(", ")},
    PRIMARY KEY (hour, key))`
]

/** Columns added after the table was first created, for stores made by an older version. */
const ADDED_COLUMNS: ReadonlyArray<{ readonly table: string; readonly column: string; readonly definition: string }> = [
  { table: "events", column: "failovers", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "events", column: "key", definition: "TEXT" }
]

const INSERT_EVENT = `INSERT INTO events (ts, request_id, method, path, endpoint, model, upstream, status, latency_ms,
  attempts, images, failed_images, error, stream, prompt, generation, ok, failovers, key)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const UPSERT_KEY_ROLLUP = `INSERT INTO key_rollups (hour, key, requests, generations, images, errors, latency_max,
    ${bucketColumns.join(", ")})
  VALUES (?, ?, ?, ?, ?, ?, ?, ${bucketColumns.map(() => "?").join(", ")})
  ON CONFLICT (hour, key) DO UPDATE SET
    requests = requests + excluded.requests, generations = generations + excluded.generations,
    images = images + excluded.images, errors = errors + excluded.errors,
    latency_max = MAX(latency_max, excluded.latency_max),
    ${bucketColumns.map((column) => `${column} = ${column} + excluded.${column}`).join(", ")}`

/** One key's share of a batch, before it is added to the stored row. */
interface KeyDelta {
  readonly hour: number
  readonly key: string
  requests: number
  generations: number
  images: number
  errors: number
  latencyMax: number
  readonly histogram: Array<number>
}

const UPSERT_ROLLUP = `INSERT INTO rollups (hour, model, endpoint, requests, generations, succeeded, images, failed_images,
    attempts, latency_max, ${bucketColumns.join(", ")})
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${bucketColumns.map(() => "?").join(", ")})
  ON CONFLICT (hour, model, endpoint) DO UPDATE SET
    requests = requests + excluded.requests, generations = generations + excluded.generations,
    succeeded = succeeded + excluded.succeeded, images = images + excluded.images,
    failed_images = failed_images + excluded.failed_images, attempts = attempts + excluded.attempts,
    latency_max = MAX(latency_max, excluded.latency_max),
    ${bucketColumns.map((column) => `${column} = ${column} + excluded.${column}`).join(", ")}`

const UPSERT_ERROR = `INSERT INTO rollup_errors (hour, error, count) VALUES (?, ?, ?)
  ON CONFLICT (hour, error) DO UPDATE SET count = count + excluded.count`

/** One rollup row's worth of a batch, before it is added to the stored row. */
interface RollupDelta {
  readonly hour: number
  readonly model: string
  readonly endpoint: string
  requests: number
  generations: number
  succeeded: number
  images: number
  failedImages: number
  attempts: number
  latencyMax: number
  readonly histogram: Array<number>
}

/** The entry of `map` under `key`, made and added the first time. */
const entryOf = <T>(map: Map<string, T>, key: string, make: () => T): T => {
  const found = map.get(key)
  if (found !== undefined) return found
  const made = make()
  map.set(key, made)
  return made
}

/** A successful generation's latency, into a rollup's maximum and histogram. */
const addLatency = (delta: { latencyMax: number; readonly histogram: Array<number> }, latencyMs: number) => {
  delta.latencyMax = Math.max(delta.latencyMax, latencyMs)
  delta.histogram[bucketOf(latencyMs)] += 1
}

/** A generation succeeded when it answered 2xx with at least one image. */
export const succeeded = (event: UsageEvent) => isGeneration(event.endpoint) && event.status < 400 && event.images > 0

const rate = (ok: number, total: number) => (total === 0 ? null : ok / total)

interface EventRow {
  readonly ts: number
  readonly request_id: string
  readonly method: string
  readonly path: string
  readonly endpoint: UsageEvent["endpoint"]
  readonly model: string | null
  readonly upstream: string | null
  readonly status: number
  readonly latency_ms: number
  readonly attempts: number
  readonly images: number
  readonly failed_images: number
  readonly error: string | null
  readonly stream: number
  readonly prompt: string | null
  readonly failovers: number
  readonly key: string | null
}

const toEvent = (row: EventRow): UsageEvent => ({
  ts: row.ts,
  requestId: row.request_id,
  method: row.method,
  path: row.path,
  endpoint: row.endpoint,
  key: row.key,
  model: row.model,
  upstream: row.upstream,
  status: row.status,
  latencyMs: row.latency_ms,
  attempts: row.attempts,
  images: row.images,
  failedImages: row.failed_images,
  error: row.error,
  stream: row.stream === 1,
  prompt: row.prompt,
  failovers: row.failovers
})

interface Totals {
  readonly requests: number
  readonly generations: number | null
  readonly succeeded: number | null
  readonly images: number | null
  readonly failed_images: number | null
  readonly attempts: number | null
}

/** Nearest-rank p50/p95 of successful generations' latency, per group, with SQL window functions. */
const percentilesSql = (groupBy: string, where: string) => `
  WITH ranked AS (
    SELECT ${groupBy} AS grp, latency_ms,
      ROW_NUMBER() OVER (PARTITION BY ${groupBy} ORDER BY latency_ms) AS rn,
      COUNT(*) OVER (PARTITION BY ${groupBy}) AS total
    FROM events WHERE ${where} AND ok = 1)
  SELECT grp, MIN(CASE WHEN rn >= 0.5 * total THEN latency_ms END) AS p50,
    MIN(CASE WHEN rn >= 0.95 * total THEN latency_ms END) AS p95
  FROM ranked GROUP BY grp`

interface PercentileRow {
  readonly grp: string | number | null
  readonly p50: number | null
  readonly p95: number | null
}

export class UsageDb {
  private lastPrune = 0

  constructor(
    private readonly sql: Sql,
    private readonly maxEvents: number = MAX_EVENTS
  ) {
    for (const statement of SCHEMA) sql.all(statement)
    for (const { table, column, definition } of ADDED_COLUMNS) {
      const columns = sql.all<{ name: string }>(`PRAGMA table_info(${table})`)
      if (!columns.some((existing) => existing.name === column))
        sql.all(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    }
  }

  /**
   * Writes a batch of events (one isolate's last second or so) and folds them
   * into the hourly rollups: one upsert per (hour, model, endpoint) and per
   * (hour, error) in the batch, not per event. An upsert that touches the
   * histogram's thirteen columns cost about 0.7 ms of CPU per request when it
   * ran once per event (`npm run bench`). The caller runs it in a transaction.
   */
  record(events: ReadonlyArray<UsageEvent>, now: number = Date.now()): void {
    const rollups = new Map<string, RollupDelta>()
    const errors = new Map<string, { hour: number; error: string; count: number }>()
    const keys = new Map<string, KeyDelta>()
    for (const event of events) {
      const generation = isGeneration(event.endpoint) ? 1 : 0
      const ok = succeeded(event) ? 1 : 0
      const model = clip(event.model, FIELD_LIMITS.model)
      this.sql.all(
        INSERT_EVENT,
        event.ts,
        clip(event.requestId, FIELD_LIMITS.requestId),
        clip(event.method, FIELD_LIMITS.method),
        clip(event.path, FIELD_LIMITS.path),
        event.endpoint,
        model,
        clip(event.upstream, FIELD_LIMITS.upstream),
        event.status,
        event.latencyMs,
        event.attempts,
        event.images,
        event.failedImages,
        clip(event.error, FIELD_LIMITS.error),
        event.stream ? 1 : 0,
        clip(event.prompt, FIELD_LIMITS.prompt),
        generation,
        ok,
        event.failovers,
        clip(event.key, FIELD_LIMITS.key)
      )
      const hour = hourOf(event.ts)
      const keyName = clip(event.key, FIELD_LIMITS.key)
      if (keyName !== null) {
        const delta = entryOf(keys, `${hour}\u0000${keyName}`, () => ({
          hour,
          key: keyName,
          requests: 0,
          generations: 0,
          images: 0,
          errors: 0,
          latencyMax: 0,
          histogram: new Array<number>(BUCKETS).fill(0)
        }))
        delta.requests += 1
        delta.generations += generation
        delta.images += event.images
        delta.errors += event.error === null ? 0 : 1
        if (ok === 1) addLatency(delta, event.latencyMs)
      }
      const rollupModel = model ?? ""
      const rollup = entryOf(rollups, `${hour}\u0000${rollupModel}\u0000${event.endpoint}`, () => ({
        hour,
        model: rollupModel,
        endpoint: event.endpoint,
        requests: 0,
        generations: 0,
        succeeded: 0,
        images: 0,
        failedImages: 0,
        attempts: 0,
        latencyMax: 0,
        histogram: new Array<number>(BUCKETS).fill(0)
      }))
      rollup.requests += 1
      rollup.generations += generation
      rollup.succeeded += ok
      rollup.images += event.images
      rollup.failedImages += event.failedImages
      rollup.attempts += event.attempts
      if (ok === 1) addLatency(rollup, event.latencyMs)
      const error = clip(event.error, FIELD_LIMITS.error)
      if (error !== null) {
        const errorKey = `${hour}\u0000${error}`
        const counted = errors.get(errorKey)
        if (counted === undefined) errors.set(errorKey, { hour, error, count: 1 })
        else counted.count += 1
      }
    }
    for (const rollup of rollups.values()) {
      this.sql.all(
        UPSERT_ROLLUP,
        rollup.hour,
        rollup.model,
        rollup.endpoint,
        rollup.requests,
        rollup.generations,
        rollup.succeeded,
        rollup.images,
        rollup.failedImages,
        rollup.attempts,
        rollup.latencyMax,
        ...rollup.histogram
      )
    }
    for (const { hour, error, count } of errors.values()) this.sql.all(UPSERT_ERROR, hour, error, count)
    for (const delta of keys.values()) {
      this.sql.all(
        UPSERT_KEY_ROLLUP,
        delta.hour,
        delta.key,
        delta.requests,
        delta.generations,
        delta.images,
        delta.errors,
        delta.latencyMax,
        ...delta.histogram
      )
    }
    // The row cap holds on every write, not only when pruning: ids only grow, so the newest id less the cap
    // is the oldest row to keep, and the delete walks the primary key over the rows it removes.
    const [newest] = this.sql.all<{ id: number | null }>("SELECT MAX(id) AS id FROM events")
    if (newest?.id != null && newest.id > this.maxEvents)
      this.sql.all("DELETE FROM events WHERE id <= ?", newest.id - this.maxEvents)
    if (now - this.lastPrune >= PRUNE_EVERY_MS) this.prune(now)
  }

  /** Drops events older than 7 days or beyond MAX_EVENTS, and rollups older than 90 days. */
  prune(now: number = Date.now()): { events: number; rollups: number } {
    this.lastPrune = now
    const before = this.count("events")
    this.sql.all("DELETE FROM events WHERE ts < ?", now - EVENT_RETENTION_MS)
    this.sql.all("DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)", this.maxEvents)
    const rollupsBefore = this.count("rollups")
    const oldestHour = hourOf(now - ROLLUP_RETENTION_MS)
    this.sql.all("DELETE FROM rollups WHERE hour < ?", oldestHour)
    this.sql.all("DELETE FROM rollup_errors WHERE hour < ?", oldestHour)
    this.sql.all("DELETE FROM key_rollups WHERE hour < ?", oldestHour)
    return { events: before - this.count("events"), rollups: rollupsBefore - this.count("rollups") }
  }

  count(table: "events" | "rollups" | "rollup_errors" | "key_rollups"): number {
    return this.sql.all<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`)[0]?.n ?? 0
  }

  recent(limit: number): Array<UsageEvent> {
    return this.sql
      .all<EventRow>("SELECT * FROM events ORDER BY ts DESC, id DESC LIMIT ?", Math.max(1, Math.min(limit, 500)))
      .map(toEvent)
  }

  summary(window: UsageWindow, now: number = Date.now()): UsageSummary {
    const { spanMs, bucketMs } = WINDOWS[window]
    const from = now - spanMs
    return window === "30d" ? this.fromRollups(window, from, now, bucketMs) : this.fromEvents(window, from, now, bucketMs)
  }

  /**
   * Per key (by name) over the window: requests, generations, images, errors and the latency of successful
   * generations, from the events (exact) or, for 30 days, from the hourly key rollups.
   */
  keys(window: UsageWindow, now: number = Date.now()): Array<KeyTraffic> {
    const { spanMs } = WINDOWS[window]
    const from = now - spanMs
    if (window === "30d") {
      const rows = this.sql.all<Record<string, number | string>>(
        `SELECT key, SUM(requests) AS requests, SUM(generations) AS generations, SUM(images) AS images,
          SUM(errors) AS errors, MAX(latency_max) AS latency_max, ${SUM_BUCKETS}
        FROM key_rollups WHERE hour >= ? GROUP BY key ORDER BY key`,
        hourOf(from)
      )
      return rows.map((row) => ({
        key: String(row.key),
        requests: Number(row.requests),
        generations: Number(row.generations),
        images: Number(row.images),
        errors: Number(row.errors),
        latencyMs: {
          p50: percentileFromHistogram(histogramOf(row), 0.5, Number(row.latency_max)),
          p95: percentileFromHistogram(histogramOf(row), 0.95, Number(row.latency_max))
        }
      }))
    }
    const rows = this.sql.all<{ key: string; requests: number; generations: number; images: number; errors: number }>(
      `SELECT key, COUNT(*) AS requests, SUM(generation) AS generations, SUM(images) AS images,
        SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS errors
      FROM events WHERE ts >= ? AND key IS NOT NULL GROUP BY key ORDER BY key`,
      from
    )
    const latency = this.percentiles("key", "ts >= ? AND key IS NOT NULL", from)
    return rows.map((row) => ({
      key: row.key,
      requests: row.requests,
      generations: row.generations,
      images: row.images,
      errors: row.errors,
      latencyMs: latency.get(row.key) ?? { p50: null, p95: null }
    }))
  }

  /** Per upstream: generations in the last hour and the latest one at any age. */
  upstreams(now: number = Date.now()): Array<UpstreamHealth> {
    const from = now - HOUR
    const counts = this.sql.all<{ upstream: string; requests: number; succeeded: number }>(
      `SELECT upstream, COUNT(*) AS requests, SUM(ok) AS succeeded FROM events
      WHERE ts >= ? AND generation = 1 AND upstream IS NOT NULL GROUP BY upstream`,
      from
    )
    const latency = this.percentiles("upstream", "ts >= ? AND upstream IS NOT NULL", from)
    const names = this.sql.all<{ upstream: string }>(
      "SELECT DISTINCT upstream FROM events WHERE upstream IS NOT NULL ORDER BY upstream"
    )
    return names.map(({ upstream }) => {
      const count = counts.find((row) => row.upstream === upstream)
      const last = this.sql.all<EventRow>(
        "SELECT * FROM events WHERE upstream = ? AND generation = 1 ORDER BY ts DESC, id DESC LIMIT 1",
        upstream
      )[0]
      return {
        upstream,
        lastHour: {
          requests: count?.requests ?? 0,
          succeeded: count?.succeeded ?? 0,
          successRate: rate(count?.succeeded ?? 0, count?.requests ?? 0),
          latencyMs: latency.get(upstream) ?? { p50: null, p95: null }
        },
        last:
          last === undefined
            ? null
            : { ts: last.ts, status: last.status, latencyMs: last.latency_ms, model: last.model, error: last.error }
      }
    })
  }

  private percentiles(groupBy: string, where: string, ...params: ReadonlyArray<SqlValue>) {
    const rows = this.sql.all<PercentileRow>(percentilesSql(groupBy, where), ...params)
    return new Map(rows.map((row) => [row.grp, { p50: row.p50, p95: row.p95 }]))
  }

  private fromEvents(window: UsageWindow, from: number, to: number, bucketMs: number): UsageSummary {
    const totals = this.sql.all<Totals>(
      `SELECT COUNT(*) AS requests, SUM(generation) AS generations, SUM(ok) AS succeeded, SUM(images) AS images,
        SUM(failed_images) AS failed_images, SUM(attempts) AS attempts FROM events WHERE ts >= ?`,
      from
    )[0]
    const overall = this.percentiles("'all'", "ts >= ?", from).get("all") ?? { p50: null, p95: null }
    const errors = this.sql.all<{ error: string; count: number }>(
      "SELECT error, COUNT(*) AS count FROM events WHERE ts >= ? AND error IS NOT NULL GROUP BY error ORDER BY count DESC, error",
      from
    )
    const modelRows = this.sql.all<{ model: string; requests: number; succeeded: number; images: number }>(
      `SELECT model, COUNT(*) AS requests, SUM(ok) AS succeeded, SUM(images) AS images FROM events
      WHERE ts >= ? AND generation = 1 AND model IS NOT NULL GROUP BY model ORDER BY requests DESC, model`,
      from
    )
    const modelLatency = this.percentiles("model", "ts >= ? AND model IS NOT NULL", from)
    const models: Array<ModelUsage> = modelRows.map((row) => ({
      model: row.model,
      requests: row.requests,
      succeeded: row.succeeded,
      successRate: rate(row.succeeded, row.requests),
      images: row.images,
      latencyMs: modelLatency.get(row.model) ?? { p50: null, p95: null }
    }))
    const series = window === "1h" ? this.eventSeries(from, to, bucketMs) : this.rollupSeries(from, to, bucketMs)
    return this.assemble(window, from, to, "events", totals, overall, errors, models, bucketMs, series)
  }

  private fromRollups(window: UsageWindow, from: number, to: number, bucketMs: number): UsageSummary {
    const firstHour = hourOf(from)
    const totals = this.sql.all<Totals>(
      `SELECT COALESCE(SUM(requests), 0) AS requests, SUM(generations) AS generations, SUM(succeeded) AS succeeded,
        SUM(images) AS images, SUM(failed_images) AS failed_images, SUM(attempts) AS attempts FROM rollups WHERE hour >= ?`,
      firstHour
    )[0]
    const histogramRows = this.sql.all<Record<string, number | string>>(
      `SELECT model, SUM(requests) AS requests, SUM(generations) AS generations, SUM(succeeded) AS succeeded,
        SUM(images) AS images, MAX(latency_max) AS latency_max,
        ${SUM_BUCKETS}
      FROM rollups WHERE hour >= ? GROUP BY model ORDER BY generations DESC, model`,
      firstHour
    )
    const latencyOf = (counts: ReadonlyArray<number>, maxMs: number) => ({
      p50: percentileFromHistogram(counts, 0.5, maxMs),
      p95: percentileFromHistogram(counts, 0.95, maxMs)
    })
    const histograms = histogramRows.map(histogramOf)
    const overallCounts = bucketColumns.map((_, i) => histograms.reduce((sum, counts) => sum + (counts[i] ?? 0), 0))
    const overallMax = histogramRows.reduce((max, row) => Math.max(max, Number(row.latency_max)), 0)
    const models: Array<ModelUsage> = histogramRows
      .filter((row) => row.model !== "" && Number(row.generations) > 0)
      .map((row) => ({
        model: String(row.model),
        requests: Number(row.generations),
        succeeded: Number(row.succeeded),
        successRate: rate(Number(row.succeeded), Number(row.generations)),
        images: Number(row.images),
        latencyMs: latencyOf(histogramOf(row), Number(row.latency_max))
      }))
    const errors = this.sql.all<{ error: string; count: number }>(
      "SELECT error, SUM(count) AS count FROM rollup_errors WHERE hour >= ? GROUP BY error ORDER BY count DESC, error",
      firstHour
    )
    const series = this.rollupSeries(from, to, bucketMs)
    return this.assemble(
      window,
      firstHour,
      to,
      "rollups",
      totals,
      latencyOf(overallCounts, overallMax),
      errors,
      models,
      bucketMs,
      series
    )
  }

  private assemble(
    window: UsageWindow,
    from: number,
    to: number,
    source: UsageSummary["source"],
    totals: Totals | undefined,
    latencyMs: { p50: number | null; p95: number | null },
    errors: ReadonlyArray<{ error: string; count: number }>,
    models: ReadonlyArray<ModelUsage>,
    bucketMs: number,
    series: ReadonlyArray<UsagePoint>
  ): UsageSummary {
    const generations = totals?.generations ?? 0
    const ok = totals?.succeeded ?? 0
    return {
      window,
      from,
      to,
      source,
      requests: totals?.requests ?? 0,
      generations,
      succeeded: ok,
      successRate: rate(ok, generations),
      images: totals?.images ?? 0,
      failedImages: totals?.failed_images ?? 0,
      attempts: totals?.attempts ?? 0,
      latencyMs,
      errors: errors.map((row) => ({ error: row.error, count: Number(row.count) })),
      models,
      bucketMs,
      series
    }
  }

  /**
   * One point per bucket from `from` to `to`, filled from the rows that had traffic. Empty buckets are points
   * with zeros, so a chart's x axis is time, not "buckets that had traffic".
   */
  private series<Row extends { readonly t: number }>(
    from: number,
    to: number,
    bucketMs: number,
    rows: ReadonlyArray<Row>,
    toPoint: (row: Row) => Omit<UsagePoint, "t">
  ): Array<UsagePoint> {
    const byBucket = new Map(rows.map((row) => [row.t, row]))
    const points: Array<UsagePoint> = []
    for (let t = Math.floor(from / bucketMs) * bucketMs; t <= to; t += bucketMs) {
      const row = byBucket.get(t)
      points.push(
        row === undefined ? { t, requests: 0, succeeded: 0, failed: 0, images: 0, p95Ms: null } : { t, ...toPoint(row) }
      )
    }
    return points
  }

  private eventSeries(from: number, to: number, bucketMs: number): Array<UsagePoint> {
    const bucket = `(ts / ${bucketMs}) * ${bucketMs}`
    const rows = this.sql.all<{ t: number; requests: number; succeeded: number; failed: number; images: number }>(
      `SELECT ${bucket} AS t, COUNT(*) AS requests, SUM(ok) AS succeeded, SUM(generation) - SUM(ok) AS failed,
        SUM(images) AS images FROM events WHERE ts >= ? GROUP BY t`,
      from
    )
    const p95 = this.percentiles(bucket, "ts >= ?", from)
    return this.series(from, to, bucketMs, rows, (row) => ({
      requests: row.requests,
      succeeded: row.succeeded,
      failed: row.failed,
      images: row.images,
      p95Ms: p95.get(row.t)?.p95 ?? null
    }))
  }

  private rollupSeries(from: number, to: number, bucketMs: number): Array<UsagePoint> {
    const rows = this.sql.all<Record<string, number> & { readonly t: number }>(
      `SELECT (hour / ${bucketMs}) * ${bucketMs} AS t, SUM(requests) AS requests, SUM(succeeded) AS succeeded,
        SUM(generations) - SUM(succeeded) AS failed, SUM(images) AS images, MAX(latency_max) AS latency_max,
        ${SUM_BUCKETS}
      FROM rollups WHERE hour >= ? GROUP BY t`,
      hourOf(from)
    )
    return this.series(from, to, bucketMs, rows, (row) => ({
      requests: Number(row.requests),
      succeeded: Number(row.succeeded),
      failed: Number(row.failed),
      images: Number(row.images),
      p95Ms: percentileFromHistogram(histogramOf(row), 0.95, Number(row.latency_max))
    }))
  }
}
