import type { TestProject } from "vitest/node"
import { startFakeUpstream } from "./fakeUpstream.ts"

declare module "vitest" {
  export interface ProvidedContext {
    fakeUpstreamUrl: string
  }
}

/** One fake upstream for the whole run; tests keep apart by the `id` in their prompts. */
export default async function setup(project: TestProject) {
  const upstream = await startFakeUpstream()
  project.provide("fakeUpstreamUrl", upstream.url)
  return () => upstream.close()
}
