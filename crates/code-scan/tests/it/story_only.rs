//! A repository still entirely on `@ekairos/story`.

use expect_test::expect;

use crate::fixture::{findings, gates, surfaces, Repo};

pub fn story_only_repo() -> Repo {
    let repo = Repo::new();
    repo.file(
        "src/app/api/sales/agent/route.ts",
        r#"import { createStory } from "@ekairos/story";

export async function POST(req: Request) {
  const story = createStory({ name: "sales" });
  return story.run(req);
}
"#,
    )
    .file(
        "src/components/ekairos/agent/Chat.tsx",
        r#""use client";
import { useStory, type StoryValue } from "@ekairos/story";

export function Chat() {
  const s: StoryValue = useStory("sales");
  return <div>{s.status}</div>;
}
"#,
    )
    .file(
        "src/lib/db.ts",
        r#"import { db } from "./instant";

export function useContexts() {
  return db.useQuery({ context_contexts: { context_events: {} } });
}

export function finish(id: string) {
  return db.transact(db.tx.story_executions[id].update({ status: "done" }));
}
"#,
    )
    .file(
        "instant.schema.ts",
        r#"import { i } from "@instantdb/core";

const _schema = i.schema({
  entities: {
    context_contexts: i.entity({ key: i.string().unique().indexed() }),
    context_events: i.entity({ content: i.json() }),
    story_executions: i.entity({ status: i.string() }),
    story_steps: i.entity({ iteration: i.number() }),
    story_parts: i.entity({ part: i.json() }),
  },
  links: {
    stepsExecution: {
      forward: { on: "story_steps", has: "one", label: "execution" },
      reverse: { on: "story_executions", has: "many", label: "steps" },
    },
  },
});

export default _schema;
"#,
    )
    .file("README.md", "Uses @ekairos/story.\n");
    repo
}

#[test]
fn story_only_findings() {
    let repo = story_only_repo();
    expect![[r#"
        instant.schema.ts:5:5 legacyModel context_contexts | property key context_contexts
        instant.schema.ts:5:5 entityDeclaration context_contexts | entity context_contexts declared with .entity(...)
        instant.schema.ts:6:5 legacyModel context_events | property key context_events
        instant.schema.ts:6:5 entityDeclaration context_events | entity context_events declared with .entity(...)
        instant.schema.ts:7:5 legacyModel story_executions | property key story_executions
        instant.schema.ts:7:5 entityDeclaration story_executions | entity story_executions declared with .entity(...)
        instant.schema.ts:8:5 legacyModel story_steps | property key story_steps
        instant.schema.ts:8:5 entityDeclaration story_steps | entity story_steps declared with .entity(...)
        instant.schema.ts:9:5 legacyModel story_parts | property key story_parts
        instant.schema.ts:9:5 entityDeclaration story_parts | entity story_parts declared with .entity(...)
        instant.schema.ts:13:22 legacyModel story_steps | string literal "story_steps"
        instant.schema.ts:14:22 legacyModel story_executions | string literal "story_executions"
        src/app/api/sales/agent/route.ts:1:1 storyImport @ekairos/story import | import of '@ekairos/story'
        src/app/api/sales/agent/route.ts:4:17 storyApi createStory | call of createStory from '@ekairos/story'
        src/components/ekairos/agent/Chat.tsx:2:1 storyImport @ekairos/story import | import of '@ekairos/story'
        src/components/ekairos/agent/Chat.tsx:5:12 storyApi StoryValue | type use of StoryValue from '@ekairos/story'
        src/components/ekairos/agent/Chat.tsx:5:25 storyApi useStory | call of useStory from '@ekairos/story'
        src/lib/db.ts:4:24 legacyModel context_contexts | property key context_contexts
        src/lib/db.ts:4:44 legacyModel context_events | property key context_events
        src/lib/db.ts:8:28 legacyModel story_executions | member access .story_executions
    "#]]
    .assert_eq(&findings(&repo.scan()));
}

#[test]
fn story_only_is_not_ready() {
    let report = story_only_repo().preflight();
    expect![[r#"
        counts.storyImports=2
        counts.threadImports=0
        counts.oldApis=2
        counts.legacyModelRefs=2
        counts.threadModelRefs=0
        counts.endpointFiles=1
        counts.agentFiles=2
        counts.targetAgentEndpoints=1
        counts.endpointStoryRefs=1
        counts.agentStoryRefs=2
        counts.endpointThreadRefs=0
        counts.endpointReactorRefs=0
        counts.agentThreadRefs=0
        counts.agentReactorRefs=0
        counts.endpointMissingThreadEvidence=1
        counts.agentThreadWithoutReactor=0
        counts.scannedFiles=4
        counts.unparsedFiles=0
        readiness.endpointStoryFree=false
        readiness.agentStoryFree=false
        readiness.endpointThreadEvidencePresent=false
        readiness.agentThreadEvidencePresent=false
        readiness.agentReactorEvidencePresent=false
        readiness.targetAgentEndpointsReady=false
        readiness.legacyModelMigrated=false
        readiness.threadModelEvidencePresent=false
        readiness.allFilesParsed=true
        readiness.overall=false
    "#]]
    .assert_eq(&gates(&report));
    expect![[r#"
        endpointStoryRefs: src/app/api/sales/agent/route.ts
        endpointMissingThreadEvidence: src/app/api/sales/agent/route.ts
        agentStoryRefs: src/app/api/sales/agent/route.ts
        agentStoryRefs: src/components/ekairos/agent/Chat.tsx
    "#]]
    .assert_eq(&surfaces(&report));
    assert!(report.has_findings());
    assert_eq!(
        report.findings.story_imports,
        [
            "src/app/api/sales/agent/route.ts:1:import { createStory } from \"@ekairos/story\";",
            "src/components/ekairos/agent/Chat.tsx:2:import { useStory, type StoryValue } from \"@ekairos/story\";",
        ]
    );
}
