import { Effect, Layer } from "effect"
import { encode } from "fast-png"
import { describe, expect, it } from "vitest"
import { GatewayConfig } from "../../src/services/GatewayConfig.ts"
import { ImageInputs } from "../../src/services/ImageInputs.ts"
import { ImageStore } from "../../src/services/ImageStore.ts"
import { type Step, scripted } from "../support/scriptedClient.ts"

const PNG = encode({ width: 1, height: 1, channels: 3, data: Uint8Array.of(9, 9, 9) })
const noBucket = Layer.succeed(ImageStore, ImageStore.disabled)

/** The images of `urls`, or the message of the 400 they get, with remote URLs allowed or not. */
const resolve = (urls: ReadonlyArray<string>, allow: boolean, step: Step = { status: 200, body: PNG }) => {
  const client = scripted(() => step)
  return Effect.runPromise(
    Effect.flatMap(ImageInputs, (inputs) => inputs.fromUrls(urls, "https://gateway.test")).pipe(
      Effect.map((found) => found.images.map((image) => image.format)),
      Effect.catchTag("InvalidRequest", (error) => Effect.succeed(`${error.param}: ${error.message}`)),
      Effect.provide(
        ImageInputs.layerNoDeps.pipe(
          Layer.provide([GatewayConfig.layerTest({ allowRemoteImageUrls: allow, maxImageBytes: 1000 }), noBucket, client.layer])
        )
      )
    )
  ).then((result) => ({ result, calls: client.calls.length }))
}

describe("images pasted into chat", () => {
  it("fetches a remote image only when allowed, only over https, within the size limit, checked by its bytes", async () => {
    const url = "https://images.example/cat.png"
    expect(await resolve([url], false)).toMatchObject({ result: expect.stringContaining("ALLOW_REMOTE_IMAGE_URLS"), calls: 0 })
    expect(await resolve([url], true)).toEqual({ result: ["png"], calls: 1 })
    expect(await resolve(["http://images.example/cat.png"], true)).toMatchObject({
      result: expect.stringContaining("https"),
      calls: 0
    })
    expect((await resolve([url], true, { status: 200, body: new Uint8Array(2000) })).result).toContain("MAX_IMAGE_BYTES")
    expect((await resolve([url], true, { status: 404 })).result).toContain("HTTP 404")
    expect((await resolve([url], true, "network")).result).toContain("could not be downloaded")
    expect((await resolve([url], true, { status: 200, body: "<html>" })).result).toMatch(/^messages: .*PNG, JPEG or WebP/)
  })

  it("reads data URLs without any fetch", async () => {
    const data = `data:image/png;base64,${Buffer.from(PNG).toString("base64")}`
    expect(await resolve([data, data], false)).toEqual({ result: ["png", "png"], calls: 0 })
  })
})
