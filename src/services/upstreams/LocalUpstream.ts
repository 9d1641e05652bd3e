import * as Effect from "effect/Effect"
import { UpstreamError, UpstreamMalformed, UpstreamRejected } from "../../domain/Errors.ts"
import type { EditInputs } from "../../domain/ImageEdit.ts"
import type { GeneratedImage } from "../../domain/ImageFormat.ts"
import type { ImageSize } from "../../domain/ImageSize.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import type { UpstreamKind } from "./ImageUpstream.ts"
import { decodePng, encodePng, type Rgba } from "./Png.ts"
import { imageFromBytes } from "./UpstreamCalls.ts"

export { encodePng } from "./Png.ts"

/** Longest side the offline model renders; larger requests keep their aspect ratio at this size. */
export const LOCAL_MAX_SIDE = 1024
export const LOCAL_DEFAULT_SIDE = 512

/** FNV-1a: a stable 32-bit seed from the prompt and size. */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** mulberry32: small deterministic PRNG, so the same prompt always paints the same picture. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const previewDimensions = (size: ImageSize): { width: number; height: number } => {
  if (size._tag === "Auto") return { width: LOCAL_DEFAULT_SIDE, height: LOCAL_DEFAULT_SIDE }
  const scale = Math.min(1, LOCAL_MAX_SIDE / Math.max(size.width, size.height))
  return {
    width: Math.max(1, Math.round(size.width * scale)),
    height: Math.max(1, Math.round(size.height * scale))
  }
}

/**
 * Paints an abstract picture: a two-colour diagonal gradient with soft discs,
 * every colour and position drawn from the hash of the prompt, the size and the
 * image's index in its request. Different prompts, and the images of one request,
 * are visibly different; the same request gives identical bytes.
 */
export const renderPreview = (prompt: string, size: ImageSize, index = 0): Promise<Uint8Array> => {
  const { width, height } = previewDimensions(size)
  // The first image keeps the seed it had before images were told apart, so its picture did not change.
  const random = prng(hash(`${prompt}\u0000${width}x${height}${index === 0 ? "" : `\u0000${index}`}`))
  const colour = () => [random() * 255, random() * 255, random() * 255] as const
  const from = colour()
  const to = colour()
  const discs = Array.from({ length: 3 + Math.floor(random() * 5) }, () => ({
    x: random() * width,
    y: random() * height,
    r: (0.1 + random() * 0.3) * Math.min(width, height),
    rgb: colour()
  }))
  const pixels = new Uint8Array(width * height * 3)
  const diagonal = width + height
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x + y) / diagonal
      let r = from[0] + (to[0] - from[0]) * t
      let g = from[1] + (to[1] - from[1]) * t
      let b = from[2] + (to[2] - from[2]) * t
      for (const disc of discs) {
        const dx = x - disc.x
        const dy = y - disc.y
        const d2 = dx * dx + dy * dy
        const r2 = disc.r * disc.r
        if (d2 < r2) {
          const alpha = 0.75 * (1 - d2 / r2)
          r += (disc.rgb[0] - r) * alpha
          g += (disc.rgb[1] - g) * alpha
          b += (disc.rgb[2] - b) * alpha
        }
      }
      const i = (y * width + x) * 3
      pixels[i] = r
      pixels[i + 1] = g
      pixels[i + 2] = b
    }
  }
  return encodePng(width, height, pixels)
}

/** The tint of an edit, from the prompt's hash: the same prompt recolours the same way. */
const tintOf = (prompt: string): readonly [number, number, number] => {
  const h = hash(prompt)
  return [(h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff]
}

/** The edit's size: the requested one (as the preview renders it), or the image's own for `auto`, within the cap. */
const editSize = (size: ImageSize, image: Rgba) =>
  previewDimensions(size._tag === "Auto" ? { _tag: "Exact", width: image.width, height: image.height } : size)

/**
 * The offline model's edit: a real one, made in the Worker with no network. The first image is decoded,
 * resampled to the requested size, and recoloured towards a tint drawn from the prompt (where the mask is
 * transparent, when there is a mask; everywhere otherwise). The same edit gives the same bytes.
 */
export const renderEdit = async (
  prompt: string,
  size: ImageSize,
  inputs: EditInputs,
  index = 0
): Promise<Uint8Array | UpstreamRejected> => {
  const first = inputs.images[0]
  const refused = (detail: string) => new UpstreamRejected({ status: 400, detail, param: "image" })
  if (first === undefined) return refused("an edit needs an image")
  if (first.format !== "png") return refused("local/preview edits PNG images only; convert the image, or use another model")
  const image = await decodePng(new Uint8Array(await first.blob.arrayBuffer()))
  if (image instanceof UpstreamRejected) return image
  const mask = inputs.mask === undefined ? undefined : await decodePng(new Uint8Array(await inputs.mask.blob.arrayBuffer()))
  if (mask instanceof UpstreamRejected) return new UpstreamRejected({ ...mask, param: "mask" })
  const { width, height } = editSize(size, image)
  const tint = tintOf(`${prompt}${index === 0 ? "" : `\u0000${index}`}`)
  const rgb = new Uint8Array(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const source = (Math.floor((y * image.height) / height) * image.width + Math.floor((x * image.width) / width)) * 4
      const editable =
        mask === undefined ||
        mask.data[(Math.floor((y * mask.height) / height) * mask.width + Math.floor((x * mask.width) / width)) * 4 + 3] === 0
      const o = (y * width + x) * 3
      for (let k = 0; k < 3; k++) {
        const value = image.data[source + k]!
        rgb[o + k] = editable ? Math.round(value * 0.4 + tint[k]! * 0.6) : value
      }
    }
  }
  return encodePng(width, height, rgb)
}

/**
 * Kind `local`: the offline model `local/preview`, rendered in the Worker with no network. The
 * built-in instance `local` exists where the offline model is enabled. One image per call.
 */
export const LocalKind: UpstreamKind = {
  kind: "local",
  baseUrl: "none",
  make: (instance) =>
    Effect.succeed({
      instance,
      bind: () => (job: UpstreamJob) =>
        Effect.promise(() =>
          job.inputs === undefined
            ? renderPreview(job.prompt, job.size, job.firstImage ?? 0)
            : renderEdit(job.prompt, job.size, job.inputs, job.firstImage ?? 0)
        ).pipe(
          Effect.flatMap((png): Effect.Effect<ReadonlyArray<GeneratedImage>, UpstreamError> => {
            if (png instanceof UpstreamRejected) {
              return Effect.fail(new UpstreamError({ reason: png, attempts: 1, upstream: instance.id, failovers: 0 }))
            }
            const image = imageFromBytes(png)
            // The renderer writes PNG: only a bug could make this fail.
            if (image instanceof UpstreamMalformed) throw new Error("local/preview rendered an unknown format")
            return Effect.succeed([{ ...image, attempts: 1, upstream: instance.id }])
          })
        )
    })
}
