import * as Schema from "effect/Schema"

/**
 * Usage statistics: one event per API request, hourly rollups, and what the
 * cockpit reads back. The store is `src/durable/UsageDb.ts`; these shapes are
 * shared by the Worker, the Durable Object and the HttpApi contract.
 */

/**
 * What a recorded request was. `unauthorized` (a 401) and `unknown` (no such route or method) are counted
 * apart from the endpoint they aimed at: a request without a valid key is not a failed generation.
 */
export const UsageEndpoint = Schema.Literals(["images", "edits", "chat", "models", "probe", "other", "unauthorized", "unknown"])
export type UsageEndpoint = typeof UsageEndpoint.Type

/** Generations count towards success rate and latency; model listings and the like do not. */
export const isGeneration = (endpoint: UsageEndpoint) =>
  endpoint === "images" || endpoint === "edits" || endpoint === "chat" || endpoint === "probe"

export const UsageEvent = Schema.Struct({
  /** Unix milliseconds when the request arrived. */
  ts: Schema.Int,
  requestId: Schema.String,
  method: Schema.String,
  path: Schema.String,
  endpoint: UsageEndpoint,
  /** The name of the key the request was made with (never the key); null when no key matched. */
  key: Schema.NullOr(Schema.String),
  /** The model after alias resolution, or the requested id when it did not resolve. */
  model: Schema.NullOr(Schema.String),
  /** The upstream instance that served the first image, or that gave the failure. */
  upstream: Schema.NullOr(Schema.String),
  /** For a stream, the status a non-streamed request would have had. */
  status: Schema.Int,
  /** Until the last byte for a stream. */
  latencyMs: Schema.Int,
  attempts: Schema.Int,
  images: Schema.Int,
  failedImages: Schema.Int,
  /** OpenAI error `code` (or `type` when there is no code); null on success. */
  error: Schema.NullOr(Schema.String),
  stream: Schema.Boolean,
  /** Only when LOG_PROMPTS=true. */
  prompt: Schema.NullOr(Schema.String),
  /** How many times an image's call moved on to a fallback model (a failed model or an open circuit). */
  failovers: Schema.Int
})
export type UsageEvent = typeof UsageEvent.Type

export const UsageWindow = Schema.Literals(["1h", "24h", "7d", "30d"])
export type UsageWindow = typeof UsageWindow.Type

export const Latency = Schema.Struct({ p50: Schema.NullOr(Schema.Int), p95: Schema.NullOr(Schema.Int) })

export const ModelUsage = Schema.Struct({
  model: Schema.String,
  requests: Schema.Int,
  succeeded: Schema.Int,
  successRate: Schema.NullOr(Schema.Number),
  images: Schema.Int,
  latencyMs: Latency
})
export type ModelUsage = typeof ModelUsage.Type

export const UsagePoint = Schema.Struct({
  /** Unix milliseconds, the start of the bucket. */
  t: Schema.Int,
  requests: Schema.Int,
  succeeded: Schema.Int,
  failed: Schema.Int,
  images: Schema.Int,
  p95Ms: Schema.NullOr(Schema.Int)
})
export type UsagePoint = typeof UsagePoint.Type

export const UsageSummary = Schema.Struct({
  window: UsageWindow,
  from: Schema.Int,
  to: Schema.Int,
  /** `events` is exact; `rollups` (30d) takes latency percentiles from hourly histograms. */
  source: Schema.Literals(["events", "rollups"]),
  /** Every recorded API request, generations or not. */
  requests: Schema.Int,
  /** Requests to the images and chat endpoints and probes. */
  generations: Schema.Int,
  succeeded: Schema.Int,
  /** Share of generations that answered 2xx with at least one image; null when there were none. */
  successRate: Schema.NullOr(Schema.Number),
  images: Schema.Int,
  failedImages: Schema.Int,
  attempts: Schema.Int,
  /** Of successful generations. */
  latencyMs: Latency,
  errors: Schema.Array(Schema.Struct({ error: Schema.String, count: Schema.Int })),
  models: Schema.Array(ModelUsage),
  bucketMs: Schema.Int,
  series: Schema.Array(UsagePoint)
})
export type UsageSummary = typeof UsageSummary.Type

export const UpstreamHealth = Schema.Struct({
  upstream: Schema.String,
  /** Generations that reached this upstream in the last hour. */
  lastHour: Schema.Struct({
    requests: Schema.Int,
    succeeded: Schema.Int,
    successRate: Schema.NullOr(Schema.Number),
    latencyMs: Latency
  }),
  last: Schema.NullOr(
    Schema.Struct({
      ts: Schema.Int,
      status: Schema.Int,
      latencyMs: Schema.Int,
      model: Schema.NullOr(Schema.String),
      error: Schema.NullOr(Schema.String)
    })
  )
})
export type UpstreamHealth = typeof UpstreamHealth.Type
