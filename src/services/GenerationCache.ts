import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { GeneratedImage } from "../domain/ImageFormat.ts"
import type { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { formatSize, parseSize } from "../domain/ImageSize.ts"
import type { ModelEntry } from "../domain/Model.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { ImageStore, type StoredImage } from "./ImageStore.ts"
import { WorkerBindings } from "./WorkerBindings.ts"

export interface CachedGeneration {
  readonly images: ReadonlyArray<GeneratedImage>
  readonly files: ReadonlyArray<string>
}

const encoder = new TextEncoder()

/** An entry: the hosted files of one answer, in image order. */
const decodeEntry = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Array(Schema.String)))

/** The normalised parameters that make two requests "the same" (model resolved, so aliases share entries). */
export const cacheKey = async (model: ModelEntry, request: ImageGenerationRequest): Promise<string> => {
  const normalised = JSON.stringify([
    model.id,
    request.prompt,
    formatSize(parseSize(request.size)),
    request.quality ?? null,
    request.style ?? null,
    request.n ?? 1
  ])
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(normalised)))
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("")
}

/**
 * Opt-in reuse of earlier images (`CACHE_TTL_SECONDS` > 0 and the `IMAGES`
 * bucket bound). An entry lists the hosted files of one answer; the images
 * themselves live in the ImageStore, kept at least as long as the entry.
 */
export class GenerationCache extends Context.Service<
  GenerationCache,
  {
    readonly enabled: boolean
    lookup(model: ModelEntry, request: ImageGenerationRequest): Effect.Effect<Option.Option<CachedGeneration>>
    /** Stores the images and the entry; gives the stored files (for hosted URLs) in image order. */
    save(
      model: ModelEntry,
      request: ImageGenerationRequest,
      images: ReadonlyArray<GeneratedImage>
    ): Effect.Effect<ReadonlyArray<Option.Option<StoredImage>>>
  }
>()("ai-image-gateway/services/GenerationCache") {
  static readonly layer = Layer.effect(
    GenerationCache,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const bucket = (yield* WorkerBindings).images
      const store = yield* ImageStore
      const ttlMs = config.cacheTtlSeconds * 1000
      if (bucket === undefined || ttlMs === 0 || !store.enabled) {
        return GenerationCache.of({
          enabled: false,
          lookup: () => Effect.succeed(Option.none()),
          save: (_model, _request, images) => Effect.succeed(images.map(() => Option.none()))
        })
      }
      const entryKey = (model: ModelEntry, request: ImageGenerationRequest) =>
        Effect.promise(() => cacheKey(model, request)).pipe(Effect.map((hash) => `cache/${hash}`))

      const lookup = Effect.fnUntraced(function* (model: ModelEntry, request: ImageGenerationRequest) {
        const key = yield* entryKey(model, request)
        // A store that fails to answer is a miss: the request is generated as if nothing were cached.
        const now = yield* Clock.currentTimeMillis
        const text = yield* Effect.tryPromise(async () => {
          const entry = await bucket.get(key)
          return entry === null || Number(entry.customMetadata?.expiresAt ?? 0) <= now ? null : await entry.text()
        }).pipe(Effect.catch((error) => Effect.logWarning("reading a cache entry failed", error).pipe(Effect.as(null))))
        if (text === null) return Option.none<CachedGeneration>()
        const decoded = decodeEntry(text)
        // A corrupt entry is a miss, never a failed request.
        if (Option.isNone(decoded)) return Option.none<CachedGeneration>()
        const files = decoded.value
        const images = yield* Effect.forEach(files, (file) => store.read(file), { concurrency: "unbounded" })
        // An entry whose images are gone is a miss, not a partial answer.
        if (images.some(Option.isNone)) return Option.none<CachedGeneration>()
        return Option.some({ files, images: images.flatMap((image) => (Option.isSome(image) ? [image.value] : [])) })
      })

      const save = Effect.fnUntraced(function* (
        model: ModelEntry,
        request: ImageGenerationRequest,
        images: ReadonlyArray<GeneratedImage>
      ) {
        const stored = yield* Effect.forEach(images, (image) => store.put(image, ttlMs), { concurrency: "unbounded" })
        const files = stored.flatMap((file) => (Option.isSome(file) ? [file.value.file] : []))
        if (files.length === images.length) {
          const key = yield* entryKey(model, request)
          const expiresAt = (yield* Clock.currentTimeMillis) + ttlMs
          yield* Effect.tryPromise(() =>
            bucket.put(key, JSON.stringify(files), { customMetadata: { expiresAt: String(expiresAt) } })
          ).pipe(Effect.catch((error) => Effect.logWarning("writing a cache entry failed", error)))
        }
        return stored
      })

      return GenerationCache.of({ enabled: true, lookup, save })
    })
  )
}
