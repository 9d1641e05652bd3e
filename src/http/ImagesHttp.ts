import { Effect } from "effect"
import { HttpApiBuilder, HttpApiSchema } from "effect/http-api"
import { mimeTypeOf } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest, ImagesResponse } from "../domain/ImageGeneration.ts"
import { type GenerationResult, ImageGenerator } from "../services/ImageGenerator.ts"
import { Api } from "./Api.ts"
import { modelNotFound, upstreamError } from "./ErrorMapping.ts"

/** `response_format` absent means `b64_json`: the AI SDK requires it and most clients ask for it. */
export const toImagesResponse = (request: ImageGenerationRequest, result: GenerationResult): ImagesResponse => ({
  created: result.created,
  data: result.images.map((image) =>
    request.response_format === "url"
      ? { url: `data:${mimeTypeOf(image.format)};base64,${image.base64}` }
      : { b64_json: image.base64 }
  ),
  ...(result.images[0] === undefined ? {} : { output_format: result.images[0].format })
})

export const ImagesHttp = HttpApiBuilder.group(
  Api,
  "images",
  Effect.fn(function* (handlers) {
    const generator = yield* ImageGenerator
    return handlers.handle("generate", ({ payload }) =>
      generator.generate(payload).pipe(
        Effect.map((result) =>
          HttpApiSchema.withHeaders({
            body: toImagesResponse(payload, result),
            headers: result.failed > 0 ? { "x-images-failed": String(result.failed) } : {}
          })
        ),
        Effect.catchTags({
          ModelNotFound: (error) => Effect.fail(modelNotFound(error)),
          UpstreamError: (error) => Effect.fail(upstreamError(error))
        })
      )
    )
  })
)
