import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { type GeneratedImage, mimeTypeOf } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { type IdentityStream, type ImageTail, makePipe } from "../domain/ImageTail.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { GenerationCache } from "../services/GenerationCache.ts"
import { type GenerationResult, type ImageAnswer, ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { noteUsage } from "../services/RequestUsage.ts"
import { Api } from "./Api.ts"
import { failWith, limitFailures, modelNotFound, upstreamError } from "./ErrorMapping.ts"
import { eventStreamResponse, imageFrames } from "./EventStream.ts"
import { hostedUrl, type ImageHost, imageHostFor, publicOrigin } from "./HostedUrls.ts"

/** One entry of `data`: the hosted URL, or the image's own bytes as `b64_json` (or a data URL when `url` was asked for). */
const imageParts = (
  request: Pick<ImageGenerationRequest, "response_format">,
  image: GeneratedImage,
  hosted: Option.Option<string>
): Array<string | Uint8Array> => {
  if (request.response_format === "url" && Option.isSome(hosted)) return [`{"url":${JSON.stringify(hosted.value)}}`]
  const head = request.response_format === "url" ? `{"url":"data:${mimeTypeOf(image.format)};base64,` : `{"b64_json":"`
  return [head, image.base64, `"}`]
}

/** The end of `data` and of the answer; `images_failed` only when some of the `n` images failed (not an OpenAI field). */
const closing = (format: string | undefined, failed: number) =>
  `]${format === undefined ? "" : `,"output_format":"${format}"`}${failed > 0 ? `,"images_failed":${failed}` : ""}}`

/**
 * The `ImagesResponse` of the contract, assembled from parts: the images are
 * the upstream's own bytes, copied once into the body (a Blob), never turned
 * into strings and re-escaped (see `JsonBytes.ts`). A unit test decodes this
 * output with the contract's schema.
 * `response_format` absent means `b64_json`: the AI SDK requires it and most clients ask for it.
 */
export const imagesResponseBody = (
  request: Pick<ImageGenerationRequest, "response_format">,
  result: GenerationResult,
  hostedUrls: ReadonlyArray<Option.Option<string>> = []
): Blob => {
  const parts: Array<string | Uint8Array> = [`{"created":${result.created},"data":[`]
  result.images.forEach((image, i) => {
    parts.push(i === 0 ? "" : ",", ...imageParts(request, image, hostedUrls[i] ?? Option.none()))
  })
  parts.push(closing(result.images[0]?.format, result.failed))
  return new Blob(parts)
}

const encoder = new TextEncoder()
const bytesOf = (part: string | Uint8Array) => (typeof part === "string" ? encoder.encode(part) : part)

interface Written {
  readonly image: GeneratedImage
  readonly url: Option.Option<string>
}
interface Progress {
  readonly written: number
  readonly failed: number
}
/** What the body writes next: bytes, or an image still arriving with the bytes around it. */
type Piece =
  | string
  | Uint8Array
  | { readonly tail: ImageTail; readonly before: ReadonlyArray<Uint8Array>; readonly after: Uint8Array }

/** An image's entry of `data` as pieces: an image still arriving is one piece, its tail read between its bytes. */
const imagePieces = (request: ImageGenerationRequest, entry: Written, separator: string): ReadonlyArray<Piece> => {
  const parts = imageParts(request, entry.image, entry.url)
  const tail = entry.image.tail
  if (tail === undefined || parts.length !== 3) return [separator, ...parts]
  const [head, , close] = parts
  return [{ tail, before: [encoder.encode(separator + String(head)), entry.image.base64], after: bytesOf(close!) }]
}

/**
 * The same `ImagesResponse`, written as the images finish (completion order): the first image's bytes go
 * out as soon as they are known, each later one when it is, and nothing is kept once written. An image
 * still arriving is written as it arrives, one at a time. Images that fail before their bytes begin are
 * left out and counted in `images_failed` at the answer's end.
 */
export const answerPieces = (
  request: ImageGenerationRequest,
  answer: ImageAnswer,
  host: ImageHost | undefined
): Stream.Stream<Piece> => {
  const hosted = (image: GeneratedImage) => (host === undefined ? Effect.succeed(Option.none<string>()) : host(image))
  const opening = `{"created":${answer.created},"data":[`
  return answer.images.pipe(
    // Hosted URLs: each image goes to the bucket as it arrives, then only its URL is written. `undefined`: a failed image.
    Stream.mapEffect(
      (result): Effect.Effect<Written | undefined> =>
        Result.isSuccess(result)
          ? Effect.map(hosted(result.success), (url) => ({ image: result.success, url }))
          : Effect.succeed(undefined)
    ),
    Stream.mapAccum(
      (): Progress => ({ written: 0, failed: answer.failedBefore }),
      (state, entry): readonly [Progress, ReadonlyArray<Piece>] =>
        entry === undefined
          ? [{ written: state.written, failed: state.failed + 1 }, []]
          : [
              { written: state.written + 1, failed: state.failed },
              imagePieces(request, entry, state.written === 0 ? opening : ",")
            ],
      {
        onHalt: (state) => [closing(answer.first.format, state.failed)]
      }
    )
  )
}

/** The reader of the answer went away: the body's writing stops as if the client had closed it. */
class ReaderGone extends Error {}

/** Writes one piece into the pipe; an image still arriving writes itself there from its upstream's body. */
const writePiece = (writer: WritableStreamDefaultWriter<Uint8Array>, piece: Piece): Promise<void> => {
  if (typeof piece === "string" || piece instanceof Uint8Array) {
    return writer.write(bytesOf(piece)).catch(() => Promise.reject(new ReaderGone()))
  }
  return piece.tail.writeTo(writer, piece.before, piece.after).then((end) => {
    if (end === "cancelled") throw new ReaderGone()
    if (end === "broken") throw new Error("an image broke off while it was written")
  })
}

/**
 * The answer is one pipe (in workerd, native): each piece is written when the response has taken the one
 * before, and an image still arriving goes from its upstream's body into the pipe in reused buffers, never
 * through a JavaScript stream. The writing runs on its own fiber; the client leaving interrupts it.
 */
const pipedResponse = (pieces: Stream.Stream<Piece>, pipe: IdentityStream, headers: Record<string, string>) =>
  Effect.gen(function* () {
    const writer = pipe.writable.getWriter()
    const written = pieces.pipe(
      Stream.runForEach((piece) => Effect.tryPromise({ try: () => writePiece(writer, piece), catch: (cause) => cause })),
      Effect.andThen(Effect.promise(() => writer.close())),
      Effect.catch((cause) => (cause instanceof ReaderGone ? Effect.interrupt : Effect.fail(cause))),
      // However the writing ends short of the answer's end, the body ends broken: never a hang, never valid JSON.
      Effect.onExit((exit) =>
        Exit.isSuccess(exit)
          ? Effect.void
          : Effect.promise(() => writer.abort(new Error("the answer could not be completed")).catch(() => {}))
      )
    )
    const fiber = yield* Effect.forkDetach(written)
    // The client leaving while nothing is being written (an image still being made) is seen here.
    const context = yield* Effect.context<never>()
    writer.closed.catch(() => Effect.runForkWith(context)(Fiber.interrupt(fiber)))
    return HttpServerResponse.raw(pipe.readable, { contentType: "application/json", headers })
  })

/**
 * The answer of one image whose bytes are still arriving: the upstream's bytes pass through between the
 * answer's opening and closing, chunk by chunk; an upstream answer that breaks off fails the body, so the
 * client sees a broken connection, never a truncated image.
 */
const passedThroughBody = (
  request: Pick<ImageGenerationRequest, "response_format">,
  result: GenerationResult,
  tail: ImageTail
) => {
  const image = result.images[0]!
  const [head, , close] = imageParts(request, image, Option.none())
  const opening = encoder.encode(`{"created":${result.created},"data":[${head}`)
  return tail.frame([opening, image.base64], encoder.encode(`${close}${closing(image.format, result.failed)}`))
}

export const respond = (
  request: Pick<ImageGenerationRequest, "response_format">,
  result: GenerationResult,
  hosted: ReadonlyArray<Option.Option<string>>,
  headers: Record<string, string>
) => {
  const tail = result.images.length === 1 ? result.images[0]?.tail : undefined
  return HttpServerResponse.raw(
    tail === undefined ? imagesResponseBody(request, result, hosted) : passedThroughBody(request, result, tail),
    {
      contentType: "application/json",
      headers: result.failed > 0 ? { ...headers, "x-images-failed": String(result.failed) } : headers
    }
  )
}

export const ImagesHttp = HttpApiBuilder.group(
  Api,
  "images",
  Effect.fn(function* (handlers) {
    const generator = yield* ImageGenerator
    const config = yield* GatewayConfig
    const store = yield* ImageStore
    const { keepAliveMs } = config
    const registry = yield* ModelRegistry
    const cache = yield* GenerationCache
    return handlers.handle("generate", ({ payload, request }) =>
      (payload.stream === true
        ? // `partial_images` is accepted; the upstream makes no partial images, so none are sent.
          generator.stream(payload).pipe(
            Effect.map((images) => eventStreamResponse(imageFrames(images, payload.size), keepAliveMs)),
            // Only an edit is refused for its model, and this stream carries none.
            Effect.catchTag("InvalidRequest", (error) => Effect.die(error))
          )
        : Effect.gen(function* () {
            const bypass = /no-cache|no-store/i.test(request.headers["cache-control"] ?? "")
            if (cache.enabled && !bypass) {
              const model = yield* registry.resolve(payload.model)
              const hit = yield* cache.lookup(model, payload)
              if (Option.isSome(hit)) {
                yield* noteUsage((notes) => {
                  notes.model = model.id
                  notes.upstream = model.upstream
                  notes.images = hit.value.images.length
                  notes.prompt = payload.prompt
                })
                const origin = yield* publicOrigin(config)
                const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
                const result = { created, model, images: hit.value.images, failed: 0 }
                const hosted = hit.value.files.map((file) => Option.some(hostedUrl(origin, file)))
                return respond(payload, result, hosted, { "x-cache": "HIT" })
              }
            }
            if (cache.enabled) {
              // A cache entry needs every image at once: with the cache on, the answer is buffered.
              const result = yield* generator.generate(payload)
              const stored = yield* cache.save(result.model, payload, result.images)
              const origin = yield* publicOrigin(config)
              const hosted = stored.map(Option.map((file) => hostedUrl(origin, file.file)))
              return respond(payload, result, hosted, { "x-cache": bypass ? "BYPASS" : "MISS" })
            }
            const host = payload.response_format === "url" ? yield* imageHostFor(store, config) : undefined
            // One image: its bytes pass through as they arrive (for `b64_json`; a hosted URL needs the whole
            // image in the bucket first). An image that comes whole is sent as one Blob, the cheapest body.
            if ((payload.n ?? 1) === 1) {
              const result = yield* generator.generate(payload, { incremental: host === undefined })
              const hosted = host === undefined ? [] : yield* Effect.forEach(result.images, host, { concurrency: "unbounded" })
              return respond(payload, result, hosted, {})
            }
            const answer = yield* generator.answer(payload, { incremental: host === undefined })
            const headers: Record<string, string> =
              answer.failedBefore > 0 ? { "x-images-failed": String(answer.failedBefore) } : {}
            return yield* pipedResponse(answerPieces(payload, answer, host), makePipe(), headers)
          })
      ).pipe(
        Effect.catchTags({
          ModelNotFound: (error) => failWith(modelNotFound(error)),
          UpstreamError: (error) => failWith(upstreamError(error)),
          ...limitFailures
        })
      )
    )
  })
)
