/** The HttpApi floor as a Worker (see `floor.ts`): its settings from the Worker's environment. */
import { env } from "cloudflare:workers"
import { type FloorSettings, makeFloorHandler } from "./floor.ts"

const handler = makeFloorHandler(env as unknown as FloorSettings)

export default { fetch: (request) => handler(request) } satisfies ExportedHandler
