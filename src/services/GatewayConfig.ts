import { Config, Context, Effect, Layer, type LogLevel, Option, Redacted, Schema } from "effect"
import { GatewayMisconfigured } from "../domain/Errors.ts"
import { ModelOverride } from "../domain/Model.ts"

export const DEFAULT_UPSTREAM_URL = "https://ai-sdk-image-generator.vercel.app"

/**
 * The development key. It is accepted only when ENVIRONMENT=development (set by
 * `npm start`) and API_KEYS is empty, so a deployed Worker never accepts it.
 */
export const DEVELOPMENT_API_KEY = "sk-dev-local"

export interface GatewaySettings {
  readonly environment: "development" | "production"
  /** Keys callers may present. Empty in production means "not configured": every /v1 call fails. */
  readonly apiKeys: ReadonlyArray<Redacted.Redacted<string>>
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
  readonly enableLocalModel: boolean
  readonly corsOrigins: ReadonlyArray<string>
  readonly maxBodyBytes: number
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

const json = <S extends Schema.Top>(name: string, schema: S) =>
  Config.schema(Schema.fromJsonString(schema) as unknown as Schema.ConstraintCodec<S["Type"], unknown>, name).pipe(Config.option)

const positiveInt = (name: string, fallback: number) => Config.Int(name).pipe(Config.withDefault(fallback))

const splitList = (raw: string) =>
  raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

const settings = Config.all({
  environment: Config.Literals(["development", "production"], "ENVIRONMENT").pipe(Config.withDefault("production" as const)),
  apiKeys: Config.Redacted("API_KEYS").pipe(Config.option),
  upstreamUrl: Config.URL("UPSTREAM_URL").pipe(Config.withDefault(new URL(DEFAULT_UPSTREAM_URL))),
  upstreamHeaders: json("UPSTREAM_HEADERS", Schema.Record(Schema.String, Schema.String)),
  upstreamTimeoutMs: positiveInt("UPSTREAM_TIMEOUT_MS", 60_000),
  upstreamMaxAttempts: positiveInt("UPSTREAM_MAX_ATTEMPTS", 3),
  upstreamBackoffMs: positiveInt("UPSTREAM_BACKOFF_MS", 500),
  upstreamBackoffMaxMs: positiveInt("UPSTREAM_BACKOFF_MAX_MS", 10_000),
  maxConcurrentUpstream: positiveInt("MAX_CONCURRENT_UPSTREAM", 4),
  defaultModel: Config.String("DEFAULT_MODEL").pipe(Config.option),
  aliases: json("MODEL_ALIASES", Schema.Record(Schema.String, Schema.String)),
  models: json("MODELS", Schema.Array(ModelOverride)),
  enableLocalModel: Config.Boolean("ENABLE_LOCAL_MODEL").pipe(Config.option),
  corsOrigins: Config.String("CORS_ORIGINS").pipe(Config.withDefault("*")),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1024 * 1024),
  logLevel: Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as LogLevel.LogLevel)),
  keepAliveMs: positiveInt("KEEPALIVE_MS", 10_000),
  chatProgress: Config.Literals(["on", "off"], "CHAT_PROGRESS").pipe(Config.withDefault("on" as const)),
  imageTtlHours: positiveInt("IMAGE_TTL_HOURS", 24),
  publicBaseUrl: Config.URL("PUBLIC_BASE_URL").pipe(Config.option),
  cacheTtlSeconds: Config.Int("CACHE_TTL_SECONDS").pipe(Config.withDefault(0)),
  logPrompts: Config.Boolean("LOG_PROMPTS").pipe(Config.withDefault(false))
})

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
  const raw = yield* settings.pipe(
    Effect.mapError(
      (error) =>
        new GatewayMisconfigured({
          message: `Invalid gateway configuration: ${error.message}`
        })
    )
  )
  const invalid = mustBePositive({
    UPSTREAM_TIMEOUT_MS: raw.upstreamTimeoutMs,
    UPSTREAM_MAX_ATTEMPTS: raw.upstreamMaxAttempts,
    UPSTREAM_BACKOFF_MS: raw.upstreamBackoffMs,
    UPSTREAM_BACKOFF_MAX_MS: raw.upstreamBackoffMaxMs,
    MAX_CONCURRENT_UPSTREAM: raw.maxConcurrentUpstream,
    MAX_BODY_BYTES: raw.maxBodyBytes,
    KEEPALIVE_MS: raw.keepAliveMs,
    IMAGE_TTL_HOURS: raw.imageTtlHours
  })
  if (raw.cacheTtlSeconds < 0) {
    return yield* new GatewayMisconfigured({ message: "Invalid gateway configuration: CACHE_TTL_SECONDS must be 0 or more" })
  }
  if (Option.isSome(invalid)) {
    return yield* new GatewayMisconfigured({
      message: `Invalid gateway configuration: ${invalid.value}`
    })
  }
  const development = raw.environment === "development"
  const keys = Option.match(raw.apiKeys, {
    onNone: () => [],
    onSome: (secret) => splitList(Redacted.value(secret)).map((key) => Redacted.make(key))
  })
  return {
    ...raw,
    apiKeys: keys.length === 0 && development ? [Redacted.make(DEVELOPMENT_API_KEY)] : keys,
    upstreamHeaders: Option.getOrElse(raw.upstreamHeaders, () => ({})),
    aliases: Option.getOrElse(raw.aliases, () => ({})),
    models: Option.getOrElse(raw.models, () => []),
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
export const testSettings = (overrides: Partial<GatewaySettings> = {}): GatewaySettings => ({
  environment: "production",
  apiKeys: [Redacted.make("test-key")],
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
  enableLocalModel: true,
  corsOrigins: ["*"],
  maxBodyBytes: 1024 * 1024,
  logLevel: "Info",
  keepAliveMs: 10_000,
  chatProgress: true,
  imageTtlHours: 24,
  publicBaseUrl: Option.none(),
  cacheTtlSeconds: 0,
  logPrompts: false,
  ...overrides
})
