import * as HttpServerResponse from "effect/http/HttpServerResponse"

/** The answer headers a browser may read besides the simple ones: what the SDKs and the cockpit look at. */
export const EXPOSED_HEADERS = ["x-request-id", "x-images-failed", "x-cache", "retry-after", "x-should-retry"].join(", ")

/**
 * CORS for `CORS_ORIGINS` (`*` or a list). The gateway's own, not Effect's `cors` middleware: it must add the
 * same headers to answers the router never produces (the edge's 404/405/413/415), and answer preflights with
 * whatever headers the browser asks for (the SDKs send `X-Stainless-*`).
 */
export const makeCors = (origins: ReadonlyArray<string>) => {
  const anyOrigin = origins.includes("*")
  const headers = (origin: string | undefined): Record<string, string> => {
    if (anyOrigin) return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS }
    if (origin === undefined || !origins.includes(origin)) return { vary: "origin" }
    return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS, vary: "origin" }
  }
  const preflight = (cors: Record<string, string>, requested: string | undefined) =>
    HttpServerResponse.empty({
      status: 204,
      headers: {
        ...cors,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": requested ?? "authorization, content-type",
        "access-control-max-age": "86400"
      }
    })
  return { headers, preflight }
}
