import { Effect, Layer, Option } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { ImageStore } from "../services/ImageStore.ts"
import { errorBody } from "./ApiErrors.ts"

/**
 * `GET`/`HEAD /images/<id>.<ext>`: hosted images, with no API key (Open WebUI
 * downloads URLs and sends its own Authorization header, which is ignored),
 * ETag, immutable caching up to the expiry, and byte ranges.
 */

const notFound = HttpServerResponse.jsonUnsafe(
  errorBody("invalid_request_error", "This image does not exist or has expired.", null, "image_not_found"),
  { status: 404 }
)

const headersOf = (object: R2Object): Record<string, string> => {
  const remaining = Math.max(0, Math.floor((Number(object.customMetadata?.expiresAt ?? 0) - Date.now()) / 1000))
  return {
    "content-type": object.httpMetadata?.contentType ?? "application/octet-stream",
    etag: object.httpEtag,
    "cache-control": `public, max-age=${remaining}, immutable`,
    "accept-ranges": "bytes",
    "last-modified": object.uploaded.toUTCString()
  }
}

/** `Content-Range` for what R2 served: an offset and length, an offset to the end, or a suffix. */
const rangeOf = (range: R2Range, size: number) => {
  if ("suffix" in range && range.suffix !== undefined) {
    const length = Math.min(range.suffix, size)
    return { start: size - length, end: size - 1 }
  }
  const start = "offset" in range && range.offset !== undefined ? range.offset : 0
  const length = "length" in range && range.length !== undefined ? range.length : size - start
  return { start, end: Math.min(size, start + length) - 1 }
}

/** The router serves HEAD through the GET route; HEAD asks R2 for the metadata only. */
const serve = (store: ImageStore["Service"]) =>
  Effect.gen(function* () {
    const { file = "" } = yield* HttpRouter.params
    const request = yield* HttpServerRequest.HttpServerRequest
    const method = request.method === "HEAD" ? "HEAD" : "GET"
    const found =
      method === "HEAD" ? yield* store.head(file) : yield* store.get(file, new Headers(request.headers as Record<string, string>))
    if (Option.isNone(found)) return notFound
    const object = found.value
    const headers = headersOf(object)
    if (method === "HEAD") {
      return HttpServerResponse.empty({ status: 200, headers: { ...headers, "content-length": String(object.size) } })
    }
    if (!("body" in object)) return HttpServerResponse.empty({ status: 304, headers })
    if (request.headers.range !== undefined && object.range !== undefined) {
      const { start, end } = rangeOf(object.range, object.size)
      return HttpServerResponse.raw(object.body, {
        status: 206,
        headers: {
          ...headers,
          "content-range": `bytes ${start}-${end}/${object.size}`,
          "content-length": String(end - start + 1)
        }
      })
    }
    return HttpServerResponse.raw(object.body, { status: 200, headers: { ...headers, "content-length": String(object.size) } })
  })

export const HostedImagesHttp = Layer.unwrap(
  Effect.gen(function* () {
    return HttpRouter.add("GET", "/images/:file", serve(yield* ImageStore))
  })
)
