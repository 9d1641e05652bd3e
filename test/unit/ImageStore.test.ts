import { Buffer } from "node:buffer"
import { afterAll, assert, beforeAll, beforeEach, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { convertV4MiniflareOptions, Miniflare } from "miniflare"
import type { GeneratedImage, ImageFormat } from "../../src/domain/ImageFormat.ts"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { ModelEntry, type ModelId } from "../../src/domain/Model.ts"
import { GatewayConfig, type GatewaySettings } from "../../src/services/GatewayConfig.ts"
import { cacheKey, GenerationCache } from "../../src/services/GenerationCache.ts"
import { FILE_PATTERN, ImageStore } from "../../src/services/ImageStore.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"

/**
 * Hosted images and the generation cache against Miniflare's R2 (the simulator `wrangler dev` and the
 * workerd tests use), from Node so that `npm run mutants` reaches them, with expiry on the TestClock.
 */
let miniflare: Miniflare
let bucket: R2Bucket

beforeAll(async () => {
  miniflare = new Miniflare(convertV4MiniflareOptions({ modules: true, script: "export default {}", r2Buckets: ["IMAGES"] }))
  bucket = (await miniflare.getR2Bucket("IMAGES")) as unknown as R2Bucket
}, 60_000)
afterAll(() => miniflare?.dispose())

beforeEach(async () => {
  const { objects } = await bucket.list()
  if (objects.length > 0) await bucket.delete(objects.map((object) => object.key))
})

const HOUR = 3_600_000
const image = (text: string, format: ImageFormat = "png"): GeneratedImage => ({
  base64: new Uint8Array(Buffer.from(Buffer.from(text).toString("base64"), "latin1")),
  format,
  attempts: 1
})
const bytesOf = async (object: R2ObjectBody) => Buffer.from(await object.arrayBuffer()).toString()
const textOf = (generated: GeneratedImage) => Buffer.from(Buffer.from(generated.base64).toString("latin1"), "base64").toString()

// Fresh layers: a test that builds a second store (a broken bucket) must not get the memoised first one.
const storeOn = (target: R2Bucket | undefined, settings: Partial<GatewaySettings> = {}) =>
  Layer.fresh(ImageStore.layer).pipe(
    Layer.provide(Layer.mergeAll(GatewayConfig.layerTest(settings), WorkerBindings.layer({ images: target })))
  )
const withStore =
  (settings: Partial<GatewaySettings> = {}, target?: () => R2Bucket) =>
  <A, E>(effect: Effect.Effect<A, E, ImageStore>) =>
    Effect.provide(effect, storeOn(target === undefined ? bucket : target(), settings))

/** The bucket with one method replaced: a store that fails in one way. */
const failing = (method: keyof R2Bucket) => () =>
  new Proxy(bucket, {
    get: (target, key) => (key === method ? () => Promise.reject(new Error("R2 is down")) : Reflect.get(target, key).bind(target))
  })

describe("ImageStore on R2", () => {
  it.effect("is off without a bucket: nothing stored, nothing found", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      assert.isFalse(store.enabled)
      assert.isTrue(Option.isNone(yield* store.put(image("x"))))
      assert.isTrue(Option.isNone(yield* store.read("0123456789abcdef0123456789abcdef.png")))
      assert.isTrue(Option.isNone(yield* store.get("0123456789abcdef0123456789abcdef.png", new Headers())))
      assert.isTrue(Option.isNone(yield* store.head("0123456789abcdef0123456789abcdef.png")))
      assert.strictEqual(yield* store.deleteExpired, 0)
    }).pipe(Effect.provide(storeOn(undefined)))
  )

  it.effect("writes the decoded bytes under an unguessable name with the format's extension and type", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      assert.isTrue(store.enabled)
      const names: Array<string> = []
      for (const [format, extension] of [
        ["png", "png"],
        ["jpeg", "jpg"],
        ["webp", "webp"]
      ] as const) {
        const stored = yield* store.put(image(`bytes of a ${format}`, format))
        assert.isTrue(Option.isSome(stored))
        const file = Option.getOrThrow(stored).file
        names.push(file)
        assert.match(file, FILE_PATTERN)
        assert.isTrue(file.endsWith(`.${extension}`))
        const object = yield* Effect.promise(() => bucket.get(`images/${file.split(".")[0]}`))
        assert.isNotNull(object)
        assert.strictEqual(yield* Effect.promise(() => bytesOf(object as R2ObjectBody)), `bytes of a ${format}`)
        assert.strictEqual(object?.httpMetadata?.contentType, `image/${format}`)
        assert.strictEqual(object?.customMetadata?.file, file)
        assert.strictEqual(object?.customMetadata?.expiresAt, String(24 * HOUR))
        const read = Option.getOrThrow(yield* store.read(file))
        assert.strictEqual(read.format, format)
        assert.strictEqual(textOf(read), `bytes of a ${format}`)
      }
      assert.strictEqual(new Set(names.map((name) => name.slice(0, 32))).size, 3)
    }).pipe(withStore())
  )

  it.effect("stores nothing for an empty image", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      assert.isTrue(Option.isNone(yield* store.put({ base64: new Uint8Array(), format: "png", attempts: 1 })))
      assert.strictEqual((yield* Effect.promise(() => bucket.list())).objects.length, 0)
    }).pipe(withStore())
  )

  it.effect("keeps an image IMAGE_TTL_HOURS, or the longer time a caller asks for, and not one millisecond more", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const file = Option.getOrThrow(yield* store.put(image("short"))).file
      const longer = Option.getOrThrow(yield* store.put(image("long"), 5 * HOUR)).file
      const shorter = Option.getOrThrow(yield* store.put(image("not shorter"), 1000)).file
      yield* TestClock.adjust(2 * HOUR - 1)
      for (const name of [file, longer, shorter]) {
        assert.isTrue(Option.isSome(yield* store.read(name)), name)
        assert.isTrue(Option.isSome(yield* store.head(name)), name)
        assert.isTrue(Option.isSome(yield* store.get(name, new Headers())), name)
      }
      yield* TestClock.adjust(1)
      for (const name of [file, shorter]) {
        assert.isTrue(Option.isNone(yield* store.read(name)), name)
        assert.isTrue(Option.isNone(yield* store.head(name)), name)
        assert.isTrue(Option.isNone(yield* store.get(name, new Headers())), name)
      }
      assert.isTrue(Option.isSome(yield* store.read(longer)))
      yield* TestClock.adjust(3 * HOUR)
      assert.isTrue(Option.isNone(yield* store.read(longer)))
    }).pipe(withStore({ imageTtlHours: 2 }))
  )

  it.effect("finds nothing for a name that is not one of its own, or that names the right id with another format", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const file = Option.getOrThrow(yield* store.put(image("a png"))).file
      const id = file.slice(0, 32)
      for (const name of [
        `${id}.jpg`,
        `${id}.webp`,
        `${id}.PNG`,
        `${id.toUpperCase()}.png`,
        `${id}`,
        `x${id}.png`,
        `${id}.png.png`,
        "../images/x.png",
        "__proto__",
        "constructor.png"
      ]) {
        assert.isTrue(Option.isNone(yield* store.read(name)), name)
        assert.isTrue(Option.isNone(yield* store.head(name)), name)
        assert.isTrue(Option.isNone(yield* store.get(name, new Headers())), name)
      }
      assert.isTrue(Option.isSome(yield* store.read(file)))
    }).pipe(withStore())
  )

  it.effect("answers a range with those bytes, and a matching If-None-Match without a body", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const file = Option.getOrThrow(yield* store.put(image("0123456789"))).file
      const part = Option.getOrThrow(yield* store.get(file, new Headers(), { offset: 2, length: 3 }))
      // (`"body" in` on Miniflare's Node proxy of an object reads its body, so the bytes are read first.)
      assert.strictEqual(yield* Effect.promise(() => bytesOf(part as R2ObjectBody)), "234")
      const whole = Option.getOrThrow(yield* store.get(file, new Headers()))
      assert.strictEqual(yield* Effect.promise(() => bytesOf(whole as R2ObjectBody)), "0123456789")
      const unchanged = Option.getOrThrow(yield* store.get(file, new Headers({ "if-none-match": whole.httpEtag })))
      assert.isFalse("body" in unchanged)
      assert.strictEqual(Option.getOrThrow(yield* store.head(file)).size, 10)
    }).pipe(withStore())
  )

  it.effect("falls back (None) when a write fails", () =>
    Effect.gen(function* () {
      assert.isTrue(Option.isNone(yield* (yield* ImageStore).put(image("x"))))
    }).pipe(withStore({}, failing("put")))
  )

  it.effect("answers a failed read as not found, never as a failure", () =>
    Effect.gen(function* () {
      const file = Option.getOrThrow(yield* (yield* ImageStore).put(image("x"))).file
      const broken = yield* ImageStore.pipe(
        withStore({}, () => new Proxy(bucket, { get: () => () => Promise.reject(new Error("down")) }))
      )
      assert.isTrue(Option.isNone(yield* broken.read(file)))
      assert.isTrue(Option.isNone(yield* broken.head(file)))
      assert.isTrue(Option.isNone(yield* broken.get(file, new Headers())))
    }).pipe(withStore())
  )

  it.effect("deletes what has expired, images and cache entries, page by page, and nothing else", () =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const kept = Option.getOrThrow(yield* store.put(image("kept"), 3 * HOUR)).file
      const gone = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => store.put(image(`gone ${i}`)))
      yield* Effect.promise(async () => {
        await bucket.put("cache/old", "[]", { customMetadata: { expiresAt: String(HOUR) } })
        await bucket.put("cache/new", "[]", { customMetadata: { expiresAt: String(4 * HOUR) } })
        await bucket.put("other/thing", "x", { customMetadata: { expiresAt: "0" } })
      })
      yield* TestClock.adjust(HOUR - 1)
      assert.strictEqual(yield* store.deleteExpired, 0)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* store.deleteExpired, 6)
      const left = (yield* Effect.promise(() => bucket.list())).objects.map((object) => object.key).sort()
      assert.deepStrictEqual(left, ["cache/new", `images/${kept.slice(0, 32)}`, "other/thing"])
      for (const stored of gone) assert.isTrue(Option.isNone(yield* store.read(Option.getOrThrow(stored).file)))
      assert.strictEqual(yield* store.deleteExpired, 0)
    }).pipe(
      withStore(
        { imageTtlHours: 1 },
        () =>
          // Two objects a page, so that the cursor is followed for both prefixes.
          new Proxy(bucket, {
            get: (target, key) =>
              key === "list"
                ? (options: R2ListOptions) => target.list({ ...options, limit: 2 })
                : Reflect.get(target, key).bind(target)
          })
      )
    )
  )
})

const model = (id: string) =>
  new ModelEntry({ id: id as ModelId, upstream: "local", provider: "local", upstreamModelId: id, created: 1, aspectRatios: [] })
const request = (fields: Partial<ConstructorParameters<typeof ImageGenerationRequest>[0]> = {}) =>
  new ImageGenerationRequest({ prompt: "a red fox", n: 2, size: "512x512", ...fields })

const cacheOn = (settings: Partial<GatewaySettings>, target?: () => R2Bucket) => {
  const config = GatewayConfig.layerTest(settings)
  const bindings = WorkerBindings.layer({ images: target === undefined ? bucket : target() })
  return Layer.fresh(GenerationCache.layer).pipe(
    Layer.provideMerge(Layer.fresh(ImageStore.layer)),
    Layer.provide(Layer.mergeAll(config, bindings))
  )
}
const CACHING = { cacheTtlSeconds: 60, imageTtlHours: 1 }

describe("GenerationCache on R2", () => {
  it.effect("is off when CACHE_TTL_SECONDS is 0: no lookup hits, nothing stored", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      assert.isFalse(cache.enabled)
      const stored = yield* cache.save(model("m"), request(), [image("a"), image("b")])
      assert.deepStrictEqual(stored, [Option.none(), Option.none()])
      assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())))
      assert.strictEqual((yield* Effect.promise(() => bucket.list())).objects.length, 0)
    }).pipe(Effect.provide(cacheOn({ cacheTtlSeconds: 0 })))
  )

  it.effect("gives back the same images, in order, for the same request, and misses for any parameter that differs", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      assert.isTrue(cache.enabled)
      const stored = yield* cache.save(model("m"), request(), [image("first", "png"), image("second", "webp")])
      const files = stored.map((file) => Option.getOrThrow(file).file)
      const hit = Option.getOrThrow(yield* cache.lookup(model("m"), request()))
      assert.deepStrictEqual(hit.files, files)
      assert.deepStrictEqual(hit.images.map(textOf), ["first", "second"])
      assert.deepStrictEqual(
        hit.images.map((generated) => generated.format),
        ["png", "webp"]
      )
      // Fields that do not change the picture share the entry.
      assert.isTrue(Option.isSome(yield* cache.lookup(model("m"), request({ response_format: "url", user: "u" }))))
      for (const [name, other] of [
        ["model", [model("other"), request()]],
        ["prompt", [model("m"), request({ prompt: "a blue fox" })]],
        ["size", [model("m"), request({ size: "512x768" })]],
        ["quality", [model("m"), request({ quality: "hd" })]],
        ["style", [model("m"), request({ style: "vivid" })]],
        ["n", [model("m"), request({ n: 1 })]]
      ] as const)
        assert.isTrue(Option.isNone(yield* cache.lookup(other[0], other[1])), name)
    }).pipe(Effect.provide(cacheOn(CACHING)))
  )

  it.effect("keys by the normalised request: a SHA-256 in hex, equal for an absent n and n: 1", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => cacheKey(model("m"), request({ n: 1 })))
      assert.match(key, /^[0-9a-f]{64}$/)
      assert.strictEqual(yield* Effect.promise(() => cacheKey(model("m"), request({ n: undefined }))), key)
      assert.notStrictEqual(yield* Effect.promise(() => cacheKey(model("m"), request({ n: 2 }))), key)
      assert.notStrictEqual(
        yield* Effect.promise(() => cacheKey(model("m"), request({ n: 1, quality: "null" }))),
        key,
        "a quality named null is not an absent one"
      )
    })
  )

  it.effect("expires an entry after CACHE_TTL_SECONDS on the clock", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      yield* cache.save(model("m"), request(), [image("a"), image("b")])
      yield* TestClock.adjust(60_000 - 1)
      assert.isTrue(Option.isSome(yield* cache.lookup(model("m"), request())))
      yield* TestClock.adjust(1)
      assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())))
    }).pipe(Effect.provide(cacheOn(CACHING)))
  )

  it.effect("keeps the images of an entry as long as the entry when that is longer than IMAGE_TTL_HOURS", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      yield* cache.save(model("m"), request(), [image("a"), image("b")])
      yield* TestClock.adjust(3 * HOUR - 1)
      assert.isTrue(Option.isSome(yield* cache.lookup(model("m"), request())))
      yield* TestClock.adjust(1)
      assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())))
    }).pipe(Effect.provide(cacheOn({ cacheTtlSeconds: 3 * 3600, imageTtlHours: 1 })))
  )

  it.effect("misses when an image of the entry is gone", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      const stored = yield* cache.save(model("m"), request(), [image("a"), image("b")])
      const files = stored.map((file) => Option.getOrThrow(file).file)
      yield* Effect.promise(() => bucket.delete(`images/${files[1]?.slice(0, 32)}`))
      assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())))
    }).pipe(Effect.provide(cacheOn(CACHING)))
  )

  it.effect("writes no entry when one of the images fails to store", () => {
    let puts = 0
    return Effect.gen(function* () {
      const cache = yield* GenerationCache
      const stored = yield* cache.save(model("m"), request(), [image("a"), image("b")])
      assert.strictEqual(stored.filter(Option.isSome).length, 1)
      const keys = (yield* Effect.promise(() => bucket.list())).objects.map((object) => object.key)
      assert.deepStrictEqual(
        keys.filter((key) => key.startsWith("cache/")),
        []
      )
      assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())))
    }).pipe(
      Effect.provide(
        cacheOn(
          CACHING,
          () =>
            new Proxy(bucket, {
              get: (target, key) =>
                key === "put"
                  ? (...args: Parameters<R2Bucket["put"]>) =>
                      puts++ === 1 ? Promise.reject(new Error("R2 is down")) : target.put(...args)
                  : Reflect.get(target, key).bind(target)
            })
        )
      )
    )
  })

  it.effect("treats a corrupt entry, or a store that fails to answer, as a miss", () =>
    Effect.gen(function* () {
      const cache = yield* GenerationCache
      const key = `cache/${yield* Effect.promise(() => cacheKey(model("m"), request()))}`
      for (const corrupt of ["not json", '{"a":1}', "[1,2]"]) {
        yield* Effect.promise(() => bucket.put(key, corrupt, { customMetadata: { expiresAt: String(HOUR) } }))
        assert.isTrue(Option.isNone(yield* cache.lookup(model("m"), request())), corrupt)
      }
      const broken = yield* GenerationCache.pipe(Effect.provide(cacheOn(CACHING, failing("get"))))
      yield* cache.save(model("m"), request(), [image("a")])
      assert.isTrue(Option.isSome(yield* cache.lookup(model("m"), request())))
      assert.isTrue(Option.isNone(yield* broken.lookup(model("m"), request())))
    }).pipe(Effect.provide(cacheOn(CACHING)))
  )
})
