import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { readBounded } from "../../domain/Bytes.ts"
import {
  UpstreamError,
  type UpstreamFailure,
  UpstreamMalformed,
  UpstreamRejected,
  UpstreamTimeout,
  UpstreamUnavailable
} from "../../domain/Errors.ts"
import type { EditInputs } from "../../domain/ImageEdit.ts"
import type { ImageSize } from "../../domain/ImageSize.ts"
import type { ModelEntry } from "../../domain/Model.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import { type AiBinding, WorkerBindings } from "../WorkerBindings.ts"
import type { ImageUpstream, UpstreamInstance, UpstreamKind } from "./ImageUpstream.ts"
import { decodePng, encodePng } from "./Png.ts"
import { type ImageBytes, imageFromBase64, imageFromBytes, withRetries } from "./UpstreamCalls.ts"

/**
 * A catalogue entry's `options` for this kind: the inputs its model accepts, from the model's
 * published schema (some reject unknown keys, so nothing else is sent).
 * - `input`: `json` (most models) or `multipart` (the FLUX.2 models take form data).
 * - `size`: the model takes `width` and `height` within `min`..`max` (multiples of 8 are sent).
 * - `steps`: the name of the steps input, the value sent and the model's cap.
 * - `maxPromptLength`: longer prompts are refused with a 400 instead of being sent.
 * - `editOnly`: an image-to-image model (the entry says `edits`), which cannot generate from a prompt alone.
 * - `strength`: how far an edit may move from the image (0..1), sent with every edit.
 */
const WorkersAiOptions = Schema.Struct({
  input: Schema.optional(Schema.Literals(["json", "multipart"])),
  size: Schema.optional(Schema.Struct({ min: Schema.Int, max: Schema.Int })),
  steps: Schema.optional(
    Schema.Struct({ name: Schema.Literals(["steps", "num_steps"]), value: Schema.Int, max: Schema.optional(Schema.Int) })
  ),
  maxPromptLength: Schema.optional(Schema.Int),
  editOnly: Schema.optional(Schema.Boolean),
  strength: Schema.optional(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })))
})
type WorkersAiOptions = typeof WorkersAiOptions.Type
const decodeOptions = Schema.decodeUnknownOption(WorkersAiOptions)

const bytesOf = async (blob: Blob) => Array.from(new Uint8Array(await blob.arrayBuffer()))

/**
 * An edit's inputs as the image-to-image models take them: the first image's bytes as a number array and, for
 * inpainting, the mask as a PNG whose white marks where to paint (OpenAI's mask marks it by transparency).
 */
export const editInputsFor = async (
  options: WorkersAiOptions,
  inputs: EditInputs
): Promise<Record<string, unknown> | UpstreamRejected> => {
  const first = inputs.images[0]
  if (first === undefined) return new UpstreamRejected({ status: 400, detail: "an edit needs an image", param: "image" })
  const sent: Record<string, unknown> = { image: await bytesOf(first.blob) }
  if (options.strength !== undefined) sent.strength = options.strength
  if (inputs.mask !== undefined) {
    const mask = await decodePng(new Uint8Array(await inputs.mask.blob.arrayBuffer()))
    if (mask instanceof UpstreamRejected) return new UpstreamRejected({ ...mask, param: "mask" })
    const grey = new Uint8Array(mask.width * mask.height * 3)
    for (let p = 0; p < mask.width * mask.height; p++) grey.fill(mask.data[p * 4 + 3] === 0 ? 255 : 0, p * 3, p * 3 + 3)
    sent.mask = Array.from(await encodePng(mask.width, mask.height, grey))
  }
  return sent
}

const roundTo8 = (value: number) => Math.max(8, Math.round(value / 8) * 8)

/** The requested size scaled into the model's bounds, aspect ratio kept; `auto` leaves the model's default. */
export const fitSize = (size: ImageSize, bounds: { readonly min: number; readonly max: number }) => {
  if (size._tag === "Auto") return undefined
  const down = Math.min(1, bounds.max / Math.max(size.width, size.height))
  const up = Math.max(1, bounds.min / Math.min(size.width * down, size.height * down))
  const clamp = (value: number) => Math.min(bounds.max, Math.max(bounds.min, roundTo8(value)))
  return { width: clamp(size.width * down * up), height: clamp(size.height * down * up) }
}

/** The inputs sent for one job: only the fields the entry says its model accepts. */
export const inputsFor = (options: WorkersAiOptions, job: UpstreamJob): Record<string, string | number> => {
  const inputs: Record<string, string | number> = { prompt: job.prompt }
  const size = options.size === undefined ? undefined : fitSize(job.size, options.size)
  if (size !== undefined) {
    inputs.width = size.width
    inputs.height = size.height
  }
  if (options.steps !== undefined) inputs[options.steps.name] = options.steps.value
  return inputs
}

const multipart = async (inputs: Record<string, string | number>) => {
  const form = new FormData()
  for (const [name, value] of Object.entries(inputs)) form.append(name, String(value))
  const encoded = new Response(form)
  return { multipart: { body: encoded.body, contentType: encoded.headers.get("content-type") ?? "multipart/form-data" } }
}

const encoder = new TextEncoder()

/** Text-to-image models answer `{image: base64}` (FLUX, Lucid Origin) or the image's bytes as a stream (Stable Diffusion, Phoenix). */
export const imageOfOutput = async (output: unknown, maxBytes: number): Promise<ImageBytes | UpstreamMalformed> => {
  if (output instanceof ReadableStream) {
    const bytes = await readBounded(output, maxBytes)
    return bytes === undefined
      ? new UpstreamMalformed({ detail: `the upstream's answer is larger than UPSTREAM_MAX_BYTES (${maxBytes} bytes)` })
      : imageFromBytes(bytes)
  }
  if (output instanceof Uint8Array) return imageFromBytes(output)
  if (output instanceof ArrayBuffer) return imageFromBytes(new Uint8Array(output))
  if (Predicate.isObject(output) && typeof output.image === "string" && output.image.length > 0)
    return imageFromBase64(encoder.encode(output.image))
  if (typeof output === "string" && output.length > 0) return imageFromBase64(encoder.encode(output))
  return new UpstreamMalformed({ detail: "Workers AI answered without an image" })
}

/**
 * Workers AI errors carry an internal code in their message ("3040: Capacity temporarily exceeded").
 * Capacity is worth another try; the daily free allocation is not (it fails over at once); a missing
 * model or account access means our configuration is wrong; invalid input is the request's.
 */
export const classifyAiError = (error: unknown): UpstreamFailure => {
  const message = error instanceof Error ? error.message : String(error)
  const code = /\b([35]\d{3})\b/.exec(message)?.[1]
  const detail = message.replace(/^\w*Error:\s*/, "").slice(0, 200)
  switch (code) {
    case "3040":
      return new UpstreamUnavailable({ status: 429, retryAfterMs: null, detail: null })
    case "3036":
      return new UpstreamRejected({ status: 429, detail })
    case "3007":
    case "3008":
      return new UpstreamTimeout({ timeoutMs: null })
    case "5007":
    case "3042":
      return new UpstreamRejected({ status: 404, detail })
    case "3023":
    case "3041":
    case "5016":
    case "5018":
      return new UpstreamRejected({ status: 403, detail })
    case "3003":
    case "5004":
    case "5006":
      return new UpstreamRejected({ status: 400, detail })
    case "3006":
      return new UpstreamRejected({ status: 413, detail })
    default:
      return new UpstreamUnavailable({ status: null, retryAfterMs: null, detail: null })
  }
}

const make = (ai: AiBinding, instance: UpstreamInstance): ImageUpstream => {
  const retried = withRetries(instance)
  const bind = (model: ModelEntry) => {
    const decoded = decodeOptions(model.options ?? {})
    if (Option.isNone(decoded)) {
      return "'options' must be {input?: 'json' | 'multipart', size?: {min, max}, steps?: {name: 'steps' | 'num_steps', value, max?}, maxPromptLength?, editOnly?: boolean, strength?: 0..1}"
    }
    const options = decoded.value
    const { steps } = options
    if (steps !== undefined && steps.max !== undefined && steps.value > steps.max) {
      return `'options.steps.value' must be at most the model's ${steps.max}`
    }
    const attempt = (inputs: Record<string, unknown>): Effect.Effect<ImageBytes, UpstreamFailure> =>
      Effect.tryPromise({
        try: async () =>
          ai.run(
            model.upstreamModelId,
            options.input === "multipart" ? await multipart(inputs as Record<string, string | number>) : inputs
          ),
        catch: classifyAiError
      }).pipe(
        Effect.flatMap((output) =>
          Effect.tryPromise({
            try: () => imageOfOutput(output, instance.maxBytes),
            // After an answer the generation has run: a stream that breaks off is malformed, not worth a rerun.
            catch: () => new UpstreamMalformed({ detail: "Workers AI's answer broke off before its end" })
          })
        ),
        Effect.flatMap((image) => (image instanceof UpstreamMalformed ? Effect.fail(image) : Effect.succeed(image)))
      )
    return (job: UpstreamJob) => {
      if (options.maxPromptLength !== undefined && job.prompt.length > options.maxPromptLength) {
        const reason = new UpstreamRejected({
          status: 400,
          detail: `the prompt is longer than the ${options.maxPromptLength} characters ${model.upstreamModelId} accepts`
        })
        return Effect.fail(new UpstreamError({ reason, attempts: 0, upstream: instance.id, failovers: 0 }))
      }
      const refused = (reason: UpstreamRejected) =>
        Effect.fail(new UpstreamError({ reason, attempts: 0, upstream: instance.id, failovers: 0 }))
      if (options.editOnly === true && job.inputs === undefined) {
        return refused(
          new UpstreamRejected({
            status: 400,
            detail: `${model.id} edits images only: send an image to POST /v1/images/edits`,
            param: "model"
          })
        )
      }
      const edit = job.inputs
      const prepared =
        edit === undefined ? Effect.succeed(inputsFor(options, job)) : Effect.promise(() => editInputsFor(options, edit))
      return Effect.flatMap(prepared, (extra) =>
        extra instanceof UpstreamRejected
          ? refused(extra)
          : retried(attempt(edit === undefined ? extra : { ...inputsFor(options, job), ...extra })).pipe(
              Effect.map(({ value, attempts }) => [{ ...value, attempts, upstream: instance.id }])
            )
      )
    }
  }
  return { instance, bind }
}

/**
 * Kind `workers-ai`: Cloudflare Workers AI through the Worker's `AI` binding (`env.AI.run`). The
 * built-in instance `workers-ai` exists when the binding does. One image per call.
 */
export const WorkersAiKind: UpstreamKind = {
  kind: "workers-ai",
  baseUrl: "none",
  make: (instance) =>
    WorkerBindings.useSync(({ ai }) =>
      ai === undefined ? 'needs the Workers AI binding: add [ai] binding = "AI" to wrangler.toml' : make(ai, instance)
    )
}
