//! Aliases, comments, strings, re-exports, dynamic import, require, syntax errors, ignored
//! files: what counts as a use and what does not.

use expect_test::expect;

use crate::fixture::{findings, Repo};

fn tricky_repo() -> Repo {
    let repo = Repo::new();
    repo.file(".gitignore", "src/lib/generated/\n*.local.ts\n")
        .file(
            "src/lib/comments.ts",
            r#"// import { useStory } from "@ekairos/story";
/* createStory({ name: "x" }); storyRunner(); reactor: 1 */
const doc = "we used @ekairos/story before; story_steps are gone";
const note = `useStory() and createThread() are just words here`;
export const x = { doc, note };
"#,
        )
        .file(
            "src/lib/aliased.ts",
            r#"import { useStory as useLegacy, StoryValue as SV } from "@ekairos/story";
import Story from "@ekairos/story/server";

export function f(): SV {
  Story.run();
  return useLegacy();
}
"#,
        )
        .file(
            "src/lib/reexport.ts",
            r#"export * from "@ekairos/story";
export * as legacy from "@ekairos/story";
export { createStory as make } from "@ekairos/story/server";
export type { StoryValue } from "@ekairos/story";
"#,
        )
        .file(
            "src/lib/dynamic.ts",
            r#"export async function load() {
  const mod = await import("@ekairos/story");
  const { createThread: ct } = await import(`@ekairos/thread`);
  ct();
  return mod.createStory({});
}
"#,
        )
        .file(
            "src/lib/legacy.cjs",
            r#"const { useStory: us } = require("@ekairos/story");
const S = require("@ekairos/story").storyRunner;
module.exports = () => { us(); S(); };
"#,
        )
        .file(
            "src/lib/sloppy.js",
            r#"var thread = require("@ekairos/thread");
with (thread) { createThread(); }
"#,
        )
        .file(
            "src/lib/types.ts",
            r#"export type T = import("@ekairos/story").StoryValue;
import type * as S from "@ekairos/story";
export type U = S.StoryValue;
import legacy = require("@ekairos/story");
legacy.useStory();
"#,
        )
        .file(
            "src/lib/provider.jsx",
            r#"import { StoryProvider } from "@ekairos/story/react";
export const App = () => <StoryProvider>{"story_parts"}</StoryProvider>;
"#,
        )
        .file(
            "src/lib/lookalikes.ts",
            r#"import { x } from "@ekairos/storybook";
import { y } from "ekairos/story";
import { z } from "../story";
const o = { story_stepsCount: 1, "story_steps.count": 2 };
export const r = o.reactorCount + x + y + z;
"#,
        )
        .file(
            "src/lib/broken.ts",
            "import { createStory } from \"@ekairos/story\";\nexport const = ;\n",
        )
        .bytes(
            "src/lib/latin1.ts",
            b"// caf\xe9\nimport \"@ekairos/thread\";\n",
        )
        .file(
            "src/lib/bom.d.ts",
            "\u{feff}declare module \"x\" { export type V = import(\"@ekairos/story\").StoryValue; }\n",
        )
        .file(
            "src/lib/Upper.TSX",
            "export const A = () => <div reactor={createThread()} />;\n",
        )
        .file("src/lib/generated/story.ts", "import \"@ekairos/story\";\n")
        .file("src/lib/secret.local.ts", "import \"@ekairos/story\";\n")
        .file(
            "src/node_modules/@ekairos/story/index.js",
            "export const useStory = () => 1;\n",
        )
        .file("src/.hidden/x.ts", "import \"@ekairos/story\";\n")
        .file("src/lib/notes.md", "import \"@ekairos/story\";\n")
        .file(
            "scripts/migrate.ts",
            "import \"@ekairos/story\"; story_steps;\n",
        );
    repo
}

#[test]
fn tricky_findings() {
    expect![[r#"
        src/lib/Upper.TSX:1:38 threadApi createThread | call of createThread
        src/lib/aliased.ts:1:1 storyImport @ekairos/story import | import of '@ekairos/story'
        src/lib/aliased.ts:2:1 storyImport @ekairos/story import | import of '@ekairos/story/server'
        src/lib/aliased.ts:4:22 storyApi StoryValue | type use of StoryValue (as SV) from '@ekairos/story'
        src/lib/aliased.ts:5:9 storyApi other @ekairos/story API | call of Story.run from '@ekairos/story/server'
        src/lib/aliased.ts:6:10 storyApi useStory | call of useStory (as useLegacy) from '@ekairos/story'
        src/lib/bom.d.ts:1:39 storyImport @ekairos/story import | type-level import() of '@ekairos/story'
        src/lib/bom.d.ts:1:39 storyApi StoryValue | type use of StoryValue from '@ekairos/story'
        src/lib/broken.ts PROBLEM {"kind":"parseError","line":2,"column":14,"message":"Unexpected token"}
        src/lib/broken.ts:1:30 storyImport @ekairos/story import | mentions ekairos/story (text fallback: file does not parse) [text]
        src/lib/dynamic.ts:2:21 storyImport @ekairos/story import | dynamic import() of '@ekairos/story'
        src/lib/dynamic.ts:3:38 threadImport @ekairos/thread import | dynamic import() of '@ekairos/thread'
        src/lib/dynamic.ts:4:3 threadApi createThread | call of createThread (as ct) from '@ekairos/thread'
        src/lib/dynamic.ts:5:14 storyApi createStory | call of mod.createStory from '@ekairos/story'
        src/lib/latin1.ts PROBLEM {"kind":"unreadable","message":"not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 6)"}
        src/lib/latin1.ts:2:9 threadImport @ekairos/thread import | mentions ekairos/thread (text fallback: file does not parse) [text]
        src/lib/legacy.cjs:1:26 storyImport @ekairos/story import | require() of '@ekairos/story'
        src/lib/legacy.cjs:2:11 storyImport @ekairos/story import | require() of '@ekairos/story'
        src/lib/legacy.cjs:3:26 storyApi useStory | call of useStory (as us) from '@ekairos/story'
        src/lib/legacy.cjs:3:32 storyApi storyRunner | call of storyRunner (as S) from '@ekairos/story'
        src/lib/provider.jsx:1:1 storyImport @ekairos/story import | import of '@ekairos/story/react'
        src/lib/provider.jsx:2:27 storyApi other @ekairos/story API | JSX element of StoryProvider from '@ekairos/story/react'
        src/lib/provider.jsx:2:42 legacyModel story_parts | string literal "story_parts"
        src/lib/reexport.ts:1:1 storyImport @ekairos/story import | re-export * from '@ekairos/story'
        src/lib/reexport.ts:2:1 storyImport @ekairos/story import | re-export * from '@ekairos/story'
        src/lib/reexport.ts:3:1 storyImport @ekairos/story import | re-export from '@ekairos/story/server'
        src/lib/reexport.ts:4:1 storyImport @ekairos/story import | re-export from '@ekairos/story'
        src/lib/sloppy.js:1:14 threadImport @ekairos/thread import | require() of '@ekairos/thread'
        src/lib/sloppy.js:2:17 threadApi createThread | call of createThread
        src/lib/types.ts:1:17 storyImport @ekairos/story import | type-level import() of '@ekairos/story'
        src/lib/types.ts:1:17 storyApi StoryValue | type use of StoryValue from '@ekairos/story'
        src/lib/types.ts:2:1 storyImport @ekairos/story import | type import of '@ekairos/story'
        src/lib/types.ts:3:17 storyApi StoryValue | type use of S.StoryValue from '@ekairos/story'
        src/lib/types.ts:4:1 storyImport @ekairos/story import | import = require() of '@ekairos/story'
        src/lib/types.ts:5:8 storyApi useStory | call of legacy.useStory from '@ekairos/story'
    "#]]
    .assert_eq(&findings(&tricky_repo().scan()));
}

#[test]
fn unparsed_files_are_listed_and_block_readiness() {
    let report = tricky_repo().preflight();
    let errors: Vec<String> = report
        .parse_errors
        .iter()
        .map(|e| format!("{}:{}:{} {}", e.file, e.line, e.column, e.message))
        .collect();
    expect![[r#"
        [
            "src/lib/broken.ts:2:14 Unexpected token",
            "src/lib/latin1.ts:0:0 not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 6)",
        ]
    "#]]
    .assert_debug_eq(&errors);
    assert!(!report.readiness.all_files_parsed);
    assert!(!report.readiness.overall);
}

#[test]
fn scanning_is_deterministic() {
    let repo = tricky_repo();
    assert_eq!(repo.scan(), repo.scan());
}

#[test]
fn without_src_the_whole_repository_is_scanned() {
    let repo = Repo::new();
    repo.file(
        "app/api/x/route.ts",
        "import { useStory } from '@ekairos/story';\nuseStory();\n",
    )
    .file("lib/a.mts", "export const q = { story_parts: {} };\n");
    let scan = repo.scan();
    assert_eq!(scan.scan_root, ".");
    expect![[r#"
        app/api/x/route.ts:1:1 storyImport @ekairos/story import | import of '@ekairos/story'
        app/api/x/route.ts:2:1 storyApi useStory | call of useStory from '@ekairos/story'
        lib/a.mts:1:20 legacyModel story_parts | property key story_parts
    "#]]
    .assert_eq(&findings(&scan));
}
