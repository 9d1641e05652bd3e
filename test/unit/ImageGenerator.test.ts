import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Layer, Logger, Result, Stream } from "effect"
import type { HttpClientRequest } from "effect/http"
import { TestClock } from "effect/testing"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { CircuitBreaker } from "../../src/services/CircuitBreaker.ts"
import { GatewayConfig } from "../../src/services/GatewayConfig.ts"
import { ImageGenerator } from "../../src/services/ImageGenerator.ts"
import { KeyLimits } from "../../src/services/KeyLimits.ts"
import { ModelRegistry } from "../../src/services/ModelRegistry.ts"
import { RequestUsage, type UsageNotes } from "../../src/services/RequestUsage.ts"
import { UpstreamRegistry } from "../../src/services/UpstreamRegistry.ts"
import { UpstreamRouter } from "../../src/services/UpstreamRouter.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { PNG_BASE64, type Step, scripted } from "../support/scriptedClient.ts"

/**
 * The generator over the real router, registry and breaker, with scripted OpenAI-compatible instances:
 * what a request's images, failures and fallbacks become, and what its usage record says about them.
 */
const ok = (count = 1, image = PNG_BASE64): Step => ({
  status: 200,
  body: JSON.stringify({ data: Array.from({ length: count }, () => ({ b64_json: image })) })
})
const unavailable: Step = { status: 503, body: JSON.stringify({ error: { message: "down" } }) }

interface Call {
  readonly host: string
  readonly body: { readonly n?: number; readonly [field: string]: unknown }
  readonly index: number
}

const stack = (answer: (call: Call) => Step, settings: { maxConcurrentUpstream?: number } = {}) => {
  const script = scripted((request: HttpClientRequest.HttpClientRequest, index) => {
    const body =
      request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : ({} as Call["body"])
    return answer({ host: new URL(request.url).host, body, index })
  })
  const config = GatewayConfig.layerTest({
    upstreams: [
      { id: "primary", kind: "openai", baseUrl: "https://primary.test/v1", maxAttempts: 1 },
      { id: "backup", kind: "openai", baseUrl: "https://backup.test/v1", maxAttempts: 2 }
    ],
    models: [
      {
        id: "acme/one",
        upstream: "primary",
        upstreamModelId: "one",
        options: { supports: ["quality", "style", "background", "moderation", "output_format", "output_compression"] }
      },
      { id: "acme/pairs", upstream: "primary", upstreamModelId: "pairs", maxN: 2 },
      { id: "acme/falls", upstream: "primary", upstreamModelId: "falls", fallbacks: ["acme/backup"] },
      { id: "acme/backup", upstream: "backup", upstreamModelId: "b" },
      { id: "acme/quads", upstream: "primary", upstreamModelId: "quads", maxN: 4, fallbacks: ["acme/backup"] }
    ],
    circuitFailures: 100,
    ...settings
  })
  const layer = ImageGenerator.layerNoDeps.pipe(
    Layer.provideMerge(KeyLimits.layer),
    Layer.provideMerge(UpstreamRouter.layerNoDeps),
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ModelRegistry.layerNoDeps),
    Layer.provideMerge(UpstreamRegistry.layerNoDeps),
    Layer.provide([script.layer, WorkerBindings.layer(), ConfigProvider.layer(ConfigProvider.fromUnknown({}))]),
    Layer.provideMerge(config)
  )
  return { layer, calls: script.calls }
}

const request = (fields: Partial<ConstructorParameters<typeof ImageGenerationRequest>[0]> = {}) =>
  new ImageGenerationRequest({ prompt: "a lighthouse", model: "acme/one", ...fields })

/** Runs `effect` with usage notes of its own, as the edge provides per request, and gives them back. */
const noted = <A, E, R>(effect: Effect.Effect<A, E, R>) => {
  const notes = RequestUsage.make()
  return Effect.map(Effect.exit(Effect.provideService(effect, RequestUsage, notes)), (exit) => ({ exit, notes }))
}
const usage = (notes: UsageNotes) => ({
  model: notes.model,
  upstream: notes.upstream,
  attempts: notes.attempts,
  failovers: notes.failovers,
  images: notes.images,
  failedImages: notes.failedImages,
  failure: notes.failure?.upstream
})

/** An image with a backslash, a newline's escape and a parenthesis in it: fine in JSON, not in SSE or markdown. */
const broken = `${PNG_BASE64.slice(0, 20)}\\n)${PNG_BASE64.slice(20)}`

describe("ImageGenerator", () => {
  it.effect("makes n images in one call each, counts the ones that failed, and notes it all", () => {
    const { layer, calls } = stack(({ index }) => (index === 1 ? unavailable : ok()))
    return Effect.gen(function* () {
      yield* TestClock.adjust(5_999)
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ n: 3 })))
      const result = yield* exit
      assert.strictEqual(result.images.length, 2)
      assert.strictEqual(result.failed, 1)
      assert.strictEqual(result.created, 5)
      assert.strictEqual(result.model.id, "acme/one")
      assert.deepStrictEqual(
        calls.map((call) => (call.body as { n?: number }).n),
        [1, 1, 1]
      )
      assert.deepStrictEqual(usage(notes), {
        model: "acme/one",
        upstream: "primary",
        attempts: 3,
        failovers: 0,
        images: 2,
        failedImages: 1,
        failure: "primary"
      })
      assert.strictEqual(notes.prompt, "a lighthouse")
    }).pipe(Effect.provide(layer))
  })

  it.effect("asks a model that makes several images a call for them in as few calls as it can", () => {
    const { layer, calls } = stack(({ body, index }) => (index === 1 ? unavailable : ok(body.n)))
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ model: "acme/pairs", n: 5 })))
      const result = yield* exit
      assert.deepStrictEqual(
        calls.map((call) => (call.body as { n?: number }).n),
        [2, 2, 1]
      )
      // The failed call was one of two images: both count as failed.
      assert.strictEqual(result.images.length, 3)
      assert.strictEqual(result.failed, 2)
      assert.strictEqual(notes.images, 3)
      assert.strictEqual(notes.failedImages, 2)
      assert.strictEqual(notes.attempts, 3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("an image a model makes a call short of is a failed image, not a missing one", () => {
    const { layer } = stack(() => ok(1))
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ model: "acme/pairs", n: 2 })))
      assert.strictEqual((yield* exit).failed, 1)
      assert.strictEqual(notes.images, 1)
      assert.strictEqual(notes.failedImages, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("notes the instance and the fallback steps that served a request", () => {
    const { layer } = stack(({ host, index }) => (host === "primary.test" || index === 1 ? unavailable : ok()))
    return Effect.gen(function* () {
      const generating = yield* Effect.forkChild(noted((yield* ImageGenerator).generate(request({ model: "acme/falls" }))))
      yield* TestClock.adjust("1 minute") // the backup's retry waits out its backoff
      const { exit, notes } = yield* Fiber.join(generating)
      const result = yield* exit
      assert.strictEqual(result.images[0]?.upstream, "backup")
      assert.strictEqual(result.images[0]?.failovers, 1)
      // One call to the primary, two to the backup (a retry after its 503).
      assert.deepStrictEqual(usage(notes), {
        model: "acme/falls",
        upstream: "backup",
        attempts: 3,
        failovers: 1,
        images: 1,
        failedImages: 0,
        failure: undefined
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("fails with the first call's error when every image fails, and notes the instance that failed", () => {
    const { layer } = stack(() => unavailable)
    return Effect.gen(function* () {
      const generator = yield* ImageGenerator
      // answer (the non-streamed body written as images finish) fails before any byte, as generate does.
      const answered = yield* noted(generator.answer(request({ n: 2 })))
      assert.isTrue(Exit.isFailure(answered.exit))
      assert.strictEqual(answered.notes.failedImages, 2)
      const { exit, notes } = yield* noted(generator.generate(request({ n: 2 })))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause : undefined
      assert.include(String(error), "UpstreamError")
      assert.deepStrictEqual(usage(notes), {
        model: "acme/one",
        upstream: "primary",
        attempts: 2,
        failovers: 0,
        images: 0,
        failedImages: 2,
        failure: "primary"
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("an unknown model fails before any call, and is noted as the client named it", () => {
    const { layer, calls } = stack(() => ok())
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ model: "acme/nope" })))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(calls.length, 0)
      assert.strictEqual(notes.model, "acme/nope")
      assert.strictEqual(notes.upstream, null)
    }).pipe(Effect.provide(layer))
  })

  it.effect("passes the request's fields an upstream may honour", () => {
    const { layer, calls } = stack(() => ok())
    // Each as the request names it and as the OpenAI body spells it (the model's options list them all).
    const fields = {
      quality: "high",
      style: "vivid",
      background: "transparent",
      moderation: "low",
      output_format: "webp",
      output_compression: 80
    } as const
    return Effect.gen(function* () {
      yield* (yield* ImageGenerator).generate(request({ size: "1024x1536", ...fields }))
      yield* (yield* ImageGenerator).generate(request())
      // Fields the client left out are left out, not sent as null.
      assert.deepStrictEqual(Object.keys(calls[1]?.body ?? {}).sort(), ["model", "n", "prompt"])
      assert.deepInclude(calls[0]?.body as Record<string, unknown>, {
        model: "one",
        prompt: "a lighthouse",
        size: "1024x1536",
        ...fields
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("for text, drops an image whose bytes are not plain base64", () => {
    const { layer } = stack(({ index }) => (index % 2 === 0 ? ok(1, broken) : ok()), { maxConcurrentUpstream: 1 })
    return Effect.gen(function* () {
      const generator = yield* ImageGenerator
      const plain = yield* generator.generate(request({ n: 2 }))
      assert.strictEqual(plain.images.length, 2, "in a JSON answer the bytes stay inside a string")
      const { exit, notes } = yield* noted(generator.generate(request({ n: 2 }), { asText: true }))
      const text = yield* exit
      assert.strictEqual(text.images.length, 1)
      assert.strictEqual(text.failed, 1)
      assert.strictEqual(notes.failedImages, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("for text, fails as a malformed answer when no image is plain base64", () => {
    const { layer } = stack(() => ok(1, broken))
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request(), { asText: true }))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(notes.failure?.reason._tag, "UpstreamMalformed")
      assert.include((notes.failure?.reason as { detail?: string } | undefined)?.detail, "not plain base64")
      assert.strictEqual(notes.upstream, "primary")
      assert.strictEqual(notes.attempts, 1)
      assert.strictEqual(notes.failure?.attempts, 1)
      assert.strictEqual(notes.failure?.failovers, 0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("streams each image as a result of its own, and notes the stream and its end", () => {
    const { layer } = stack(({ body, index }) => (index === 0 ? unavailable : ok(body.n)), { maxConcurrentUpstream: 1 })
    return Effect.gen(function* () {
      const notes = RequestUsage.make()
      const results = yield* Effect.gen(function* () {
        const stream = yield* (yield* ImageGenerator).stream(request({ model: "acme/pairs", n: 3 }))
        assert.strictEqual(stream.model.id, "acme/pairs")
        return yield* Stream.runCollect(stream.results)
      }).pipe(Effect.provideService(RequestUsage, notes))
      assert.deepStrictEqual(
        results.map((result) => (Result.isSuccess(result) ? "image" : "failed")),
        ["failed", "failed", "image"]
      )
      assert.isTrue(notes.stream)
      assert.isFalse(notes.clientClosed)
      assert.strictEqual(notes.images, 1)
      assert.strictEqual(notes.failedImages, 2)
      yield* Effect.promise(() => notes.settled ?? Promise.reject(new Error("no settled promise")))
    }).pipe(Effect.provide(layer))
  })

  it.effect("a stream the client leaves is noted as closed, and still settles", () => {
    const { layer } = stack(({ index }) => (index === 0 ? ok() : "hang"))
    return Effect.gen(function* () {
      const notes = RequestUsage.make()
      const fiber = yield* Effect.gen(function* () {
        const stream = yield* (yield* ImageGenerator).stream(request({ n: 2 }))
        return yield* Stream.runCollect(stream.results)
      }).pipe(Effect.provideService(RequestUsage, notes), Effect.forkChild)
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.isTrue(notes.clientClosed)
      yield* Effect.promise(() => notes.settled ?? Promise.reject(new Error("no settled promise")))
    }).pipe(Effect.provide(layer))
  })

  it.effect("answer: counts the images that failed before the first, then gives the rest", () => {
    const { layer } = stack(({ index }) => (index < 2 ? unavailable : ok()), { maxConcurrentUpstream: 1 })
    return Effect.gen(function* () {
      const generator = yield* ImageGenerator
      const answer = yield* generator.answer(request({ n: 4 }))
      assert.strictEqual(answer.failedBefore, 2)
      const rest = yield* Stream.runCollect(answer.images)
      assert.deepStrictEqual(
        rest.map((result) => Result.isSuccess(result)),
        [true, true]
      )
    }).pipe(Effect.provide(layer))
  })

  it.effect("a fallback that takes fewer images a call gets the call split, and answers with the parts that came", () => {
    const { layer, calls } = stack(({ host, index }) =>
      host === "primary.test" ? unavailable : index === 2 ? { status: 400, body: "{}" } : ok()
    )
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ model: "acme/quads", n: 4 })))
      const result = yield* exit
      assert.deepStrictEqual(
        calls.map((call) => [new URL(call.request.url).host, (call.body as Call["body"]).n]),
        [
          ["primary.test", 4],
          ["backup.test", 1],
          ["backup.test", 1],
          ["backup.test", 1],
          ["backup.test", 1]
        ]
      )
      assert.strictEqual(result.images.length, 3)
      assert.strictEqual(result.failed, 1)
      assert.strictEqual(notes.failovers, 1)
      assert.strictEqual(notes.upstream, "backup")
      // The primary's attempt is carried by the images of the fallback.
      assert.deepStrictEqual(
        result.images.map((image) => image.attempts),
        [2, 2, 2]
      )
    }).pipe(Effect.provide(layer))
  })

  it.effect("a split fallback call fails only when every part failed, with the attempts of all its parts", () => {
    const { layer } = stack(({ host }) => (host === "primary.test" ? unavailable : { status: 400, body: "{}" }))
    return Effect.gen(function* () {
      const { exit, notes } = yield* noted((yield* ImageGenerator).generate(request({ model: "acme/quads", n: 3 })))
      assert.isTrue(Exit.isFailure(exit))
      // 1 on the primary, then 3 parts of one attempt each (a 400 is not retried, nor failed over).
      assert.strictEqual(notes.attempts, 4)
      assert.strictEqual(notes.failure?.upstream, "backup")
      assert.strictEqual(notes.failure?.reason._tag, "UpstreamRejected")
      assert.strictEqual(notes.failedImages, 3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("logs one line per request when it is done: what was asked, what came, the attempts and the time", () => {
    const lines: Array<ReadonlyArray<unknown>> = []
    const capture = Logger.layer([Logger.make((options) => lines.push(options.message as ReadonlyArray<unknown>))])
    const finished = () => lines.filter((line) => line[0] === "generation finished").map((line) => line[1])
    const { layer } = stack(({ index }) => (index === 1 ? unavailable : index === 4 ? "hang" : ok()), {
      maxConcurrentUpstream: 1
    })
    return Effect.gen(function* () {
      const generator = yield* ImageGenerator
      const generating = yield* Effect.forkChild(generator.generate(request({ n: 3 })))
      yield* TestClock.adjust(1500)
      yield* Fiber.join(generating)
      assert.deepStrictEqual(finished(), [
        { model: "acme/one", requested: 3, succeeded: 2, failed: 1, attempts: 3, latencyMs: 0 }
      ])
      const stream = yield* generator.stream(request({ n: 2 }))
      const reading = yield* Effect.forkChild(Stream.runCollect(stream.results))
      yield* Effect.yieldNow
      yield* TestClock.adjust(250)
      yield* Fiber.interrupt(reading)
      assert.deepStrictEqual(finished()[1], {
        model: "acme/one",
        requested: 2,
        succeeded: 1,
        failed: 1,
        attempts: 1,
        latencyMs: 250,
        clientClosed: true
      })
    }).pipe(Effect.provide(Layer.merge(layer, capture)))
  })
})
