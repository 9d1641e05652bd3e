import { createHash } from "node:crypto"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { type CallerKey, KEY_NAME_PATTERN, KeyConfigEntry } from "../domain/ApiKey.ts"
import { GatewayMisconfigured, invalidConfiguration } from "../domain/Errors.ts"
import { ModelOverride } from "../domain/Model.ts"
import { UpstreamConfigEntry } from "../domain/Upstream.ts"

export const DEFAULT_UPSTREAM_URL = "https://ai-sdk-image-generator.vercel.app"

/**
 * The development key. It is accepted only when ENVIRONMENT=development (set by
 * `npm start`), API_KEYS is empty, and the request arrives on a loopback host, so
 * a deployed Worker never accepts it, even one left in development mode by mistake.
 */
export const DEVELOPMENT_API_KEY = "sk-dev-local"

/** A named key of `KEYS`: the caller it stands for, and the key itself or only its SHA-256. */
export interface NamedKey extends CallerKey {
  readonly key: Redacted.Redacted<string> | undefined
  /** Lower-case hex. */
  readonly sha256: string | undefined
}

/** A key of API_KEYS as a caller: an unlimited admin, named by its position (its name in statistics and the cockpit). */
export const apiKeyCaller = (index: number): CallerKey => ({
  name: `API_KEYS #${index + 1}`,
  role: "admin",
  models: undefined,
  rpm: undefined,
  imagesPerDay: undefined
})

/** The development key as a caller (see DEVELOPMENT_API_KEY). */
export const DEVELOPMENT_CALLER: CallerKey = {
  name: "development",
  role: "admin",
  models: undefined,
  rpm: undefined,
  imagesPerDay: undefined
}

export interface GatewaySettings {
  readonly environment: "development" | "production"
  /** Keys callers may present. Empty means "not configured": every /v1 call fails, unless `developmentKey`. */
  readonly apiKeys: ReadonlyArray<Redacted.Redacted<string>>
  /** `KEYS`: named keys with roles, model allow-lists and limits, beside the unlimited admin keys of API_KEYS. */
  readonly keys: ReadonlyArray<NamedKey>
  /** Whether a request is let through when the limits store does not answer (`LIMITS_FAIL_OPEN`). */
  readonly limitsFailOpen: boolean
  /** Development without API_KEYS: the development key is accepted (beside any KEYS), on loopback hosts only. */
  readonly developmentKey: boolean
  readonly upstreamUrl: URL
  readonly upstreamHeaders: Readonly<Record<string, string>>
  readonly upstreamTimeoutMs: number
  readonly upstreamMaxAttempts: number
  readonly upstreamBackoffMs: number
  readonly upstreamBackoffMaxMs: number
  readonly maxConcurrentUpstream: number
  readonly defaultModel: Option.Option<string>
  readonly aliases: Readonly<Record<string, string>>
  readonly models: ReadonlyArray<ModelOverride>
  /** `UPSTREAMS`: upstream instances beside (or replacing, by id) the built-in ones. */
  readonly upstreams: ReadonlyArray<UpstreamConfigEntry>
  /** Consecutive failed generations that open an upstream instance's circuit. */
  readonly circuitFailures: number
  /** How long an open circuit keeps its upstream instance out of use. */
  readonly circuitCooldownMs: number
  /** Largest image the gateway fetches from an upstream's `url` answer. */
  readonly upstreamMaxBytes: number
  readonly enableLocalModel: boolean
  readonly corsOrigins: ReadonlyArray<string>
  readonly maxBodyBytes: number
  /** Largest image uploaded for an edit (each file); a body of an edit may hold up to 16 of them and a mask. */
  readonly maxImageBytes: number
  /** Whether an image URL pasted into chat that is neither a data URL nor this gateway's own is fetched (https only). */
  readonly allowRemoteImageUrls: boolean
  readonly logLevel: LogLevel.LogLevel
  /** Interval of SSE comment keep-alives while an upstream works. */
  readonly keepAliveMs: number
  /** Whether chat streams start with a short progress line. */
  readonly chatProgress: boolean
  /** How long hosted images (R2) stay reachable. */
  readonly imageTtlHours: number
  /** Origin for hosted image URLs; the request's own origin when absent. */
  readonly publicBaseUrl: Option.Option<URL>
  /** Reuse of earlier images for identical requests; 0 turns the cache off. */
  readonly cacheTtlSeconds: number
  /** Whether usage statistics keep prompts (shown in the cockpit's recent requests). */
  readonly logPrompts: boolean
}

const jsonText = (name: string) => Config.String(name).pipe(Config.option)

type Struct = Schema.Struct<Schema.Struct.Fields>

/**
 * Decodes a JSON setting. Its errors name the variable, the entry and the field, and never a value:
 * a secret pasted into the wrong place (a key in `headers`, a token in `timeoutMs`) must not be
 * echoed to every client. So each field is decoded on its own, and only its name is reported.
 */
const parseJson = (name: string, text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return invalidConfiguration(`${name} is not valid JSON`)
  }
}

/** A field name without case, `_` or `-`: `max_n` and `MaxN` are both `maxn`. */
const loose = (field: string) => field.toLowerCase().replace(/[_-]/g, "")

/** How an entry is named in an error: its `id`, when it has a plain one, else its position. */
const labelById = (entry: unknown, index: number) =>
  Predicate.isObject(entry) && typeof entry.id === "string" && entry.id.length <= 100 ? `'${entry.id}'` : `#${index + 1}`

/**
 * A `KEYS` entry is named by position, and by its name only when that cannot be a key put in the wrong
 * field (a valid name, which is never shaped like an OpenAI key, and not the entry's own key).
 */
const labelByName = (entry: unknown, index: number) => {
  if (!Predicate.isObject(entry) || typeof entry.name !== "string") return `#${index + 1}`
  const plain = KEY_NAME_PATTERN.test(entry.name) && entry.name !== entry.key
  return plain ? `#${index + 1} ('${entry.name}')` : `#${index + 1}`
}

const decodeEntries = <S extends Struct>(
  name: string,
  text: string,
  schema: S,
  labelOf: (entry: unknown, index: number) => string = labelById
): Array<S["Type"]> | GatewayMisconfigured => {
  const parsed = parseJson(name, text)
  if (parsed instanceof GatewayMisconfigured) return parsed
  if (!Array.isArray(parsed)) return invalidConfiguration(`${name} must be a JSON array of objects`)
  const fields = schema.fields as Record<string, Schema.Top>
  const decoded: Array<S["Type"]> = []
  for (const [index, entry] of parsed.entries()) {
    const label = labelOf(entry, index)
    if (!Predicate.isObject(entry)) return invalidConfiguration(`${name} entry ${label} must be a JSON object`)
    for (const key of Object.keys(entry)) {
      if (!Object.hasOwn(fields, key)) {
        // A name is echoed only when it is a known field spelt another way: anything else may be a pasted secret.
        const meant = Object.keys(fields).find((field) => loose(field) === loose(key))
        const shown = meant === undefined ? "a field" : `'${key}' (did you mean '${meant}'?)`
        return invalidConfiguration(`${name} entry ${label} has ${shown} that is not one of ${Object.keys(fields).join(", ")}`)
      }
    }
    for (const [key, field] of Object.entries(fields)) {
      const value = Schema.decodeUnknownOption(field as Schema.Codec<unknown, unknown>)(entry[key])
      if (Option.isNone(value)) return invalidConfiguration(`${name} entry ${label}: '${key}' is missing or not valid`)
    }
    const whole = Schema.decodeUnknownOption(schema as unknown as Schema.Codec<S["Type"], unknown>)(entry)
    if (Option.isNone(whole)) return invalidConfiguration(`${name} entry ${label} is not valid`)
    decoded.push(whole.value)
  }
  return decoded
}

const decodeStringRecord = (name: string, text: string): Record<string, string> | GatewayMisconfigured => {
  const parsed = parseJson(name, text)
  if (parsed instanceof GatewayMisconfigured) return parsed
  if (!Predicate.isObject(parsed) || Object.values(parsed).some((value) => typeof value !== "string")) {
    return invalidConfiguration(`${name} must be a JSON object whose values are strings`)
  }
  return parsed as Record<string, string>
}

/** Decodes an optional JSON setting; absent means `fallback`. */
const jsonSetting = <A>(
  raw: Option.Option<string>,
  decode: (text: string) => A | GatewayMisconfigured,
  fallback: A
): Effect.Effect<A, GatewayMisconfigured> => {
  if (Option.isNone(raw)) return Effect.succeed(fallback)
  const decoded = decode(raw.value)
  return decoded instanceof GatewayMisconfigured ? Effect.fail(decoded) : Effect.succeed(decoded)
}

const positiveInt = (name: string, fallback: number) => Config.Int(name).pipe(Config.withDefault(fallback))

const splitList = (raw: string) =>
  raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

const settings = Config.all({
  environment: Config.Literals(["development", "production"], "ENVIRONMENT").pipe(Config.withDefault("production" as const)),
  apiKeys: Config.Redacted("API_KEYS").pipe(Config.option),
  keys: Config.Redacted("KEYS").pipe(Config.option),
  limitsFailOpen: Config.Boolean("LIMITS_FAIL_OPEN").pipe(Config.withDefault(true)),
  upstreamUrl: Config.URL("UPSTREAM_URL").pipe(Config.withDefault(new URL(DEFAULT_UPSTREAM_URL))),
  upstreamHeaders: jsonText("UPSTREAM_HEADERS"),
  upstreamTimeoutMs: positiveInt("UPSTREAM_TIMEOUT_MS", 60_000),
  upstreamMaxAttempts: positiveInt("UPSTREAM_MAX_ATTEMPTS", 3),
  upstreamBackoffMs: positiveInt("UPSTREAM_BACKOFF_MS", 500),
  upstreamBackoffMaxMs: positiveInt("UPSTREAM_BACKOFF_MAX_MS", 10_000),
  maxConcurrentUpstream: positiveInt("MAX_CONCURRENT_UPSTREAM", 4),
  defaultModel: Config.String("DEFAULT_MODEL").pipe(Config.option),
  aliases: jsonText("MODEL_ALIASES"),
  models: jsonText("MODELS"),
  upstreams: jsonText("UPSTREAMS"),
  circuitFailures: positiveInt("CIRCUIT_FAILURES", 3),
  circuitCooldownMs: positiveInt("CIRCUIT_COOLDOWN_MS", 30_000),
  upstreamMaxBytes: positiveInt("UPSTREAM_MAX_BYTES", 32 * 1024 * 1024),
  enableLocalModel: Config.Boolean("ENABLE_LOCAL_MODEL").pipe(Config.option),
  corsOrigins: Config.String("CORS_ORIGINS").pipe(Config.withDefault("*")),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1024 * 1024),
  maxImageBytes: positiveInt("MAX_IMAGE_BYTES", 20 * 1024 * 1024),
  allowRemoteImageUrls: Config.Boolean("ALLOW_REMOTE_IMAGE_URLS").pipe(Config.withDefault(false)),
  logLevel: Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as LogLevel.LogLevel)),
  keepAliveMs: positiveInt("KEEPALIVE_MS", 10_000),
  chatProgress: Config.Literals(["on", "off"], "CHAT_PROGRESS").pipe(Config.withDefault("on" as const)),
  imageTtlHours: positiveInt("IMAGE_TTL_HOURS", 24),
  publicBaseUrl: Config.URL("PUBLIC_BASE_URL").pipe(Config.option),
  cacheTtlSeconds: Config.Int("CACHE_TTL_SECONDS").pipe(Config.withDefault(0)),
  logPrompts: Config.Boolean("LOG_PROMPTS").pipe(Config.withDefault(false))
})

const sha256Hex = (key: string) => createHash("sha256").update(key).digest("hex")

/**
 * Decodes `KEYS`. Every problem names the entry by position (and name), never a key or a hash: two
 * entries with the same key, or a key also in API_KEYS, are refused, as a key must name one caller.
 */
const namedKeys = (
  text: string,
  apiKeys: ReadonlyArray<Redacted.Redacted<string>>
): Result.Result<ReadonlyArray<NamedKey>, GatewayMisconfigured> => {
  const entries = decodeEntries("KEYS", text, KeyConfigEntry, labelByName)
  if (entries instanceof GatewayMisconfigured) return Result.fail(entries)
  const names = new Map<string, number>()
  const hashes = new Map<string, number>()
  for (const key of apiKeys) hashes.set(sha256Hex(Redacted.value(key)), -1)
  const named: Array<NamedKey> = []
  for (const [index, entry] of entries.entries()) {
    const label = `#${index + 1} ('${entry.name}')`
    if ((entry.key === undefined) === (entry.sha256 === undefined)) {
      return Result.fail(invalidConfiguration(`KEYS entry ${label} needs exactly one of 'key' and 'sha256'`))
    }
    const earlierName = names.get(entry.name)
    if (earlierName !== undefined) {
      return Result.fail(invalidConfiguration(`KEYS entries #${earlierName + 1} and ${label} have the same name`))
    }
    names.set(entry.name, index)
    const hash = entry.sha256?.toLowerCase() ?? sha256Hex(entry.key ?? "")
    const earlierKey = hashes.get(hash)
    if (earlierKey !== undefined) {
      const other = earlierKey === -1 ? "a key of API_KEYS" : `entry #${earlierKey + 1}`
      return Result.fail(invalidConfiguration(`KEYS entry ${label} has the same key as ${other}`))
    }
    hashes.set(hash, index)
    named.push({
      name: entry.name,
      role: entry.role,
      models: entry.models,
      rpm: entry.rpm,
      imagesPerDay: entry.imagesPerDay,
      key: entry.key === undefined ? undefined : Redacted.make(entry.key),
      sha256: entry.sha256?.toLowerCase()
    })
  }
  return Result.succeed(named)
}

const mustBePositive = (values: Record<string, number>) => {
  for (const [name, value] of Object.entries(values)) {
    if (!(value > 0)) return Option.some(`${name} must be a positive integer, got ${value}`)
  }
  return Option.none()
}

/**
 * Reads the whole configuration once. Failures carry the variable's name and
 * never its value, so a secret set in the wrong variable is not echoed back.
 */
export const loadSettings: Effect.Effect<GatewaySettings, GatewayMisconfigured> = Effect.gen(function* () {
  const raw = yield* settings.pipe(Effect.mapError((error) => invalidConfiguration(error.message)))
  const invalid = mustBePositive({
    UPSTREAM_TIMEOUT_MS: raw.upstreamTimeoutMs,
    UPSTREAM_MAX_ATTEMPTS: raw.upstreamMaxAttempts,
    UPSTREAM_BACKOFF_MS: raw.upstreamBackoffMs,
    UPSTREAM_BACKOFF_MAX_MS: raw.upstreamBackoffMaxMs,
    MAX_CONCURRENT_UPSTREAM: raw.maxConcurrentUpstream,
    CIRCUIT_FAILURES: raw.circuitFailures,
    CIRCUIT_COOLDOWN_MS: raw.circuitCooldownMs,
    UPSTREAM_MAX_BYTES: raw.upstreamMaxBytes,
    MAX_BODY_BYTES: raw.maxBodyBytes,
    MAX_IMAGE_BYTES: raw.maxImageBytes,
    KEEPALIVE_MS: raw.keepAliveMs,
    IMAGE_TTL_HOURS: raw.imageTtlHours
  })
  if (raw.cacheTtlSeconds < 0) {
    return yield* invalidConfiguration("CACHE_TTL_SECONDS must be 0 or more")
  }
  if (Option.isSome(invalid)) {
    return yield* invalidConfiguration(invalid.value)
  }
  const upstreamHeaders = yield* jsonSetting(raw.upstreamHeaders, (text) => decodeStringRecord("UPSTREAM_HEADERS", text), {})
  const aliases = yield* jsonSetting(raw.aliases, (text) => decodeStringRecord("MODEL_ALIASES", text), {})
  const models = yield* jsonSetting(raw.models, (text) => decodeEntries("MODELS", text, ModelOverride), [])
  const upstreams = yield* jsonSetting(raw.upstreams, (text) => decodeEntries("UPSTREAMS", text, UpstreamConfigEntry), [])
  const development = raw.environment === "development"
  const keys = Option.match(raw.apiKeys, {
    onNone: () => [],
    onSome: (secret) => splitList(Redacted.value(secret)).map((key) => Redacted.make(key))
  })
  const named = Option.isNone(raw.keys) ? [] : yield* Effect.fromResult(namedKeys(Redacted.value(raw.keys.value), keys))
  return {
    ...raw,
    apiKeys: keys,
    keys: named,
    developmentKey: keys.length === 0 && development,
    upstreamHeaders,
    aliases,
    models,
    upstreams,
    enableLocalModel: Option.getOrElse(raw.enableLocalModel, () => development),
    corsOrigins: splitList(raw.corsOrigins),
    chatProgress: raw.chatProgress === "on"
  }
})

export class GatewayConfig extends Context.Service<GatewayConfig, GatewaySettings>()("ai-image-gateway/services/GatewayConfig") {
  static readonly layer = Layer.effect(GatewayConfig, loadSettings)
  static readonly layerTest = (overrides: Partial<GatewaySettings> = {}) => Layer.succeed(GatewayConfig, testSettings(overrides))
}

/** Settings for tests: production defaults with one key, `test-key`, and the offline model on. */
// Stryker disable all: a fixture for tests; a mutant of it changes the tests' input, not the gateway.
export const testSettings = (overrides: Partial<GatewaySettings> = {}): GatewaySettings => ({
  environment: "production",
  apiKeys: [Redacted.make("test-key")],
  keys: [],
  limitsFailOpen: true,
  developmentKey: false,
  upstreamUrl: new URL("http://upstream.test"),
  upstreamHeaders: {},
  upstreamTimeoutMs: 60_000,
  upstreamMaxAttempts: 3,
  upstreamBackoffMs: 500,
  upstreamBackoffMaxMs: 10_000,
  maxConcurrentUpstream: 4,
  defaultModel: Option.none(),
  aliases: {},
  models: [],
  upstreams: [],
  circuitFailures: 3,
  circuitCooldownMs: 30_000,
  upstreamMaxBytes: 32 * 1024 * 1024,
  enableLocalModel: true,
  corsOrigins: ["*"],
  maxBodyBytes: 1024 * 1024,
  maxImageBytes: 20 * 1024 * 1024,
  allowRemoteImageUrls: false,
  logLevel: "Info",
  keepAliveMs: 10_000,
  chatProgress: true,
  imageTtlHours: 24,
  publicBaseUrl: Option.none(),
  cacheTtlSeconds: 0,
  logPrompts: false,
  ...overrides
})
// Stryker restore all
