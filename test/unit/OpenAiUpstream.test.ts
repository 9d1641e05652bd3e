import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { UpstreamError, UpstreamRejected } from "../../src/domain/Errors.ts"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { ModelEntry, type ModelId } from "../../src/domain/Model.ts"
import type { UpstreamJob } from "../../src/domain/Upstream.ts"
import type { ImageUpstream } from "../../src/services/upstreams/ImageUpstream.ts"
import { nearestSize, OpenAiKind } from "../../src/services/upstreams/OpenAiUpstream.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { PNG_BASE64, PNG_BYTES, type Step, scripted, testInstance } from "../support/scriptedClient.ts"

const entry = (options: Record<string, unknown> = {}, maxN = 10) =>
  new ModelEntry({
    id: "openai/gpt-image-1" as ModelId,
    upstream: "test-upstream",
    provider: "openai",
    upstreamModelId: "gpt-image-1",
    created: 1,
    aspectRatios: [],
    maxN,
    options
  })

const images = (n: number, key: "b64_json" | "url" = "b64_json") =>
  JSON.stringify({
    created: 1,
    data: Array.from({ length: n }, (_, i) =>
      key === "b64_json" ? { b64_json: PNG_BASE64 } : { url: `https://files.test/${i}.png` }
    ),
    usage: { total_tokens: 10 }
  })
const ok = (n = 1): Step => ({ status: 200, body: images(n), headers: { "content-type": "application/json" } })
const job = (overrides: Partial<UpstreamJob> = {}): UpstreamJob => ({
  prompt: "a cat",
  size: parseSize("1024x1024"),
  n: 1,
  ...overrides
})

/** One generation against the script, with virtual time run far enough for any backoff or timeout. */
const run = (steps: ReadonlyArray<Step> | Parameters<typeof scripted>[0], request: UpstreamJob = job(), model = entry()) => {
  const script = scripted(steps)
  return Effect.gen(function* () {
    const upstream = (yield* OpenAiKind.make(testInstance())) as ImageUpstream
    const call = upstream.bind(model)
    if (typeof call === "string") throw new Error(call)
    const fiber = yield* Effect.forkChild(Effect.result(call(request)))
    yield* TestClock.adjust("10 minutes")
    return { result: yield* Fiber.join(fiber), calls: script.calls }
  }).pipe(Effect.provide(Layer.merge(script.layer, WorkerBindings.layer())))
}

const failure = (result: { _tag: string; failure?: unknown }) => {
  assert.strictEqual(result._tag, "Failure")
  return result.failure as UpstreamError
}

describe("openai kind", () => {
  it.effect("posts to {baseUrl}/images/generations with the bearer key, the model's id and only the fields it supports", () =>
    Effect.gen(function* () {
      const model = entry({ supports: ["quality", "background"], sizes: ["1024x1024", "1536x1024", "1024x1536", "auto"] })
      const { result, calls } = yield* run([ok()], job({ size: parseSize("1792x1024"), quality: "high", style: "vivid" }), model)
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(calls.length, 1)
      const [call] = calls
      assert.strictEqual(call?.request.url, "https://upstream.test/v1/images/generations")
      assert.strictEqual(call?.request.headers.authorization, "Bearer sk-upstream-secret")
      // style is not supported by this entry; response_format neither (gpt-image models reject it)
      assert.deepStrictEqual(call?.body, { model: "gpt-image-1", prompt: "a cat", n: 1, size: "1536x1024", quality: "high" })
      if (result._tag === "Success") {
        assert.deepStrictEqual(
          result.success.map((image) => [new TextDecoder().decode(image.base64), image.format, image.attempts, image.upstream]),
          [[PNG_BASE64, "png", 1, "test-upstream"]]
        )
      }
    })
  )

  it.effect("asks for b64_json where the entry supports response_format", () =>
    Effect.gen(function* () {
      const { calls } = yield* run([ok()], job(), entry({ supports: ["response_format"] }))
      assert.strictEqual((calls[0]?.body as { response_format?: string } | undefined)?.response_format, "b64_json")
    })
  )

  it.effect("gets n images in one call", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([ok(3)], job({ n: 3 }))
      assert.strictEqual(calls.length, 1)
      assert.strictEqual((calls[0]?.body as { n: number } | undefined)?.n, 3)
      assert.strictEqual(result._tag === "Success" ? result.success.length : 0, 3)
    })
  )

  it.effect("downloads url answers, without sending the upstream's key to the file host", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run(
        (request) =>
          request.url.startsWith("https://files.test/")
            ? { status: 200, body: PNG_BYTES, headers: { "content-type": "image/png" } }
            : { status: 200, body: images(2, "url") },
        job({ n: 2 })
      )
      assert.strictEqual(result._tag, "Success")
      assert.deepStrictEqual(
        calls.map((call) => [call.request.url, call.request.headers.authorization ?? null]),
        [
          ["https://upstream.test/v1/images/generations", "Bearer sk-upstream-secret"],
          ["https://files.test/0.png", null],
          ["https://files.test/1.png", null]
        ]
      )
      if (result._tag === "Success")
        assert.deepStrictEqual(
          result.success.map((image) => new TextDecoder().decode(image.base64)),
          [PNG_BASE64, PNG_BASE64]
        )
    })
  )

  it.effect("a linked image that is too large or not an image is malformed, and the generation is not run again", () =>
    Effect.gen(function* () {
      for (const file of [
        { status: 200, body: new Uint8Array(2 * 1024 * 1024).fill(0x89) },
        { status: 200, body: new TextEncoder().encode("<html>nope</html>") },
        { status: 404, body: "" }
      ] satisfies Array<Step>) {
        const { result, calls } = yield* run((request) =>
          request.url.startsWith("https://files.test/") ? file : { status: 200, body: images(1, "url") }
        )
        assert.strictEqual(failure(result).reason._tag, "UpstreamMalformed")
        assert.strictEqual(calls.filter((call) => call.request.url.endsWith("/images/generations")).length, 1)
      }
    })
  )

  it.effect("retries 503 and 429 up to the instance's attempts, and stops there", () =>
    Effect.gen(function* () {
      const unavailable = { status: 503, body: JSON.stringify({ error: { message: "overloaded", type: "server_error" } }) }
      const three = yield* run([unavailable, unavailable, unavailable, ok()])
      assert.deepStrictEqual(
        [three.calls.length, failure(three.result).reason._tag, failure(three.result).attempts],
        [3, "UpstreamUnavailable", 3]
      )
      const limited = yield* run([{ status: 429, headers: { "retry-after": "2" } }, ok()])
      assert.strictEqual(limited.result._tag, "Success")
      assert.strictEqual(limited.calls.length, 2)
      assert.strictEqual((limited.calls[1]?.at ?? 0) - (limited.calls[0]?.at ?? 0), 2000)
    })
  )

  it.effect("does not retry a rejection (400 with OpenAI's message, 401), a timeout or a 2xx without an image", () =>
    Effect.gen(function* () {
      const policy = yield* run([
        {
          status: 400,
          body: JSON.stringify({
            error: { message: "Your request was rejected by the safety system.", code: "content_policy_violation" }
          })
        },
        ok()
      ])
      const rejected = failure(policy.result).reason as UpstreamRejected
      assert.deepStrictEqual(
        [policy.calls.length, rejected.status, rejected.detail],
        [1, 400, "Your request was rejected by the safety system."]
      )
      const unauthorized = yield* run([
        { status: 401, body: JSON.stringify({ error: { message: "Incorrect API key provided" } }) },
        ok()
      ])
      assert.deepStrictEqual(
        [unauthorized.calls.length, (failure(unauthorized.result).reason as UpstreamRejected).status],
        [1, 401]
      )
      const hang = yield* run(["hang", ok()])
      assert.deepStrictEqual([hang.calls.length, failure(hang.result).reason._tag], [1, "UpstreamTimeout"])
      const empty = yield* run([{ status: 200, body: JSON.stringify({ created: 1, data: [] }) }, ok()])
      assert.deepStrictEqual([empty.calls.length, failure(empty.result).reason._tag], [1, "UpstreamMalformed"])
    })
  )

  it.effect("retries network errors", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run(["network", ok()])
      assert.strictEqual(result._tag, "Success")
      assert.strictEqual(calls.length, 2)
    })
  )

  it("maps a size to the nearest the model takes, by aspect ratio then area", () => {
    const sizes = ["1024x1024", "1536x1024", "1024x1536", "auto"]
    assert.strictEqual(nearestSize(parseSize("1792x1024"), sizes), "1536x1024")
    assert.strictEqual(nearestSize(parseSize("512x512"), sizes), "1024x1024")
    assert.strictEqual(nearestSize(parseSize("auto"), sizes), "auto")
    assert.strictEqual(nearestSize(parseSize("auto"), ["1024x1024"]), undefined)
    assert.strictEqual(nearestSize(parseSize("640x480"), []), "640x480")
    assert.strictEqual(nearestSize(parseSize("auto"), []), undefined)
    // The aspect ratio first, then the area on a log scale; "auto" is never the nearest to an exact size.
    assert.strictEqual(nearestSize(parseSize("1024x512"), ["1024x1024", "4096x2048"]), "4096x2048")
    assert.strictEqual(nearestSize(parseSize("1000x1000"), ["2048x2048", "512x512"]), "512x512")
    assert.strictEqual(nearestSize(parseSize("1100x1100"), ["512x512", "2048x2048"]), "2048x2048")
    assert.strictEqual(nearestSize(parseSize("512x768"), ["auto", "1024x1024"]), "1024x1024")
    assert.strictEqual(nearestSize(parseSize("800x800"), ["1024x1024", "1024x1024"]), "1024x1024")
    assert.strictEqual(nearestSize(parseSize("1024x1024"), ["512x1024", "1024x512"]), "512x1024", "a tie keeps the first")
  })

  it("an entry with options it does not know is a configuration error", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const upstream = (yield* OpenAiKind.make(testInstance())) as ImageUpstream
        assert.isString(upstream.bind(entry({ supports: ["seed"] })))
        assert.isString(upstream.bind(entry({ sizes: ["big"] })))
      }).pipe(Effect.provide(Layer.merge(scripted([]).layer, WorkerBindings.layer())))
    ))

  it.effect("says what was wrong with a linked image", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[Step | "network", string, string?]> = [
        [{ status: 404, body: "" }, "the image the upstream linked could not be read (HTTP 404)"],
        [{ status: 300, body: "" }, "the image the upstream linked could not be read (HTTP 300)"],
        [
          { status: 200, body: new Uint8Array(2 * 1024 * 1024) },
          "the image the upstream linked is larger than UPSTREAM_MAX_BYTES (1048576 bytes)"
        ],
        ["network", "the image the upstream linked could not be downloaded"],
        [{ status: 200, body: PNG_BYTES }, "the upstream linked an image that is not an http(s) URL", "ftp://files.test/0.png"],
        [{ status: 200, body: PNG_BYTES }, "the upstream linked an image that is not an http(s) URL", "/0.png"]
      ]
      for (const [file, detail, link] of cases) {
        const answer = JSON.stringify({ data: [{ url: link ?? "https://files.test/0.png" }] })
        const { result } = yield* run((request) =>
          request.url.endsWith("/images/generations") ? { status: 200, body: answer } : file
        )
        assert.strictEqual((failure(result).reason as { detail?: string }).detail, detail)
      }
    })
  )

  it.effect("takes at most n images of an answer, inline or linked, and downloads only those", () =>
    Effect.gen(function* () {
      const inline = yield* run([{ status: 200, body: images(3) }], job({ n: 2 }))
      assert.strictEqual(inline.result._tag === "Success" ? inline.result.success.length : -1, 2)
      const linked = yield* run(
        (request) =>
          request.url.startsWith("https://files.test/")
            ? { status: 200, body: PNG_BYTES }
            : { status: 200, body: images(3, "url") },
        job({ n: 2 })
      )
      assert.strictEqual(linked.result._tag === "Success" ? linked.result.success.length : -1, 2)
      assert.strictEqual(linked.calls.length, 3)
    })
  )

  it.effect("reads base64 that the upstream escaped (\\/ for /), and refuses bodies that are not its JSON", () =>
    Effect.gen(function* () {
      const withSlash = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
      const escaped = `{"data":[{"b64_json":"${withSlash.replaceAll("/", "\\/")}"}]}`
      const { result } = yield* run([{ status: 200, body: escaped }])
      assert.strictEqual(result._tag, "Success")
      if (result._tag === "Success") assert.strictEqual(new TextDecoder().decode(result.success[0]?.base64), withSlash)
      for (const [body, detail] of [
        ["<html>busy</html>", "the upstream answered 2xx with a body that is not the expected JSON"],
        ['{"data": [{"b64_json": 7}]}', "the upstream answered 2xx with a body that is not the expected JSON"],
        ['{"data": []}', "the upstream answered 2xx without an image"],
        ['{"data": [{"revised_prompt": "x"}]}', "the upstream answered 2xx without an image"]
      ] as const) {
        const refused = yield* run([{ status: 200, body }])
        assert.strictEqual((failure(refused.result).reason as { detail?: string }).detail, detail, body)
      }
    })
  )
})
