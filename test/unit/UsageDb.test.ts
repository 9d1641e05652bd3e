import { DatabaseSync } from "node:sqlite"
import { describe, expect, it } from "vitest"
import type { UsageEvent } from "../../src/domain/Usage.ts"
import {
  bucketOf,
  DAY,
  EVENT_RETENTION_MS,
  HOUR,
  MAX_EVENTS,
  MINUTE,
  PRUNE_EVERY_MS,
  percentileFromHistogram,
  ROLLUP_RETENTION_MS,
  succeeded,
  UsageDb
} from "../../src/durable/UsageDb.ts"
import { usageEvent } from "../support/usageEvent.ts"

/** The store's SQL on Node's own SQLite, the same engine the Durable Object runs. */
const open = (maxEvents?: number) => {
  const database = new DatabaseSync(":memory:")
  return new UsageDb(
    {
      all: (query, ...params) => database.prepare(query).all(...params) as Array<never>
    },
    maxEvents
  )
}

const NOW = Date.UTC(2026, 10, 27, 12, 30)

let counter = 0
const event = (overrides: Partial<UsageEvent> = {}): UsageEvent =>
  usageEvent({ ts: NOW - MINUTE, requestId: `req_${++counter}`, ...overrides })

describe("latency histogram", () => {
  it("puts a latency in the first bucket whose bound holds it", () => {
    expect(bucketOf(0)).toBe(0)
    expect(bucketOf(250)).toBe(0)
    expect(bucketOf(251)).toBe(1)
    expect(bucketOf(999_999)).toBe(12)
  })

  it("reads nearest-rank percentiles as bucket bounds, never above the largest latency seen", () => {
    const counts = Array.from({ length: 13 }, () => 0)
    counts[2] = 9 // 9 requests in (500, 1000]
    counts[5] = 1 // 1 request in (3000, 5000]
    expect(percentileFromHistogram(counts, 0.5, 4200)).toBe(1000)
    expect(percentileFromHistogram(counts, 0.95, 4200)).toBe(4200)
    expect(
      percentileFromHistogram(
        counts.map(() => 0),
        0.5,
        0
      )
    ).toBeNull()
  })
})

describe("UsageDb summaries", () => {
  it("counts requests, generations, images and errors, and takes exact percentiles from events", () => {
    const db = open()
    for (const latencyMs of [100, 200, 300, 400, 500, 600, 700, 800, 900, 5000]) db.record([event({ latencyMs })], NOW)
    db.record([event({ status: 502, images: 0, failedImages: 2, attempts: 6, error: "upstream_error", latencyMs: 90 })], NOW)
    db.record([event({ status: 401, images: 0, attempts: 0, error: "invalid_api_key", model: null, upstream: null })], NOW)
    db.record(
      [event({ endpoint: "models", method: "GET", path: "/v1/models", images: 0, attempts: 0, model: null, upstream: null })],
      NOW
    )

    const summary = db.summary("1h", NOW)
    expect(summary).toMatchObject({
      source: "events",
      requests: 13,
      generations: 12,
      succeeded: 10,
      images: 10,
      failedImages: 2,
      attempts: 16,
      latencyMs: { p50: 500, p95: 5000 }
    })
    expect(summary.successRate).toBeCloseTo(10 / 12)
    expect(summary.errors).toEqual([
      { error: "invalid_api_key", count: 1 },
      { error: "upstream_error", count: 1 }
    ])
    expect(summary.models).toEqual([
      {
        model: "openai/dall-e-3",
        requests: 11,
        succeeded: 10,
        successRate: 10 / 11,
        images: 10,
        latencyMs: { p50: 500, p95: 5000 }
      }
    ])
  })

  it("gives a 1 h series of 60 one-minute points with the gaps filled", () => {
    const db = open()
    db.record([event({ ts: NOW - 5 * MINUTE, latencyMs: 700 })], NOW)
    db.record([event({ ts: NOW - 5 * MINUTE, status: 504, images: 0, error: "upstream_timeout" })], NOW)
    const { series, bucketMs } = db.summary("1h", NOW)
    expect(bucketMs).toBe(MINUTE)
    expect(series.length).toBeGreaterThanOrEqual(60)
    expect(series.reduce((sum, point) => sum + point.requests, 0)).toBe(2)
    const busy = series.find((point) => point.requests > 0)
    expect(busy).toMatchObject({ requests: 2, succeeded: 1, failed: 1, images: 1, p95Ms: 700 })
  })

  it("keeps events out of windows they are older than", () => {
    const db = open()
    db.record([event({ ts: NOW - 2 * HOUR })], NOW)
    db.record([event({ ts: NOW - 2 * DAY })], NOW)
    expect(db.summary("1h", NOW).requests).toBe(0)
    expect(db.summary("24h", NOW).requests).toBe(1)
    expect(db.summary("7d", NOW).requests).toBe(2)
  })
})

describe("UsageDb rollups", () => {
  it("agree with the events they summarise", () => {
    const db = open()
    const latencies = [300, 800, 1500, 2500, 4000, 7000, 11_000, 19_000, 25_000, 45_000]
    latencies.forEach((latencyMs, i) => {
      db.record([event({ ts: NOW - i * 3 * HOUR, latencyMs, model: i % 2 === 0 ? "a/even" : "b/odd" })], NOW)
    })
    db.record([event({ ts: NOW - HOUR, status: 429, images: 0, error: "rate_limit_exceeded" })], NOW)
    const fromEvents = db.summary("7d", NOW)
    const fromRollups = db.summary("30d", NOW)
    expect(fromRollups.source).toBe("rollups")
    for (const field of ["requests", "generations", "succeeded", "images", "failedImages", "attempts"] as const) {
      expect(fromRollups[field]).toBe(fromEvents[field])
    }
    expect(fromRollups.errors).toEqual(fromEvents.errors)
    expect(fromRollups.models.map((model) => [model.model, model.requests]).sort()).toEqual(
      fromEvents.models.map((model) => [model.model, model.requests]).sort()
    )
    // Exact p50 is 4000 ms; the histogram answers with that bucket's upper bound.
    expect(fromEvents.latencyMs.p50).toBe(4000)
    expect(fromRollups.latencyMs.p50).toBe(5000)
    expect(fromRollups.latencyMs.p95).toBe(45_000)
    expect(fromRollups.series.reduce((sum, point) => sum + point.requests, 0)).toBe(11)
  })

  it("accumulate one row per hour, model and endpoint", () => {
    const db = open()
    for (let i = 0; i < 5; i++) db.record([event({ ts: NOW - i * MINUTE })], NOW)
    db.record([event({ endpoint: "chat", path: "/v1/chat/completions" })], NOW)
    expect(db.count("events")).toBe(6)
    expect(db.count("rollups")).toBeLessThanOrEqual(4)
    const day = db.summary("24h", NOW)
    expect(day.series.reduce((sum, point) => sum + point.requests, 0)).toBe(6)
  })
})

describe("UsageDb batches", () => {
  it("fold into the same rollups as their events written one at a time", () => {
    const events = [
      event({ latencyMs: 300 }),
      event({ latencyMs: 4000 }),
      event({ ts: NOW - 3 * HOUR, latencyMs: 900, model: "b/other" }),
      event({ status: 502, images: 0, failedImages: 2, attempts: 6, error: "upstream_error", latencyMs: 90 }),
      event({ ts: NOW - 3 * HOUR, status: 502, images: 0, error: "upstream_error" }),
      event({ endpoint: "chat", path: "/v1/chat/completions", latencyMs: 7000, attempts: 2 }),
      event({ endpoint: "models", method: "GET", path: "/v1/models", images: 0, attempts: 0, model: null, upstream: null }),
      event({ status: 401, images: 0, attempts: 0, error: "invalid_api_key", model: null, upstream: null })
    ]
    const oneByOne = open()
    for (const item of events) oneByOne.record([item], NOW)
    const batched = open()
    batched.record(events, NOW)
    for (const table of ["events", "rollups", "rollup_errors"] as const) {
      expect(batched.count(table)).toBe(oneByOne.count(table))
    }
    expect(batched.count("rollups")).toBeLessThan(events.length)
    for (const window of ["24h", "30d"] as const) {
      expect(batched.summary(window, NOW)).toEqual(oneByOne.summary(window, NOW))
    }
    const month = batched.summary("30d", NOW)
    expect(month.source).toBe("rollups")
    expect(month.requests).toBe(events.length)
  })
})

describe("UsageDb retention", () => {
  it("drops events after 7 days but keeps their rollups for 90 days", () => {
    const db = open()
    db.prune(NOW) // A fresh store prunes on its first write; start the interval here so only the call below does.
    db.record([event({ ts: NOW - EVENT_RETENTION_MS - HOUR })], NOW)
    db.record([event({ ts: NOW - ROLLUP_RETENTION_MS - 2 * HOUR, error: "upstream_error", status: 502, images: 0 })], NOW)
    db.record([event({ ts: NOW - MINUTE })], NOW)
    const removed = db.prune(NOW)
    expect(removed).toEqual({ events: 2, rollups: 1 })
    expect(db.count("events")).toBe(1)
    expect(db.recent(10).map((row) => row.ts)).toEqual([NOW - MINUTE])
    // The 8-day-old request survives in the 30-day rollups; the 90-day-old one is gone, errors included.
    expect(db.summary("30d", NOW).requests).toBe(2)
    expect(db.count("rollup_errors")).toBe(0)
  })

  it("caps the number of raw events on every write, not only when pruning, dropping the oldest", () => {
    expect(MAX_EVENTS).toBe(100_000)
    const db = open(500)
    db.prune(NOW)
    for (let i = 0; i < 525; i++) db.record([event({ ts: NOW - HOUR + i })], NOW)
    expect(db.count("events")).toBe(500)
    db.record(
      Array.from({ length: 700 }, (_, i) => event({ ts: NOW - HOUR + i })),
      NOW
    )
    expect(db.count("events")).toBe(500)
    db.record([event({ ts: NOW - HOUR + 1000 })], NOW)
    expect(db.summary("24h", NOW).series.reduce((sum, point) => sum + point.requests, 0)).toBe(1226)
    expect(db.recent(1)[0]?.requestId).toBe(`req_${counter}`)
  })

  it("prunes on its own when a write arrives once the pruning interval has passed", () => {
    const db = open()
    db.prune(NOW - PRUNE_EVERY_MS)
    db.record([event({ ts: NOW - EVENT_RETENTION_MS - DAY })], NOW - 1)
    expect(db.count("events")).toBe(1)
    db.record([event({ ts: NOW })], NOW)
    expect(db.count("events")).toBe(1)
    expect(db.recent(5)[0]?.ts).toBe(NOW)
  })
})

describe("UsageDb against flooding", () => {
  it("cuts long client-chosen text to a bounded length", () => {
    const db = open()
    db.record([event({ model: "m".repeat(100_000), path: `/v1/${"p".repeat(100_000)}`, error: "e".repeat(5000) })], NOW)
    const [stored] = db.recent(1)
    expect([stored?.model?.length, stored?.path.length, stored?.error?.length]).toEqual([128, 256, 64])
    expect(db.summary("1h", NOW).errors[0]?.error.length).toBe(64)
  })

  it("counts requests without a valid key and unknown routes apart from generations", () => {
    const db = open()
    db.record(
      [
        event({ endpoint: "unauthorized", status: 401, images: 0, error: "invalid_api_key" }),
        event({ endpoint: "unknown", status: 404, images: 0, error: "unknown_url" }),
        event()
      ],
      NOW
    )
    const summary = db.summary("1h", NOW)
    expect([summary.requests, summary.generations, summary.successRate]).toEqual([3, 1, 1])
    expect(summary.errors.map((row) => row.error).sort()).toEqual(["invalid_api_key", "unknown_url"])
  })

  it("adds the failovers column to a store made by an older version", () => {
    const database = new DatabaseSync(":memory:")
    database.exec(
      "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, request_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, endpoint TEXT NOT NULL, model TEXT, upstream TEXT, status INTEGER NOT NULL, latency_ms INTEGER NOT NULL, attempts INTEGER NOT NULL, images INTEGER NOT NULL, failed_images INTEGER NOT NULL, error TEXT, stream INTEGER NOT NULL, prompt TEXT, generation INTEGER NOT NULL, ok INTEGER NOT NULL)"
    )
    const db = new UsageDb({ all: (query, ...params) => database.prepare(query).all(...params) as Array<never> })
    db.record([event({ failovers: 2 })], NOW)
    expect(db.recent(1)[0]?.failovers).toBe(2)
  })
})

describe("UsageDb recent requests and upstream health", () => {
  it("lists the newest requests first, with the fields the cockpit shows", () => {
    const db = open()
    db.record([event({ ts: NOW - 2 * MINUTE, requestId: "req_old" })], NOW)
    db.record([event({ ts: NOW - MINUTE, requestId: "req_new", stream: true, prompt: "a cat" })], NOW)
    expect(db.recent(1)).toEqual([expect.objectContaining({ requestId: "req_new", stream: true, prompt: "a cat" })])
    expect(db.recent(10).map((row) => [row.requestId, row.stream])).toEqual([
      ["req_new", true],
      ["req_old", false]
    ])
  })

  it("reports each upstream's last hour and its latest generation", () => {
    const db = open()
    db.record([event({ ts: NOW - 3 * HOUR, upstream: "local", model: "local/preview", latencyMs: 5 })], NOW)
    db.record([event({ ts: NOW - 10 * MINUTE, latencyMs: 1200 })], NOW)
    db.record([event({ ts: NOW - 5 * MINUTE, status: 502, images: 0, error: "upstream_error", latencyMs: 300 })], NOW)
    const health = db.upstreams(NOW)
    expect(health.map((row) => row.upstream)).toEqual(["ai-sdk", "local"])
    expect(health[0]).toMatchObject({
      lastHour: { requests: 2, succeeded: 1, successRate: 0.5, latencyMs: { p50: 1200, p95: 1200 } },
      last: { status: 502, error: "upstream_error", latencyMs: 300 }
    })
    expect(health[1]).toMatchObject({
      lastHour: { requests: 0, successRate: null, latencyMs: { p50: null, p95: null } },
      last: { model: "local/preview" }
    })
  })

  it("lists an upstream seen only outside generations without a latest generation", () => {
    const db = open()
    db.record([event({ endpoint: "models", method: "GET", path: "/v1/models", images: 0, upstream: "local" })], NOW)
    expect(db.upstreams(NOW)).toEqual([
      {
        upstream: "local",
        lastHour: { requests: 0, succeeded: 0, successRate: null, latencyMs: { p50: null, p95: null } },
        last: null
      }
    ])
  })
})

describe("UsageDb what counts as a success", () => {
  it("a generation succeeded when it answered below 400 with at least one image", () => {
    expect(succeeded(usageEvent())).toBe(true)
    expect(succeeded(usageEvent({ status: 399 }))).toBe(true)
    expect(succeeded(usageEvent({ status: 400 }))).toBe(false)
    expect(succeeded(usageEvent({ images: 0 }))).toBe(false)
    expect(succeeded(usageEvent({ endpoint: "models", method: "GET", path: "/v1/models" }))).toBe(false)
    expect(succeeded(usageEvent({ endpoint: "unauthorized", status: 401 }))).toBe(false)
  })
})

describe("UsageDb per key", () => {
  const traffic = () => [
    event({ key: "alice", latencyMs: 300 }),
    event({ key: "alice", latencyMs: 800, images: 2 }),
    event({ key: "alice", status: 502, images: 0, error: "upstream_error", latencyMs: 90_000 }),
    event({ key: "alice", endpoint: "models", method: "GET", path: "/v1/models", images: 0, model: null }),
    event({ key: "bob", status: 504, images: 0, error: "upstream_timeout", latencyMs: 60_000 }),
    event({ key: null, status: 401, endpoint: "unauthorized", images: 0, error: "invalid_api_key" }),
    event({ key: "k".repeat(100) })
  ]

  it("counts each key's requests, generations, images and errors, and the latency of its successful generations", () => {
    const db = open()
    const [first, ...rest] = traffic()
    db.record(first === undefined ? [] : [first], NOW) // a second write adds to the hour's row of the same key
    db.record(rest, NOW)
    const longKey = "k".repeat(64)
    expect(db.keys("24h", NOW)).toEqual([
      { key: "alice", requests: 4, generations: 3, images: 3, errors: 1, latencyMs: { p50: 300, p95: 800 } },
      { key: "bob", requests: 1, generations: 1, images: 0, errors: 1, latencyMs: { p50: null, p95: null } },
      { key: longKey, requests: 1, generations: 1, images: 1, errors: 0, latencyMs: { p50: 1000, p95: 1000 } }
    ])
    // The 30-day window reads the hourly key rollups: the same counts, latency as histogram bounds.
    expect(db.keys("30d", NOW)).toEqual([
      { key: "alice", requests: 4, generations: 3, images: 3, errors: 1, latencyMs: { p50: 500, p95: 800 } },
      { key: "bob", requests: 1, generations: 1, images: 0, errors: 1, latencyMs: { p50: null, p95: null } },
      { key: longKey, requests: 1, generations: 1, images: 1, errors: 0, latencyMs: { p50: 1000, p95: 1000 } }
    ])
    expect(db.count("key_rollups")).toBe(3)
  })

  it("keeps keys out of windows they are older than", () => {
    const db = open()
    db.record([event({ key: "old", ts: NOW - 2 * HOUR }), event({ key: "older", ts: NOW - 40 * DAY })], NOW)
    expect(db.keys("1h", NOW)).toEqual([])
    expect(db.keys("24h", NOW).map((row) => row.key)).toEqual(["old"])
    expect(db.keys("30d", NOW).map((row) => row.key)).toEqual(["old"])
  })
})

describe("UsageDb rollup sums", () => {
  it("add up failed images and each error's count, and leave failures out of the latency", () => {
    const db = open()
    const failed = { status: 502, images: 0, failedImages: 2, error: "upstream_error", latencyMs: 90_000 }
    db.record([event(failed), event(failed), event({ latencyMs: 700 })], NOW)
    db.record([event(failed)], NOW)
    const month = db.summary("30d", NOW)
    expect(month).toMatchObject({
      failedImages: 6,
      errors: [{ error: "upstream_error", count: 3 }],
      latencyMs: { p50: 700, p95: 700 }
    })
    expect(month.models).toEqual([
      {
        model: "openai/dall-e-3",
        requests: 4,
        succeeded: 1,
        successRate: 0.25,
        images: 1,
        latencyMs: { p50: 700, p95: 700 }
      }
    ])
  })

  it("list in the 30-day window only the models that had generations, as the shorter windows do", () => {
    const db = open()
    db.record(
      [
        event({ model: "a/drawn" }),
        event({ model: "b/refused-key", endpoint: "unauthorized", status: 401, images: 0, error: "invalid_api_key" }),
        event({ model: null, status: 400, images: 0, error: "invalid_request_error" })
      ],
      NOW
    )
    const names = (window: "7d" | "30d") => db.summary(window, NOW).models.map((row) => row.model)
    expect(names("7d")).toEqual(["a/drawn"])
    expect(names("30d")).toEqual(["a/drawn"])
  })

  it("give a model whose generations all failed no latency", () => {
    const db = open()
    db.record([event({ status: 502, images: 0, error: "upstream_error" })], NOW)
    for (const window of ["1h", "30d"] as const) {
      expect(db.summary(window, NOW).models[0]?.latencyMs).toEqual({ p50: null, p95: null })
    }
  })
})

describe("UsageDb series", () => {
  it("puts a 1 h window's requests in their minute, up to and including the minute of `to`", () => {
    const db = open()
    db.record([event({ ts: NOW - 5 * MINUTE, latencyMs: 700 })], NOW)
    db.record([event({ ts: NOW - 3 * MINUTE, status: 502, images: 0, error: "upstream_error" })], NOW)
    db.record([event({ ts: NOW })], NOW)
    const { series } = db.summary("1h", NOW)
    expect(series).toHaveLength(61)
    expect(series[0]?.t).toBe(NOW - HOUR)
    const busy = series.filter((point) => point.requests > 0)
    expect(busy.map((point) => [point.t - NOW, point.succeeded, point.failed, point.p95Ms])).toEqual([
      [-5 * MINUTE, 1, 0, 700],
      [-3 * MINUTE, 0, 1, null],
      [0, 1, 0, 1000]
    ])
  })
})
