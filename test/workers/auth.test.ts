import { HttpApi } from "effect/http-api"
import { describe, expect, it } from "vitest"
import { Api } from "../../src/http/Api.ts"
import { AdminOnly, Authorization } from "../../src/http/Middleware.ts"
import { call, errorOf } from "./helpers.ts"

/**
 * The auth matrix: every route of the HttpApi definition, read from the definition itself, called without a
 * key, with a wrong key and with a good key. A route added to the contract is in this matrix at once, and a
 * `/v1` route without the Authorization middleware fails it.
 */
const routes: Array<{ method: string; path: string; protectedByKey: boolean; adminOnly: boolean }> = []
HttpApi.reflect(Api, {
  onGroup: () => {},
  onEndpoint: ({ endpoint, middleware }) => {
    routes.push({
      method: endpoint.method,
      path: endpoint.path.replace(/:[A-Za-z]+/g, "local"),
      protectedByKey: (middleware as ReadonlySet<unknown>).has(Authorization),
      adminOnly: (middleware as ReadonlySet<unknown>).has(AdminOnly)
    })
  }
})

const send = (route: (typeof routes)[number], key: string | null) =>
  call(route.path, {
    method: route.method,
    key,
    ...(route.method === "POST" ? { headers: { "content-type": "application/json" }, body: "{}" } : {})
  })

describe("auth matrix (every route of the contract)", () => {
  it("covers the whole contract, and every /v1 route asks for a key", () => {
    expect(routes.length).toBeGreaterThanOrEqual(10)
    for (const route of routes) expect(route.protectedByKey, `${route.method} ${route.path}`).toBe(route.path.startsWith("/v1/"))
  })

  it("every /v1/gateway route, and only those, needs an admin key", () => {
    for (const route of routes)
      expect(route.adminOnly, `${route.method} ${route.path}`).toBe(route.path.startsWith("/v1/gateway/"))
  })

  it.each(routes.map((route) => [`${route.method} ${route.path}`, route] as const))(
    "%s: 401 without a key and with a wrong one, never 401 with a good one",
    async (_, route) => {
      for (const key of [null, "wrong-key", "Bearer test-key", ""]) {
        const response = await send(route, key)
        if (route.protectedByKey) {
          expect(response.status, `key ${JSON.stringify(key)}`).toBe(401)
          expect((await errorOf(response)).type).toBe("invalid_request_error")
        } else {
          expect(response.status, `key ${JSON.stringify(key)}`).not.toBe(401)
          await response.arrayBuffer()
        }
      }
      const good = await send(route, "test-key")
      expect(good.status).not.toBe(401)
      expect(good.status).toBeLessThan(500)
      await good.arrayBuffer()
    }
  )
})
