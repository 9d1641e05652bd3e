import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import type { HttpClientRequest } from "effect/http"
import { TestClock } from "effect/testing"
import type { UpstreamCircuitOpen, UpstreamError } from "../../src/domain/Errors.ts"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { CircuitBreaker } from "../../src/services/CircuitBreaker.ts"
import { GatewayConfig } from "../../src/services/GatewayConfig.ts"
import { ModelRegistry } from "../../src/services/ModelRegistry.ts"
import { UpstreamRegistry } from "../../src/services/UpstreamRegistry.ts"
import { UpstreamRouter } from "../../src/services/UpstreamRouter.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { PNG_BASE64, type Step, scripted } from "../support/scriptedClient.ts"

const ok: Step = { status: 200, body: JSON.stringify({ data: [{ b64_json: PNG_BASE64 }] }) }
const unavailable: Step = { status: 503, body: JSON.stringify({ error: { message: "down" } }) }

/**
 * Two OpenAI-compatible instances, `primary.test` and `backup.test`, one attempt each (so one failed
 * generation is one call), a circuit that opens after 3 failures for 30 s. `acme/primary` falls back to
 * `acme/backup`; `acme/alone` has no fallback.
 */
const stack = (answer: (host: string, request: HttpClientRequest.HttpClientRequest) => Step) => {
  const script = scripted((request) => answer(new URL(request.url).host, request))
  const config = GatewayConfig.layerTest({
    upstreams: [
      { id: "primary", kind: "openai", baseUrl: "https://primary.test/v1", apiKey: "PRIMARY_KEY", maxAttempts: 1 },
      { id: "backup", kind: "openai", baseUrl: "https://backup.test/v1", maxAttempts: 1 }
    ],
    models: [
      { id: "acme/primary", upstream: "primary", upstreamModelId: "p", fallbacks: ["acme/backup"] },
      { id: "acme/backup", upstream: "backup", upstreamModelId: "b" },
      { id: "acme/alone", upstream: "primary", upstreamModelId: "a" }
    ],
    circuitFailures: 3,
    circuitCooldownMs: 30_000
  })
  const layer = UpstreamRouter.layerNoDeps.pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ModelRegistry.layerNoDeps),
    Layer.provideMerge(UpstreamRegistry.layerNoDeps),
    Layer.provide([
      script.layer,
      WorkerBindings.layer(),
      ConfigProvider.layer(ConfigProvider.fromUnknown({ PRIMARY_KEY: "pk" }))
    ]),
    Layer.provideMerge(config)
  )
  const hosts = () => script.calls.map((call) => new URL(call.request.url).host)
  const generate = (model: string) =>
    Effect.gen(function* () {
      const registry = yield* ModelRegistry
      const router = yield* UpstreamRouter
      const entry = yield* registry.resolve(model)
      // The scripted upstreams answer at once: virtual time moves only where a test moves it.
      return yield* Effect.result(router.generate(entry, { prompt: "p", size: parseSize("auto"), n: 1 }))
    })
  return { layer, hosts, generate }
}

const failure = (result: { _tag: string; failure?: unknown }) => {
  assert.strictEqual(result._tag, "Failure")
  return result.failure as UpstreamError
}

describe("UpstreamRouter: fallback chains", () => {
  it.effect("a failing primary is followed by its fallback; the image says who served it and how many steps it took", () => {
    const { layer, hosts, generate } = stack((host) => (host === "primary.test" ? unavailable : ok))
    return Effect.gen(function* () {
      const result = yield* generate("acme/primary")
      assert.strictEqual(result._tag, "Success")
      if (result._tag === "Success")
        assert.deepStrictEqual([result.success[0]?.upstream, result.success[0]?.failovers], ["backup", 1])
      assert.deepStrictEqual(hosts(), ["primary.test", "backup.test"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a rejection of the request (400, 422) neither fails over nor counts against the circuit", () => {
    const { layer, hosts, generate } = stack((host) => (host === "primary.test" ? { status: 422, body: "{}" } : ok))
    return Effect.gen(function* () {
      for (let i = 0; i < 4; i++) {
        const error = failure(yield* generate("acme/primary"))
        assert.deepStrictEqual([error.reason._tag, error.upstream, error.failovers], ["UpstreamRejected", "primary", 0])
      }
      assert.deepStrictEqual(hosts(), ["primary.test", "primary.test", "primary.test", "primary.test"])
      assert.strictEqual((yield* (yield* CircuitBreaker).state("primary")).state, "closed")
    }).pipe(Effect.provide(layer))
  })

  it.effect("401, 403 and 404 (our configuration of that upstream) fail over", () =>
    Effect.gen(function* () {
      for (const status of [401, 403, 404]) {
        const { layer, hosts, generate } = stack((host) => (host === "primary.test" ? { status, body: "{}" } : ok))
        const result = yield* generate("acme/primary").pipe(Effect.provide(layer))
        assert.strictEqual(result._tag, "Success", `status ${status}`)
        assert.deepStrictEqual(hosts(), ["primary.test", "backup.test"])
      }
    })
  )

  it.effect("when every model fails, the first failure is reported with the attempts and failovers of the whole chain", () => {
    const { layer, generate } = stack((host) => (host === "primary.test" ? unavailable : { status: 500, body: "{}" }))
    return Effect.gen(function* () {
      const error = failure(yield* generate("acme/primary"))
      assert.deepStrictEqual(
        [error.reason._tag, error.upstream, error.attempts, error.failovers],
        ["UpstreamUnavailable", "primary", 2, 1]
      )
    }).pipe(Effect.provide(layer))
  })
})

describe("CircuitBreaker (virtual time)", () => {
  it.effect(
    "opens after CIRCUIT_FAILURES failed generations; open means zero calls; half-open lets one trial through; success closes it",
    () => {
      let primaryUp = false
      const { layer, hosts, generate } = stack((host) => (host === "primary.test" && !primaryUp ? unavailable : ok))
      return Effect.gen(function* () {
        const breaker = yield* CircuitBreaker
        for (let i = 0; i < 3; i++) failure(yield* generate("acme/alone"))
        assert.strictEqual(hosts().length, 3)
        assert.strictEqual((yield* breaker.state("primary")).state, "open")

        // Open: no call at all, a fast 503 with the cooldown left; a model with a fallback goes straight to it.
        const open = failure(yield* generate("acme/alone"))
        assert.strictEqual(open.reason._tag, "UpstreamCircuitOpen")
        assert.isAtMost((open.reason as UpstreamCircuitOpen).retryAfterMs, 30_000)
        assert.isAbove((open.reason as UpstreamCircuitOpen).retryAfterMs, 28_000)
        const rerouted = yield* generate("acme/primary")
        assert.strictEqual(rerouted._tag, "Success")
        assert.deepStrictEqual(hosts().slice(3), ["backup.test"])

        // After the cooldown one trial goes through; it succeeds, and the circuit closes.
        yield* TestClock.adjust("30 seconds")
        primaryUp = true
        assert.strictEqual((yield* generate("acme/alone"))._tag, "Success")
        assert.deepStrictEqual(hosts().slice(4), ["primary.test"])
        assert.strictEqual((yield* breaker.state("primary")).state, "closed")
        assert.strictEqual((yield* generate("acme/alone"))._tag, "Success")
        assert.strictEqual(hosts().length, 6)
      }).pipe(Effect.provide(layer))
    }
  )

  it.effect("a failed trial opens the circuit again for a whole cooldown", () => {
    const { layer, hosts, generate } = stack((host) => (host === "primary.test" ? unavailable : ok))
    return Effect.gen(function* () {
      const breaker = yield* CircuitBreaker
      for (let i = 0; i < 3; i++) yield* generate("acme/alone")
      yield* TestClock.adjust("31 seconds")
      failure(yield* generate("acme/alone"))
      assert.strictEqual(hosts().length, 4)
      const state = yield* breaker.state("primary")
      assert.strictEqual(state.state, "open")
      assert.isAbove(state.retryAfterMs ?? 0, 28_000)
      assert.strictEqual(failure(yield* generate("acme/alone")).reason._tag, "UpstreamCircuitOpen")
      assert.strictEqual(hosts().length, 4)
    }).pipe(Effect.provide(layer))
  })

  it.effect("while a trial is under way, other calls are refused; a trial cut short lets the next call try", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker
      for (let i = 0; i < 3; i++) yield* breaker.failed("x")
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* breaker.admit("x"), { _tag: "Allowed", trial: true })
      assert.strictEqual((yield* breaker.admit("x"))._tag, "Rejected")
      yield* breaker.abandoned("x")
      assert.deepStrictEqual(yield* breaker.admit("x"), { _tag: "Allowed", trial: true })
      yield* breaker.succeeded("x")
      assert.deepStrictEqual(yield* breaker.admit("x"), { _tag: "Allowed", trial: false })
    }).pipe(
      Effect.provide(
        CircuitBreaker.layer.pipe(Layer.provide(GatewayConfig.layerTest({ circuitFailures: 3, circuitCooldownMs: 30_000 })))
      )
    )
  )
})
