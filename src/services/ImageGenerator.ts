import { Array as Arr, Cause, Clock, Context, Effect, Exit, Layer, Option, Result, Stream } from "effect"
import type { ModelNotFound, UpstreamError } from "../domain/Errors.ts"
import type { GeneratedImage } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { nearestAspectRatio, parseSize } from "../domain/ImageSize.ts"
import type { ModelEntry } from "../domain/Model.ts"
import { AiSdkRequest, AiSdkUpstream } from "./AiSdkUpstream.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { LocalPreview } from "./LocalPreview.ts"
import { ModelRegistry } from "./ModelRegistry.ts"
import { noteStream, noteUsage, RequestUsage, type UsageNotes } from "./RequestUsage.ts"

/** What the usage statistics record of a request's images. */
const noteModel = (request: ImageGenerationRequest, model: ModelEntry | undefined) =>
  noteUsage((notes) => {
    notes.model = model?.id ?? request.model ?? null
    notes.upstream = model?.upstream ?? null
    notes.prompt = request.prompt
  })

const noteResult = (notes: UsageNotes, result: Result.Result<GeneratedImage, UpstreamError>) => {
  if (Result.isSuccess(result)) {
    notes.images += 1
    notes.attempts += result.success.attempts
  } else {
    notes.failedImages += 1
    notes.attempts += result.failure.attempts
    notes.failure ??= result.failure
  }
}

export interface GenerationResult {
  /** Unix seconds. */
  readonly created: number
  readonly model: ModelEntry
  /** The images that succeeded, in request order; never empty. */
  readonly images: ReadonlyArray<GeneratedImage>
  /** How many of the `n` images failed after retries. */
  readonly failed: number
}

/**
 * Turns one OpenAI image request into `n` upstream calls, run concurrently
 * up to MAX_CONCURRENT_UPSTREAM. Partial success is success; only when every
 * image fails does the request fail, with the first image's error.
 */
export interface ImageStream {
  readonly model: ModelEntry
  /** Unix seconds. */
  readonly created: number
  /** One result per image, in completion order; failures arrive as values, after retries. */
  readonly results: Stream.Stream<Result.Result<GeneratedImage, UpstreamError>>
}

export class ImageGenerator extends Context.Service<
  ImageGenerator,
  {
    generate(request: ImageGenerationRequest): Effect.Effect<GenerationResult, ModelNotFound | UpstreamError>
    /** Resolves the model first (an unknown one fails before any byte is sent), then streams images as they finish. */
    stream(request: ImageGenerationRequest): Effect.Effect<ImageStream, ModelNotFound>
  }
>()("ai-image-gateway/services/ImageGenerator") {
  static readonly layerNoDeps = Layer.effect(
    ImageGenerator,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const registry = yield* ModelRegistry
      const aiSdk = yield* AiSdkUpstream
      const local = yield* LocalPreview

      const generateOne = (model: ModelEntry, request: ImageGenerationRequest): Effect.Effect<GeneratedImage, UpstreamError> => {
        const size = parseSize(request.size)
        switch (model.upstream) {
          case "local":
            return local.generate(request.prompt, size)
          case "ai-sdk": {
            const aspectRatio = nearestAspectRatio(size, model.aspectRatios)
            return aiSdk.generate(
              new AiSdkRequest({
                prompt: request.prompt,
                provider: model.provider,
                modelId: model.upstreamModelId,
                ...(aspectRatio === undefined ? {} : { aspectRatio })
              })
            )
          }
        }
      }

      const resolve = (request: ImageGenerationRequest) =>
        registry.resolve(request.model).pipe(
          Effect.tap((model) => noteModel(request, model)),
          Effect.tapError(() => noteModel(request, undefined))
        )

      // Untraced, like every per-request function: see `TracingOff` in App.ts.
      const generate = Effect.fnUntraced(function* (request: ImageGenerationRequest) {
        const model = yield* resolve(request)
        const n = request.n ?? 1
        yield* Effect.logDebug("generating", { prompt: request.prompt })
        const started = yield* Clock.currentTimeMillis
        // One image (the common case) needs no child fibers to run or to interrupt afterwards.
        const results =
          n === 1
            ? [yield* Effect.result(generateOne(model, request))]
            : yield* Effect.forEach(Arr.range(1, n), () => Effect.result(generateOne(model, request)), {
                concurrency: config.maxConcurrentUpstream
              })
        yield* noteUsage((notes) => {
          for (const result of results) noteResult(notes, result)
        })
        const images = results.filter(Result.isSuccess).map((result) => result.success)
        const failures = results.filter(Result.isFailure).map((result) => result.failure)
        const attempts = [...images.map((image) => image.attempts), ...failures.map((error) => error.attempts)]
        yield* Effect.logInfo("generation finished", {
          model: model.id,
          requested: n,
          succeeded: images.length,
          failed: failures.length,
          attempts: attempts.reduce((sum, count) => sum + count, 0),
          latencyMs: (yield* Clock.currentTimeMillis) - started
        })
        const firstFailure = failures[0]
        if (images.length === 0 && firstFailure !== undefined) return yield* Effect.fail(firstFailure)
        return { created: Math.floor(started / 1000), model, images, failed: failures.length } satisfies GenerationResult
      })

      const stream = Effect.fnUntraced(function* (request: ImageGenerationRequest) {
        const model = yield* resolve(request)
        const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const notes = yield* Effect.serviceOption(RequestUsage)
        const settle = Option.match(notes, { onNone: () => () => {}, onSome: noteStream })
        const results = Stream.fromIterable(Arr.range(1, request.n ?? 1)).pipe(
          Stream.mapEffect(() => Effect.result(generateOne(model, request)), {
            concurrency: config.maxConcurrentUpstream,
            unordered: true
          }),
          Stream.tap((result) => Effect.sync(() => Option.map(notes, (current) => noteResult(current, result)))),
          // Ends the request's usage record when the body ends, finished or cut off by the client.
          Stream.onExit((exit) =>
            Effect.sync(() => {
              if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause))
                Option.map(notes, (current) => (current.clientClosed = true))
              settle()
            })
          )
        )
        return { model, created, results } satisfies ImageStream
      })

      return ImageGenerator.of({ generate, stream })
    })
  )
}
