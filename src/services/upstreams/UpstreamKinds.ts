import { AiSdkKind } from "./AiSdkUpstream.ts"
import type { UpstreamKind } from "./ImageUpstream.ts"
import { LocalKind } from "./LocalUpstream.ts"
import { OpenAiKind } from "./OpenAiUpstream.ts"
import { WorkersAiKind } from "./WorkersAiUpstream.ts"

/** Every kind of upstream the gateway can call. A new kind is one file in this folder and one line here. */
export const upstreamKinds: ReadonlyMap<string, UpstreamKind> = new Map(
  [AiSdkKind, OpenAiKind, WorkersAiKind, LocalKind].map((kind) => [kind.kind, kind])
)
