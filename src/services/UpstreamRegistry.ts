import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import type * as HttpClient from "effect/http/HttpClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { type GatewayMisconfigured, invalidConfiguration } from "../domain/Errors.ts"
import type { UpstreamConfigEntry } from "../domain/Upstream.ts"
import { GatewayConfig, type GatewaySettings } from "./GatewayConfig.ts"
import type { ImageUpstream, UpstreamInstance } from "./upstreams/ImageUpstream.ts"
import { upstreamKinds } from "./upstreams/UpstreamKinds.ts"
import { WorkerBindings } from "./WorkerBindings.ts"

/**
 * The instances that exist without configuration: `ai-sdk` (from `UPSTREAM_URL` and the other
 * `UPSTREAM_*` settings), `local` where the offline model is enabled, and `workers-ai` where the
 * `AI` binding is. An `UPSTREAMS` entry with the same id replaces one of them.
 */
const builtIn = (config: GatewaySettings, hasAi: boolean): Array<UpstreamConfigEntry> => [
  { id: "ai-sdk", kind: "ai-sdk", baseUrl: config.upstreamUrl.href, headers: config.upstreamHeaders },
  ...(config.enableLocalModel ? [{ id: "local", kind: "local" }] : []),
  ...(hasAi ? [{ id: "workers-ai", kind: "workers-ai" }] : [])
]

/** A base URL always ends in `/`, so `images/generations` is appended to its path, never replaces the last segment. */
const parseBaseUrl = (text: string): URL | undefined => {
  try {
    const url = new URL(text)
    if (url.protocol !== "https:" && url.protocol !== "http:") return undefined
    if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`
    return url
  } catch {
    return undefined
  }
}

/** What the status page may show of a base URL: no credentials, no query (either could carry a token). */
export const publicBaseUrl = (url: URL | undefined): string | null => (url === undefined ? null : `${url.origin}${url.pathname}`)

const readSecret = (name: string): Effect.Effect<Option.Option<Redacted.Redacted<string>>> =>
  Config.Redacted(name).pipe(
    Config.option,
    Effect.orElseSucceed(() => Option.none())
  )

/**
 * Turns one entry into an instance: its kind known, its base URL valid where the kind needs one,
 * its secret read from the Worker secret it names. Errors name the entry and the variable, never a value.
 */
const instanceOf = (config: GatewaySettings, entry: UpstreamConfigEntry, configured: boolean) =>
  Effect.gen(function* () {
    const where = configured ? `UPSTREAMS entry '${entry.id}'` : `the built-in upstream '${entry.id}'`
    const kind = upstreamKinds.get(entry.kind)
    if (kind === undefined) {
      const shown = /^[\w.-]{1,40}$/.test(entry.kind) ? `'${entry.kind}'` : "given"
      return yield* invalidConfiguration(
        `${where}: the kind ${shown} is unknown (known: ${[...upstreamKinds.keys()].join(", ")})`
      )
    }
    let baseUrl: URL | undefined
    if (kind.baseUrl !== "none" && entry.baseUrl !== undefined) {
      baseUrl = parseBaseUrl(entry.baseUrl)
      if (baseUrl === undefined) return yield* invalidConfiguration(`${where}: 'baseUrl' must be an http(s) URL`)
    }
    if (kind.baseUrl === "required" && baseUrl === undefined)
      return yield* invalidConfiguration(`${where}: 'baseUrl' is required for kind '${kind.kind}'`)
    let apiKey: Redacted.Redacted<string> | undefined
    if (entry.apiKey !== undefined) {
      const secret = yield* readSecret(entry.apiKey)
      if (Option.isNone(secret)) {
        return yield* invalidConfiguration(
          `${where}: 'apiKey' names the secret ${entry.apiKey}, which is not set (wrangler secret put ${entry.apiKey})`
        )
      }
      apiKey = secret.value
    }
    const instance: UpstreamInstance = {
      id: entry.id,
      kind: kind.kind,
      baseUrl,
      apiKey,
      headers: entry.headers ?? {},
      timeoutMs: entry.timeoutMs ?? config.upstreamTimeoutMs,
      maxAttempts: entry.maxAttempts ?? config.upstreamMaxAttempts,
      backoffMs: entry.backoffMs ?? config.upstreamBackoffMs,
      backoffMaxMs: config.upstreamBackoffMaxMs,
      maxBytes: config.upstreamMaxBytes
    }
    const upstream = yield* kind.make(instance)
    if (typeof upstream === "string") return yield* invalidConfiguration(`${where}: ${upstream}`)
    return upstream
  })

/** Every upstream instance of this deployment, built once per isolate from the built-in ones and `UPSTREAMS`. */
export class UpstreamRegistry extends Context.Service<
  UpstreamRegistry,
  {
    /** In order: the built-in instances, then those only `UPSTREAMS` adds. */
    readonly upstreams: ReadonlyArray<ImageUpstream>
    get(id: string): ImageUpstream | undefined
  }
>()("ai-image-gateway/services/UpstreamRegistry") {
  static readonly layerNoDeps: Layer.Layer<
    UpstreamRegistry,
    GatewayMisconfigured,
    GatewayConfig | WorkerBindings | HttpClient.HttpClient
  > = Layer.effect(
    UpstreamRegistry,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const bindings = yield* WorkerBindings
      const configured = new Map<string, UpstreamConfigEntry>()
      for (const entry of config.upstreams) {
        if (configured.has(entry.id)) return yield* invalidConfiguration(`UPSTREAMS has two entries with the id '${entry.id}'`)
        configured.set(entry.id, entry)
      }
      const defaults = builtIn(config, bindings.ai !== undefined)
      const entries = [
        ...defaults.map((entry) => configured.get(entry.id) ?? entry),
        ...config.upstreams.filter((entry) => !defaults.some((known) => known.id === entry.id))
      ]
      const upstreams: Array<ImageUpstream> = []
      for (const entry of entries) upstreams.push(yield* instanceOf(config, entry, configured.has(entry.id)))
      const byId = new Map(upstreams.map((upstream) => [upstream.instance.id, upstream]))
      return UpstreamRegistry.of({ upstreams, get: (id) => byId.get(id) })
    })
  )

  static readonly layer = this.layerNoDeps.pipe(Layer.provide(FetchHttpClient.layer))
}
