import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { type UpstreamFailure, UpstreamMalformed } from "../../domain/Errors.ts"
import type { EditInputs, InputImage } from "../../domain/ImageEdit.ts"
import { type GeneratedImage, mimeTypeOf } from "../../domain/ImageFormat.ts"
import { formatSize, type ImageSize, parseSize, SIZE_PATTERN } from "../../domain/ImageSize.ts"
import { findStringValues } from "../../domain/JsonBytes.ts"
import type { ModelEntry } from "../../domain/Model.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import type { ImageUpstream, UpstreamInstance, UpstreamKind } from "./ImageUpstream.ts"
import {
  answerBody,
  asStringContent,
  type ImageBytes,
  imageFromBase64,
  imageFromBytes,
  imageFromOpened,
  isPlainSlice,
  networkFailure,
  openAnswer,
  readLimited,
  withRetries
} from "./UpstreamCalls.ts"

/** The optional request fields an OpenAI-compatible model may accept; each is sent only where the entry lists it. */
const OptionalField = Schema.Literals([
  "quality",
  "style",
  "background",
  "moderation",
  "output_format",
  "output_compression",
  "response_format"
])
type OptionalField = typeof OptionalField.Type

/**
 * A catalogue entry's `options` for this kind. `supports`: the optional fields the model takes
 * (gpt-image models reject `response_format`, dall-e-2 rejects `quality: "hd"`...); with
 * `response_format` listed, the gateway asks for `b64_json`. `sizes`: the sizes the model takes,
 * the request's size goes to the nearest; absent, the size is sent as asked.
 */
const OpenAiOptions = Schema.Struct({
  supports: Schema.optional(Schema.Array(OptionalField)),
  sizes: Schema.optional(
    Schema.Array(Schema.String.check(Schema.makeFilter((size: string) => size === "auto" || SIZE_PATTERN.test(size))))
  )
})
const decodeOptions = Schema.decodeUnknownOption(OpenAiOptions)

/** A `url` answer (or a body the byte path could not read), decoded in full: it is small without base64. */
const ImagesAnswer = Schema.Struct({
  data: Schema.Array(Schema.Struct({ b64_json: Schema.optional(Schema.String), url: Schema.optional(Schema.String) }))
})
const decodeAnswer = Schema.decodeUnknownOption(Schema.fromJsonString(ImagesAnswer))

const decoder = new TextDecoder()

/** Of the sizes a model takes, the one closest in aspect ratio, then in area (log scale, so 2:1 and 1:2 are equally far). */
export const nearestSize = (size: ImageSize, sizes: ReadonlyArray<string>): string | undefined => {
  if (sizes.length === 0) return size._tag === "Auto" ? undefined : formatSize(size)
  if (size._tag === "Auto") return sizes.includes("auto") ? "auto" : undefined
  const distance = (candidate: ImageSize) =>
    candidate._tag === "Auto"
      ? Number.POSITIVE_INFINITY
      : Math.abs(Math.log(candidate.width / candidate.height) - Math.log(size.width / size.height)) * 10 +
        Math.abs(Math.log((candidate.width * candidate.height) / (size.width * size.height)))
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of sizes) {
    const d = distance(parseSize(candidate))
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

const malformed = (detail: string) => new UpstreamMalformed({ detail })
const NOT_JSON = "the upstream answered 2xx with a body that is not the expected JSON"

/** The base64 texts of a 2xx body: sliced from the bytes when they are plain, else from the full decode. */
const base64Images = (body: Uint8Array): ReadonlyArray<Uint8Array> | undefined => {
  const found = findStringValues(body, "b64_json")
  if (found._tag === "Found" && found.values.every(isPlainSlice)) return found.values
  const decoded = decodeAnswer(decoder.decode(body))
  if (Option.isNone(decoded)) return undefined
  return decoded.value.data.flatMap((item) => (item.b64_json === undefined ? [] : [asStringContent(item.b64_json)]))
}

const EXTENSIONS = { png: "png", jpeg: "jpg", webp: "webp" } as const
const VARIATION_FIELDS = new Set(["model", "n", "size", "response_format"])

/** An uploaded image as a file part, named and typed by the format read from its bytes; the upload itself, not a copy. */
const fileOf = (image: InputImage, name: string) =>
  new File([image.blob], `${name}.${EXTENSIONS[image.format]}`, { type: mimeTypeOf(image.format) })

const make = (instance: UpstreamInstance) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const retried = withRetries(instance)
    const post = (path: string) =>
      HttpClientRequest.post(new URL(path, instance.baseUrl).toString()).pipe(
        HttpClientRequest.setHeaders(instance.headers),
        HttpClientRequest.acceptJson,
        (request) =>
          instance.apiKey === undefined ? request : HttpClientRequest.bearerToken(request, Redacted.value(instance.apiKey))
      )
    const base = post("images/generations")
    const editBase = post("images/edits")
    const variationBase = post("images/variations")

    /**
     * An edit as OpenAI's SDKs send it: multipart, one image as `image`, several as `image[]`, the mask as
     * `mask`. A variation takes only the image, `model`, `n`, `size` and `response_format`.
     */
    const editRequest = (body: Record<string, unknown>, inputs: EditInputs) => {
      const form = new FormData()
      const variation = inputs.variation === true
      for (const [name, value] of Object.entries(body)) {
        if (value !== undefined && (!variation || VARIATION_FIELDS.has(name))) form.append(name, String(value))
      }
      const field = inputs.images.length === 1 ? "image" : "image[]"
      for (const [i, image] of inputs.images.entries()) form.append(field, fileOf(image, `image-${i + 1}`))
      if (inputs.mask !== undefined) form.append("mask", fileOf(inputs.mask, "mask"))
      return HttpClientRequest.bodyFormData(variation ? variationBase : editBase, form)
    }

    /** An image the upstream only linked to: fetched within the same attempt (so the same timeout), size-capped, without our key. */
    const download = (url: string): Effect.Effect<ImageBytes, UpstreamFailure> =>
      Effect.gen(function* () {
        if (!/^https?:\/\//i.test(url)) return yield* malformed("the upstream linked an image that is not an http(s) URL")
        const response = yield* client.execute(HttpClientRequest.get(url))
        if (response.status < 200 || response.status >= 300) {
          return yield* malformed(`the image the upstream linked could not be read (HTTP ${response.status})`)
        }
        const bytes = yield* readLimited(response, instance.maxBytes)
        if (bytes === undefined) {
          return yield* malformed(`the image the upstream linked is larger than UPSTREAM_MAX_BYTES (${instance.maxBytes} bytes)`)
        }
        const image = imageFromBytes(bytes)
        return image instanceof UpstreamMalformed ? yield* image : image
      }).pipe(
        // The generation already ran (and was paid): a failed download is not a reason to run it again.
        Effect.catchTags({
          HttpClientError: () => Effect.fail(malformed("the image the upstream linked could not be downloaded")),
          BodyBrokenOff: () => Effect.fail(malformed("the image the upstream linked could not be downloaded"))
        })
      )

    /** `incremental`: one image, passed on as it arrives (an answer of several is read whole: they follow each other). */
    const attempt = (
      body: Record<string, unknown>,
      n: number,
      incremental: boolean,
      inputs: EditInputs | undefined
    ): Effect.Effect<ReadonlyArray<GeneratedImage>, UpstreamFailure> =>
      Effect.gen(function* () {
        const response = yield* client.execute(
          inputs === undefined ? HttpClientRequest.bodyJsonUnsafe(base, body) : editRequest(body, inputs)
        )
        const opened =
          incremental && n === 1
            ? yield* openAnswer(response, instance, "b64_json")
            : { _tag: "Whole" as const, body: yield* answerBody(response, instance.maxBytes) }
        if (opened._tag === "Open") {
          const image = imageFromOpened(opened)
          if (image instanceof UpstreamMalformed) return yield* image
          return [{ ...image, attempts: 1, upstream: instance.id }]
        }
        const bytes = opened.body
        const inline = base64Images(bytes)
        if (inline === undefined) return yield* malformed(NOT_JSON)
        let images: Array<ImageBytes> = []
        if (inline.length > 0) {
          for (const raw of inline.slice(0, n)) {
            const image = imageFromBase64(raw)
            if (image instanceof UpstreamMalformed) return yield* image
            images.push(image)
          }
        } else {
          const answer = decodeAnswer(decoder.decode(bytes))
          if (Option.isNone(answer)) return yield* malformed(NOT_JSON)
          const urls = answer.value.data.flatMap((item) => (item.url === undefined ? [] : [item.url]))
          if (urls.length === 0) return yield* malformed("the upstream answered 2xx without an image")
          images = yield* Effect.forEach(urls.slice(0, n), download, { concurrency: "unbounded" })
        }
        return images.map((image) => ({ ...image, attempts: 1, upstream: instance.id }))
      }).pipe(Effect.catchTag("HttpClientError", networkFailure))

    const bind = (model: ModelEntry) => {
      const options = decodeOptions(model.options ?? {})
      if (Option.isNone(options)) {
        return "'options' must be {supports?: [quality, style, background, moderation, output_format, output_compression, response_format], sizes?: ['WxH' or 'auto']}"
      }
      const supports = new Set<OptionalField>(options.value.supports ?? [])
      const sizes = options.value.sizes ?? []
      return (job: UpstreamJob) => {
        const size = nearestSize(job.size, sizes)
        const optional: Record<OptionalField, unknown> = {
          quality: job.quality,
          style: job.style,
          background: job.background,
          moderation: job.moderation,
          output_format: job.outputFormat,
          output_compression: job.outputCompression,
          // The images inline: no second download, and the byte path copies them as they are.
          response_format: "b64_json"
        }
        const body: Record<string, unknown> = { model: model.upstreamModelId, prompt: job.prompt, n: job.n }
        if (size !== undefined) body.size = size
        for (const field of supports) if (optional[field] !== undefined) body[field] = optional[field]
        return retried(attempt(body, job.n, job.incremental === true, job.inputs)).pipe(
          Effect.map(({ value, attempts }) => value.map((image) => ({ ...image, attempts })))
        )
      }
    }

    return { instance, bind } satisfies ImageUpstream
  })

/**
 * Kind `openai`: any OpenAI-compatible images API (OpenAI, Together, Fireworks, SiliconFlow,
 * DeepInfra, LocalAI...): `POST {baseUrl}/images/generations` with `Authorization: Bearer <key>`.
 * One call for up to the entry's `maxN` images; answers with `b64_json` or `url` in `data[]`.
 */
export const OpenAiKind: UpstreamKind = { kind: "openai", baseUrl: "required", make }
