import * as Schema from "effect/Schema"

/**
 * Named keys (`KEYS`): who may call the gateway, for what, and how much. Shared by the configuration,
 * the Worker's services, the limits Durable Object and the HttpApi contract.
 */

export const KeyRole = Schema.Literals(["admin", "user"])
export type KeyRole = typeof KeyRole.Type

const positive = Schema.Int.check(Schema.isGreaterThan(0))

/**
 * A key's name: shown in the statistics and the cockpit, so never shaped like a key (`sk-...`), which is
 * what a key pasted into the wrong field would be.
 */
export const KEY_NAME_PATTERN = /^(?!sk-)[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/i

/** One entry of `KEYS`, as the operator writes it. Exactly one of `key` and `sha256` (checked when loaded). */
export const KeyConfigEntry = Schema.Struct({
  name: Schema.String.check(
    Schema.isPattern(KEY_NAME_PATTERN, {
      message: "'name' must be 1-64 letters, digits, spaces, '.', '_', '@' or '-', not starting with 'sk-'"
    })
  ),
  key: Schema.optional(Schema.String.check(Schema.isMinLength(8))),
  sha256: Schema.optional(Schema.String.check(Schema.isPattern(/^[0-9a-fA-F]{64}$/))),
  role: KeyRole,
  models: Schema.optional(Schema.Array(Schema.String).check(Schema.isMinLength(1))),
  rpm: Schema.optional(positive),
  imagesPerDay: Schema.optional(positive)
})
export type KeyConfigEntry = typeof KeyConfigEntry.Type

/** The caller of a request, once its key matched: everything but the key itself. */
export interface CallerKey {
  readonly name: string
  readonly role: KeyRole
  /** Ids and aliases this key may use, as configured; absent: every model. */
  readonly models: ReadonlyArray<string> | undefined
  readonly rpm: number | undefined
  readonly imagesPerDay: number | undefined
}

export const hasLimits = (key: CallerKey) => key.rpm !== undefined || key.imagesPerDay !== undefined

/** The limits the Durable Object of a key applies to one request. */
export interface KeyLimitsRequest {
  readonly rpm: number | null
  readonly imagesPerDay: number | null
  /** Images the request asks for (`n`), reserved from today's quota until the request ends. */
  readonly images: number
}

/** What the Durable Object answers: admitted (with the UTC day the images were charged to), or why not. */
export type Admission =
  | { readonly ok: true; readonly day: number; readonly used: number }
  | { readonly ok: false; readonly reason: "rate"; readonly retryAfterMs: number; readonly limit: number }
  | {
      readonly ok: false
      readonly reason: "quota"
      readonly used: number
      readonly limit: number
      readonly resetsAt: number
    }

export const MINUTE_MS = 60_000
export const DAY_MS = 24 * 60 * MINUTE_MS

/** The UTC day a moment falls in, as days since the epoch: the key of a quota's count. */
export const utcDay = (ms: number) => Math.floor(ms / DAY_MS)

/** When the quota of the UTC day holding `ms` resets: the next UTC midnight. */
export const quotaResetsAt = (ms: number) => (utcDay(ms) + 1) * DAY_MS

const Latency = Schema.Struct({ p50: Schema.NullOr(Schema.Int), p95: Schema.NullOr(Schema.Int) })

/** One key's traffic in a window, from the usage statistics. */
export const KeyTraffic = Schema.Struct({
  key: Schema.String,
  requests: Schema.Int,
  generations: Schema.Int,
  images: Schema.Int,
  errors: Schema.Int,
  latencyMs: Latency
})
export type KeyTraffic = typeof KeyTraffic.Type

/** A key as the cockpit and `/v1/gateway/keys` show it: never the key, its hash or a prefix of either. */
export const KeyReport = Schema.Struct({
  name: Schema.String,
  role: KeyRole,
  /** `KEYS` (named keys) or `API_KEYS` (unlimited admin keys) or the development key. */
  source: Schema.Literals(["KEYS", "API_KEYS", "development"]),
  models: Schema.NullOr(Schema.Array(Schema.String)),
  limits: Schema.Struct({ rpm: Schema.NullOr(Schema.Int), imagesPerDay: Schema.NullOr(Schema.Int) }),
  /** Null when this deployment keeps no usage statistics (no USAGE_STATS binding) or they did not answer. */
  usage: Schema.NullOr(KeyTraffic),
  /** Images charged to today's quota (UTC); null for a key without one, or when the limiter did not answer. */
  today: Schema.Struct({
    images: Schema.NullOr(Schema.Int),
    limit: Schema.NullOr(Schema.Int),
    resetsAt: Schema.Int
  })
})
export type KeyReport = typeof KeyReport.Type
