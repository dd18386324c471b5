//! Integration tests of `code-scan` on fixture repositories written into temporary folders.

mod fixture;

mod errors;
mod migrated;
mod mixed;
mod model_plan;
mod story_only;
mod tricky;
