import * as Effect from "effect/Effect"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as Option from "effect/Option"
import type { GeneratedImage } from "../domain/ImageFormat.ts"
import type { GatewaySettings } from "../services/GatewayConfig.ts"
import type { ImageStore } from "../services/ImageStore.ts"

/** Stores an image and gives its https URL; `None` means "use a data URL" (no bucket, or the write failed). */
export type ImageHost = (image: GeneratedImage) => Effect.Effect<Option.Option<string>>

/** `PUBLIC_BASE_URL` (custom domains, proxies) or the request's own origin. */
export const publicOrigin = (config: GatewaySettings) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    return Option.match(config.publicBaseUrl, {
      onSome: (url) => `${url.origin}${url.pathname.replace(/\/+$/, "")}`,
      // On Workers (and in the Node tests) the source is the web Request, whose URL is always absolute.
      onNone: () => new URL((request.source as Request).url).origin
    })
  })

export const hostedUrl = (origin: string, file: string) => `${origin}/images/${file}`

/** The image host for the current request, when the `IMAGES` bucket is bound. */
export const imageHostFor = (store: ImageStore["Service"], config: GatewaySettings) =>
  Effect.gen(function* () {
    if (!store.enabled) return undefined
    const origin = yield* publicOrigin(config)
    const host: ImageHost = (image) => store.put(image).pipe(Effect.map(Option.map((stored) => hostedUrl(origin, stored.file))))
    return host
  })
