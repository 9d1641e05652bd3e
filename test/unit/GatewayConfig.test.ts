import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import { loadSettings } from "../../src/services/GatewayConfig.ts"

/** The configuration as `wrangler.toml` vars and secrets give it: read once, every problem named, no value echoed. */
const load = (env: Record<string, string>) =>
  loadSettings.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))

/** The message of a configuration that must fail. */
const problem = (env: Record<string, string>) =>
  Effect.flip(load(env)).pipe(Effect.map((error) => error.message.replace("Invalid gateway configuration: ", "")))

describe("GatewayConfig", () => {
  it.effect("production defaults: no key, no development key, the offline model off, progress on, cache off", () =>
    Effect.gen(function* () {
      const settings = yield* load({})
      assert.strictEqual(settings.environment, "production")
      assert.deepStrictEqual(settings.apiKeys, [])
      assert.isFalse(settings.developmentKey)
      assert.isFalse(settings.enableLocalModel)
      assert.isTrue(settings.chatProgress)
      assert.strictEqual(settings.cacheTtlSeconds, 0)
      assert.deepStrictEqual(settings.corsOrigins, ["*"])
      assert.deepStrictEqual(settings.upstreamHeaders, {})
      assert.deepStrictEqual(settings.models, [])
      assert.isFalse(settings.logPrompts)
    })
  )

  it.effect("development: the development key while API_KEYS is empty, and the offline model unless turned off", () =>
    Effect.gen(function* () {
      const development = yield* load({ ENVIRONMENT: "development" })
      assert.isTrue(development.developmentKey)
      assert.isTrue(development.enableLocalModel)
      const withKeys = yield* load({ ENVIRONMENT: "development", API_KEYS: "mine" })
      assert.isFalse(withKeys.developmentKey)
      assert.isFalse((yield* load({ ENVIRONMENT: "development", ENABLE_LOCAL_MODEL: "false" })).enableLocalModel)
      assert.isTrue((yield* load({ ENABLE_LOCAL_MODEL: "true" })).enableLocalModel)
    })
  )

  it.effect("lists split on commas, trimmed, without empty items", () =>
    Effect.gen(function* () {
      const settings = yield* load({ API_KEYS: " sk-a , ,sk-b,", CORS_ORIGINS: "https://a.example, https://b.example ,," })
      assert.deepStrictEqual(settings.apiKeys.map(Redacted.value), ["sk-a", "sk-b"])
      assert.deepStrictEqual(settings.corsOrigins, ["https://a.example", "https://b.example"])
    })
  )

  it.effect("reads the switches and numbers it is given", () =>
    Effect.gen(function* () {
      const settings = yield* load({
        CHAT_PROGRESS: "off",
        CACHE_TTL_SECONDS: "0",
        LOG_PROMPTS: "true",
        IMAGE_TTL_HOURS: "2",
        UPSTREAM_MAX_BYTES: "1000",
        DEFAULT_MODEL: "local/preview",
        PUBLIC_BASE_URL: "https://img.example",
        UPSTREAM_HEADERS: '{"x-team":"art"}',
        MODEL_ALIASES: '{"dall-e-3":"local/preview"}'
      })
      assert.isFalse(settings.chatProgress)
      assert.isTrue(settings.logPrompts)
      assert.strictEqual(settings.imageTtlHours, 2)
      assert.strictEqual(settings.upstreamMaxBytes, 1000)
      assert.deepStrictEqual(settings.defaultModel, Option.some("local/preview"))
      assert.strictEqual(Option.getOrThrow(settings.publicBaseUrl).origin, "https://img.example")
      assert.deepStrictEqual(settings.upstreamHeaders, { "x-team": "art" })
      assert.deepStrictEqual(settings.aliases, { "dall-e-3": "local/preview" })
    })
  )

  it.effect("every number that must be positive is named when it is not", () =>
    Effect.gen(function* () {
      for (const name of [
        "UPSTREAM_TIMEOUT_MS",
        "UPSTREAM_MAX_ATTEMPTS",
        "UPSTREAM_BACKOFF_MS",
        "UPSTREAM_BACKOFF_MAX_MS",
        "MAX_CONCURRENT_UPSTREAM",
        "CIRCUIT_FAILURES",
        "CIRCUIT_COOLDOWN_MS",
        "UPSTREAM_MAX_BYTES",
        "MAX_BODY_BYTES",
        "KEEPALIVE_MS",
        "IMAGE_TTL_HOURS"
      ])
        assert.strictEqual(yield* problem({ [name]: "0" }), `${name} must be a positive integer, got 0`)
      assert.strictEqual(yield* problem({ CACHE_TTL_SECONDS: "-1" }), "CACHE_TTL_SECONDS must be 0 or more")
    })
  )

  it.effect("a secret put in the wrong variable is not echoed", () =>
    Effect.gen(function* () {
      for (const env of [
        { UPSTREAM_TIMEOUT_MS: "sk-secret-value" },
        { UPSTREAM_HEADERS: "sk-secret-value" },
        { UPSTREAM_HEADERS: '{"authorization": 7, "x": "sk-secret-value"}' },
        { MODELS: '[{"id": "a/b", "sk-secret-value": 1}]' },
        { MODELS: '[{"id": "a/b", "maxN": "sk-secret-value"}]' },
        { UPSTREAMS: '[{"id": "u", "kind": "openai", "timeoutMs": "sk-secret-value"}]' }
      ])
        assert.notInclude(yield* problem(env), "sk-secret-value", JSON.stringify(env))
    })
  )

  it.effect("JSON records must be objects of strings", () =>
    Effect.gen(function* () {
      const message = "UPSTREAM_HEADERS must be a JSON object whose values are strings"
      assert.strictEqual(yield* problem({ UPSTREAM_HEADERS: "not json" }), "UPSTREAM_HEADERS is not valid JSON")
      assert.strictEqual(yield* problem({ UPSTREAM_HEADERS: '"text"' }), message)
      assert.strictEqual(yield* problem({ UPSTREAM_HEADERS: '{"a": "b", "c": 1}' }), message)
      assert.strictEqual(yield* problem({ MODEL_ALIASES: '{"a": null}' }), message.replace("UPSTREAM_HEADERS", "MODEL_ALIASES"))
    })
  )

  it.effect("entries are named by their id, or by their place when they have no usable id", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* problem({ MODELS: "{}" }), "MODELS must be a JSON array of objects")
      assert.strictEqual(yield* problem({ MODELS: '[{"id": "a/b"}, 7]' }), "MODELS entry #2 must be a JSON object")
      assert.strictEqual(
        yield* problem({ MODELS: '[{"id": "a/b", "maxN": 0}]' }),
        "MODELS entry 'a/b': 'maxN' is missing or not valid"
      )
      assert.strictEqual(yield* problem({ MODELS: '[{"maxN": 2}]' }), "MODELS entry #1: 'id' is missing or not valid")
      assert.strictEqual(
        yield* problem({ MODELS: `[{"id": "a/b"}, {"id": "${"x".repeat(101)}", "maxN": 0}]` }),
        "MODELS entry #2: 'maxN' is missing or not valid"
      )
      assert.strictEqual(
        yield* problem({ MODELS: `[{"id": "${"x".repeat(100)}", "maxN": 0}]` }),
        `MODELS entry '${"x".repeat(100)}': 'maxN' is missing or not valid`
      )
      assert.strictEqual(
        yield* problem({ UPSTREAMS: '[{"kind": "openai"}]' }),
        "UPSTREAMS entry #1: 'id' is missing or not valid"
      )
    })
  )

  it.effect("an unknown field is named only when it is a known one spelt another way: any other name may be a secret", () =>
    Effect.gen(function* () {
      const named = yield* problem({ MODELS: '[{"id": "a/b", "max_n": 2}]' })
      assert.match(named, /^MODELS entry 'a\/b' has 'max_n' \(did you mean 'maxN'\?\) that is not one of id, upstream, /)
      assert.match(
        yield* problem({ UPSTREAMS: '[{"id": "u", "kind": "openai", "Base-URL": "x"}]' }),
        /'Base-URL' \(did you mean 'baseUrl'\?\)/
      )
      for (const field of ["sk-live-1234", "colour", "has space", "x/y"])
        assert.match(
          yield* problem({ MODELS: JSON.stringify([{ id: "a/b", [field]: 1 }]) }),
          /^MODELS entry 'a\/b' has a field that is not one of /,
          field
        )
    })
  )
})
