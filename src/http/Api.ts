import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import { KeyReport } from "../domain/ApiKey.ts"
import { ChatCompletion, ChatCompletionRequest } from "../domain/Chat.ts"
import { ImageEditRequest, ImageVariationRequest } from "../domain/ImageEdit.ts"
import { ImageGenerationRequest, ImagesResponse } from "../domain/ImageGeneration.ts"
import { ModelList, ModelObject } from "../domain/Model.ts"
import { UpstreamHealth, UsageEvent, UsageSummary, UsageWindow } from "../domain/Usage.ts"
import {
  BadRequestWire,
  NotFoundWire,
  PayloadTooLargeWire,
  RateLimitedWire,
  StatsUnavailableWire,
  UpstreamFailedWire,
  UpstreamTimedOutWire,
  UpstreamUnavailableNowWire
} from "./ApiErrors.ts"
import { AdminOnly, Authorization, RequestValidation } from "./Middleware.ts"

/** `x-images-failed`: how many of the `n` images failed when the others succeeded. */
export const ImagesResponseWithHeaders = HttpApiSchema.WithHeaders(ImagesResponse, {
  "x-images-failed": Schema.optional(Schema.String)
})

/** What a generation can answer besides its images: the request's faults, the key's limits, the upstream's failures. */
const GenerationErrors = [
  BadRequestWire,
  NotFoundWire,
  RateLimitedWire,
  UpstreamFailedWire,
  UpstreamTimedOutWire,
  UpstreamUnavailableNowWire
] as const

export const KeysReport = Schema.Struct({ window: UsageWindow, data: Schema.Array(KeyReport) })

/** The edit's multipart form, as /openapi.json shows it (the handler reads the body itself). */
const EditForm = Schema.Struct({
  ...ImageEditRequest.fields,
  image: Schema.Unknown.annotate({ description: "The image to edit (PNG, JPEG or WebP); several as `image[]`." }),
  mask: Schema.optional(Schema.Unknown.annotate({ description: "A PNG whose fully transparent pixels mark where to edit." }))
}).pipe(HttpApiSchema.asMultipart())

const VariationForm = Schema.Struct({
  ...ImageVariationRequest.fields,
  image: Schema.Unknown.annotate({ description: "The image (PNG, JPEG or WebP) to make variations of." })
}).pipe(HttpApiSchema.asMultipart())

/** What an upload endpoint answers besides its images: a generation's errors, and 413 for a file too large. */
const UploadErrors = [...GenerationErrors, PayloadTooLargeWire] as const

export class ImagesApiGroup extends HttpApiGroup.make("images")
  .add(
    HttpApiEndpoint.post("generate", "/images/generations", {
      payload: ImageGenerationRequest,
      success: ImagesResponseWithHeaders,
      error: GenerationErrors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Create images",
        description: "OpenAI-compatible image generation. Each of the `n` images is one upstream call; they run concurrently."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export class EditsApiGroup extends HttpApiGroup.make("edits")
  .add(
    // Described for /openapi.json as OpenAI's multipart form; the handler reads the body itself (the
    // platform's multipart parser, and the JSON form with data URLs), so the files are checked by their bytes.
    HttpApiEndpoint.post("edit", "/images/edits", {
      payload: EditForm,
      success: ImagesResponseWithHeaders,
      error: UploadErrors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Edit images",
        description:
          'OpenAI-compatible image edits: multipart/form-data with `image` (or several as `image[]`), an optional PNG `mask`, `prompt` and the generation fields; or JSON with `images: [{image_url: "data:..."}]`. Each file must be PNG, JPEG or WebP by its bytes, at most MAX_IMAGE_BYTES. Only models whose catalogue entry says `edits` take it.'
      })
    )
  )
  .add(
    HttpApiEndpoint.post("createVariation", "/images/variations", {
      payload: VariationForm,
      success: ImagesResponseWithHeaders,
      error: UploadErrors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Create image variations",
        description:
          "OpenAI-compatible variations: multipart/form-data with one `image` (PNG, JPEG or WebP by its bytes, at most MAX_IMAGE_BYTES), `model`, `n`, `size`, `response_format`. Only models whose catalogue entry says `variations` take it."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export class ChatApiGroup extends HttpApiGroup.make("chat")
  .add(
    HttpApiEndpoint.post("completions", "/chat/completions", {
      payload: ChatCompletionRequest,
      success: ChatCompletion,
      error: GenerationErrors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Chat completions that answer with images",
        description:
          "The last user message is the prompt (trailing `--ar 16:9`, `--size 1792x1024`, `--n 2` set the options); the reply is markdown with one image per line. With `stream: true` the answer is `text/event-stream` of `chat.completion.chunk` objects: a progress line, keep-alive comments while the upstream works, the images, then `[DONE]`."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export class ModelsApiGroup extends HttpApiGroup.make("models")
  .add(HttpApiEndpoint.get("list", "/models", { success: ModelList }))
  .add(
    HttpApiEndpoint.get("retrieve", "/models/:id", {
      params: { id: Schema.String },
      success: ModelObject,
      error: NotFoundWire
    })
  )
  .add(
    // Public ids contain a slash (`replicate/flux-schnell`); SDKs encode it, curl users often do not.
    HttpApiEndpoint.get("retrieveByProvider", "/models/:provider/:name", {
      params: { provider: Schema.String, name: Schema.String },
      success: ModelObject,
      error: NotFoundWire
    }).annotate(OpenApi.Exclude, true)
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export const VERSION = "0.2.0"

/** What the cockpit shows of the deployment: settings that shape behaviour, never a key or header value. */
export const GatewayStatus = Schema.Struct({
  version: Schema.String,
  environment: Schema.Literals(["development", "production"]),
  now: Schema.Int,
  upstreams: Schema.Array(
    Schema.Struct({
      /** The upstream instance (built in, or an `UPSTREAMS` entry). */
      id: Schema.String,
      kind: Schema.String,
      /** Origin and path only: credentials or a query could carry a token. Never the key. */
      baseUrl: Schema.NullOr(Schema.String),
      models: Schema.Int,
      /** This isolate's circuit breaker for the instance (each isolate keeps its own). */
      circuit: Schema.Struct({
        state: Schema.Literals(["closed", "open", "half-open"]),
        failures: Schema.Int,
        retryAfterMs: Schema.NullOr(Schema.Int)
      }),
      health: Schema.NullOr(UpstreamHealth)
    })
  ),
  config: Schema.Struct({
    defaultModel: Schema.String,
    retry: Schema.Struct({ maxAttempts: Schema.Int, backoffMs: Schema.Int, backoffMaxMs: Schema.Int }),
    upstreamTimeoutMs: Schema.Int,
    maxConcurrentUpstream: Schema.Int,
    circuit: Schema.Struct({ failures: Schema.Int, cooldownMs: Schema.Int }),
    hostedImages: Schema.Struct({ enabled: Schema.Boolean, ttlHours: Schema.Int }),
    cache: Schema.Struct({ enabled: Schema.Boolean, ttlSeconds: Schema.Int }),
    usageStats: Schema.Boolean,
    corsOrigins: Schema.Array(Schema.String),
    keepAliveMs: Schema.Int,
    chatProgress: Schema.Boolean,
    logPrompts: Schema.Boolean,
    localModel: Schema.Boolean,
    maxBodyBytes: Schema.Int,
    /** Keys by kind (never a key): API_KEYS, named KEYS, and how many of those have limits. */
    keys: Schema.Struct({ apiKeys: Schema.Int, named: Schema.Int, limited: Schema.Int, limitsFailOpen: Schema.Boolean })
  }),
  models: Schema.Array(
    Schema.Struct({
      id: Schema.String,
      provider: Schema.String,
      upstream: Schema.String,
      upstreamModelId: Schema.String,
      fallbacks: Schema.Array(Schema.String),
      aliases: Schema.Array(Schema.String),
      aspectRatios: Schema.Array(Schema.String),
      description: Schema.NullOr(Schema.String),
      /** Whether it edits images (`/v1/images/edits`). */
      edits: Schema.Boolean
    })
  ),
  /** Why upstream health is missing, when the statistics store is off or down. */
  statsError: Schema.NullOr(Schema.String)
})

export const ProbeRequest = Schema.Struct({
  model: Schema.optional(Schema.NullOr(Schema.String)),
  prompt: Schema.optional(Schema.NullOr(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(1000))))
})

export const ProbeResult = Schema.Struct({
  model: Schema.String,
  upstream: Schema.String,
  ok: Schema.Boolean,
  latencyMs: Schema.Int,
  attempts: Schema.Int,
  outputFormat: Schema.NullOr(Schema.String),
  bytes: Schema.NullOr(Schema.Int),
  /** The error a client would have received, in OpenAI's shape, when the probe failed. */
  error: Schema.NullOr(
    Schema.Struct({
      status: Schema.Int,
      message: Schema.String,
      type: Schema.String,
      code: Schema.NullOr(Schema.String)
    })
  )
})

/** The status cockpit's data. Same keys as the API; the cockpit's own reads are not recorded as usage. */
export class GatewayApiGroup extends HttpApiGroup.make("gateway")
  .add(
    HttpApiEndpoint.get("status", "/gateway/status", { success: GatewayStatus }).annotateMerge(
      OpenApi.annotations({
        summary: "Deployment status",
        description: "Version, upstreams with their last hour of real requests, configuration without secrets, and the catalogue."
      })
    )
  )
  .add(
    HttpApiEndpoint.get("stats", "/gateway/stats", {
      query: { window: Schema.optional(UsageWindow) },
      success: UsageSummary,
      error: StatsUnavailableWire
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Usage statistics",
        description:
          "Requests, images, success rate, p50/p95 latency, errors by type and per-model figures over `window` (1h, 24h, 7d from raw events; 30d from hourly rollups), with a time series."
      })
    )
  )
  .add(
    HttpApiEndpoint.get("requests", "/gateway/requests", {
      query: {
        limit: Schema.optional(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 500 })))
      },
      success: Schema.Struct({ data: Schema.Array(UsageEvent) }),
      error: StatsUnavailableWire
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Recent requests",
        description: "The newest recorded API requests first. Prompts only when LOG_PROMPTS=true."
      })
    )
  )
  .add(
    HttpApiEndpoint.post("probe", "/gateway/probe", {
      payload: ProbeRequest,
      success: ProbeResult,
      error: [NotFoundWire, RateLimitedWire, UpstreamUnavailableNowWire]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Probe an upstream",
        description:
          "Runs one real generation on `model` (default: the default model) and reports its outcome and latency. It is recorded in the statistics like any request."
      })
    )
  )
  .add(
    HttpApiEndpoint.get("keys", "/gateway/keys", {
      query: { window: Schema.optional(UsageWindow) },
      success: KeysReport
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Keys and their usage",
        description:
          "Every key by name (never the key): role, model allow-list, limits, its requests, images, errors and latency over `window`, and the images charged to today's quota (UTC). Admin keys only."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(AdminOnly)
  .middleware(Authorization)
  .prefix("/v1") {}

/** What any key may read about itself: the cockpit's view for a `user` key. */
export class KeyApiGroup extends HttpApiGroup.make("key")
  .add(
    HttpApiEndpoint.get("me", "/me", {
      query: { window: Schema.optional(UsageWindow) },
      success: KeyReport
    }).annotateMerge(
      OpenApi.annotations({
        summary: "This key",
        description:
          "The calling key's name, role, models, limits, usage over `window` and today's quota, as `/v1/gateway/keys` shows it to admins. Any key."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

/** Liveness without a key: says the Worker runs and its configuration loaded, nothing secret (not even the environment). */
export class SystemApiGroup extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/health", {
    success: Schema.Struct({
      status: Schema.Literal("ok"),
      version: Schema.String,
      models: Schema.Int
    })
  })
) {}

export class Api extends HttpApi.make("ai-image-gateway")
  .add(ImagesApiGroup)
  .add(EditsApiGroup)
  .add(ChatApiGroup)
  .add(ModelsApiGroup)
  .add(GatewayApiGroup)
  .add(KeyApiGroup)
  .add(SystemApiGroup)
  .annotateMerge(
    OpenApi.annotations({
      title: "ai-image-gateway",
      description: "OpenAI-compatible image generation gateway on Cloudflare Workers.",
      version: VERSION
    })
  ) {}
