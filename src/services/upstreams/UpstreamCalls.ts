import { Buffer } from "node:buffer"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { readBounded } from "../../domain/Bytes.ts"
import {
  isRetryable,
  UpstreamError,
  type UpstreamFailure,
  UpstreamMalformed,
  UpstreamRejected,
  UpstreamTimeout,
  UpstreamUnavailable
} from "../../domain/Errors.ts"
import { detectBase64ImageFormat, detectImageFormat, type ImageFormat } from "../../domain/ImageFormat.ts"
import { HEAD_BYTES, type ImageTail, openImageValue } from "../../domain/ImageTail.ts"
import type { UpstreamInstance } from "./ImageUpstream.ts"

/** What every kind shares: the retry policy, Retry-After, HTTP failure classes, and image bytes. */

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

const ShortMessage = Schema.String.check(Schema.isMaxLength(300))
/** `{"error": "..."}` (the ai-sdk app) or `{"error": {"message": "..."}}` (OpenAI and its imitators). */
const ErrorJson = Schema.fromJsonString(
  Schema.Struct({ error: Schema.Union([ShortMessage, Schema.Struct({ message: ShortMessage })]) })
)
const decodeErrorJson = Schema.decodeUnknownOption(ErrorJson)

/** Only a short JSON error message is passed on; HTML error pages and long bodies never are. */
export const upstreamDetail = (body: string): string | null => {
  const parsed = decodeErrorJson(body)
  if (parsed._tag === "None") return null
  const { error } = parsed.value
  return typeof error === "string" ? error : error.message
}

/**
 * A non-2xx answer: 429 and 5xx are worth another try, other 4xx are not. A 504 is the upstream's own
 * timeout: the generation may have run to its end, so, like ours, it is not tried again.
 */
const classifyStatus = (status: number, retryAfter: string | undefined, body: string, now: number): UpstreamFailure => {
  if (status === 504) return new UpstreamTimeout({ timeoutMs: null })
  const detail = upstreamDetail(body)
  if (status === 429 || status >= 500) {
    return new UpstreamUnavailable({ status, retryAfterMs: parseRetryAfter(retryAfter, now), detail })
  }
  return new UpstreamRejected({ status, detail })
}

/** A body that broke off while it was read (the connection closed or failed before its end). */
export class BodyBrokenOff extends Schema.TaggedError<BodyBrokenOff>()("BodyBrokenOff", { message: Schema.String }) {}

/**
 * A body read only up to `limit` bytes; `undefined` past it. A declared length over the limit is refused
 * before any byte is read; a declared length within it is read in one piece (the runtime holds the body to
 * that length); a body of unknown length is read chunk by chunk from the runtime's own stream (an Effect
 * stream over a 1 MB body of small chunks cost about 10 ms of CPU more in workerd), and stops at the limit.
 */
export const readLimited = (
  response: HttpClientResponse.HttpClientResponse,
  limit: number
): Effect.Effect<Uint8Array | undefined, HttpClientError.HttpClientError | BodyBrokenOff> => {
  const declared = response.headers["content-length"]
  if (declared !== undefined) {
    return Number(declared) > limit
      ? Effect.succeed(undefined)
      : Effect.map(response.arrayBuffer, (buffer) => new Uint8Array(buffer))
  }
  const body = Option.flatMapNullishOr(HttpClientResponse.toWeb(response), (web) => web.body)
  if (Option.isNone(body)) return Effect.succeed(new Uint8Array())
  return Effect.tryPromise({
    try: (signal) => readBounded(body.value, limit, signal),
    catch: (cause) => new BodyBrokenOff({ message: cause instanceof Error ? cause.message : String(cause) })
  })
}

/** Of an error answer only the start is looked at (its JSON message); an error page is never held whole. */
const ERROR_BODY_BYTES = 64 * 1024

/**
 * The body of an answer whose status is known, up to `maxBytes` (`UPSTREAM_MAX_BYTES`): past it, a typed
 * failure instead of an isolate out of memory. After a 2xx the generation has run (and been paid for):
 * a body that breaks off is not a reason to run it again, so it is malformed, not unavailable.
 */
const readBody = (
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number
): Effect.Effect<Uint8Array, UpstreamFailure> => {
  const ok = response.status >= 200 && response.status < 300
  return readLimited(response, ok ? maxBytes : ERROR_BODY_BYTES).pipe(
    Effect.flatMap((body) =>
      body !== undefined ? Effect.succeed(body) : ok ? Effect.fail(tooLarge(maxBytes)) : Effect.succeed(new Uint8Array())
    ),
    Effect.catchTag(["HttpClientError", "BodyBrokenOff"], (error) =>
      ok ? brokenOff(error.message) : Effect.succeed(new Uint8Array())
    )
  )
}

const decoder = new TextDecoder()

const tooLarge = (maxBytes: number) =>
  new UpstreamMalformed({ detail: `the upstream's answer is larger than UPSTREAM_MAX_BYTES (${maxBytes} bytes)` })

const brokenOff = (message: string) =>
  Effect.logWarning("upstream answer cut off", message).pipe(
    Effect.andThen(Effect.fail(new UpstreamMalformed({ detail: "the upstream's answer broke off before its end" })))
  )

/** The body of a 2xx answer, up to `maxBytes`; any other status fails, classified from the first bytes of its body. */
export const answerBody = (
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number
): Effect.Effect<Uint8Array, UpstreamFailure> =>
  Effect.flatMap(readBody(response, maxBytes), (body) =>
    response.status >= 200 && response.status < 300
      ? Effect.succeed(body)
      : // The Clock, not Date.now(): a Retry-After given as an HTTP date is measured on the test's clock too.
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.fail(
            classifyStatus(response.status, response.headers["retry-after"], decoder.decode(body.subarray(0, 4096)), now)
          )
        )
  )

/** A 2xx body read whole, or the first bytes of an image value in it and the rest still arriving (see `ImageTail.ts`). */
export type OpenedAnswer =
  | { readonly _tag: "Whole"; readonly body: Uint8Array }
  | { readonly _tag: "Open"; readonly head: Uint8Array; readonly tail: ImageTail }

/**
 * Like `answerBody`, but a 2xx body whose string value of `key` is large is not read whole: the answer is
 * read up to the value's first bytes, and the rest is left to be passed on as it arrives, bounded by the
 * instance's `maxBytes` and `timeoutMs`. Any other body is read whole, as `answerBody` reads it.
 */
export const openAnswer = (
  response: HttpClientResponse.HttpClientResponse,
  instance: Pick<UpstreamInstance, "maxBytes" | "timeoutMs">,
  key: string
): Effect.Effect<OpenedAnswer, UpstreamFailure> => {
  const ok = response.status >= 200 && response.status < 300
  const declared = response.headers["content-length"]
  const body = Option.flatMapNullishOr(HttpClientResponse.toWeb(response), (web) => web.body)
  if (!ok || Option.isNone(body) || (declared !== undefined && Number(declared) <= HEAD_BYTES)) {
    return Effect.map(answerBody(response, instance.maxBytes), (bytes) => ({ _tag: "Whole", body: bytes }) as const)
  }
  if (declared !== undefined && Number(declared) > instance.maxBytes) return Effect.fail(tooLarge(instance.maxBytes))
  return Effect.tryPromise({
    try: (signal) => openImageValue(body.value, key, instance, signal),
    catch: (cause) => new BodyBrokenOff({ message: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(
    Effect.flatMap((opened) => (opened._tag === "TooLarge" ? Effect.fail(tooLarge(instance.maxBytes)) : Effect.succeed(opened))),
    Effect.catchTag("BodyBrokenOff", (error) => brokenOff(error.message))
  )
}

const BACKSLASH = 0x5c

/**
 * Whether a JSON string's raw content can be copied as the image as it is: not empty, and no escape where
 * the format is detected. Anything else goes through the full decode and `asStringContent`.
 */
export const isPlainSlice = (raw: Uint8Array) => raw.byteLength > 0 && raw.subarray(0, 160).indexOf(BACKSLASH) === -1

const encoder = new TextEncoder()

/** A decoded string as JSON string content, so it can be copied into the answer like a plain slice. */
export const asStringContent = (text: string) => encoder.encode(JSON.stringify(text).slice(1, -1))

/** Network failures are logged, not passed on: their text can name internal hosts. */
export const networkFailure = (error: HttpClientError.HttpClientError) =>
  Effect.logWarning("upstream network error", error.message).pipe(
    Effect.andThen(Effect.fail(new UpstreamUnavailable({ status: null, retryAfterMs: null, detail: null })))
  )

/**
 * One upstream call as the port promises it: each attempt limited to the instance's timeout,
 * retried on the retry policy, and every failure the port's `UpstreamError`, naming the instance.
 * Gives the value with the number of attempts it took.
 */
export const withRetries = (instance: UpstreamInstance) => {
  const policy = upstreamRetryPolicy(instance)
  const timeout = Duration.millis(instance.timeoutMs)
  const timedOut = () => Effect.fail(new UpstreamTimeout({ timeoutMs: instance.timeoutMs }))
  return <A>(
    attempt: Effect.Effect<A, UpstreamFailure>
  ): Effect.Effect<{ readonly value: A; readonly attempts: number }, UpstreamError> => {
    let attempts = 0
    const counted = Effect.suspend(() => {
      attempts++
      return attempt
    }).pipe(Effect.timeoutOrElse({ duration: timeout, orElse: timedOut }))
    return counted.pipe(
      Effect.tapError((failure) =>
        Effect.logWarning("upstream attempt failed", { upstream: instance.id, attempt: attempts, failure: failure._tag })
      ),
      Effect.retry(policy),
      Effect.map((value) => ({ value, attempts })),
      Effect.mapError((reason) => new UpstreamError({ reason, attempts, upstream: instance.id, failovers: 0 }))
    )
  }
}

const DATA_PREFIX = new TextEncoder().encode("data:")

/** Some upstreams answer with a data URL; the image is what follows the comma. */
export const stripDataUrl = (image: Uint8Array) => {
  if (!DATA_PREFIX.every((byte, i) => image[i] === byte)) return image
  const comma = image.subarray(0, 128).indexOf(0x2c)
  return comma === -1 ? image : image.subarray(comma + 1)
}

export interface ImageBytes {
  readonly base64: Uint8Array
  readonly format: ImageFormat
}

const notAnImage = () => new UpstreamMalformed({ detail: "the upstream's image is not PNG, JPEG or WebP" })

/** Base64 text (as ASCII bytes, possibly a data URL) whose first bytes must be a known image. */
export const imageFromBase64 = (text: Uint8Array): ImageBytes | UpstreamMalformed => {
  const base64 = stripDataUrl(text)
  const format = detectBase64ImageFormat(base64)
  return format === undefined ? notAnImage() : { base64, format }
}

/** An image whose first bytes were read: they must be a known image, or its upstream answer is let go. */
export const imageFromOpened = (
  opened: Extract<OpenedAnswer, { _tag: "Open" }>
): (ImageBytes & { readonly tail: ImageTail }) | UpstreamMalformed => {
  const image = imageFromBase64(opened.head)
  if (image instanceof UpstreamMalformed) {
    opened.tail.cancel()
    return image
  }
  return { ...image, tail: opened.tail }
}

/** Raw image bytes, base64-encoded natively (node:buffer is native in workerd; a JavaScript loop costs tens of ms). */
export const imageFromBytes = (bytes: Uint8Array): ImageBytes | UpstreamMalformed => {
  const format = detectImageFormat(bytes)
  if (format === undefined) return notAnImage()
  const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
  return { base64: Buffer.from(base64, "latin1"), format }
}
