import * as Effect from "effect/Effect"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import { readBounded } from "../../domain/Bytes.ts"
import { type EdgeAnswer, errorResponse, pathOf } from "./Responses.ts"
import { takesUpload } from "./Routes.ts"

/**
 * What no endpoint accepts is refused before any handler reads the body: a type that is not JSON (415), a
 * body over `MAX_BODY_BYTES` with or without Content-Length (413), a body that breaks off while it is read
 * (400). Effect's own body limit applies when a handler reads the body; this answers before, in OpenAI's shape.
 */

// Header values come trimmed (Fetch strips the whitespace around them), so the patterns start at the type.
const isJsonContentType = (value: string | undefined) =>
  value === undefined || /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(value)

const isMultipart = (value: string | undefined) => value !== undefined && /^multipart\/form-data\s*;/i.test(value)

/** `application/json` itself (HttpApi decodes only that); a `+json` type is JSON too, and is passed on as it. */
const isPlainJson = (value: string | undefined) => value === undefined || /^application\/json\s*(?:;|$)/i.test(value)

/** What the check decided: an answer of its own, or the request to hand on (a buffered or retyped copy). */
export type Checked = EdgeAnswer | { readonly request: HttpServerRequest.HttpServerRequest }

/**
 * The body check for `MAX_BODY_BYTES`. A plain function: only a body without Content-Length (chunked)
 * needs an effect, to read it within the limit. `undefined`: hand the request on as it is.
 */
export const makeBodyCheck = (maxBodyBytes: number, maxUploadBytes: number) => {
  const tooLarge = (limit: number) =>
    errorResponse(
      413,
      "invalid_request_error",
      `The request body is larger than this gateway accepts (${limit} bytes).`,
      "request_too_large"
    )
  const brokenOff: Checked = errorResponse(
    400,
    "invalid_request_error",
    "The request body could not be read to its end.",
    "invalid_body"
  )

  return (request: HttpServerRequest.HttpServerRequest): Checked | Effect.Effect<Checked> | undefined => {
    if (request.method !== "POST" && request.method !== "PUT" && request.method !== "PATCH") return undefined
    const contentType = request.headers["content-type"]
    // Edits take files: multipart (what the SDKs send) or JSON with data URLs, up to the upload limit.
    const upload = takesUpload(request.method, pathOf(request.url))
    const limit = upload ? maxUploadBytes : maxBodyBytes
    if (upload && isMultipart(contentType)) {
      const declared = request.headers["content-length"]
      return declared !== undefined && Number(declared) > limit ? tooLarge(limit) : undefined
    }
    if (!isJsonContentType(contentType)) {
      return errorResponse(
        415,
        "invalid_request_error",
        upload
          ? `Unsupported Content-Type '${contentType}'. Send the edit as multipart/form-data, or as JSON with 'Content-Type: application/json'.`
          : `Unsupported Content-Type '${contentType}'. Send the request body as JSON with 'Content-Type: application/json'.`,
        "unsupported_media_type"
      )
    }
    const length = request.headers["content-length"]
    const source = request.source as Request
    // `application/vnd.api+json` and the like: the same JSON, handed on as `application/json`.
    const asJson = isPlainJson(contentType) ? undefined : new Headers(source.headers)
    asJson?.set("content-type", "application/json")
    if (length !== undefined && Number(length) > limit) return tooLarge(limit)
    if (length !== undefined || source.body === null) {
      return asJson === undefined ? undefined : { request: HttpServerRequest.fromWeb(new Request(source, { headers: asJson })) }
    }
    // No Content-Length (chunked): read at most the limit, then hand the handlers a buffered copy.
    return Effect.tryPromise(() => readBounded(source.body as ReadableStream<Uint8Array>, limit)).pipe(
      Effect.map(
        (body): Checked =>
          body === undefined
            ? tooLarge(limit)
            : {
                request: HttpServerRequest.fromWeb(new Request(source, { body, headers: asJson ?? source.headers }))
              }
      ),
      // A body that breaks off while it is read: the client's request is incomplete, and says so.
      Effect.catch(() => Effect.succeed(brokenOff))
    )
  }
}
