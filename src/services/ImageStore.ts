import { Buffer } from "node:buffer"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type GeneratedImage, type ImageFormat, mimeTypeOf } from "../domain/ImageFormat.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { WorkerBindings } from "./WorkerBindings.ts"

export interface StoredImage {
  /** `<id>.<ext>`: the last segment of the image's URL. */
  readonly file: string
}

/** The public file name: 128 random bits in hex, and the extension of the real format. */
export const FILE_PATTERN = /^([0-9a-f]{32})\.(png|jpg|webp)$/

const EXTENSION: Record<ImageFormat, string> = { png: "png", jpeg: "jpg", webp: "webp" }
const KEY_PREFIX = "images/"

const randomId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")
}

const decoder = new TextDecoder()
const FORMAT_OF: Record<string, ImageFormat> = { png: "png", jpg: "jpeg", webp: "webp" }

const expiresAtOf = (object: R2Object) => Number(object.customMetadata?.expiresAt ?? 0)

/**
 * Hosted images on the `IMAGES` R2 bucket: each image is written once under
 * an unguessable id with its real content type and an expiry. Expired images
 * are unreachable at once (reads check the expiry) and deleted by the cron
 * trigger. Without a bucket the store is disabled and callers fall back to
 * `data:` URLs.
 */
export class ImageStore extends Context.Service<
  ImageStore,
  {
    readonly enabled: boolean
    /** Stores the image; `None` when hosting is off or the write failed (the caller falls back to a data URL). */
    put(image: GeneratedImage, ttlMs?: number): Effect.Effect<Option.Option<StoredImage>>
    /** The image as a `GeneratedImage` again (base64), for answering from the cache. */
    read(file: string): Effect.Effect<Option.Option<GeneratedImage>>
    /** The live object for a public file name: `range` of it, and the conditions (`If-None-Match`...) in `onlyIf`. */
    get(file: string, onlyIf: Headers, range?: R2Range): Effect.Effect<Option.Option<R2Object | R2ObjectBody>>
    head(file: string): Effect.Effect<Option.Option<R2Object>>
    /** Deletes every expired image; returns how many. */
    readonly deleteExpired: Effect.Effect<number>
  }
>()("ai-image-gateway/services/ImageStore") {
  /** Without an `IMAGES` bucket: nothing is hosted, and no file exists. */
  static readonly disabled = ImageStore.of({
    enabled: false,
    put: () => Effect.succeed(Option.none()),
    read: () => Effect.succeed(Option.none()),
    get: () => Effect.succeed(Option.none()),
    head: () => Effect.succeed(Option.none()),
    deleteExpired: Effect.succeed(0)
  })

  static readonly layer = Layer.effect(
    ImageStore,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const bucket = (yield* WorkerBindings).images
      const ttlMs = config.imageTtlHours * 3_600_000
      if (bucket === undefined) return ImageStore.disabled
      const keyOf = (file: string) => {
        const match = FILE_PATTERN.exec(file)
        return match === null ? undefined : `${KEY_PREFIX}${match[1]}`
      }
      /** A read that fails is logged and answered as "not found": a hosted image is never worth a 500. */
      const tryRead = <A>(name: string, read: () => Promise<A | null>): Effect.Effect<A | null> =>
        Effect.tryPromise(read).pipe(
          Effect.catch((error) => Effect.logWarning(`reading a hosted image failed (${name})`, error).pipe(Effect.as(null)))
        )
      // Reads compare the expiry with the Clock, so tests can move time instead of waiting for it.
      const live = <O extends R2Object>(object: O | null, file: string): Effect.Effect<Option.Option<O>> =>
        Clock.currentTimeMillis.pipe(
          Effect.map((now) =>
            object === null || expiresAtOf(object) <= now || object.customMetadata?.file !== file
              ? Option.none()
              : Option.some(object)
          )
        )

      const put = Effect.fnUntraced(function* (image: GeneratedImage, imageTtlMs: number = ttlMs) {
        const id = randomId()
        const file = `${id}.${EXTENSION[image.format]}`
        // node:buffer is native in workerd: decoding 1-3 MB of base64 in JavaScript costs tens of milliseconds.
        const bytes = Buffer.from(decoder.decode(image.base64), "base64")
        if (bytes.length === 0) return Option.none<StoredImage>()
        const expiresAt = (yield* Clock.currentTimeMillis) + Math.max(ttlMs, imageTtlMs)
        return yield* Effect.tryPromise(() =>
          bucket.put(`${KEY_PREFIX}${id}`, bytes, {
            httpMetadata: { contentType: mimeTypeOf(image.format) },
            customMetadata: { expiresAt: String(expiresAt), file }
          })
        ).pipe(
          Effect.as(Option.some({ file })),
          Effect.catch((error) =>
            Effect.logWarning("storing an image failed; answering with a data URL", error).pipe(Effect.as(Option.none()))
          )
        )
      })

      const get = (file: string, onlyIf: Headers, range?: R2Range) => {
        const key = keyOf(file)
        if (key === undefined) return Effect.succeed(Option.none<R2Object | R2ObjectBody>())
        return tryRead("get", () => bucket.get(key, { onlyIf, ...(range === undefined ? {} : { range }) })).pipe(
          Effect.flatMap((object) => live<R2Object | R2ObjectBody>(object, file))
        )
      }

      const head = (file: string) => {
        const key = keyOf(file)
        if (key === undefined) return Effect.succeed(Option.none<R2Object>())
        return tryRead("head", () => bucket.head(key)).pipe(Effect.flatMap((object) => live(object, file)))
      }

      const deleteExpired = Effect.gen(function* () {
        let cursor: string | undefined
        let deleted = 0
        const now = yield* Clock.currentTimeMillis
        // Hosted images, and the generation cache's entries, which carry the same expiry metadata.
        for (const prefix of [KEY_PREFIX, "cache/"])
          do {
            const page = yield* Effect.promise(() =>
              bucket.list({ prefix, include: ["customMetadata"], ...(cursor === undefined ? {} : { cursor }) })
            )
            const expired = page.objects.filter((object) => expiresAtOf(object) <= now).map((object) => object.key)
            if (expired.length > 0) yield* Effect.promise(() => bucket.delete(expired))
            deleted += expired.length
            cursor = page.truncated ? page.cursor : undefined
          } while (cursor !== undefined)
        yield* Effect.logInfo("expired images deleted", { deleted })
        return deleted
      }).pipe(Effect.withSpan("ImageStore.deleteExpired"))

      const read = (file: string) => {
        const key = keyOf(file)
        const format = FORMAT_OF[FILE_PATTERN.exec(file)?.[2] ?? ""]
        if (key === undefined || format === undefined) return Effect.succeed(Option.none<GeneratedImage>())
        return tryRead("read", () => bucket.get(key)).pipe(
          Effect.flatMap((object) => live(object, file)),
          Effect.flatMap((found) =>
            Option.isNone(found) ? Effect.succeed(null) : tryRead("read", () => found.value.arrayBuffer())
          ),
          Effect.map((buffer) =>
            buffer === null
              ? Option.none<GeneratedImage>()
              : Option.some({
                  base64: new Uint8Array(Buffer.from(Buffer.from(buffer).toString("base64"), "latin1")),
                  format,
                  attempts: 0
                })
          )
        )
      }

      return ImageStore.of({ enabled: true, put, read, get, head, deleteExpired })
    })
  )
}
