import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { HttpClient, HttpClientError, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import type { UpstreamError, UpstreamUnavailable } from "../../src/domain/Errors.ts"
import { AiSdkRequest, AiSdkUpstream, parseRetryAfter } from "../../src/services/AiSdkUpstream.ts"
import { GatewayConfig } from "../../src/services/GatewayConfig.ts"

const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"

type Step = { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> } | "network" | "hang"

/**
 * An HttpClient that answers from a script and records the (test) clock time
 * of every call, so backoff delays can be read off exactly.
 */
const scripted = (steps: ReadonlyArray<Step>) => {
  const calls: Array<number> = []
  const client = HttpClient.make((request) =>
    Effect.gen(function* () {
      calls.push(yield* Clock.currentTimeMillis)
      const step = steps[calls.length - 1] ?? { status: 200, body: JSON.stringify({ image: PNG_BASE64 }) }
      if (step === "hang") return yield* Effect.never
      if (step === "network") {
        return yield* Effect.fail(
          new HttpClientError.HttpClientError({
            reason: new HttpClientError.TransportError({ request, description: "connection refused" })
          })
        )
      }
      return HttpClientResponse.fromWeb(
        request,
        new Response(step.body ?? "", { status: step.status, headers: step.headers ?? {} })
      )
    })
  )
  return { calls, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const ok = { status: 200, body: JSON.stringify({ provider: "replicate", image: PNG_BASE64 }) }
const unavailable = { status: 503, body: JSON.stringify({ error: "Failed to generate image. Please try again later." }) }
const request = new AiSdkRequest({ prompt: "a cat", provider: "replicate", modelId: "black-forest-labs/flux-schnell" })

/** Runs one generation against the script, letting virtual time run far enough for any backoff. */
const run = (steps: ReadonlyArray<Step>) => {
  const script = scripted(steps)
  const layer = AiSdkUpstream.layerNoDeps.pipe(
    Layer.provide(script.layer),
    Layer.provide(
      GatewayConfig.layerTest({
        upstreamBackoffMs: 500,
        upstreamBackoffMaxMs: 10_000,
        upstreamMaxAttempts: 3,
        upstreamTimeoutMs: 60_000
      })
    )
  )
  return Effect.gen(function* () {
    const upstream = yield* AiSdkUpstream
    const fiber = yield* Effect.forkChild(Effect.result(upstream.generate(request)))
    yield* TestClock.adjust("10 minutes")
    const result = yield* Fiber.join(fiber)
    const delays = script.calls.slice(1).map((time, i) => time - (script.calls[i] ?? 0))
    return { result, calls: script.calls.length, delays }
  }).pipe(Effect.provide(layer))
}

const failureOf = (result: { _tag: string; failure?: unknown }) => {
  assert.strictEqual(result._tag, "Failure")
  return result.failure as UpstreamError
}

describe("AiSdkUpstream retry policy (virtual time)", () => {
  it.effect("retries 503s with growing, jittered delays and succeeds", () =>
    Effect.gen(function* () {
      const { result, calls, delays } = yield* run([unavailable, unavailable, ok])
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(calls, 3)
      assert.strictEqual(delays.length, 2)
      // exponential from 500 ms, jittered by 0.8-1.2: first in [400, 600], second in [800, 1200]
      assert.isTrue(delays[0]! >= 400 && delays[0]! <= 600, `first delay ${delays[0]}`)
      assert.isTrue(delays[1]! >= 800 && delays[1]! <= 1200, `second delay ${delays[1]}`)
      if (result._tag === "Success") assert.strictEqual(result.success.attempts, 3)
    })
  )

  it.effect("stops after UPSTREAM_MAX_ATTEMPTS and reports the last failure", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([unavailable, unavailable, unavailable, ok])
      assert.strictEqual(calls, 3)
      const error = failureOf(result)
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(error.reason._tag, "UpstreamUnavailable")
      assert.strictEqual((error.reason as UpstreamUnavailable).detail, "Failed to generate image. Please try again later.")
    })
  )

  it.effect("waits for Retry-After when it is longer than the backoff", () =>
    Effect.gen(function* () {
      const { result, delays } = yield* run([{ status: 429, headers: { "retry-after": "5" } }, ok])
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(delays[0], 5000)
    })
  )

  it.effect("caps Retry-After at UPSTREAM_BACKOFF_MAX_MS", () =>
    Effect.gen(function* () {
      const { delays } = yield* run([{ status: 429, headers: { "retry-after": "120" } }, ok])
      assert.strictEqual(delays[0], 10_000)
    })
  )

  it.effect("does not retry a 400", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([{ status: 400, body: JSON.stringify({ error: "Invalid request parameters" }) }, ok])
      assert.strictEqual(calls, 1)
      const error = failureOf(result)
      assert.deepStrictEqual([error.reason._tag, error.attempts], ["UpstreamRejected", 1])
    })
  )

  it.effect("does not retry a timed-out generation", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run(["hang", ok])
      assert.strictEqual(calls, 1)
      assert.strictEqual(failureOf(result).reason._tag, "UpstreamTimeout")
    })
  )

  it.effect("retries network errors", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run(["network", ok])
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(calls, 2)
    })
  )

  it.effect("treats a 200 with HTML or without an image as malformed, without retrying, and never keeps the HTML", () =>
    Effect.gen(function* () {
      for (const step of [
        { status: 200, body: "<html><body>oops</body></html>" },
        { status: 200, body: JSON.stringify({ provider: "replicate" }) },
        { status: 200, body: JSON.stringify({ image: btoa("GIF89a not an image we know") }) }
      ]) {
        const { result, calls } = yield* run([step, ok])
        assert.strictEqual(calls, 1)
        const error = failureOf(result)
        assert.strictEqual(error.reason._tag, "UpstreamMalformed")
        assert.notInclude(JSON.stringify(error.reason), "oops")
      }
    })
  )

  it.effect("passes on a short JSON error, never an HTML page", () =>
    Effect.gen(function* () {
      const html = yield* run([{ status: 502, body: "<!DOCTYPE html><p>Bad gateway</p>" }, unavailable, unavailable])
      const reason = failureOf(html.result).reason as UpstreamUnavailable
      assert.strictEqual(reason.status, 503)
      const htmlOnly = yield* run([
        { status: 502, body: "<!DOCTYPE html><p>Bad gateway</p>" },
        { status: 502, body: "<html/>" },
        { status: 502, body: "<html/>" }
      ])
      assert.isNull((failureOf(htmlOnly.result).reason as UpstreamUnavailable).detail)
    })
  )
})

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    const now = Date.parse("2026-11-27T00:00:00Z")
    assert.strictEqual(parseRetryAfter("3", now), 3000)
    assert.strictEqual(parseRetryAfter("0.5", now), 500)
    assert.strictEqual(parseRetryAfter("Fri, 27 Nov 2026 00:00:10 GMT", now), 10_000)
    assert.isNull(parseRetryAfter("soon", now))
    assert.isNull(parseRetryAfter(undefined, now))
  })
})
