//! A fully migrated repository: thread runtime, reactors, thread model; the schema still
//! declares the legacy namespaces (as it must during a hot deploy).

use expect_test::expect;

use crate::fixture::{gates, plan_summary, Repo};

pub fn migrated_repo() -> Repo {
    let repo = Repo::new();
    repo.file(
        "src/app/api/sales/agent/route.ts",
        r#"import * as thread from "@ekairos/thread";

export const POST = thread
  .createThread({ name: "sales", reactor: thread.createAiSdkReactor() })
  .handler;
"#,
    )
    .file(
        "src/components/ekairos/agent/Chat.tsx",
        r#""use client";
import { useThread } from "@ekairos/thread/react";

export function Chat({ reactor }: { reactor: unknown }) {
  const t = useThread({ reactor });
  return <div>{t.status}</div>;
}
"#,
    )
    .file(
        "src/lib/threads.ts",
        r#"import { db } from "./instant";
// Before the migration this read story_steps and context_events.
export const useThreads = () => db.useQuery({ thread_threads: { thread_items: {} } });
"#,
    )
    .file(
        "instant.schema.ts",
        r#"import { i } from "@instantdb/core";
const schema = i.schema({
  entities: {
    context_contexts: i.entity({}),
    context_events: i.entity({}),
    story_executions: i.entity({}),
    story_steps: i.entity({}),
    story_parts: i.entity({}),
    thread_threads: i.entity({}),
    thread_contexts: i.entity({}),
    thread_items: i.entity({}),
    thread_executions: i.entity({}),
    thread_steps: i.entity({}),
    thread_parts: i.entity({}),
  },
  links: {
    legacyStepExecution: {
      forward: { on: "story_steps", has: "one", label: "execution" },
      reverse: { on: "story_executions", has: "many", label: "steps" },
    },
  },
});
export default schema;
"#,
    );
    repo
}

#[test]
fn migrated_repo_is_ready() {
    let repo = migrated_repo();
    let report = repo.preflight();
    expect![[r#"
        counts.storyImports=0
        counts.threadImports=2
        counts.oldApis=0
        counts.legacyModelRefs=0
        counts.threadModelRefs=1
        counts.endpointFiles=1
        counts.agentFiles=2
        counts.targetAgentEndpoints=1
        counts.endpointStoryRefs=0
        counts.agentStoryRefs=0
        counts.endpointThreadRefs=1
        counts.endpointReactorRefs=1
        counts.agentThreadRefs=2
        counts.agentReactorRefs=2
        counts.endpointMissingThreadEvidence=0
        counts.agentThreadWithoutReactor=0
        counts.scannedFiles=4
        counts.unparsedFiles=0
        readiness.endpointStoryFree=true
        readiness.agentStoryFree=true
        readiness.endpointThreadEvidencePresent=true
        readiness.agentThreadEvidencePresent=true
        readiness.agentReactorEvidencePresent=true
        readiness.targetAgentEndpointsReady=true
        readiness.legacyModelMigrated=true
        readiness.threadModelEvidencePresent=true
        readiness.allFilesParsed=true
        readiness.overall=true
    "#]]
    .assert_eq(&gates(&report));
    assert!(!report.has_findings());
    let plan = repo.model_plan();
    expect![[r#"
        summary.legacyModelMatches=0
        summary.legacyApiMatches=0
        summary.threadModelMatches=2
        summary.threadApiMatches=4
        summary.reactorMatches=3
        summary.ready=true
        summary.scannedFiles=4
        summary.unparsedFiles=0
        summary.schemaFiles=1
        summary.schemaLegacyEntities=5
        summary.schemaThreadEntities=6
        summary.schemaMissingThreadEntities=0
        Thread Model / thread_threads: 1 in src/lib/threads.ts
        Thread Model / thread_items: 1 in src/lib/threads.ts
        Thread API / @ekairos/thread import: 2 in src/app/api/sales/agent/route.ts, src/components/ekairos/agent/Chat.tsx
        Thread API / createThread: 1 in src/app/api/sales/agent/route.ts
        Thread API / other @ekairos/thread API: 1 in src/components/ekairos/agent/Chat.tsx
        Reactor / reactor factory: 1 in src/app/api/sales/agent/route.ts
        Reactor / reactor field: 2 in src/app/api/sales/agent/route.ts, src/components/ekairos/agent/Chat.tsx
        action: No gaps detected.
    "#]]
    .assert_eq(&plan_summary(&plan));
    assert!(!plan.has_findings());
}

#[test]
fn preflight_json_keeps_the_anchor_fields() {
    let repo = migrated_repo();
    let json = serde_json::to_value(repo.preflight()).expect("json");
    expect![[r#"
        {
          "createdAt": "2025-01-01T00:00:00Z",
          "repo": "<repo>",
          "scanRoot": "src",
          "notes": {
            "purpose": "Static readiness scan of the application for the story -> thread + reactor migration of endpoint and agent surfaces.",
            "scope": "JS/TS files (ts tsx mts cts js jsx mjs cjs) under 'src' of the repository plus root-level instant.schema/instant.perms files, honouring .gitignore; findings come from the syntax tree (comments and unrelated strings are not uses); files that do not parse are listed in parseErrors and scanned as text."
          },
          "counts": {
            "storyImports": 0,
            "threadImports": 2,
            "oldApis": 0,
            "legacyModelRefs": 0,
            "threadModelRefs": 1,
            "endpointFiles": 1,
            "agentFiles": 2,
            "targetAgentEndpoints": 1,
            "endpointStoryRefs": 0,
            "agentStoryRefs": 0,
            "endpointThreadRefs": 1,
            "endpointReactorRefs": 1,
            "agentThreadRefs": 2,
            "agentReactorRefs": 2,
            "endpointMissingThreadEvidence": 0,
            "agentThreadWithoutReactor": 0,
            "scannedFiles": 4,
            "unparsedFiles": 0
          },
          "readiness": {
            "endpointStoryFree": true,
            "agentStoryFree": true,
            "endpointThreadEvidencePresent": true,
            "agentThreadEvidencePresent": true,
            "agentReactorEvidencePresent": true,
            "targetAgentEndpointsReady": true,
            "legacyModelMigrated": true,
            "threadModelEvidencePresent": true,
            "allFilesParsed": true,
            "overall": true
          },
          "findings": {
            "storyImports": [],
            "threadImports": [
              "src/app/api/sales/agent/route.ts:1:import * as thread from \"@ekairos/thread\";",
              "src/components/ekairos/agent/Chat.tsx:2:import { useThread } from \"@ekairos/thread/react\";"
            ],
            "oldApis": [],
            "legacyModelRefs": [],
            "threadModelRefs": [
              "src/lib/threads.ts:3:export const useThreads = () => db.useQuery({ thread_threads: { thread_items: {} } });"
            ],
            "endpointStoryRefs": [],
            "endpointThreadRefs": [
              "src/app/api/sales/agent/route.ts"
            ],
            "endpointReactorRefs": [
              "src/app/api/sales/agent/route.ts"
            ],
            "endpointMissingThreadEvidence": [],
            "agentStoryRefs": [],
            "agentThreadRefs": [
              "src/app/api/sales/agent/route.ts",
              "src/components/ekairos/agent/Chat.tsx"
            ],
            "agentReactorRefs": [
              "src/app/api/sales/agent/route.ts",
              "src/components/ekairos/agent/Chat.tsx"
            ],
            "agentThreadWithoutReactor": []
          },
          "parseErrors": [],
          "evidence": [
            {
              "file": "src/app/api/sales/agent/route.ts",
              "line": 1,
              "column": 1,
              "category": "threadImport",
              "item": "@ekairos/thread import",
              "detail": "import of '@ekairos/thread'",
              "text": "import * as thread from \"@ekairos/thread\";",
              "via": "syntax"
            },
            {
              "file": "src/app/api/sales/agent/route.ts",
              "line": 4,
              "column": 4,
              "category": "threadApi",
              "item": "createThread",
              "detail": "call of thread.createThread from '@ekairos/thread'",
              "text": ".createThread({ name: \"sales\", reactor: thread.createAiSdkReactor() })",
              "via": "syntax"
            },
            {
              "file": "src/app/api/sales/agent/route.ts",
              "line": 4,
              "column": 34,
              "category": "reactor",
              "item": "reactor field",
              "detail": "property reactor: ...",
              "text": ".createThread({ name: \"sales\", reactor: thread.createAiSdkReactor() })",
              "via": "syntax"
            },
            {
              "file": "src/app/api/sales/agent/route.ts",
              "line": 4,
              "column": 50,
              "category": "reactor",
              "item": "reactor factory",
              "detail": "call of thread.createAiSdkReactor from '@ekairos/thread'",
              "text": ".createThread({ name: \"sales\", reactor: thread.createAiSdkReactor() })",
              "via": "syntax"
            },
            {
              "file": "src/components/ekairos/agent/Chat.tsx",
              "line": 2,
              "column": 1,
              "category": "threadImport",
              "item": "@ekairos/thread import",
              "detail": "import of '@ekairos/thread/react'",
              "text": "import { useThread } from \"@ekairos/thread/react\";",
              "via": "syntax"
            },
            {
              "file": "src/components/ekairos/agent/Chat.tsx",
              "line": 5,
              "column": 13,
              "category": "threadApi",
              "item": "other @ekairos/thread API",
              "detail": "call of useThread from '@ekairos/thread/react'",
              "text": "const t = useThread({ reactor });",
              "via": "syntax"
            },
            {
              "file": "src/components/ekairos/agent/Chat.tsx",
              "line": 5,
              "column": 25,
              "category": "reactor",
              "item": "reactor field",
              "detail": "shorthand property { reactor }",
              "text": "const t = useThread({ reactor });",
              "via": "syntax"
            },
            {
              "file": "src/lib/threads.ts",
              "line": 3,
              "column": 47,
              "category": "threadModel",
              "item": "thread_threads",
              "detail": "property key thread_threads",
              "text": "export const useThreads = () => db.useQuery({ thread_threads: { thread_items: {} } });",
              "via": "syntax"
            },
            {
              "file": "src/lib/threads.ts",
              "line": 3,
              "column": 65,
              "category": "threadModel",
              "item": "thread_items",
              "detail": "property key thread_items",
              "text": "export const useThreads = () => db.useQuery({ thread_threads: { thread_items: {} } });",
              "via": "syntax"
            }
          ]
        }"#]]
    .assert_eq(&repo.redact(&json));
}
