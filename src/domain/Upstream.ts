import * as Schema from "effect/Schema"
import type { EditInputs } from "./ImageEdit.ts"
import type { ImageSize } from "./ImageSize.ts"

/**
 * One entry of `UPSTREAMS`: an upstream instance. `apiKey` is the *name* of the Worker
 * secret (or var) that holds the key, never the key itself; `headers` go on every call.
 * Unset numbers take the global `UPSTREAM_*` settings.
 */
export const UpstreamConfigEntry = Schema.Struct({
  id: Schema.String.check(
    Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
      message: "'id' must be 1-64 letters, digits, '.', '_' or '-'"
    })
  ),
  kind: Schema.String,
  baseUrl: Schema.optional(Schema.String),
  apiKey: Schema.optional(
    Schema.String.check(
      Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, {
        message: "'apiKey' must name a Worker secret (for example OPENAI_API_KEY), not hold the key"
      })
    )
  ),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  timeoutMs: Schema.optional(Schema.Int.check(Schema.isGreaterThan(0))),
  maxAttempts: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10 }))),
  backoffMs: Schema.optional(Schema.Int.check(Schema.isGreaterThan(0)))
})
export type UpstreamConfigEntry = typeof UpstreamConfigEntry.Type

/** What one upstream call is asked for: the request's fields that an upstream may honour. */
export interface UpstreamJob {
  readonly prompt: string
  readonly size: ImageSize
  /** Images this call should return: at most the model's `maxN`. */
  readonly n: number
  /** The index, within the client's request, of this call's first image (absent: 0). Seeds `local/preview`. */
  readonly firstImage?: number | undefined
  /**
   * The caller writes each image as its bytes arrive: a kind may then answer with the first bytes of an
   * image and its `tail`, instead of holding the whole image (see `ImageTail.ts`).
   */
  readonly incremental?: boolean | undefined
  /** An edit: the images to edit (and the mask for the first). Only models whose entry says `edits` get one. */
  readonly inputs?: EditInputs | undefined
  readonly quality?: string | undefined
  readonly style?: string | undefined
  readonly background?: string | undefined
  readonly moderation?: string | undefined
  readonly outputFormat?: string | undefined
  readonly outputCompression?: number | undefined
}

/** One call's share of a request's images: how many, and the index of the first in the request. */
export interface ImagePart {
  readonly n: number
  readonly first: number
}

/** `n` images as calls of at most `perCall` images each: sizes `[4, 3]`, first images `[0, 4]` for n = 7, perCall = 4. */
export const splitImages = (n: number, perCall: number): ReadonlyArray<ImagePart> =>
  Array.from({ length: Math.ceil(n / perCall) }, (_, i) => ({ n: Math.min(perCall, n - i * perCall), first: i * perCall }))
