//! A repository half-way through the migration.

use expect_test::expect;

use crate::fixture::{gates, surfaces, Repo};

pub fn mixed_repo() -> Repo {
    let repo = Repo::new();
    repo.file(
        "src/app/api/sales/agent/route.ts",
        r#"import { createThread, createAiSdkReactor } from "@ekairos/thread";

const thread = createThread({ name: "sales" })
  .reactor(createAiSdkReactor());

export const POST = thread.handler;
"#,
    )
    .file(
        "src/app/api/support/agent/route.ts",
        r#"import { createStory } from "@ekairos/story";
export const POST = createStory({ name: "support" }).handler;
"#,
    )
    .file(
        "src/app/api/orders/agent/route.ts",
        r#"export async function POST() {
  return Response.json({ ok: true });
}
"#,
    )
    .file(
        "src/app/api/sales/agent/stream/route.ts",
        "export const GET = () => new Response(null);\n",
    )
    .file(
        "src/components/ekairos/agent/Chat.tsx",
        r#"export async function start(input: string) {
  return fetch(`/api/thread/start?input=${input}`, { method: "POST" });
}
"#,
    )
    .file(
        "src/lib/domain/sales/agent.config.ts",
        r#"import { createToolReactor } from "./reactors";
import { getThreadRuntime } from "@ekairos/thread/runtime";

export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };
"#,
    )
    .file(
        "src/lib/data.ts",
        r#"export const query = { thread_items: {}, context_events: {} };
export const byKey = (tx: any, id: string) => tx["thread_items"][id];
"#,
    )
    .file(
        "src/instant.schema.ts",
        r#"import { i } from "@instantdb/core";
export default i.schema({
  entities: {
    context_contexts: i.entity({}),
    context_events: i.entity({}),
    thread_threads: i.entity({}),
    thread_contexts: i.entity({}),
    thread_items: i.entity({}),
    thread_executions: i.entity({}),
    thread_steps: i.entity({}),
  },
  links: {},
});
"#,
    );
    repo
}

#[test]
fn mixed_surfaces_and_flags() {
    let report = mixed_repo().preflight();
    expect![[r#"
        endpointStoryRefs: src/app/api/support/agent/route.ts
        endpointThreadRefs: src/app/api/sales/agent/route.ts
        endpointReactorRefs: src/app/api/sales/agent/route.ts
        endpointMissingThreadEvidence: src/app/api/orders/agent/route.ts
        endpointMissingThreadEvidence: src/app/api/support/agent/route.ts
        agentStoryRefs: src/app/api/support/agent/route.ts
        agentThreadRefs: src/app/api/sales/agent/route.ts
        agentThreadRefs: src/components/ekairos/agent/Chat.tsx
        agentThreadRefs: src/lib/domain/sales/agent.config.ts
        agentReactorRefs: src/app/api/sales/agent/route.ts
        agentReactorRefs: src/lib/domain/sales/agent.config.ts
        agentThreadWithoutReactor: src/components/ekairos/agent/Chat.tsx
    "#]]
    .assert_eq(&surfaces(&report));
    expect![[r#"
        counts.storyImports=1
        counts.threadImports=2
        counts.oldApis=1
        counts.legacyModelRefs=1
        counts.threadModelRefs=2
        counts.endpointFiles=4
        counts.agentFiles=6
        counts.targetAgentEndpoints=3
        counts.endpointStoryRefs=1
        counts.agentStoryRefs=1
        counts.endpointThreadRefs=1
        counts.endpointReactorRefs=1
        counts.agentThreadRefs=3
        counts.agentReactorRefs=2
        counts.endpointMissingThreadEvidence=2
        counts.agentThreadWithoutReactor=1
        counts.scannedFiles=8
        counts.unparsedFiles=0
        readiness.endpointStoryFree=false
        readiness.agentStoryFree=false
        readiness.endpointThreadEvidencePresent=true
        readiness.agentThreadEvidencePresent=true
        readiness.agentReactorEvidencePresent=true
        readiness.targetAgentEndpointsReady=false
        readiness.legacyModelMigrated=false
        readiness.threadModelEvidencePresent=true
        readiness.allFilesParsed=true
        readiness.overall=false
    "#]]
    .assert_eq(&gates(&report));
}

#[test]
fn mixed_markdown_lists_every_finding() {
    let repo = mixed_repo();
    let md = repo.preflight().to_markdown();
    let canonical = std::fs::canonicalize(repo.path()).expect("canonical");
    let md = md.replace(&canonical.display().to_string(), "<repo>");
    expect![[r##"
        # Preflight Scan

        - Generated: 2025-01-01T00:00:00Z
        - Repo: `<repo>`
        - Scan root: `src`
        - Files scanned: 8 (0 did not parse)
        - Ready: no

        ## Readiness

        | flag | value |
        |---|---|
        | endpointStoryFree | no |
        | agentStoryFree | no |
        | endpointThreadEvidencePresent | yes |
        | agentThreadEvidencePresent | yes |
        | agentReactorEvidencePresent (informational) | yes |
        | targetAgentEndpointsReady | no |
        | legacyModelMigrated | no |
        | threadModelEvidencePresent | yes |
        | allFilesParsed | yes |
        | overall | no |

        ## Counts

        | counter | value |
        |---|---|
        | storyImports | 1 |
        | threadImports | 2 |
        | oldApis | 1 |
        | legacyModelRefs | 1 |
        | threadModelRefs | 2 |
        | endpointFiles | 4 |
        | agentFiles | 6 |
        | targetAgentEndpoints | 3 |
        | endpointStoryRefs | 1 |
        | agentStoryRefs | 1 |
        | endpointThreadRefs | 1 |
        | endpointReactorRefs | 1 |
        | agentThreadRefs | 3 |
        | agentReactorRefs | 2 |
        | endpointMissingThreadEvidence | 2 |
        | agentThreadWithoutReactor | 1 |
        | scannedFiles | 8 |
        | unparsedFiles | 0 |

        ## Findings

        ### Story imports (1)

        - `src/app/api/support/agent/route.ts:1:1` import of '@ekairos/story': `import { createStory } from "@ekairos/story";`

        ### Story APIs (1)

        - `src/app/api/support/agent/route.ts:2:21` call of createStory from '@ekairos/story': `export const POST = createStory({ name: "support" }).handler;`

        ### Thread imports (2)

        - `src/app/api/sales/agent/route.ts:1:1` import of '@ekairos/thread': `import { createThread, createAiSdkReactor } from "@ekairos/thread";`
        - `src/lib/domain/sales/agent.config.ts:2:1` import of '@ekairos/thread/runtime': `import { getThreadRuntime } from "@ekairos/thread/runtime";`

        ### Thread APIs (3)

        - `src/app/api/sales/agent/route.ts:3:16` call of createThread from '@ekairos/thread': `const thread = createThread({ name: "sales" })`
        - `src/components/ekairos/agent/Chat.tsx:2:17` template literal naming the thread/start endpoint: ``return fetch(`/api/thread/start?input=${input}`, { method: "POST" });``
        - `src/lib/domain/sales/agent.config.ts:4:34` call of getThreadRuntime from '@ekairos/thread/runtime': `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`

        ### Reactor configuration (4)

        - `src/app/api/sales/agent/route.ts:4:4` call of .reactor(...): `.reactor(createAiSdkReactor());`
        - `src/app/api/sales/agent/route.ts:4:12` call of createAiSdkReactor from '@ekairos/thread': `.reactor(createAiSdkReactor());`
        - `src/lib/domain/sales/agent.config.ts:4:54` property reactor: ...: `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`
        - `src/lib/domain/sales/agent.config.ts:4:63` call of createToolReactor: `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`

        ### Legacy model references (code files) (1)

        - `src/lib/data.ts:1:42` property key context_events: `export const query = { thread_items: {}, context_events: {} };`

        ### Thread model references (code files) (2)

        - `src/lib/data.ts:1:24` property key thread_items: `export const query = { thread_items: {}, context_events: {} };`
        - `src/lib/data.ts:2:50` string literal "thread_items": `export const byKey = (tx: any, id: string) => tx["thread_items"][id];`

        ## Surfaces

        ### Endpoint routes with story references (1)

        - `src/app/api/support/agent/route.ts` (lines 1, 2)

        ### Target agent endpoints missing thread evidence (2)

        - `src/app/api/orders/agent/route.ts`
        - `src/app/api/support/agent/route.ts`

        ### Endpoint routes with thread references (1)

        - `src/app/api/sales/agent/route.ts` (lines 1, 3)

        ### Endpoint routes with reactor configuration (1)

        - `src/app/api/sales/agent/route.ts` (line 4)

        ### Agent surfaces with story references (1)

        - `src/app/api/support/agent/route.ts` (lines 1, 2)

        ### Agent surfaces with thread references (3)

        - `src/app/api/sales/agent/route.ts` (lines 1, 3)
        - `src/components/ekairos/agent/Chat.tsx` (line 2)
        - `src/lib/domain/sales/agent.config.ts` (lines 2, 4)

        ### Agent surfaces with reactor configuration (2)

        - `src/app/api/sales/agent/route.ts` (line 4)
        - `src/lib/domain/sales/agent.config.ts` (line 4)

        ### Agent surfaces with thread but no reactor (1)

        - `src/components/ekairos/agent/Chat.tsx`

        ## Files that did not parse (0)

        none
    "##]]
    .assert_eq(&md);
}
