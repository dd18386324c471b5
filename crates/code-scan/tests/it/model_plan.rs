//! The story -> thread model plan on the fixture repositories.

use expect_test::expect;

use crate::fixture::{plan_summary, Repo};
use crate::mixed::mixed_repo;
use crate::story_only::story_only_repo;

#[test]
fn story_only_plan() {
    let plan = story_only_repo().model_plan();
    expect![[r#"
        summary.legacyModelMatches=3
        summary.legacyApiMatches=5
        summary.threadModelMatches=0
        summary.threadApiMatches=0
        summary.reactorMatches=0
        summary.ready=false
        summary.scannedFiles=4
        summary.unparsedFiles=0
        summary.schemaFiles=1
        summary.schemaLegacyEntities=5
        summary.schemaThreadEntities=0
        summary.schemaMissingThreadEntities=6
        Legacy Model / context_contexts: 1 in src/lib/db.ts
        Legacy Model / context_events: 1 in src/lib/db.ts
        Legacy Model / story_executions: 1 in src/lib/db.ts
        Legacy API / @ekairos/story import: 2 in src/app/api/sales/agent/route.ts, src/components/ekairos/agent/Chat.tsx
        Legacy API / useStory: 1 in src/components/ekairos/agent/Chat.tsx
        Legacy API / createStory: 1 in src/app/api/sales/agent/route.ts
        Legacy API / StoryValue: 1 in src/components/ekairos/agent/Chat.tsx
        action: Write and run a dataset transform for the legacy namespaces the code still references (3 references): extract, transform, apply, verify.
        action: Replace the story runtime APIs (imports of @ekairos/story, useStory, createStory, storyRunner, StoryValue) with their thread equivalents (5 uses).
        action: Add thread model reads/writes (thread_* namespaces): none found in code.
        action: Adopt the thread runtime (@ekairos/thread, createThread, getThreadRuntime or the thread/start endpoint): none found in code.
        action: Declare the missing thread namespaces in the schema: thread_threads, thread_contexts, thread_items, thread_executions, thread_steps, thread_parts.
    "#]]
    .assert_eq(&plan_summary(&plan));
    expect![[r#"
        {
          "files": [
            "instant.schema.ts"
          ],
          "declaredEntities": [
            {
              "name": "context_contexts",
              "file": "instant.schema.ts",
              "line": 5,
              "model": "legacy"
            },
            {
              "name": "context_events",
              "file": "instant.schema.ts",
              "line": 6,
              "model": "legacy"
            },
            {
              "name": "story_executions",
              "file": "instant.schema.ts",
              "line": 7,
              "model": "legacy"
            },
            {
              "name": "story_steps",
              "file": "instant.schema.ts",
              "line": 8,
              "model": "legacy"
            },
            {
              "name": "story_parts",
              "file": "instant.schema.ts",
              "line": 9,
              "model": "legacy"
            }
          ],
          "legacyEntities": [
            "context_contexts",
            "context_events",
            "story_executions",
            "story_steps",
            "story_parts"
          ],
          "threadEntities": [],
          "missingThreadEntities": [
            "thread_threads",
            "thread_contexts",
            "thread_items",
            "thread_executions",
            "thread_steps",
            "thread_parts"
          ],
          "references": [
            {
              "name": "story_steps",
              "file": "instant.schema.ts",
              "line": 13,
              "raw": "forward: { on: \"story_steps\", has: \"one\", label: \"execution\" },"
            },
            {
              "name": "story_executions",
              "file": "instant.schema.ts",
              "line": 14,
              "raw": "reverse: { on: \"story_executions\", has: \"many\", label: \"steps\" },"
            }
          ]
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&plan.schema).expect("json"));
}

#[test]
fn mixed_plan() {
    let plan = mixed_repo().model_plan();
    expect![[r#"
        summary.legacyModelMatches=1
        summary.legacyApiMatches=2
        summary.threadModelMatches=2
        summary.threadApiMatches=5
        summary.reactorMatches=4
        summary.ready=false
        summary.scannedFiles=8
        summary.unparsedFiles=0
        summary.schemaFiles=1
        summary.schemaLegacyEntities=2
        summary.schemaThreadEntities=5
        summary.schemaMissingThreadEntities=1
        Legacy Model / context_events: 1 in src/lib/data.ts
        Legacy API / @ekairos/story import: 1 in src/app/api/support/agent/route.ts
        Legacy API / createStory: 1 in src/app/api/support/agent/route.ts
        Thread Model / thread_items: 2 in src/lib/data.ts
        Thread API / @ekairos/thread import: 2 in src/app/api/sales/agent/route.ts, src/lib/domain/sales/agent.config.ts
        Thread API / createThread: 1 in src/app/api/sales/agent/route.ts
        Thread API / getThreadRuntime: 1 in src/lib/domain/sales/agent.config.ts
        Thread API / thread/start rpc: 1 in src/components/ekairos/agent/Chat.tsx
        Reactor / reactor builder: 1 in src/app/api/sales/agent/route.ts
        Reactor / reactor factory: 2 in src/app/api/sales/agent/route.ts, src/lib/domain/sales/agent.config.ts
        Reactor / reactor field: 1 in src/lib/domain/sales/agent.config.ts
        action: Write and run a dataset transform for the legacy namespaces the code still references (1 reference): extract, transform, apply, verify.
        action: Replace the story runtime APIs (imports of @ekairos/story, useStory, createStory, storyRunner, StoryValue) with their thread equivalents (2 uses).
        action: Declare the missing thread namespaces in the schema: thread_parts.
    "#]]
    .assert_eq(&plan_summary(&plan));
}

#[test]
fn plan_json_shape() {
    let repo = Repo::new();
    repo.file(
        "src/app/api/a/agent/route.ts",
        "import { createStory } from \"@ekairos/story\";\nexport const r = createStory({}).reactor(1);\ndb.tx.story_steps;\n",
    );
    let plan = repo.model_plan();
    let json = serde_json::to_value(&plan).expect("json");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "repo",
            "scanRoot",
            "mapping",
            "findings",
            "summary",
            "actionItems",
            "schema",
            "parseErrors"
        ]
    );
    let legacy_model = &json["findings"]["sections"][0];
    expect![[r#"
        {
          "title": "Legacy Model",
          "totalMatches": 1,
          "totalFiles": 1,
          "sample": [
            "src/app/api/a/agent/route.ts:3"
          ],
          "items": [
            {
              "name": "context_contexts",
              "pattern": "context_contexts as an object/type key, a member (.context_contexts) or a string literal, in code files",
              "matches": 0,
              "filesCount": 0,
              "files": [],
              "entries": [],
              "sample": []
            },
            {
              "name": "context_events",
              "pattern": "context_events as an object/type key, a member (.context_events) or a string literal, in code files",
              "matches": 0,
              "filesCount": 0,
              "files": [],
              "entries": [],
              "sample": []
            },
            {
              "name": "story_executions",
              "pattern": "story_executions as an object/type key, a member (.story_executions) or a string literal, in code files",
              "matches": 0,
              "filesCount": 0,
              "files": [],
              "entries": [],
              "sample": []
            },
            {
              "name": "story_steps",
              "pattern": "story_steps as an object/type key, a member (.story_steps) or a string literal, in code files",
              "matches": 1,
              "filesCount": 1,
              "files": [
                "src/app/api/a/agent/route.ts"
              ],
              "entries": [
                {
                  "file": "src/app/api/a/agent/route.ts",
                  "line": 3,
                  "raw": "db.tx.story_steps;",
                  "column": 7,
                  "detail": "member access .story_steps",
                  "via": "syntax"
                }
              ],
              "sample": [
                "src/app/api/a/agent/route.ts:3"
              ]
            },
            {
              "name": "story_parts",
              "pattern": "story_parts as an object/type key, a member (.story_parts) or a string literal, in code files",
              "matches": 0,
              "filesCount": 0,
              "files": [],
              "entries": [],
              "sample": []
            }
          ]
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(legacy_model).expect("json"));
    expect![[r#"
        {
          "entities": [
            {
              "from": "context_contexts",
              "to": [
                "thread_contexts",
                "thread_threads"
              ],
              "notes": "One legacy context becomes one thread context plus one thread, linked together."
            },
            {
              "from": "context_events",
              "to": [
                "thread_items"
              ],
              "notes": "Keep event ids and content parts."
            },
            {
              "from": "story_executions",
              "to": [
                "thread_executions"
              ],
              "notes": "Keep workflowRunId and status; link the execution to its context and thread."
            },
            {
              "from": "story_steps",
              "to": [
                "thread_steps"
              ],
              "notes": "Keep iteration, event ids and tool metadata."
            },
            {
              "from": "story_parts",
              "to": [
                "thread_parts"
              ],
              "notes": "Keep the parts of each step."
            }
          ]
        }"#]]
    .assert_eq(&repo.redact(&json["mapping"]));
}

#[test]
fn plan_markdown() {
    let repo = mixed_repo();
    let md = repo.model_plan().to_markdown();
    let canonical = std::fs::canonicalize(repo.path()).expect("canonical");
    expect![[r##"
        # Story -> Thread Model Migration Plan

        - Generated: 2025-01-01T00:00:00Z
        - Repo: `<repo>`
        - Scan root: `src`

        ## Summary

        - Legacy model matches: 1
        - Legacy API matches: 2
        - Thread model matches: 2
        - Thread API matches: 5
        - Reactor matches (informational): 4
        - Ready for thread runtime: no
        - Files scanned: 8 (0 did not parse)

        ## Entity Mapping

        | Legacy | Target | Notes |
        |---|---|---|
        | `context_contexts` | `thread_contexts`, `thread_threads` | One legacy context becomes one thread context plus one thread, linked together. |
        | `context_events` | `thread_items` | Keep event ids and content parts. |
        | `story_executions` | `thread_executions` | Keep workflowRunId and status; link the execution to its context and thread. |
        | `story_steps` | `thread_steps` | Keep iteration, event ids and tool metadata. |
        | `story_parts` | `thread_parts` | Keep the parts of each step. |

        ## Action Items

        1. Write and run a dataset transform for the legacy namespaces the code still references (1 reference): extract, transform, apply, verify.
        2. Replace the story runtime APIs (imports of @ekairos/story, useStory, createStory, storyRunner, StoryValue) with their thread equivalents (2 uses).
        3. Declare the missing thread namespaces in the schema: thread_parts.

        ## Findings

        ### Legacy Model

        - Matches: 1
        - Files: 1

        #### context_events (1 match in 1 file)

        - `src/lib/data.ts:1` property key context_events: `export const query = { thread_items: {}, context_events: {} };`

        ### Legacy API

        - Matches: 2
        - Files: 1

        #### @ekairos/story import (1 match in 1 file)

        - `src/app/api/support/agent/route.ts:1` import of '@ekairos/story': `import { createStory } from "@ekairos/story";`

        #### createStory (1 match in 1 file)

        - `src/app/api/support/agent/route.ts:2` call of createStory from '@ekairos/story': `export const POST = createStory({ name: "support" }).handler;`

        ### Thread Model

        - Matches: 2
        - Files: 1

        #### thread_items (2 matches in 1 file)

        - `src/lib/data.ts:1` property key thread_items: `export const query = { thread_items: {}, context_events: {} };`
        - `src/lib/data.ts:2` string literal "thread_items": `export const byKey = (tx: any, id: string) => tx["thread_items"][id];`

        ### Thread API

        - Matches: 5
        - Files: 3

        #### @ekairos/thread import (2 matches in 2 files)

        - `src/app/api/sales/agent/route.ts:1` import of '@ekairos/thread': `import { createThread, createAiSdkReactor } from "@ekairos/thread";`
        - `src/lib/domain/sales/agent.config.ts:2` import of '@ekairos/thread/runtime': `import { getThreadRuntime } from "@ekairos/thread/runtime";`

        #### createThread (1 match in 1 file)

        - `src/app/api/sales/agent/route.ts:3` call of createThread from '@ekairos/thread': `const thread = createThread({ name: "sales" })`

        #### getThreadRuntime (1 match in 1 file)

        - `src/lib/domain/sales/agent.config.ts:4` call of getThreadRuntime from '@ekairos/thread/runtime': `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`

        #### thread/start rpc (1 match in 1 file)

        - `src/components/ekairos/agent/Chat.tsx:2` template literal naming the thread/start endpoint: ``return fetch(`/api/thread/start?input=${input}`, { method: "POST" });``

        ### Reactor

        - Matches: 4
        - Files: 2

        #### reactor builder (1 match in 1 file)

        - `src/app/api/sales/agent/route.ts:4` call of .reactor(...): `.reactor(createAiSdkReactor());`

        #### reactor factory (2 matches in 2 files)

        - `src/app/api/sales/agent/route.ts:4` call of createAiSdkReactor from '@ekairos/thread': `.reactor(createAiSdkReactor());`
        - `src/lib/domain/sales/agent.config.ts:4` call of createToolReactor: `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`

        #### reactor field (1 match in 1 file)

        - `src/lib/domain/sales/agent.config.ts:4` property reactor: ...: `export const config = { runtime: getThreadRuntime(), reactor: createToolReactor() };`

        ## Schema

        - Files: `src/instant.schema.ts`
        - Legacy entities declared: `context_contexts`, `context_events`
        - Thread entities declared: `thread_threads`, `thread_contexts`, `thread_items`, `thread_executions`, `thread_steps`
        - Thread entities missing: `thread_parts`
        - `src/instant.schema.ts:4` declares `context_contexts` (legacy)
        - `src/instant.schema.ts:5` declares `context_events` (legacy)
        - `src/instant.schema.ts:6` declares `thread_threads` (thread)
        - `src/instant.schema.ts:7` declares `thread_contexts` (thread)
        - `src/instant.schema.ts:8` declares `thread_items` (thread)
        - `src/instant.schema.ts:9` declares `thread_executions` (thread)
        - `src/instant.schema.ts:10` declares `thread_steps` (thread)

        ## Files that did not parse (0)

        none
    "##]]
    .assert_eq(&md.replace(&canonical.display().to_string(), "<repo>"));
}
