import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { decode, encode } from "fast-png"
import type { UpstreamError, UpstreamRejected } from "../../src/domain/Errors.ts"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { ModelEntry, type ModelId } from "../../src/domain/Model.ts"
import type { UpstreamJob } from "../../src/domain/Upstream.ts"
import type { ImageUpstream } from "../../src/services/upstreams/ImageUpstream.ts"
import { classifyAiError, fitSize, imageOfOutput, WorkersAiKind } from "../../src/services/upstreams/WorkersAiUpstream.ts"
import { type AiBinding, WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { PNG_BASE64, PNG_BYTES, scripted, testInstance } from "../support/scriptedClient.ts"

const JPEG_BASE64 = btoa(String.fromCharCode(0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1))

type Answer = unknown | Error | "hang"

/** A fake `env.AI`: answers from a script and records each call's model and inputs. */
const fakeAi = (answers: ReadonlyArray<Answer>) => {
  const calls: Array<{ model: string; inputs: Record<string, unknown> }> = []
  const ai: AiBinding = {
    run: (model, inputs) => {
      calls.push({ model, inputs })
      const answer = answers[calls.length - 1] ?? answers[answers.length - 1]
      if (answer === "hang") return new Promise(() => {})
      if (answer instanceof Error) return Promise.reject(answer)
      return Promise.resolve(typeof answer === "function" ? (answer as () => unknown)() : answer)
    }
  }
  return { ai, calls }
}

const model = (upstreamModelId: string, options: Record<string, unknown>) =>
  new ModelEntry({
    id: `workers-ai/${upstreamModelId}` as ModelId,
    upstream: "workers-ai",
    provider: "cloudflare",
    upstreamModelId,
    created: 1,
    aspectRatios: [],
    options
  })
const SCHNELL = model("@cf/black-forest-labs/flux-1-schnell", {
  steps: { name: "steps", value: 4, max: 8 },
  maxPromptLength: 2048
})
const SDXL = model("@cf/bytedance/stable-diffusion-xl-lightning", { size: { min: 256, max: 2048 } })
const FLUX2 = model("@cf/black-forest-labs/flux-2-dev", { input: "multipart", size: { min: 256, max: 1920 } })

const job = (overrides: Partial<UpstreamJob> = {}): UpstreamJob => ({
  prompt: "a cat",
  size: parseSize("1792x1024"),
  n: 1,
  ...overrides
})

const run = (answers: ReadonlyArray<Answer>, entry: ModelEntry, request: UpstreamJob = job()) => {
  const fake = fakeAi(answers)
  return Effect.gen(function* () {
    const upstream = (yield* WorkersAiKind.make(
      testInstance({ id: "workers-ai", baseUrl: undefined, apiKey: undefined })
    )) as ImageUpstream
    const call = upstream.bind(entry)
    if (typeof call === "string") throw new Error(call)
    const fiber = yield* Effect.forkChild(Effect.result(call(request)))
    // The binding answers with real promises (a stream is read on real ticks): let those run between
    // steps of virtual time, so a timeout fires only when the fake really never answers.
    for (let second = 0; second < 600 && fiber.pollUnsafe() === undefined; second++) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
      yield* TestClock.adjust("1 second")
    }
    return { result: yield* Fiber.join(fiber), calls: fake.calls }
  }).pipe(Effect.provide(Layer.mergeAll(WorkerBindings.layer({ ai: fake.ai }), scripted([]).layer)))
}

const failure = (result: { _tag: string; failure?: unknown }) => {
  assert.strictEqual(result._tag, "Failure")
  return result.failure as UpstreamError
}
const base64Of = (result: { _tag: string; success?: unknown }) =>
  result._tag === "Success" ? new TextDecoder().decode((result.success as Array<{ base64: Uint8Array }>)[0]?.base64) : undefined

describe("workers-ai kind (fake AI binding)", () => {
  it.effect("refuses an image stream past UPSTREAM_MAX_BYTES, stopping there, without a retry", () =>
    Effect.gen(function* () {
      let pulled = 0
      const endless = () =>
        new ReadableStream<Uint8Array>({
          pull: (controller) => {
            pulled += 64 * 1024
            controller.enqueue(new Uint8Array(64 * 1024))
          }
        })
      const { result, calls } = yield* run([endless], SDXL)
      const error = failure(result)
      assert.deepStrictEqual([error.reason._tag, calls.length], ["UpstreamMalformed", 1])
      assert.include(JSON.stringify(error.reason), "UPSTREAM_MAX_BYTES")
      assert.isAtMost(pulled, testInstance().maxBytes + 4 * 64 * 1024)
    })
  )

  it.effect("a JSON answer with base64 `image` (FLUX.1 schnell): only prompt and the capped steps are sent", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([{ image: JPEG_BASE64 }], SCHNELL)
      assert.strictEqual(base64Of(result), JPEG_BASE64)
      assert.deepStrictEqual(calls, [{ model: "@cf/black-forest-labs/flux-1-schnell", inputs: { prompt: "a cat", steps: 4 } }])
    })
  )

  it.effect(
    "raw image bytes as a ReadableStream or a Uint8Array (Stable Diffusion): width and height within the model's bounds",
    () =>
      Effect.gen(function* () {
        const stream = yield* run([() => new Blob([PNG_BYTES]).stream()], SDXL, job({ size: parseSize("4096x1024") }))
        assert.strictEqual(base64Of(stream.result), PNG_BASE64)
        assert.deepStrictEqual(stream.calls[0]?.inputs, { prompt: "a cat", width: 2048, height: 512 })
        const bytes = yield* run([PNG_BYTES], SDXL, job({ size: parseSize("auto") }))
        assert.strictEqual(base64Of(bytes.result), PNG_BASE64)
        assert.deepStrictEqual(bytes.calls[0]?.inputs, { prompt: "a cat" })
      })
  )

  it.effect("an edit (SD 1.5 inpainting): the image's bytes, the strength, and the mask's transparency as white", () =>
    Effect.gen(function* () {
      const INPAINT = model("@cf/runwayml/stable-diffusion-v1-5-inpainting", {
        steps: { name: "num_steps", value: 20, max: 20 },
        editOnly: true,
        strength: 1
      })
      const image = encode({ width: 2, height: 1, channels: 3, data: Uint8Array.of(1, 2, 3, 4, 5, 6) })
      // Left pixel transparent (edit there), right opaque (keep).
      const mask = encode({ width: 2, height: 1, channels: 4, data: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 255) })
      const inputs = {
        images: [{ blob: new Blob([image]), format: "png" as const }],
        mask: { blob: new Blob([mask]), format: "png" as const }
      }
      const { result, calls } = yield* run([PNG_BYTES], INPAINT, job({ inputs }))
      assert.strictEqual(result._tag, "Success")
      const sent = calls[0]?.inputs as { image: Array<number>; mask: Array<number>; strength: number; num_steps: number }
      assert.deepStrictEqual(sent.image, Array.from(image))
      assert.strictEqual(sent.strength, 1)
      assert.strictEqual(sent.num_steps, 20)
      const white = decode(Uint8Array.from(sent.mask))
      assert.deepStrictEqual(Array.from(white.data), [255, 255, 255, 0, 0, 0])
      // Without an image it cannot work: refused before any call, naming the model.
      const alone = yield* run([PNG_BYTES], INPAINT)
      assert.strictEqual(alone.calls.length, 0)
      assert.strictEqual((failure(alone.result).reason as UpstreamRejected).param, "model")
    })
  )

  it.effect("form-data input (FLUX.2): the fields go as multipart", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([{ image: PNG_BASE64 }], FLUX2)
      assert.strictEqual(base64Of(result), PNG_BASE64)
      const { multipart } = calls[0]!.inputs as { multipart: { body: ReadableStream; contentType: string } }
      const form = yield* Effect.promise(() =>
        new Response(multipart.body, { headers: { "content-type": multipart.contentType } }).formData()
      )
      assert.deepStrictEqual(Object.fromEntries(form.entries()), { prompt: "a cat", width: "1792", height: "1024" })
    })
  )

  it.effect("capacity errors are retried; a missing model or bad input is not; an answer without an image is malformed", () =>
    Effect.gen(function* () {
      const capacity = yield* run(
        [new Error("AiError: 3040: Capacity temporarily exceeded, please try again."), { image: JPEG_BASE64 }],
        SCHNELL
      )
      assert.strictEqual(capacity.result._tag, "Success")
      assert.strictEqual(capacity.calls.length, 2)
      const missing = yield* run([new Error("AiError: 5007: No such model @cf/nope or task")], SCHNELL)
      const rejected = failure(missing.result).reason as UpstreamRejected
      assert.deepStrictEqual([missing.calls.length, rejected._tag, rejected.status], [1, "UpstreamRejected", 404])
      const invalid = yield* run([new Error("AiError: 5006: Error: required properties at '/' are 'prompt'")], SCHNELL)
      assert.deepStrictEqual([invalid.calls.length, (failure(invalid.result).reason as UpstreamRejected).status], [1, 400])
      const empty = yield* run([{ nothing: true }], SCHNELL)
      assert.deepStrictEqual([empty.calls.length, failure(empty.result).reason._tag], [1, "UpstreamMalformed"])
      const notImage = yield* run([new TextEncoder().encode("GIF89a....")], SDXL)
      assert.strictEqual(failure(notImage.result).reason._tag, "UpstreamMalformed")
      const cut = yield* run(
        [
          () =>
            new ReadableStream({
              start: (controller) => {
                controller.enqueue(PNG_BYTES.slice(0, 10))
                controller.error(new Error("connection reset"))
              }
            })
        ],
        SDXL
      )
      const broken = failure(cut.result).reason as { _tag: string; detail: string }
      assert.deepStrictEqual(
        [cut.calls.length, broken._tag, broken.detail],
        [1, "UpstreamMalformed", "Workers AI's answer broke off before its end"]
      )
      const hang = yield* run(["hang"], SCHNELL)
      assert.deepStrictEqual([hang.calls.length, failure(hang.result).reason._tag], [1, "UpstreamTimeout"])
    })
  )

  it.effect("a prompt over the model's limit is refused with a 400, without a call", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* run([{ image: JPEG_BASE64 }], SCHNELL, job({ prompt: "x".repeat(2049) }))
      assert.strictEqual((failure(result).reason as UpstreamRejected).status, 400)
      assert.strictEqual(calls.length, 0)
    })
  )

  it.effect("entries whose options break the model's schema are configuration errors; no binding, no instance", () =>
    Effect.gen(function* () {
      const upstream = (yield* WorkersAiKind.make(testInstance())) as ImageUpstream
      assert.include(String(upstream.bind(model("@cf/x", { steps: { name: "steps", value: 9, max: 8 } }))), "at most")
      assert.isString(upstream.bind(model("@cf/x", { input: "xml" })))
      const unbound = yield* WorkersAiKind.make(testInstance()).pipe(Effect.provide(WorkerBindings.layer({})))
      assert.include(String(unbound), "[ai]")
    }).pipe(Effect.provide(Layer.mergeAll(WorkerBindings.layer({ ai: fakeAi([]).ai }), scripted([]).layer)))
  )

  it("fits a size into the model's bounds, keeping the aspect ratio, in multiples of 8", () => {
    assert.deepStrictEqual(fitSize(parseSize("1024x1024"), { min: 256, max: 2048 }), { width: 1024, height: 1024 })
    assert.deepStrictEqual(fitSize(parseSize("100x50"), { min: 256, max: 2048 }), { width: 512, height: 256 })
    assert.deepStrictEqual(fitSize(parseSize("1792x1024"), { min: 256, max: 1024 }), { width: 1024, height: 584 })
    assert.strictEqual(fitSize(parseSize("auto"), { min: 256, max: 1024 }), undefined)
  })

  it("reads Workers AI's error codes: capacity is retried, the daily allocation and our configuration fail over", () => {
    const classified = (message: string) => {
      const failure = classifyAiError(new Error(message))
      return [failure._tag, "status" in failure ? failure.status : null]
    }
    const table: ReadonlyArray<[string, string, number | null]> = [
      ["3040", "UpstreamUnavailable", 429],
      ["3036", "UpstreamRejected", 429],
      ["3007", "UpstreamTimeout", null],
      ["3008", "UpstreamTimeout", null],
      ["5007", "UpstreamRejected", 404],
      ["3042", "UpstreamRejected", 404],
      ["3023", "UpstreamRejected", 403],
      ["3041", "UpstreamRejected", 403],
      ["5016", "UpstreamRejected", 403],
      ["5018", "UpstreamRejected", 403],
      ["3003", "UpstreamRejected", 400],
      ["5004", "UpstreamRejected", 400],
      ["5006", "UpstreamRejected", 400],
      ["3006", "UpstreamRejected", 413],
      ["3999", "UpstreamUnavailable", null]
    ]
    for (const [code, tag, status] of table)
      assert.deepStrictEqual(classified(`AiError: ${code}: what happened`), [tag, status], code)
    // A code is a whole number of the message; anything else is an unknown failure, worth a retry.
    assert.deepStrictEqual(classified("AiError: 30400: no"), ["UpstreamUnavailable", null])
    assert.deepStrictEqual(classified("network lost"), ["UpstreamUnavailable", null])
    assert.deepStrictEqual(classifyAiError("3006: as a string"), classifyAiError(new Error("3006: as a string")))
    const rejected = classifyAiError(new Error(`InferenceUpstreamError: 5006: ${"x".repeat(300)}`)) as UpstreamRejected
    assert.strictEqual(rejected.detail, `5006: ${"x".repeat(194)}`, "the error's class name is dropped, the rest capped at 200")
  })

  it.effect("takes an image as a stream, bytes, a buffer, base64 text or an object's base64 `image`, and nothing else", () =>
    Effect.gen(function* () {
      const read = (output: unknown) => Effect.promise(() => imageOfOutput(output, 1024))
      const formatOf = (image: unknown) =>
        (image as { format?: string; _tag?: string }).format ?? (image as { _tag: string })._tag
      assert.strictEqual(formatOf(yield* read(PNG_BYTES)), "png")
      assert.strictEqual(formatOf(yield* read(PNG_BYTES.buffer.slice(0))), "png")
      assert.strictEqual(formatOf(yield* read(new Response(PNG_BYTES).body)), "png")
      assert.strictEqual(formatOf(yield* read(PNG_BASE64)), "png")
      assert.strictEqual(formatOf(yield* read({ image: JPEG_BASE64 })), "jpeg")
      for (const nothing of ["", { image: "" }, { image: 7 }, {}, null, 42])
        assert.strictEqual(formatOf(yield* read(nothing)), "UpstreamMalformed", JSON.stringify(nothing))
      const big = yield* read(new Response(new Uint8Array(2048)).body)
      assert.include((big as { detail: string }).detail, "UPSTREAM_MAX_BYTES (1024 bytes)")
    })
  )
})
