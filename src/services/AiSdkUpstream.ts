import { Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, type HttpClientResponse } from "effect/http"
import {
  isRetryable,
  UpstreamError,
  type UpstreamFailure,
  UpstreamMalformed,
  UpstreamRejected,
  UpstreamTimeout,
  UpstreamUnavailable
} from "../domain/Errors.ts"
import { detectBase64ImageFormat, type GeneratedImage } from "../domain/ImageFormat.ts"
import { findTopLevelString } from "../domain/JsonBytes.ts"
import { GatewayConfig } from "./GatewayConfig.ts"

/** The upstream's own request body (see the upstream reference). */
export class AiSdkRequest extends Schema.Class<AiSdkRequest>("AiSdkRequest")({
  prompt: Schema.String,
  provider: Schema.String,
  modelId: Schema.String,
  aspectRatio: Schema.optional(Schema.String)
}) {}

/** The upstream's answer. Decoded in full only when the fast byte path cannot read it (see `imageBytesOf`). */
const AiSdkResponse = Schema.Struct({ image: Schema.String.check(Schema.isMinLength(1)) })
const decodeResponse = Schema.decodeUnknownOption(Schema.fromJsonString(AiSdkResponse))
const ShortJsonError = Schema.fromJsonString(Schema.Struct({ error: Schema.String.check(Schema.isMaxLength(300)) }))
const decodeShortJsonError = Schema.decodeUnknownOption(ShortJsonError)

export const GENERATE_PATH = "/api/generate-images"

export interface RetrySettings {
  readonly maxAttempts: number
  readonly backoffMs: number
  readonly backoffMaxMs: number
}

/**
 * Jittered exponential backoff from `backoffMs`, each delay capped at
 * `backoffMaxMs` and stretched to the upstream's `Retry-After` (within the
 * same cap). Only `UpstreamUnavailable` is retried, at most `maxAttempts`
 * attempts in all.
 */
export const upstreamRetryPolicy = (settings: RetrySettings) =>
  Schedule.exponential(Duration.millis(settings.backoffMs)).pipe(
    Schedule.jittered,
    Schedule.setInputType<UpstreamFailure>(),
    Schedule.modifyDelay(({ input, duration }) =>
      Effect.succeed(
        Duration.millis(
          Math.min(
            settings.backoffMaxMs,
            Math.max(Duration.toMillis(duration), input._tag === "UpstreamUnavailable" ? (input.retryAfterMs ?? 0) : 0)
          )
        )
      )
    ),
    Schedule.while(({ input }) => isRetryable(input)),
    Schedule.upTo({ times: settings.maxAttempts - 1 })
  )

/** `Retry-After` is either seconds or an HTTP date. */
export const parseRetryAfter = (value: string | undefined, now: number): number | null => {
  if (value === undefined || value.trim() === "") return null
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? null : Math.max(0, date - now)
}

/** Only a short JSON `{"error": "..."}` is passed on; HTML error pages and long bodies never are. */
const upstreamDetail = (body: string): string | null => {
  const parsed = decodeShortJsonError(body)
  return parsed._tag === "Some" ? parsed.value.error : null
}

const classify = (response: HttpClientResponse.HttpClientResponse, body: string, now: number): UpstreamFailure => {
  const detail = upstreamDetail(body)
  if (response.status === 429 || response.status >= 500) {
    return new UpstreamUnavailable({
      status: response.status,
      retryAfterMs: parseRetryAfter(response.headers["retry-after"], now),
      detail
    })
  }
  return new UpstreamRejected({ status: response.status, detail })
}

const DATA_PREFIX = new TextEncoder().encode("data:")
const BACKSLASH = 0x5c
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Some forks answer with a data URL; the image is what follows the comma. */
const stripDataUrl = (image: Uint8Array) => {
  if (!DATA_PREFIX.every((byte, i) => image[i] === byte)) return image
  const comma = image.subarray(0, 128).indexOf(0x2c)
  return comma === -1 ? image : image.subarray(comma + 1)
}

/**
 * The image's base64 text, as the raw bytes of a JSON string. The fast path
 * slices it out of the upstream's body without decoding 1-3 MB to a string;
 * anything unusual (nested values, escapes where the format is detected) goes
 * through the full Schema decode instead.
 */
export const imageBytesOf = (body: Uint8Array): Uint8Array | UpstreamMalformed => {
  const found = findTopLevelString(body, "image")
  if (found._tag === "Found" && found.raw.byteLength > 0 && found.raw.subarray(0, 160).indexOf(BACKSLASH) === -1) {
    return stripDataUrl(found.raw)
  }
  if (found._tag === "Missing") return new UpstreamMalformed({ detail: "the upstream answered 2xx without an image" })
  const decoded = decodeResponse(decoder.decode(body))
  if (decoded._tag === "None") {
    return new UpstreamMalformed({ detail: "the upstream answered 2xx with a body that is not the expected JSON" })
  }
  // Re-encoded as JSON string content, so it can be copied into the answer like the fast path's bytes.
  return stripDataUrl(encoder.encode(JSON.stringify(decoded.value.image).slice(1, -1)))
}

/** Client for the ai-sdk-image-generator app: one image per call. */
export class AiSdkUpstream extends Context.Service<
  AiSdkUpstream,
  {
    generate(request: AiSdkRequest): Effect.Effect<GeneratedImage, UpstreamError>
  }
>()("ai-image-gateway/services/AiSdkUpstream") {
  static readonly layerNoDeps = Layer.effect(
    AiSdkUpstream,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const url = new URL(GENERATE_PATH, config.upstreamUrl).toString()
      const headers = { origin: config.upstreamUrl.origin, referer: `${config.upstreamUrl.origin}/`, ...config.upstreamHeaders }
      const client = yield* HttpClient.HttpClient
      const policy = upstreamRetryPolicy({
        maxAttempts: config.upstreamMaxAttempts,
        backoffMs: config.upstreamBackoffMs,
        backoffMaxMs: config.upstreamBackoffMaxMs
      })
      const timeout = Duration.millis(config.upstreamTimeoutMs)
      // Requests are immutable: the URL and headers are set once, each call only adds its body.
      const base = HttpClientRequest.post(url).pipe(HttpClientRequest.setHeaders(headers), HttpClientRequest.acceptJson)
      const withBody = HttpClientRequest.schemaBodyJson(AiSdkRequest)

      const attempt = (request: AiSdkRequest): Effect.Effect<GeneratedImage, UpstreamFailure> =>
        Effect.gen(function* () {
          const response = yield* withBody(base, request).pipe(Effect.flatMap(client.execute))
          const body = new Uint8Array(yield* response.arrayBuffer)
          if (response.status < 200 || response.status >= 300) {
            return yield* Effect.fail(classify(response, decoder.decode(body.subarray(0, 4096)), Date.now()))
          }
          const base64 = imageBytesOf(body)
          if (base64 instanceof UpstreamMalformed) return yield* base64
          const format = detectBase64ImageFormat(base64)
          if (format === undefined) {
            return yield* new UpstreamMalformed({ detail: "the upstream's image is not PNG, JPEG or WebP" })
          }
          return { base64, format, attempts: 1 }
        }).pipe(
          Effect.catchTags({
            // Network failures are logged, not passed on: their text can name internal hosts.
            HttpClientError: (error) =>
              Effect.logWarning("upstream network error", error.message).pipe(
                Effect.andThen(Effect.fail(new UpstreamUnavailable({ status: null, retryAfterMs: null, detail: null })))
              ),
            // Encoding our own request body cannot fail for a decoded AiSdkRequest: a bug, not an upstream fault.
            HttpBodyError: (error) => Effect.die(error)
          }),
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () => Effect.fail(new UpstreamTimeout({ timeoutMs: config.upstreamTimeoutMs }))
          })
        )

      // Untraced, like every per-request function: see `TracingOff` in App.ts.
      const generate = Effect.fnUntraced(function* (request: AiSdkRequest) {
        let attempts = 0
        const counted = Effect.suspend(() => {
          attempts++
          return attempt(request)
        })
        return yield* counted.pipe(
          Effect.tapError((failure) =>
            Effect.logWarning("upstream attempt failed", { attempt: attempts, failure: failure._tag })
          ),
          Effect.retry(policy),
          Effect.map((image) => ({ ...image, attempts })),
          Effect.mapError((reason) => new UpstreamError({ reason, attempts }))
        )
      })

      return AiSdkUpstream.of({ generate })
    })
  )

  static readonly layer = this.layerNoDeps.pipe(Layer.provide(FetchHttpClient.layer))
}
