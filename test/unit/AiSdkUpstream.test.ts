import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { type UpstreamError, UpstreamTimeout, type UpstreamUnavailable } from "../../src/domain/Errors.ts"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { ModelEntry, type ModelId } from "../../src/domain/Model.ts"
import type { UpstreamJob } from "../../src/domain/Upstream.ts"
import { AiSdkKind } from "../../src/services/upstreams/AiSdkUpstream.ts"
import type { ImageUpstream } from "../../src/services/upstreams/ImageUpstream.ts"
import { parseRetryAfter } from "../../src/services/upstreams/UpstreamCalls.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { PNG_BASE64, type Step, scripted, testInstance } from "../support/scriptedClient.ts"

const ok = { status: 200, body: JSON.stringify({ provider: "replicate", image: PNG_BASE64 }) }
const unavailable = { status: 503, body: JSON.stringify({ error: "Failed to generate image. Please try again later." }) }
const model = new ModelEntry({
  id: "replicate/flux-schnell" as ModelId,
  upstream: "test-upstream",
  provider: "replicate",
  upstreamModelId: "black-forest-labs/flux-schnell",
  created: 1,
  aspectRatios: ["1:1", "16:9"]
})
const job = { prompt: "a cat", size: parseSize("1792x1024"), n: 1 }

/** Runs one generation against the script, letting virtual time run far enough for any backoff. */
const run = (steps: ReadonlyArray<Step>, entry: ModelEntry = model, request: UpstreamJob = job) => {
  const script = scripted(steps, ok)
  return Effect.gen(function* () {
    const upstream = (yield* AiSdkKind.make(testInstance({ baseUrl: new URL("https://app.test/") }))) as ImageUpstream
    const call = upstream.bind(entry)
    if (typeof call === "string") throw new Error(call)
    const fiber = yield* Effect.forkChild(Effect.result(call(request)))
    yield* TestClock.adjust("10 minutes")
    const result = yield* Fiber.join(fiber)
    const times = script.calls.map((recorded) => recorded.at)
    const delays = times.slice(1).map((time, i) => time - (times[i] ?? 0))
    return { result, calls: script.calls.length, delays, requests: script.calls }
  }).pipe(Effect.provide(Layer.merge(script.layer, WorkerBindings.layer())))
}

const failureOf = (result: { _tag: string; failure?: unknown }) => {
  assert.strictEqual(result._tag, "Failure")
  return result.failure as UpstreamError
}

describe("ai-sdk kind (virtual time)", () => {
  it.effect("sends the app's protocol: provider, model id, the nearest aspect ratio, Origin and Referer", () =>
    Effect.gen(function* () {
      const { result, requests } = yield* run([ok])
      assert.strictEqual(result._tag, "Success")
      const [call] = requests
      assert.strictEqual(call?.request.url, "https://app.test/api/generate-images")
      assert.deepStrictEqual(call?.body, {
        prompt: "a cat",
        provider: "replicate",
        modelId: "black-forest-labs/flux-schnell",
        aspectRatio: "16:9"
      })
      assert.strictEqual(call?.request.headers.origin, "https://app.test")
    })
  )

  it.effect("an edit goes as the app's referenceImage (a data URL) only to an entry that says its app takes one", () =>
    Effect.gen(function* () {
      const png = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0))
      const edit: UpstreamJob = { ...job, inputs: { images: [{ blob: new Blob([png]), format: "png" }] } }
      const fork = new ModelEntry({ ...model, edits: true, options: { referenceImage: true, referenceMode: "img2img" } })
      const sent = yield* run([ok], fork, edit)
      assert.strictEqual(sent.result._tag, "Success")
      assert.deepStrictEqual(sent.requests[0]?.body, {
        prompt: "a cat",
        provider: "replicate",
        modelId: "black-forest-labs/flux-schnell",
        aspectRatio: "16:9",
        referenceImage: `data:image/png;base64,${PNG_BASE64}`,
        referenceMode: "img2img"
      })
      const plain = yield* run([ok], model, edit)
      assert.strictEqual(plain.calls, 0)
      assert.strictEqual((failureOf(plain.result).reason as { param?: string }).param, "model")
    })
  )

  it.effect("retries 503s with growing, jittered delays and succeeds", () =>
    Effect.gen(function* () {
      const { result, calls, delays } = yield* run([unavailable, unavailable, ok])
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(calls, 3)
      assert.strictEqual(delays.length, 2)
      // exponential from 500 ms, jittered by 0.8-1.2: first in [400, 600], second in [800, 1200]
      assert.isTrue(delays[0]! >= 400 && delays[0]! <= 600, `first delay ${delays[0]}`)
      assert.isTrue(delays[1]! >= 800 && delays[1]! <= 1200, `second delay ${delays[1]}`)
      if (result._tag === "Success")
        assert.deepStrictEqual(
          result.success.map((image) => [image.attempts, image.upstream]),
          [[3, "test-upstream"]]
        )
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

  it.effect("does not retry the upstream's own timeout (504): the generation may have run to its end", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([{ status: 504, body: "<html>Gateway Timeout</html>" }, ok])
      assert.strictEqual(calls, 1)
      assert.deepStrictEqual(failureOf(result).reason, new UpstreamTimeout({ timeoutMs: null }))
    })
  )

  it.effect("does not retry a 2xx whose body breaks off: that generation already ran and was paid for", () =>
    Effect.gen(function* () {
      const cutOff = () =>
        new ReadableStream<Uint8Array>({
          start: (controller) => {
            controller.enqueue(new TextEncoder().encode('{"image":"iVBORw0KGgo'))
            controller.error(new Error("connection reset"))
          }
        })
      const { result, calls } = yield* run([{ status: 200, body: cutOff }, ok])
      assert.strictEqual(calls, 1)
      assert.strictEqual(failureOf(result).reason._tag, "UpstreamMalformed")
    })
  )

  it.effect("refuses an answer over UPSTREAM_MAX_BYTES, declared or streamed, without reading on or retrying", () =>
    Effect.gen(function* () {
      const limit = testInstance().maxBytes
      const huge = JSON.stringify({ image: PNG_BASE64 + "A".repeat(2 * limit) })
      let pulled = 0
      /** A body without end: what was read of it shows whether the reading stopped at the limit. */
      const endless = () =>
        new ReadableStream<Uint8Array>({
          pull: (controller) => {
            pulled += 64 * 1024
            controller.enqueue(new Uint8Array(64 * 1024).fill(0x41))
          }
        })
      for (const step of [
        { status: 200, body: huge, headers: { "content-length": String(huge.length) } },
        { status: 200, body: endless }
      ]) {
        const { result, calls } = yield* run([step, ok])
        assert.strictEqual(calls, 1)
        const reason = failureOf(result).reason
        assert.strictEqual(reason._tag, "UpstreamMalformed")
        assert.include(JSON.stringify(reason), "UPSTREAM_MAX_BYTES")
      }
      assert.isAtMost(pulled, limit + 4 * 64 * 1024)
      // An error answer is read only as far as its message could be: an endless error page is still a 503.
      pulled = 0
      const failing = yield* run([
        { status: 503, body: endless },
        { status: 503, body: endless },
        { status: 503, body: endless }
      ])
      assert.deepStrictEqual([failing.calls, failureOf(failing.result).reason._tag], [3, "UpstreamUnavailable"])
      assert.isAtMost(pulled, 3 * (64 * 1024 + 4 * 64 * 1024))
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
