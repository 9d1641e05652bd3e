import { Clock, Effect, Option } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { mimeTypeOf } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { GenerationCache } from "../services/GenerationCache.ts"
import { type GenerationResult, ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { noteUsage } from "../services/RequestUsage.ts"
import { Api } from "./Api.ts"
import { failWith, modelNotFound, upstreamError } from "./ErrorMapping.ts"
import { eventStreamResponse, imageFrames } from "./EventStream.ts"
import { hostedUrl, imageHostFor, publicOrigin } from "./HostedUrls.ts"

/**
 * The `ImagesResponse` of the contract, assembled from parts: the images are
 * the upstream's own bytes, copied once into the body (a Blob), never turned
 * into strings and re-escaped (see `JsonBytes.ts`). A unit test decodes this
 * output with the contract's schema.
 * `response_format` absent means `b64_json`: the AI SDK requires it and most clients ask for it.
 */
export const imagesResponseBody = (
  request: ImageGenerationRequest,
  result: GenerationResult,
  hostedUrls: ReadonlyArray<Option.Option<string>> = []
): Blob => {
  const parts: Array<string | Uint8Array> = [`{"created":${result.created},"data":[`]
  result.images.forEach((image, i) => {
    parts.push(i === 0 ? "" : ",")
    const hosted = hostedUrls[i] ?? Option.none()
    if (request.response_format === "url" && Option.isSome(hosted)) {
      parts.push(`{"url":${JSON.stringify(hosted.value)}}`)
      return
    }
    parts.push(request.response_format === "url" ? `{"url":"data:${mimeTypeOf(image.format)};base64,` : `{"b64_json":"`)
    parts.push(image.base64, `"}`)
  })
  const format = result.images[0]?.format
  parts.push(format === undefined ? "]}" : `],"output_format":"${format}"}`)
  return new Blob(parts)
}

const respond = (
  request: ImageGenerationRequest,
  result: GenerationResult,
  hosted: ReadonlyArray<Option.Option<string>>,
  headers: Record<string, string>
) =>
  HttpServerResponse.raw(imagesResponseBody(request, result, hosted), {
    contentType: "application/json",
    headers: result.failed > 0 ? { ...headers, "x-images-failed": String(result.failed) } : headers
  })

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
          generator
            .stream(payload)
            .pipe(Effect.map((images) => eventStreamResponse(imageFrames(images, payload.size), keepAliveMs)))
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
            const result = yield* generator.generate(payload)
            if (cache.enabled) {
              const stored = yield* cache.save(result.model, payload, result.images)
              const origin = yield* publicOrigin(config)
              const hosted = stored.map(Option.map((file) => hostedUrl(origin, file.file)))
              return respond(payload, result, hosted, { "x-cache": bypass ? "BYPASS" : "MISS" })
            }
            const host = payload.response_format === "url" ? yield* imageHostFor(store, config) : undefined
            const hosted = host === undefined ? [] : yield* Effect.forEach(result.images, host, { concurrency: "unbounded" })
            return respond(payload, result, hosted, {})
          })
      ).pipe(
        Effect.catchTags({
          ModelNotFound: (error) => failWith(modelNotFound(error)),
          UpstreamError: (error) => failWith(upstreamError(error))
        })
      )
    )
  })
)
