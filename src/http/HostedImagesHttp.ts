import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ImageStore } from "../services/ImageStore.ts"
import { errorBody } from "./ApiErrors.ts"

/**
 * `GET`/`HEAD /images/<id>.<ext>`: hosted images, with no API key (Open WebUI
 * downloads URLs and sends its own Authorization header, which is ignored),
 * ETag, immutable caching up to the expiry, and byte ranges.
 */

/** An image is never a document: no type sniffing, and nothing it could contain may run or load. */
const SAFE = { "x-content-type-options": "nosniff", "content-security-policy": "default-src 'none'" }

const notFound = HttpServerResponse.jsonUnsafe(
  errorBody("invalid_request_error", "This image does not exist or has expired.", null, "image_not_found"),
  { status: 404, headers: SAFE }
)

/**
 * One byte range, `bytes=start-end`, `bytes=start-` or `bytes=-suffix`, as far as it can be read without the
 * image's size. Anything else (`bytes=abc`, several ranges) is ignored, and the whole image is answered, as
 * RFC 9110 allows.
 */
export const parseRange = (header: string | undefined): { start?: number; end?: number; suffix?: number } | undefined => {
  const match = header === undefined ? null : /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header)
  if (match === null) return undefined
  const [, from = "", to = ""] = match
  // `bytes=-` and `bytes=-0` ask for nothing.
  if (from === "") return Number(to) === 0 ? undefined : { suffix: Number(to) }
  if (to !== "" && Number(to) < Number(from)) return undefined
  return to === "" ? { start: Number(from) } : { start: Number(from), end: Number(to) }
}

/** The range as R2 takes it, or "unsatisfiable" when it starts past the end. */
export const r2Range = (range: NonNullable<ReturnType<typeof parseRange>>, size: number): R2Range | "unsatisfiable" => {
  if (range.suffix !== undefined) return { suffix: Math.min(range.suffix, size) }
  const start = range.start ?? 0
  if (start >= size) return "unsatisfiable"
  const end = Math.min(range.end ?? size - 1, size - 1)
  return { offset: start, length: end - start + 1 }
}

/** The headers of a hosted image, cacheable until it expires (`now`: the Clock's time). */
const headersOf = (object: R2Object, now: number): Record<string, string> => {
  const remaining = Math.max(0, Math.floor((Number(object.customMetadata?.expiresAt ?? 0) - now) / 1000))
  return {
    ...SAFE,
    "content-type": object.httpMetadata?.contentType ?? "application/octet-stream",
    etag: object.httpEtag,
    "cache-control": `public, max-age=${remaining}, immutable`,
    "accept-ranges": "bytes",
    "last-modified": object.uploaded.toUTCString()
  }
}

/** `Content-Range` for what R2 served: an offset and length, an offset to the end, or a suffix. */
export const rangeOf = (range: R2Range, size: number) => {
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
    const wanted = method === "GET" ? parseRange(request.headers.range) : undefined
    let range: R2Range | undefined
    if (wanted !== undefined) {
      // A range needs the size first, to tell a satisfiable range from one past the end.
      const meta = yield* store.head(file)
      if (Option.isNone(meta)) return notFound
      const resolved = r2Range(wanted, meta.value.size)
      if (resolved === "unsatisfiable") {
        return HttpServerResponse.empty({
          status: 416,
          headers: { ...headersOf(meta.value, yield* Clock.currentTimeMillis), "content-range": `bytes */${meta.value.size}` }
        })
      }
      range = resolved
    }
    const found =
      method === "HEAD"
        ? yield* store.head(file)
        : yield* store.get(file, new Headers(request.headers as Record<string, string>), range)
    if (Option.isNone(found)) return notFound
    const object = found.value
    const headers = headersOf(object, yield* Clock.currentTimeMillis)
    if (method === "HEAD") {
      return HttpServerResponse.empty({ status: 200, headers: { ...headers, "content-length": String(object.size) } })
    }
    if (!("body" in object)) return HttpServerResponse.empty({ status: 304, headers })
    if (range !== undefined && object.range !== undefined) {
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
