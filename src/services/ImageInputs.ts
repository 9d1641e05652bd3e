import { Buffer } from "node:buffer"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { InvalidRequest } from "../domain/Errors.ts"
import {
  type EditInputs,
  type InputImage,
  imageFromDataUrl,
  inputImage,
  isDataUrl,
  MAX_INPUT_IMAGES,
  UploadRejected
} from "../domain/ImageEdit.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { ImageStore } from "./ImageStore.ts"
import { readLimited } from "./upstreams/UpstreamCalls.ts"

/** Every problem with a pasted image is the conversation's: a 400 naming `messages`. */
const refused = (message: string) => new InvalidRequest({ message, param: "messages", code: "invalid_value" })
const checked = (image: InputImage | UploadRejected) =>
  image instanceof UploadRejected
    ? Effect.fail(refused(image.message.replace(/^'messages'/, "An image in 'messages'")))
    : Effect.succeed(image)

/**
 * The images pasted into a chat message, as an edit's inputs. A `data:` URL is read as it is; a URL of this
 * gateway's own hosted images is read straight from the bucket; any other URL only when
 * `ALLOW_REMOTE_IMAGE_URLS=true`, and then only `https:`, within `MAX_IMAGE_BYTES` and the upstream timeout,
 * without any of the gateway's keys. Every image is checked by its bytes, as uploads are.
 */
export class ImageInputs extends Context.Service<
  ImageInputs,
  {
    fromUrls(urls: ReadonlyArray<string>, ownOrigin: string): Effect.Effect<EditInputs, InvalidRequest>
  }
>()("ai-image-gateway/services/ImageInputs") {
  static readonly layerNoDeps = Layer.effect(
    ImageInputs,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const store = yield* ImageStore
      const client = yield* HttpClient.HttpClient
      const maxBytes = config.maxImageBytes

      const hosted = (file: string) =>
        Effect.flatMap(store.read(file), (image) =>
          Option.match(image, {
            onNone: () => Effect.fail(refused("An image in 'messages' is no longer hosted by this gateway (it expired).")),
            onSome: (found) =>
              checked(inputImage("messages", Buffer.from(Buffer.from(found.base64).toString("latin1"), "base64"), maxBytes))
          })
        )

      const download = (url: URL) =>
        Effect.gen(function* () {
          const response = yield* client.get(url.toString())
          if (response.status < 200 || response.status >= 300) {
            return yield* refused(`An image in 'messages' could not be downloaded (HTTP ${response.status}).`)
          }
          const bytes = yield* readLimited(response, maxBytes)
          if (bytes === undefined) {
            return yield* refused(
              `An image in 'messages' is larger than this gateway accepts (${maxBytes} bytes; MAX_IMAGE_BYTES).`
            )
          }
          return yield* checked(inputImage("messages", bytes, maxBytes))
        })

      const remote = (url: URL) =>
        download(url).pipe(
          Effect.catchTag(["HttpClientError", "BodyBrokenOff"], () =>
            Effect.fail(refused("An image in 'messages' could not be downloaded."))
          ),
          Effect.timeoutOrElse({
            duration: Duration.millis(config.upstreamTimeoutMs),
            orElse: () => Effect.fail(refused("An image in 'messages' did not download within the upstream timeout."))
          })
        )

      const one = (text: string, ownOrigin: string): Effect.Effect<InputImage, InvalidRequest> => {
        if (isDataUrl(text)) return checked(imageFromDataUrl("messages", text, maxBytes))
        const prefix = `${ownOrigin}/images/`
        if (store.enabled && text.startsWith(prefix) && !text.slice(prefix.length).includes("/")) {
          return hosted(text.slice(prefix.length))
        }
        if (!config.allowRemoteImageUrls) {
          return Effect.fail(
            refused(
              "An image in 'messages' is a URL this gateway does not fetch: paste the image itself (a data: URL), use one of this gateway's hosted image URLs, or set ALLOW_REMOTE_IMAGE_URLS=true."
            )
          )
        }
        const url = URL.canParse(text) ? new URL(text) : undefined
        if (url?.protocol !== "https:") return Effect.fail(refused("An image URL in 'messages' must be https."))
        return remote(url)
      }

      return ImageInputs.of({
        fromUrls: (urls, ownOrigin) =>
          urls.length > MAX_INPUT_IMAGES
            ? Effect.fail(refused(`'messages' may hold at most ${MAX_INPUT_IMAGES} images.`))
            : Effect.map(
                Effect.forEach(urls, (url) => one(url, ownOrigin), { concurrency: "unbounded" }),
                (images) => ({ images })
              )
      })
    })
  )

  static readonly layer = this.layerNoDeps.pipe(Layer.provide(FetchHttpClient.layer))
}
