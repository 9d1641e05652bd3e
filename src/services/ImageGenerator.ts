import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pull from "effect/Pull"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import {
  InvalidRequest,
  type KeyLimitExceeded,
  type LimiterUnavailable,
  type ModelNotFound,
  UpstreamError,
  UpstreamMalformed
} from "../domain/Errors.ts"
import {
  asGenerationRequest,
  type EditInputs,
  type ImageEditRequest,
  type ImageVariationRequest,
  takesEdit
} from "../domain/ImageEdit.ts"
import { type GeneratedImage, isBase64Text } from "../domain/ImageFormat.ts"
import { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { parseSize } from "../domain/ImageSize.ts"
import type { TailEnd } from "../domain/ImageTail.ts"
import type { ModelEntry } from "../domain/Model.ts"
import { splitImages, type UpstreamJob } from "../domain/Upstream.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { KeyLimits } from "./KeyLimits.ts"
import { ModelRegistry } from "./ModelRegistry.ts"
import { noteStream, noteUsage, RequestUsage, type UsageNotes } from "./RequestUsage.ts"
import { UpstreamRouter } from "./UpstreamRouter.ts"

/** What the usage statistics record of a request's images. */
const noteModel = (request: ImageGenerationRequest, model: ModelEntry | undefined) =>
  noteUsage((notes) => {
    notes.model = model?.id ?? request.model ?? null
    notes.upstream = model?.upstream ?? null
    notes.prompt = request.prompt
  })

/** One upstream call's outcome: the images it made, or its failure and how many images that cost. */
type CallResult = Result.Result<ReadonlyArray<GeneratedImage>, UpstreamError>

/**
 * For images that will be written into text a client reads further (SSE lines, chat markdown): an image
 * whose bytes are not plain base64 is dropped, as a failed image. A newline there would end an SSE line,
 * a parenthesis the markdown link, so what an upstream sends can never become part of the frame around it.
 */
const onlyPlainBase64 = (result: CallResult): CallResult => {
  if (Result.isFailure(result) || result.success.every((image) => isBase64Text(image.base64))) return result
  const clean = result.success.filter((image) => isBase64Text(image.base64))
  const first = result.success[0]
  if (clean.length > 0) return Result.succeed(clean)
  return Result.fail(
    new UpstreamError({
      reason: new UpstreamMalformed({ detail: "the upstream's image is not plain base64" }),
      attempts: first?.attempts ?? 1,
      upstream: first?.upstream ?? "unknown",
      failovers: first?.failovers ?? 0
    })
  )
}

/** Upstream attempts one call took, fallbacks included: every image of a call carries its call's count. */
const attemptsOf = (result: CallResult) =>
  Result.isSuccess(result) ? (result.success[0]?.attempts ?? 0) : result.failure.attempts

/** Notes one call: the instance that served the request's first image (or last failed it), attempts, failovers. */
const noteCall = (notes: UsageNotes, result: CallResult, images: number) => {
  notes.attempts += attemptsOf(result)
  if (Result.isSuccess(result)) {
    const first = result.success[0]
    if (notes.images === 0 && first?.upstream !== undefined) notes.upstream = first.upstream
    notes.images += result.success.length
    notes.failedImages += images - result.success.length
    notes.failovers += first?.failovers ?? 0
  } else {
    if (notes.images === 0) notes.upstream = result.failure.upstream
    notes.failedImages += images
    notes.failovers += result.failure.failovers
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
  /** The first of those failures, so an answer can say why (chat's note). */
  readonly failure?: UpstreamError | undefined
}

/** One result per image, in completion order; failures arrive as values, after retries and fallbacks. */
export interface ImageStream {
  readonly model: ModelEntry
  /** Unix seconds. */
  readonly created: number
  readonly results: Stream.Stream<Result.Result<GeneratedImage, UpstreamError>>
}

/**
 * A non-streamed answer written as its images finish: it commits on the first image (failures before it are
 * normal HTTP errors, after retries and fallbacks), then takes the others in completion order. Nothing holds
 * an image once it is written: memory is bounded by the images in flight, not by `n`.
 */
export interface ImageAnswer {
  readonly model: ModelEntry
  /** Unix seconds. */
  readonly created: number
  readonly first: GeneratedImage
  /** Images that failed before the first one succeeded. */
  readonly failedBefore: number
  /** Every image's result from the first on, in completion order. Ending it, or the client going away, cancels what still runs. */
  readonly images: Stream.Stream<Result.Result<GeneratedImage, UpstreamError>>
}

/** An image whose tail broke off after its first bytes went out: a failed image, not a written one. */
const noteBroken = (notes: Option.Option<UsageNotes>, image: GeneratedImage) =>
  Option.map(notes, (current) => {
    current.images--
    current.failedImages++
    current.failure ??= new UpstreamError({
      reason: new UpstreamMalformed({ detail: "the upstream's answer broke off before its end" }),
      attempts: image.attempts,
      upstream: image.upstream ?? "unknown",
      failovers: image.failovers ?? 0
    })
  })

/**
 * Notes how a request's tails ended, once every one has. A tail that broke off ended the body itself: the
 * interruption that followed is not the client's, and the images the body never reached failed with it.
 * Otherwise `closed` (the client went away) explains every cancelled tail; without it, a tail cancelled was
 * never written: a failed image too.
 */
const noteTailEnds = Effect.fnUntraced(function* (
  notes: Option.Option<UsageNotes>,
  tailed: ReadonlyArray<GeneratedImage>,
  ends: ReadonlyArray<TailEnd | undefined>,
  closed: boolean,
  n: number
) {
  const broke = ends.includes("broken")
  const gone = !broke && closed
  Option.map(notes, (current) => {
    if (broke) current.clientClosed = false
    else if (gone) current.clientClosed = true
  })
  for (const [i, end] of ends.entries()) {
    const image = tailed[i]!
    if (end === "broken") yield* Effect.logWarning("an image broke off after the answer began", { upstream: image.upstream })
    if (end === "broken" || (end === "cancelled" && !gone)) noteBroken(notes, image)
  }
  if (broke) Option.map(notes, (current) => (current.failedImages = n - current.images))
})

/**
 * Images whose bytes are still arriving end the request when their tails end: the usage record waits for
 * them. One image's tail is only ever cancelled by its reader, the client.
 */
const settleTails = Effect.fnUntraced(function* (images: ReadonlyArray<GeneratedImage>, n: number) {
  const tailed = images.filter((image) => image.tail !== undefined)
  if (tailed.length === 0) return
  const notes = yield* Effect.serviceOption(RequestUsage)
  const context = yield* Effect.context<never>()
  const settle = Option.match(notes, { onNone: () => () => {}, onSome: (current) => noteStream(current, false) })
  void Promise.all(tailed.map((image) => image.tail?.ended)).then((ends) =>
    Effect.runForkWith(context)(
      noteTailEnds(notes, tailed, ends, ends.includes("cancelled"), n).pipe(Effect.ensuring(Effect.sync(settle)))
    )
  )
})

/** The request's fields an upstream may honour, for `n` images from the request's image `firstImage` on. */
const jobOf = (
  request: ImageGenerationRequest,
  n: number,
  firstImage: number,
  incremental = false,
  inputs?: EditInputs
): UpstreamJob => ({
  prompt: request.prompt,
  inputs,
  size: parseSize(request.size),
  n,
  firstImage,
  incremental,
  quality: request.quality ?? undefined,
  style: request.style ?? undefined,
  background: request.background ?? undefined,
  moderation: request.moderation ?? undefined,
  outputFormat: request.output_format ?? undefined,
  outputCompression: request.output_compression ?? undefined
})

/** The current key's limits refused the request, or could not be checked (and fail closed). */
export type KeyLimited = KeyLimitExceeded | LimiterUnavailable

export interface GenerateOptions {
  readonly asText?: boolean
  readonly incremental?: boolean
  /** An edit of these images, for a model already checked to take it (`edit` does that). */
  readonly inputs?: EditInputs | undefined
}

/**
 * Turns one OpenAI image request into upstream calls (one per image, or fewer where the model's
 * upstream returns several images a call), run concurrently up to MAX_CONCURRENT_UPSTREAM, each
 * through the model's fallback chain. Partial success is success; only when every image fails does
 * the request fail, with the first call's error.
 */
export class ImageGenerator extends Context.Service<
  ImageGenerator,
  {
    /**
     * `asText`: the images will be written into text (chat markdown); only plain base64 passes.
     * `incremental`: the caller writes each image as it arrives; an image may come with its `tail` still to read.
     */
    generate(
      request: ImageGenerationRequest,
      options?: GenerateOptions
    ): Effect.Effect<GenerationResult, ModelNotFound | KeyLimited | UpstreamError>
    /**
     * An edit of the uploaded images: a model whose entry does not take it (edits, or a mask) is refused
     * before any upstream call; otherwise as `generate`, every call carrying the images.
     */
    edit(
      request: ImageEditRequest | ImageVariationRequest | ImageGenerationRequest,
      inputs: EditInputs,
      options?: { readonly asText?: boolean }
    ): Effect.Effect<GenerationResult, ModelNotFound | InvalidRequest | KeyLimited | UpstreamError>
    /**
     * Resolves the model first (an unknown one, or one that does not take the edit, fails before any byte is
     * sent), then streams images as they finish. `inputs`: an edit of these images (chat's pasted images).
     */
    stream(
      request: ImageGenerationRequest,
      options?: { readonly inputs?: EditInputs | undefined }
    ): Effect.Effect<ImageStream, ModelNotFound | InvalidRequest | KeyLimited>
    /**
     * Runs the calls and waits for the first image; fails, like `generate`, when every image fails.
     * `incremental`: images may come with their tails still arriving (the body writes each in turn).
     */
    answer(
      request: ImageGenerationRequest,
      options?: { readonly incremental?: boolean }
    ): Effect.Effect<ImageAnswer, ModelNotFound | KeyLimited | UpstreamError>
  }
>()("ai-image-gateway/services/ImageGenerator") {
  static readonly layerNoDeps = Layer.effect(
    ImageGenerator,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const registry = yield* ModelRegistry
      const router = yield* UpstreamRouter
      const limits = yield* KeyLimits

      const call = (
        model: ModelEntry,
        request: ImageGenerationRequest,
        images: number,
        firstImage: number,
        incremental = false,
        inputs?: EditInputs
      ): Effect.Effect<CallResult> =>
        Effect.result(router.generate(model, jobOf(request, images, firstImage, incremental, inputs)))

      /** An edit (`inputs`) goes only to a model that takes it: any other is refused before any upstream call. */
      const supporting = (model: ModelEntry, inputs: EditInputs | undefined) => {
        if (inputs === undefined || takesEdit(model, inputs)) return Effect.succeed(model)
        const able = registry.catalogue.models.filter((entry) => takesEdit(entry, inputs)).map((entry) => `'${entry.id}'`)
        const choose = able.length === 0 ? "No model of this gateway does." : `Models that do: ${able.join(", ")}.`
        const what =
          inputs.variation === true
            ? "does not make variations of images"
            : model.edits === true
              ? "edits images but takes no mask"
              : "does not edit images"
        return Effect.fail(
          new InvalidRequest({
            message: `The model '${model.id}' ${what}. ${choose}`,
            param: "model",
            code: "model_not_supported"
          })
        )
      }

      const resolve = (request: ImageGenerationRequest) =>
        registry.resolve(request.model).pipe(
          Effect.tap((model) => noteModel(request, model)),
          Effect.tapError(() => noteModel(request, undefined))
        )

      /** For an edit: the model resolved and checked before anything else happens. */
      const checked = (request: ImageGenerationRequest, inputs: EditInputs | undefined) =>
        inputs === undefined ? Effect.void : Effect.asVoid(Effect.flatMap(resolve(request), (model) => supporting(model, inputs)))

      // Untraced, like every per-request function: see `TracingOff` in App.ts.
      const generate = Effect.fnUntraced(function* (request: ImageGenerationRequest, options?: GenerateOptions) {
        const model = yield* resolve(request)
        const n = request.n ?? 1
        // The key's rpm and daily images, after the model (a model the key may not use is a 404, not a charge).
        yield* limits.admit(n)
        yield* Effect.logDebug("generating", { prompt: request.prompt })
        const started = yield* Clock.currentTimeMillis
        const parts = splitImages(n, router.imagesPerCall(model))
        const incremental = options?.incremental === true
        // One call (the common case) needs no child fibers to run or to interrupt afterwards.
        const called =
          parts.length === 1
            ? [yield* call(model, request, n, 0, incremental, options?.inputs)]
            : yield* Effect.forEach(parts, (part) => call(model, request, part.n, part.first, incremental, options?.inputs), {
                concurrency: config.maxConcurrentUpstream
              })
        const results = options?.asText === true ? called.map(onlyPlainBase64) : called
        yield* noteUsage((notes) => {
          for (const [i, result] of results.entries()) noteCall(notes, result, parts[i]!.n)
        })
        const images = results.flatMap((result) => (Result.isSuccess(result) ? result.success : []))
        const failures = results.flatMap((result) => (Result.isFailure(result) ? [result.failure] : []))
        yield* Effect.logInfo("generation finished", {
          model: model.id,
          requested: n,
          succeeded: images.length,
          failed: n - images.length,
          attempts: results.reduce((sum, result) => sum + attemptsOf(result), 0),
          latencyMs: (yield* Clock.currentTimeMillis) - started
        })
        yield* settleTails(images, n)
        const firstFailure = failures[0]
        if (images.length === 0 && firstFailure !== undefined) return yield* Effect.fail(firstFailure)
        return {
          created: Math.floor(started / 1000),
          model,
          images,
          failed: n - images.length,
          failure: firstFailure
        } satisfies GenerationResult
      })

      /**
       * `streamed`: the client asked for `stream: true` (the SSE endpoints, whose lines take only plain base64).
       * Otherwise the images go into a JSON string, where the upstream's bytes are valid string content as they are.
       */
      const imageStream = Effect.fnUntraced(function* (
        request: ImageGenerationRequest,
        streamed: boolean,
        incremental = false,
        inputs?: EditInputs
      ) {
        const model = yield* resolve(request)
        const n = request.n ?? 1
        yield* limits.admit(n)
        const started = yield* Clock.currentTimeMillis
        const created = Math.floor(started / 1000)
        yield* Effect.logDebug("generating", { prompt: request.prompt })
        // What the closing log line reports; this request's own, updated as its calls end.
        const tally = { succeeded: 0, attempts: 0 }
        const notes = yield* Effect.serviceOption(RequestUsage)
        const settle = Option.match(notes, { onNone: () => () => {}, onSome: (current) => noteStream(current, streamed) })
        // Images whose tails are still arriving keep their upstream connection open until written: a call's
        // permit is held until its tails end, so at most MAX_CONCURRENT_UPSTREAM answers are open at once.
        const permits = yield* Semaphore.make(config.maxConcurrentUpstream)
        const tailed: Array<GeneratedImage> = []
        const context = yield* Effect.context<never>()
        const gated = (part: { readonly n: number; readonly first: number }) =>
          Effect.flatMap(permits.take(1), () =>
            Effect.onExit(call(model, request, part.n, part.first, true, inputs), (exit) => {
              const tails = Exit.isSuccess(exit) && Result.isSuccess(exit.value) ? exit.value.success : []
              const held = tails.filter((image) => image.tail !== undefined)
              tailed.push(...held)
              if (held.length === 0) return permits.release(1)
              void Promise.all(held.map((image) => image.tail?.ended)).then(() => Effect.runForkWith(context)(permits.release(1)))
              return Effect.void
            })
          )
        const results = Stream.fromIterable(splitImages(n, router.imagesPerCall(model))).pipe(
          Stream.mapEffect(
            (part) =>
              Effect.map(incremental ? gated(part) : call(model, request, part.n, part.first, false, inputs), (result) => ({
                result: streamed ? onlyPlainBase64(result) : result,
                images: part.n
              })),
            {
              concurrency: incremental ? "unbounded" : config.maxConcurrentUpstream,
              unordered: true
            }
          ),
          Stream.tap(({ result, images }) =>
            Effect.sync(() => {
              tally.succeeded += Result.isSuccess(result) ? result.success.length : 0
              tally.attempts += attemptsOf(result)
              Option.map(notes, (current) => noteCall(current, result, images))
            })
          ),
          // Each image its own result: a failed call of k images is k failed images.
          Stream.map(
            ({ result, images }): ReadonlyArray<Result.Result<GeneratedImage, UpstreamError>> =>
              Result.isSuccess(result)
                ? result.success.map((image) => Result.succeed(image))
                : Arr.makeBy(images, () => Result.fail(result.failure))
          ),
          Stream.flattenIterable,
          // Ends the request's usage record when the body ends, finished or cut off by the client.
          Stream.onExit((exit) =>
            Effect.gen(function* () {
              const closed = Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)
              if (closed) Option.map(notes, (current) => (current.clientClosed = true))
              // The record waits for every tail (the answer's body writes them, or cancels those it never reaches).
              if (tailed.length > 0) {
                const ends = yield* Effect.promise(() => Promise.all(tailed.map((image) => image.tail?.ended)))
                const gone = Option.match(notes, { onNone: () => closed, onSome: (current) => current.clientClosed })
                yield* noteTailEnds(notes, tailed, ends, gone, n)
              }
              settle()
              yield* Effect.logInfo("generation finished", {
                model: model.id,
                requested: n,
                succeeded: tally.succeeded,
                failed: n - tally.succeeded,
                attempts: tally.attempts,
                latencyMs: (yield* Clock.currentTimeMillis) - started,
                ...(closed ? { clientClosed: true } : {})
              })
            })
          )
        )
        return { model, created, results, tailed } satisfies ImageStream & { readonly tailed: ReadonlyArray<GeneratedImage> }
      })

      const answer = Effect.fnUntraced(function* (request: ImageGenerationRequest, options?: { readonly incremental?: boolean }) {
        const { model, created, results, tailed } = yield* imageStream(request, false, options?.incremental === true)
        const notes = yield* Effect.serviceOption(RequestUsage)
        // The calls run in this scope from here on, feeding a queue; the answer's body closes it, with its own exit.
        const scope = yield* Scope.make()
        const queue = yield* Stream.toQueue(results, { capacity: "unbounded" }).pipe(Scope.provide(scope))
        const opened = yield* Effect.gen(function* () {
          let failedBefore = 0
          let firstFailure: UpstreamError | undefined
          for (;;) {
            const result = yield* Pull.catchDone(Queue.take(queue), () => Effect.succeed(undefined))
            if (result === undefined) {
              // Every image failed (n >= 1, so there is a failure): the normal HTTP error, before any byte.
              return yield* Effect.fail(firstFailure as UpstreamError)
            }
            if (Result.isSuccess(result)) return { first: result.success, failedBefore }
            failedBefore++
            firstFailure ??= result.failure
          }
        }).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit))))
        // The closing is on the whole stream, the first image included: a body cancelled before it reached
        // the queue's part has still started, and so still ends the calls.
        const images = Stream.concat(Stream.succeed(Result.succeed(opened.first)), Stream.fromQueue(queue)).pipe(
          Stream.onExit((exit) =>
            Effect.suspend(() => {
              // The body ended: images it never reached let their upstreams go (a tail taken is its reader's).
              if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) {
                Option.map(notes, (current) => (current.clientClosed = true))
              }
              for (const image of tailed) image.tail?.cancel()
              return Scope.close(scope, exit)
            })
          )
        )
        return { model, created, first: opened.first, failedBefore: opened.failedBefore, images } satisfies ImageAnswer
      })

      const edit = Effect.fnUntraced(function* (
        request: ImageEditRequest | ImageVariationRequest | ImageGenerationRequest,
        inputs: EditInputs,
        options?: { readonly asText?: boolean }
      ) {
        const asGeneration = request instanceof ImageGenerationRequest ? request : asGenerationRequest(request)
        yield* checked(asGeneration, inputs)
        return yield* generate(asGeneration, { inputs, asText: options?.asText === true })
      })

      return ImageGenerator.of({
        generate,
        edit,
        stream: (request, options) =>
          Effect.andThen(checked(request, options?.inputs), imageStream(request, true, false, options?.inputs)),
        answer
      })
    })
  )
}
