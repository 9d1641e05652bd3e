import { Buffer } from "node:buffer"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Schema from "effect/Schema"
import { UpstreamError, type UpstreamFailure, UpstreamMalformed, UpstreamRejected } from "../../domain/Errors.ts"
import type { InputImage } from "../../domain/ImageEdit.ts"
import { type GeneratedImage, mimeTypeOf } from "../../domain/ImageFormat.ts"
import { nearestAspectRatio } from "../../domain/ImageSize.ts"
import { findTopLevelString } from "../../domain/JsonBytes.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import type { ImageUpstream, UpstreamKind } from "./ImageUpstream.ts"
import {
  answerBody,
  asStringContent,
  imageFromBase64,
  imageFromOpened,
  isPlainSlice,
  networkFailure,
  openAnswer,
  withRetries
} from "./UpstreamCalls.ts"

/** The ai-sdk-image-generator app's own request body (see the upstream reference). */
export class AiSdkRequest extends Schema.Class<AiSdkRequest>("AiSdkRequest")({
  prompt: Schema.String,
  provider: Schema.String,
  modelId: Schema.String,
  aspectRatio: Schema.optional(Schema.String),
  /** Newer forks of the app: the image to start from (img2img), as a data URL. */
  referenceImage: Schema.optional(Schema.String),
  referenceMode: Schema.optional(Schema.String)
}) {}

/**
 * An entry's `options` for this kind. `referenceImage`: the app this model runs on is a fork that takes a
 * reference image (set `edits: true` on the entry too); `referenceMode` is sent with it when set.
 */
const AiSdkOptions = Schema.Struct({
  referenceImage: Schema.optional(Schema.Boolean),
  referenceMode: Schema.optional(Schema.String)
})
const decodeOptions = Schema.decodeUnknownOption(AiSdkOptions)

/** An uploaded image as the data URL the app's `referenceImage` takes. */
const dataUrlOf = async (image: InputImage) =>
  `data:${mimeTypeOf(image.format)};base64,${Buffer.from(await image.blob.arrayBuffer()).toString("base64")}`

/** The upstream's answer. Decoded in full only when the fast byte path cannot read it (see `imageBytesOf`). */
const AiSdkResponse = Schema.Struct({ image: Schema.String.check(Schema.isMinLength(1)) })
const decodeResponse = Schema.decodeUnknownOption(Schema.fromJsonString(AiSdkResponse))

export const GENERATE_PATH = "/api/generate-images"

const decoder = new TextDecoder()

/**
 * The image's base64 text, as the raw bytes of a JSON string. The fast path
 * slices it out of the upstream's body without decoding 1-3 MB to a string;
 * anything unusual (nested values, escapes where the format is detected) goes
 * through the full Schema decode instead.
 */
export const imageBytesOf = (body: Uint8Array): Uint8Array | UpstreamMalformed => {
  const found = findTopLevelString(body, "image")
  if (found._tag === "Found" && isPlainSlice(found.raw)) return found.raw
  if (found._tag === "Missing") return new UpstreamMalformed({ detail: "the upstream answered 2xx without an image" })
  const decoded = decodeResponse(decoder.decode(body))
  if (decoded._tag === "None") {
    return new UpstreamMalformed({ detail: "the upstream answered 2xx with a body that is not the expected JSON" })
  }
  return asStringContent(decoded.value.image)
}

/**
 * Kind `ai-sdk`: the ai-sdk-image-generator app (`POST {baseUrl}/api/generate-images`), one image
 * per call. The built-in instance `ai-sdk` takes `UPSTREAM_URL` and the other `UPSTREAM_*` settings.
 */
export const AiSdkKind: UpstreamKind = {
  kind: "ai-sdk",
  baseUrl: "required",
  make: (instance) =>
    Effect.gen(function* () {
      const origin = instance.baseUrl?.origin ?? ""
      const url = new URL(GENERATE_PATH, instance.baseUrl).toString()
      const client = yield* HttpClient.HttpClient
      const retried = withRetries(instance)
      // Requests are immutable: the URL and headers are set once, each call only adds its body.
      const base = HttpClientRequest.post(url).pipe(
        HttpClientRequest.setHeaders({ origin, referer: `${origin}/`, ...instance.headers }),
        HttpClientRequest.acceptJson
      )
      const withBody = HttpClientRequest.schemaBodyJson(AiSdkRequest)

      const attempt = (request: AiSdkRequest, incremental: boolean): Effect.Effect<GeneratedImage, UpstreamFailure> =>
        Effect.gen(function* () {
          const response = yield* withBody(base, request).pipe(Effect.flatMap(client.execute))
          const opened = incremental
            ? yield* openAnswer(response, instance, "image")
            : { _tag: "Whole" as const, body: yield* answerBody(response, instance.maxBytes) }
          if (opened._tag === "Open") {
            const image = imageFromOpened(opened)
            if (image instanceof UpstreamMalformed) return yield* image
            return { ...image, attempts: 1, upstream: instance.id }
          }
          const raw = imageBytesOf(opened.body)
          if (raw instanceof UpstreamMalformed) return yield* raw
          const image = imageFromBase64(raw)
          if (image instanceof UpstreamMalformed) return yield* image
          return { ...image, attempts: 1, upstream: instance.id }
        }).pipe(
          Effect.catchTags({
            HttpClientError: networkFailure,
            // Encoding our own request body cannot fail for a decoded AiSdkRequest: a bug, not an upstream fault.
            HttpBodyError: (error) => Effect.die(error)
          })
        )

      const upstream: ImageUpstream = {
        instance,
        bind: (model) => {
          const decoded = decodeOptions(model.options ?? {})
          if (decoded._tag === "None") return "'options' must be {referenceImage?: boolean, referenceMode?: string}"
          const options = decoded.value
          return (job: UpstreamJob) => {
            const aspectRatio = nearestAspectRatio(job.size, model.aspectRatios)
            const base = {
              prompt: job.prompt,
              provider: model.provider,
              modelId: model.upstreamModelId,
              ...(aspectRatio === undefined ? {} : { aspectRatio })
            }
            const first = job.inputs?.images[0]
            if (job.inputs !== undefined && (options.referenceImage !== true || first === undefined)) {
              const reason = new UpstreamRejected({
                status: 400,
                detail: `${model.id} takes no reference image (its entry needs options.referenceImage)`,
                param: "model"
              })
              return Effect.fail(new UpstreamError({ reason, attempts: 0, upstream: instance.id, failovers: 0 }))
            }
            const request =
              first === undefined
                ? Effect.succeed(new AiSdkRequest(base))
                : Effect.map(
                    Effect.promise(() => dataUrlOf(first)),
                    (referenceImage) =>
                      new AiSdkRequest({
                        ...base,
                        referenceImage,
                        ...(options.referenceMode === undefined ? {} : { referenceMode: options.referenceMode })
                      })
                  )
            return Effect.flatMap(request, (body) =>
              retried(attempt(body, job.incremental === true)).pipe(Effect.map(({ value, attempts }) => [{ ...value, attempts }]))
            )
          }
        }
      }
      return upstream
    })
}
