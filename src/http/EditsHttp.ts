import * as Effect from "effect/Effect"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Schema from "effect/Schema"
import {
  asGenerationRequest,
  type EditUpload,
  ImageEditRequest,
  ImageVariationRequest,
  readEditForm,
  readEditJson,
  readVariationForm,
  UploadRejected
} from "../domain/ImageEdit.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { Api } from "./Api.ts"
import { BadRequest, PayloadTooLarge } from "./ApiErrors.ts"
import { failWith, invalidRequest, limitFailures, modelNotFound, upstreamError } from "./ErrorMapping.ts"
import { eventStreamResponse, imageFrames } from "./EventStream.ts"
import { imageHostFor } from "./HostedUrls.ts"
import { respond } from "./ImagesHttp.ts"
import { issueToBadRequest } from "./RequestValidationLive.ts"

const unreadable = (message: string) => new BadRequest({ message, param: null, code: "invalid_body" })

const rejected = (error: UploadRejected) =>
  error.tooLarge
    ? new PayloadTooLarge({ message: error.message, param: error.param, code: "image_too_large" })
    : new BadRequest({ message: error.message, param: error.param, code: "invalid_value" })

/**
 * The edit's upload, from either form: multipart (the platform's parser, `Request.formData()`) or JSON with
 * data URLs. The edge has already refused other content types and bodies past the upload limit.
 */
const readUpload = (request: HttpServerRequest.HttpServerRequest, maxImageBytes: number, variation = false) => {
  const source = request.source as Request
  const multipart = /^multipart\/form-data\s*;/i.test(request.headers["content-type"] ?? "")
  if (variation && !multipart) {
    return Effect.fail(
      new BadRequest({
        message: "Send a variation as multipart/form-data, with the image as 'image'.",
        param: "image",
        code: null
      })
    )
  }
  const readForm = variation ? readVariationForm : readEditForm
  return Effect.tryPromise({
    try: (): Promise<EditUpload | UploadRejected> =>
      multipart
        ? source.formData().then((form) => readForm(form, maxImageBytes))
        : source.json().then((body) => readEditJson(body, maxImageBytes)),
    catch: () =>
      unreadable(
        multipart
          ? "The multipart/form-data body could not be parsed."
          : "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
      )
  }).pipe(Effect.flatMap((upload) => (upload instanceof UploadRejected ? Effect.fail(rejected(upload)) : Effect.succeed(upload))))
}

const decodeEdit = Schema.decodeUnknownEffect(ImageEditRequest)
const decodeVariation = Schema.decodeUnknownEffect(ImageVariationRequest)

/** `POST /v1/images/edits` and `/variations`: the upload read and checked here, the edit made by the generator, answered as generations are. */
export const EditsHttp = HttpApiBuilder.group(
  Api,
  "edits",
  Effect.fn(function* (handlers) {
    const generator = yield* ImageGenerator
    const config = yield* GatewayConfig
    const store = yield* ImageStore
    /** An edit or a variation: the upload read and checked, its fields decoded, the images made and answered. */
    const handle = (request: HttpServerRequest.HttpServerRequest, variation: boolean) =>
      Effect.gen(function* () {
        const upload = yield* readUpload(request, config.maxImageBytes, variation)
        const payload = yield* (variation ? decodeVariation(upload.fields) : decodeEdit(upload.fields)).pipe(
          Effect.mapError((error) => issueToBadRequest(error.issue))
        )
        // As generations stream: `image_edit.completed` events as the images finish (`partial_images` accepted, none made).
        if ("stream" in payload && payload.stream === true) {
          const images = yield* generator.stream(asGenerationRequest(payload), { inputs: upload.inputs })
          return eventStreamResponse(imageFrames(images, payload.size, "image_edit"), config.keepAliveMs)
        }
        const result = yield* generator.edit(payload, upload.inputs)
        const host = payload.response_format === "url" ? yield* imageHostFor(store, config) : undefined
        const hosted = host === undefined ? [] : yield* Effect.forEach(result.images, host, { concurrency: "unbounded" })
        return respond(payload, result, hosted, {})
      }).pipe(
        Effect.catchTags({
          BadRequest: (error) => failWith(error),
          PayloadTooLarge: (error) => failWith(error),
          InvalidRequest: (error) => failWith(invalidRequest(error)),
          ModelNotFound: (error) => failWith(modelNotFound(error)),
          UpstreamError: (error) => failWith(upstreamError(error)),
          ...limitFailures
        })
      )
    return handlers
      .handleRaw("edit", ({ request }) => handle(request, false))
      .handleRaw("createVariation", ({ request }) => handle(request, true))
  })
)
