import { Effect, Option } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { mimeTypeOf } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { type GenerationResult, ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { Api } from "./Api.ts"
import { modelNotFound, upstreamError } from "./ErrorMapping.ts"
import { eventStreamResponse, imageFrames } from "./EventStream.ts"
import { imageHostFor } from "./HostedUrls.ts"

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

export const ImagesHttp = HttpApiBuilder.group(
  Api,
  "images",
  Effect.fn(function* (handlers) {
    const generator = yield* ImageGenerator
    const config = yield* GatewayConfig
    const store = yield* ImageStore
    const { keepAliveMs } = config
    return handlers.handle("generate", ({ payload }) =>
      (payload.stream === true
        ? // `partial_images` is accepted; the upstream makes no partial images, so none are sent.
          generator
            .stream(payload)
            .pipe(Effect.map((images) => eventStreamResponse(imageFrames(images, payload.size), keepAliveMs)))
        : Effect.gen(function* () {
            const result = yield* generator.generate(payload)
            const host = payload.response_format === "url" ? yield* imageHostFor(store, config) : undefined
            const hosted = host === undefined ? [] : yield* Effect.forEach(result.images, host, { concurrency: "unbounded" })
            return HttpServerResponse.raw(imagesResponseBody(payload, result, hosted), {
              contentType: "application/json",
              headers: result.failed > 0 ? { "x-images-failed": String(result.failed) } : {}
            })
          })
      ).pipe(
        Effect.catchTags({
          ModelNotFound: (error) => Effect.fail(modelNotFound(error)),
          UpstreamError: (error) => Effect.fail(upstreamError(error))
        })
      )
    )
  })
)
