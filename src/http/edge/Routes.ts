import * as HttpApi from "effect/http-api/HttpApi"
import type { UsageEndpoint } from "../../domain/Usage.ts"
import { Api } from "../Api.ts"

/**
 * The routes of the HttpApi definition, as the edge needs them for what the router never answers itself:
 * telling 405 from 404, and which requests the usage statistics record. Built from the contract, so a new
 * route is known here the moment it is added there.
 */

/** What the statistics record a route as; `undefined`: not recorded (the cockpit's own reads, liveness). */
const recordedAs = (group: string, endpoint: string): UsageEndpoint | undefined => {
  switch (group) {
    case "images":
      return "images"
    case "edits":
      return "edits"
    case "chat":
      return "chat"
    case "models":
      return "models"
    case "gateway":
      return endpoint === "probe" ? "probe" : undefined
    default:
      return undefined
  }
}

interface Route {
  readonly method: string
  readonly pattern: RegExp
  readonly usage: UsageEndpoint | undefined
  /** Takes uploads (multipart or JSON with images), up to the upload limit rather than MAX_BODY_BYTES. */
  readonly upload: boolean
}

const routes: Array<Route> = []
HttpApi.reflect(Api, {
  onGroup: () => {},
  onEndpoint: ({ group, endpoint }) => {
    const source = endpoint.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z]+/g, "[^/]+")
    routes.push({
      method: endpoint.method,
      pattern: new RegExp(`^${source}/?$`),
      usage: recordedAs(group.identifier, endpoint.identifier),
      upload: group.identifier === "edits"
    })
  }
})

/** Whether a request goes to a route that takes uploads. */
export const takesUpload = (method: string, path: string): boolean =>
  routes.some((route) => route.upload && route.method === method && route.pattern.test(path))

/** The methods the API serves at a path, for telling 405 from 404. */
export const allowedMethods = (path: string): ReadonlyArray<string> =>
  routes.filter((route) => route.pattern.test(path)).map((route) => route.method)

/**
 * Which requests the usage statistics record, and as what: the OpenAI API and probes, not the cockpit's own
 * reads, CORS preflights, hosted image downloads or docs. A `/v1` path the API does not serve (any method)
 * is recorded as `unknown`.
 */
export const usageEndpoint = (method: string, path: string): UsageEndpoint | undefined => {
  if (method === "OPTIONS") return undefined
  let known = false
  for (const route of routes) {
    if (!route.pattern.test(path)) continue
    if (route.method === method || (method === "HEAD" && route.method === "GET")) return route.usage
    known = true
  }
  if (known) {
    // A served path with the wrong method: recorded as unknown where the route itself is recorded.
    return routes.some((route) => route.usage !== undefined && route.pattern.test(path)) ? "unknown" : undefined
  }
  return path.startsWith("/v1/") || path === "/v1" ? "unknown" : undefined
}
